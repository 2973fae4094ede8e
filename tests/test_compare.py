"""``fairvlm compare`` and ``fairvlm.metrics.compare``: the paired bootstrap of two audits."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from audit_support import audit_samples

from fairvlm.cli import main
from fairvlm.errors import DataError
from fairvlm.metrics import MetricsConfig
from fairvlm.metrics.compare import compare_audits, compare_records, holm, paired_p_value

CFG = MetricsConfig(min_group_size=2, n_boot=0)
LABELS = np.array(["benign", "malignant"])


def _records(n: int, acc: float, seed: int, targets=None, sex=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = LABELS[rng.integers(0, 2, n)] if targets is None else targets
    wrong = np.where(t == "benign", "malignant", "benign")
    pred = np.where(rng.random(n) < acc, t, wrong)
    return pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "task": "vqa",
            "split": "test",
            "target": t,
            "pred": pred,
            "attr.sex": np.array(["male", "female"])[rng.integers(0, 2, n)] if sex is None else sex,
        }
    )


@pytest.fixture(scope="module")
def pair():
    ref = _records(30, 0.5, 1)
    other = _records(30, 0.8, 2, targets=ref["target"].to_numpy(), sex=ref["attr.sex"].to_numpy())
    return ref, other


def _hand_paired(ref: pd.DataFrame, other: pd.DataFrame, n_boot: int, seed: int):
    """The paired bootstrap written out: accuracy overall and the sex gap, per replicate."""
    other = other.set_index("sample_id").loc[ref["sample_id"]].reset_index()
    cr = (ref["target"] == ref["pred"]).to_numpy(float)
    co = (other["target"] == other["pred"]).to_numpy(float)
    sex = ref["attr.sex"].to_numpy()
    n = len(cr)
    d_overall, d_gap = [], []
    for b in range(n_boot):
        idx = np.random.default_rng((seed, b)).integers(0, n, n)
        d_overall.append(co[idx].mean() - cr[idx].mean())
        gaps = []
        for c in (cr, co):
            means = [
                c[idx][sex[idx] == g].mean() for g in ("female", "male") if (sex[idx] == g).any()
            ]
            gaps.append(max(means) - min(means) if len(means) == 2 else np.nan)
        d_gap.append(gaps[1] - gaps[0])
    return np.array(d_overall), np.array(d_gap), cr, co, sex


def _p(d):
    d = d[np.isfinite(d)]
    b = len(d)
    return min(1.0, 2 * min((1 + (d <= 0).sum()) / (b + 1), (1 + (d >= 0).sum()) / (b + 1)))


def test_paired_ci_and_p_value_equal_a_hand_written_paired_bootstrap(pair):
    ref, other = pair
    shuffled = other.sample(frac=1, random_state=3)  # aligned by sample_id, not by row
    out, notes = compare_records(
        ref, shuffled, ref_config=CFG, other_config=CFG, n_boot=300, seed=7
    )
    d_overall, d_gap, cr, co, sex = _hand_paired(ref, other, 300, 7)
    acc = out["vqa"]["accuracy"]
    assert acc["overall"]["ref"] == pytest.approx(cr.mean())
    assert acc["overall"]["other"] == pytest.approx(co.mean())
    assert acc["overall"]["diff"] == pytest.approx(co.mean() - cr.mean())
    assert acc["overall"]["ci"] == pytest.approx(np.quantile(d_overall, [0.025, 0.975]).tolist())
    assert acc["overall"]["p_value"] == pytest.approx(_p(d_overall))
    gap = acc["by_attribute"]["sex"]["gap"]
    g = {s: (cr[sex == s].mean(), co[sex == s].mean()) for s in ("female", "male")}
    gap_ref = abs(g["female"][0] - g["male"][0])
    gap_other = abs(g["female"][1] - g["male"][1])
    assert gap["diff"] == pytest.approx(gap_other - gap_ref)
    finite = d_gap[np.isfinite(d_gap)]
    assert gap["ci"] == pytest.approx(np.quantile(finite, [0.025, 0.975]).tolist())
    assert gap["p_value"] == pytest.approx(_p(d_gap))
    assert set(acc["by_attribute"]["sex"]) == {"gap", "es_fairllava", "es_fairclip"}
    assert any("equalized_odds_difference" in n and "not compared" in n for n in notes)


def test_point_estimates_equal_those_of_metrics_json(pair):
    from fairvlm.metrics import compute_metrics

    ref, other = pair
    out, _ = compare_records(ref, other, ref_config=CFG, other_config=CFG, n_boot=20)
    for side, records in (("ref", ref), ("other", other)):
        metrics = compute_metrics(records, config=CFG)["tasks"]["vqa"]["metrics"]
        for name, entry in out["vqa"].items():
            assert entry["overall"][side] == metrics[name]["overall"], name
            for f, e in entry["by_attribute"]["sex"].items():
                assert e[side] == metrics[name]["by_attribute"]["sex"][f], (name, f)


def test_identical_records_give_zero_difference_and_p_one(pair):
    ref, _ = pair
    out, _ = compare_records(ref, ref.copy(), ref_config=CFG, other_config=CFG, n_boot=100)
    n = 0
    for entry in out["vqa"].values():
        for e in [entry["overall"], *entry["by_attribute"]["sex"].values()]:
            assert e["diff"] == 0.0 and e["ci"] == [0.0, 0.0] and e["p_value"] == 1.0
            n += 1
    assert n == 4 * 4  # accuracy, macro_f1, balanced_accuracy, parse_failures: 1 + 3 each


def test_mismatched_sample_ids_are_one_line_errors(pair):
    ref, other = pair
    with pytest.raises(DataError) as exc:
        compare_records(ref, other.iloc[:-1], ref_config=CFG, other_config=CFG, n_boot=10)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "sample ids of task 'vqa' differ: 1 only in REF ['s29'], 0 only in OTHER []" in msg


def _fake_audit(folder, records: pd.DataFrame, split: str = "test"):
    folder.mkdir(parents=True)
    records.to_parquet(folder / "records.parquet")
    doc = {"audit": {"split": split, "metrics": {"min_group_size": 2, "n_boot": 0}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(doc))
    return folder


def test_mismatched_splits_are_one_line_errors(pair, tmp_path, capsys):
    ref, other = pair
    a = _fake_audit(tmp_path / "a", ref)
    b = _fake_audit(tmp_path / "b", other, split="val")
    with pytest.raises(DataError, match=r"splits differ: REF .* audited 'test', OTHER .* 'val'"):
        compare_audits(a, [b], n_boot=10)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fairvlm compare: error: splits differ") and "\n" not in err
    assert main(["compare", str(a), str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert "give an audit folder" in capsys.readouterr().err


def test_holm_adjusted_p_values_on_a_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04)
    got = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert got[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(got[4])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, monotone
    assert paired_p_value(np.zeros(9)) == 1.0
    assert paired_p_value(np.ones(9)) == pytest.approx(2 / 10)  # never 0: the +1 correction


def test_holm_is_applied_across_the_call_and_can_be_switched_off(pair, tmp_path):
    ref, other = pair
    a = _fake_audit(tmp_path / "a", ref)
    b = _fake_audit(tmp_path / "b", other)
    on = compare_audits(a, [b], n_boot=50)
    off = compare_audits(a, [b], n_boot=50, holm_correction=False)
    entries = lambda doc: [  # noqa: E731
        e
        for m in doc["comparisons"]["b"]["vqa"].values()
        for e in [m["overall"], *m["by_attribute"]["sex"].values()]
    ]
    raw = [e["p_value"] for e in entries(on)]
    assert [e["p_holm"] for e in entries(on)] == pytest.approx(holm(raw))
    assert all(e["p_holm"] is None for e in entries(off))
    assert [e["significant"] for e in entries(off)] == [p < 0.05 for p in raw]


class ToyVector:
    """Adds ``scale`` to the output of decoder layer 0: another model, the same samples."""

    def __init__(self, hidden: int) -> None:
        import torch

        self.v = torch.ones(hidden)

    @contextlib.contextmanager
    def apply(self, vlm, scale: float = 1.0):
        handle = vlm.decoder_layers[0].register_forward_hook(
            lambda module, args, output: output + scale * self.v
        )
        try:
            yield self
        finally:
            handle.remove()


def test_cli_end_to_end_on_two_real_audits(tiny_vlm, tmp_path, capsys):
    from fairvlm.audit import AuditConfig, run_audit
    from fairvlm.data import save_dataset

    data = save_dataset({"test": audit_samples(6, tasks=("vqa", "probe"))}, tmp_path / "data")
    cfg = AuditConfig.from_dict(
        {"batch_size": 6, "closed_max_new_tokens": 4, "progress": False,
         "metrics": {"n_boot": 20, "min_group_size": 2}}
    )  # fmt: skip
    vlm = tiny_vlm("llava")
    ref = run_audit(vlm, data, cfg, tmp_path / "ref")
    steered = run_audit(
        vlm, data, cfg, tmp_path / "steered", steer=(ToyVector(vlm.hidden_size), {"scale": 4.0})
    )
    out = tmp_path / "cmp"
    args = ["compare", str(ref), str(steered), str(ref), "--out", str(out), "--n-boot", "40"]
    assert main(args) == 0
    table = capsys.readouterr().out
    doc = json.loads((out / "comparison.json").read_text())
    assert json.loads((out / "fairvlm_output.json").read_text()) == {"kind": "comparison"}
    assert doc["reference"] == str(ref) and doc["holm"] is True and doc["n_boot"] == 40
    assert set(doc["comparisons"]) == {"steered", "ref"}
    p_yes = doc["comparisons"]["steered"]["probe"]["p_yes"]
    saved = {
        name: json.loads((d / "metrics.json").read_text())["tasks"]["probe"]["metrics"]["p_yes"]
        for name, d in (("ref", ref), ("other", steered))
    }
    for side in ("ref", "other"):
        assert p_yes["overall"][side] == pytest.approx(saved[side]["overall"], abs=1e-12)
        gap = saved[side]["by_attribute"]["sex"]["gap"]
        assert p_yes["by_attribute"]["sex"]["gap"][side] == pytest.approx(gap, abs=1e-12)
    assert p_yes["overall"]["diff"] != 0
    assert {"p_value", "p_holm", "significant", "ci"} <= set(p_yes["overall"])
    # auc and option_accuracy use the records with option scores (rows): compared too
    assert {"accuracy", "auc", "option_accuracy"} <= set(doc["comparisons"]["steered"]["vqa"])
    same = doc["comparisons"]["ref"]["vqa"]["accuracy"]["overall"]
    assert same["diff"] == 0 and same["ci"] == [0, 0] and same["p_value"] == 1
    assert "max_skew: ranking metric, not compared" in " ".join(doc["notes"]["steered"])
    assert "no significant change" in table and "changes are significant at the 95% level" in table
    assert "wrote " in table
    # the marker rule: a folder of another kind is refused
    assert main([*args[:4], "--out", str(ref)]) == 2
    assert "not a fairvlm comparison folder" in capsys.readouterr().err


def test_pooled_over_strata_is_the_mean_of_the_same_replicates(pair):
    """compare_pooled over two seeds' pairs: the hand-written stratified bootstrap, where
    replicate b draws the same samples in both strata and the statistic is the mean."""
    from fairvlm.metrics.compare import compare_pooled

    ref, other = pair
    third = _records(30, 0.65, 4, targets=ref["target"].to_numpy(), sex=ref["attr.sex"].to_numpy())
    out, _ = compare_pooled(
        [(ref, other), (ref, third)], configs=[(CFG, CFG)] * 2, n_boot=200, seed=5
    )
    d1, g1, cr, co, _ = _hand_paired(ref, other, 200, 5)
    d2, g2, _, ct, _ = _hand_paired(ref, third, 200, 5)
    acc = out["vqa"]["accuracy"]["overall"]
    assert acc["ref"] == pytest.approx(cr.mean())
    assert acc["other"] == pytest.approx((co.mean() + ct.mean()) / 2)
    assert acc["diff"] == pytest.approx((co.mean() + ct.mean()) / 2 - cr.mean())
    pooled = (d1 + d2) / 2
    assert acc["ci"] == pytest.approx(np.quantile(pooled, [0.025, 0.975]).tolist())
    assert acc["p_value"] == pytest.approx(_p(pooled))
    gap = (g1 + g2) / 2
    finite = gap[np.isfinite(gap)]
    got = out["vqa"]["accuracy"]["by_attribute"]["sex"]["gap"]
    assert got["ci"] == pytest.approx(np.quantile(finite, [0.025, 0.975]).tolist())
    # one stratum is compare_records exactly
    single, _ = compare_pooled([(ref, other)], configs=[(CFG, CFG)], n_boot=200, seed=5)
    alone, _ = compare_records(ref, other, ref_config=CFG, other_config=CFG, n_boot=200, seed=5)
    assert single == alone
