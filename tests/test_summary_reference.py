"""The summary's comparison with the reference row: paired tests per cell, Holm over the
table, marks only for significant changes in the better direction."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from fairvlm.experiment.reference import compare_to_reference, improves
from fairvlm.experiment.summary import Column, study_summary
from fairvlm.experiment.summary_table import format_table
from fairvlm.metrics import MetricsConfig, compute_metrics
from fairvlm.metrics.compare import holm

N = 120
CFG = MetricsConfig(min_group_size=2, n_boot=400, seed=3)


def _records(acc: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.array(["benign", "malignant"])[rng.integers(0, 2, N)]
    sex = np.array(["male", "female"])[rng.integers(0, 2, N)]
    wrong = np.where(t == "benign", "malignant", "benign")
    pred = np.where(np.random.default_rng(seed).random(N) < acc, t, wrong)
    ids = [f"s{i}" for i in range(N)]
    return pd.DataFrame(
        {"sample_id": ids, "task": "vqa", "split": "test", "target": t, "pred": pred,
         "attr.sex": sex}
    )  # fmt: skip


def write_audit(folder, records: pd.DataFrame, cfg: MetricsConfig = CFG):
    """An audit folder as `fairvlm audit` writes it: records, config.yaml, metrics.json."""
    folder.mkdir(parents=True)
    records.to_parquet(folder / "records.parquet")
    doc = {"audit": {"split": "test", "metrics": cfg.to_dict()}}
    (folder / "config.yaml").write_text(yaml.safe_dump(doc))
    metrics = compute_metrics(records, config=cfg)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("audits")
    base = _records(0.5, 1)
    folders = {
        "base": write_audit(root / "base", base),
        "good": write_audit(root / "good", _records(0.95, 2)),
        "worse": write_audit(root / "worse", _records(0.1, 4)),
        "same": write_audit(root / "same", base),
    }
    rows = [
        {"method": m, "audit": str(f), "train": None, "steer": None,
         "metrics": json.loads((f / "metrics.json").read_text())}
        for m, f in folders.items()
    ]  # fmt: skip
    others = {m: f for m, f in folders.items() if m != "base"}
    return study_summary(
        "clinical", rows[0]["metrics"], rows, attributes=["sex"], utility=None,
        versus=lambda cols: compare_to_reference(folders["base"], others, cols),
    ), folders  # fmt: skip


def test_marks_need_significance_and_the_better_direction(study):
    doc, folders = study
    assert [c["key"] for c in doc["columns"]] == [
        "vqa.accuracy", "vqa.accuracy.gap.sex", "vqa.accuracy.es.sex"
    ]  # fmt: skip
    assert doc["reference"] == "base" and "best" not in doc
    cmp = doc["comparison"]
    assert (cmp["n_boot"], cmp["level"], cmp["seed"]) == (400, 0.95, 3)  # the audit's own
    assert cmp["n_tests"] == 9  # 3 rows x 3 columns
    rows = {r["method"]: r["values"] for r in doc["rows"]}
    assert all(v["vs_reference"] is None for v in rows["base"].values())
    acc = {m: rows[m]["vqa.accuracy"] for m in rows}
    for m in ("good", "worse", "same"):
        assert acc[m]["vs_reference"]["diff"] == pytest.approx(
            acc[m]["value"] - acc["base"]["value"]
        )
    good, worse, same = (acc[m]["vs_reference"] for m in ("good", "worse", "same"))
    assert good["significant"] and good["better"] and good["ci"][0] > 0.3
    assert worse["significant"] and not worse["better"] and worse["ci"][1] < -0.2
    assert same == {"diff": 0.0, "ci": [0.0, 0.0], "p_value": 1.0, "p_holm": 1.0,
                    "significant": False, "better": False}  # fmt: skip
    assert doc["better"]["vqa.accuracy"] == ["good"]
    # Holm over the table's 9 cells, in row-then-column order
    cells = [rows[m][c["key"]]["vs_reference"] for m in ("good", "worse", "same")
             for c in doc["columns"]]  # fmt: skip
    assert [c["p_holm"] for c in cells] == pytest.approx(holm([c["p_value"] for c in cells]))
    # the smallest p a 400-replicate bootstrap gives (2/401), first of 9: times 9, < 0.05
    assert good["p_value"] == pytest.approx(2 / 401) and good["p_holm"] == pytest.approx(18 / 401)


def test_goal_directions():
    assert improves("max", 0.5, 0.6) and not improves("max", 0.6, 0.5)
    assert improves("min", 0.2, 0.1) and not improves("min", 0.1, 0.2)
    assert improves("zero", -0.5, 0.3) and not improves("zero", 0.3, -0.5)
    assert not improves("zero", 0.3, -0.3)  # a tie is not better


def test_console_table_marks_and_legend(study):
    text = format_table({"studies": [study[0]]})
    line = next(ln for ln in text.splitlines() if ln.startswith("good"))
    assert re.match(r"good +0\.9\d\d \[0\.\d+, 0\.\d+\]\* ", line)  # accuracy marked
    assert "*" not in next(ln for ln in text.splitlines() if ln.startswith("worse"))
    vs = next(r for r in study[0]["rows"] if r["method"] == "good")["values"]["vqa.accuracy"]
    lo, hi = vs["vs_reference"]["ci"]
    diff = vs["vs_reference"]["diff"]
    assert f"]*  {diff:+.3f} [{lo:+.3f}, {hi:+.3f}]" in line and diff == pytest.approx(
        0.95 - 0.4833, abs=1e-3
    )
    assert (
        "* = significantly better than base at 95% after Holm (paired bootstrap, "
        "400 replicates, 9 tests)" in text
    )


def test_no_bootstrap_no_comparison(tmp_path):
    cfg = MetricsConfig(min_group_size=2, n_boot=0)
    ref = write_audit(tmp_path / "a", _records(0.5, 1), cfg)
    other = write_audit(tmp_path / "b", _records(0.9, 2), cfg)
    out = compare_to_reference(ref, {"b": other}, [])
    assert out["n_tests"] == 0 and out["cells"] == {"b": {}}
    assert "metrics n_boot: 0" in out["notes"][0]


def test_too_few_replicates_for_any_mark_is_said(study, tmp_path):
    doc, folders = study
    assert not any("no cell can be significant" in n for n in doc["comparison"]["notes"])
    cols = [Column(**c) for c in doc["columns"]]
    out = compare_to_reference(folders["base"], {"good": folders["good"]}, cols, n_boot=40)
    # 3 cells: the smallest p, 2/41, times 3 is not below 0.05
    assert out["notes"] == [
        "with 40 replicates no cell can be significant after Holm over 3 cells (the "
        "smallest p is 0.0488): an unmarked cell is no evidence of no change; use metrics "
        "n_boot: 120 or more"
    ]
    assert out["cells"]["good"]["vqa.accuracy"]["better"] is False


def test_group_sizes_and_small_group_notes_reach_the_table(tmp_path):
    records = _records(0.5, 1)
    records.loc[:2, "attr.sex"] = "other"  # a 3-member group, all wrong: an extreme value
    records.loc[:2, "pred"] = np.where(records.loc[:2, "target"] == "benign", "malignant", "benign")
    cfg = MetricsConfig(min_group_size=10, n_boot=0)
    folder = write_audit(tmp_path / "base", records, cfg)
    metrics = json.loads((folder / "metrics.json").read_text())
    row = {"method": "base", "audit": str(folder), "train": None, "steer": None}
    doc = study_summary(
        "clinical", metrics, [{**row, "metrics": metrics}], attributes=["sex"], utility=None,
        versus=lambda cols: compare_to_reference(folder, {}, cols),
    )  # fmt: skip
    sizes = doc["groups"]["vqa"]["sex"]
    counts = records["attr.sex"].value_counts()
    assert sizes == {g: {"n": int(counts[g]), "small": g == "other"} for g in sizes}
    assert sizes["other"] == {"n": 3, "small": True}
    assert doc["notes"] == [
        "vqa: sex: groups ['other'] have fewer than 10 samples and are left out of its gaps "
        "and ES (metrics include_small_groups: true counts them)"
    ]
    acc = metrics["tasks"]["vqa"]["metrics"]["accuracy"]["by_attribute"]["sex"]
    values = {g: acc["groups"][g]["value"] for g in ("female", "male")}
    gap = doc["rows"][0]["values"]["vqa.accuracy.gap.sex"]["value"]
    assert gap == pytest.approx(abs(values["female"] - values["male"]))  # 'other' (0.0) not in
    text = format_table({"studies": [doc]})
    f, m = int(counts["female"]), int(counts["male"])
    assert f"n per group (vqa, sex): female {f}, male {m}, other 3 (small)" in text
    assert "note: vqa: sex: groups ['other'] have fewer than 10 samples" in text


def test_a_collapsed_row_is_never_better_and_not_on_the_pareto_front(tmp_path):
    from fairvlm.report.html import _scatter
    from fairvlm.report.plots import front_of

    n = 200
    rng = np.random.default_rng(5)
    t = np.array(["benign", "malignant"])[rng.integers(0, 2, n)]
    sex = np.array(["male", "female"])[rng.integers(0, 2, n)]
    wrong = np.where(t == "benign", "malignant", "benign")
    # base: right on 95% of women, 45% of men (a large gap); const: always "benign"
    right = rng.random(n) < np.where(sex == "female", 0.95, 0.45)
    frame = {"sample_id": [f"s{i}" for i in range(n)], "task": "vqa", "split": "test",
             "target": t, "attr.sex": sex}  # fmt: skip
    base = write_audit(
        tmp_path / "base", pd.DataFrame({**frame, "pred": np.where(right, t, wrong)})
    )
    const = write_audit(tmp_path / "const", pd.DataFrame({**frame, "pred": "benign"}))
    rows = [
        {"method": m, "audit": str(f), "train": None, "steer": None,
         "metrics": json.loads((f / "metrics.json").read_text())}
        for m, f in (("base", base), ("const", const))
    ]  # fmt: skip
    doc = study_summary(
        "clinical", rows[0]["metrics"], rows, attributes=["sex"], utility=None,
        versus=lambda cols: compare_to_reference(base, {"const": const}, cols),
    )  # fmt: skip
    chance = max(0.5, max((t == "benign").mean(), (t == "malignant").mean()))
    assert doc["columns"][0]["chance"] == pytest.approx(chance)
    base_row, const_row = doc["rows"]
    assert const_row["values"]["vqa.accuracy"]["value"] == pytest.approx((t == "benign").mean())
    assert const_row["collapsed"] == ["vqa.accuracy"] and base_row["collapsed"] == []
    gap = const_row["values"]["vqa.accuracy.gap.sex"]["vs_reference"]
    # its gap fell, significantly: without the collapse rule it would be marked better
    assert gap["significant"] and gap["diff"] < -0.3 and gap["better"] is False
    assert doc["better"] == {}
    # the scatter: const has the lowest gap, yet the front is base alone
    points = [
        (r["values"]["vqa.accuracy.gap.sex"]["value"], r["values"]["vqa.accuracy"]["value"])
        for r in doc["rows"]
    ]
    assert points[1][0] < points[0][0] and front_of(points, None) == [1, 0]
    assert front_of(points, [False, True]) == [0]
    html = _scatter(doc)
    assert "gap sex (vqa): Pareto front base; collapsed (at chance, drawn apart): const" in html
    text = format_table({"studies": [doc]})
    assert "const (collapsed)" in text
    assert (
        "note: collapsed, accuracy at or below chance (no better than not looking; never "
        "marked better, not on the Pareto front): const (accuracy (vqa) "
        f"{(t == 'benign').mean():.3f} <= {chance:.3f})" in text
    )


def test_without_the_reference_audit_nothing_is_compared_and_a_note_says_so(study):
    doc, folders = study
    metrics = json.loads((folders["good"] / "metrics.json").read_text())
    row = {"method": "good", "audit": "x", "train": None, "steer": None, "metrics": metrics}
    out = study_summary("clinical", metrics, [row], attributes=["sex"], utility=None)
    assert out["comparison"] == {"notes": ["no comparison: the reference row 'base' has no audit"]}
    assert out["better"] == {} and out["rows"][0]["values"]["vqa.accuracy"]["vs_reference"] is None
    text = format_table({"studies": [out]})
    assert "* = significantly better than base (nothing compared: see the notes)" in text
    assert "note: no comparison: the reference row 'base' has no audit" in text
