"""``seeds:`` in an experiment: each method once per seed, a summary over the seeds (mean,
t-interval) and the paired test against the reference pooled over the seeds."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from test_experiment_run import _samples

from fairvlm.data import save_dataset
from fairvlm.errors import ConfigError
from fairvlm.experiment import load_experiment, run_experiment
from fairvlm.experiment.plan import plan_experiment
from fairvlm.experiment.seeds import seed_cell, t_interval
from fairvlm.experiment.summary_table import format_table

N_BOOT = 60


def _yaml(tiny_llava, extra: str = "", train: str = "") -> str:
    return textwrap.dedent(f"""\
        name: mini
        seed: 0
        seeds: [3, 4]
        data: {{path: data}}
        model: {{path: {tiny_llava}}}
        audit: {{tasks: [vqa], batch_size: 12,
                config: {{progress: false, metrics: {{n_boot: {N_BOOT}, min_group_size: 2}}}}}}
        train: {{steps: 2, batch_size: 8, lr: 5.0e-3, progress: false, probe_split: null,
                lora: {{r: 4, alpha: 8}}{train}}}
        methods:
          - lora
        {extra}""")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llava):
    root = tmp_path_factory.mktemp("seeds")
    save_dataset({"finetune": _samples("finetune", 16), "test": _samples("test", 12)},
                 root / "data")  # fmt: skip
    (root / "exp.yaml").write_text(_yaml(tiny_llava))
    return run_experiment(root / "exp.yaml", root / "out", echo=False, report=False)


def test_each_method_runs_once_per_seed_and_the_base_once(run):
    assert run.ran == ["mini/audit/base", "mini/seed-3/train/lora", "mini/seed-3/audit/lora",
                       "mini/seed-4/train/lora", "mini/seed-4/audit/lora"]  # fmt: skip
    for seed in (3, 4):
        cfg = yaml.safe_load((run.out_dir / f"mini/seed-{seed}/train/lora/config.yaml")
                             .read_text())  # fmt: skip
        assert cfg["train"]["seed"] == seed
    # the two seeds trained different adapters
    a, b = (
        (run.out_dir / f"mini/seed-{s}/train/lora/adapter_model.safetensors").read_bytes()
        for s in (3, 4)
    )
    assert a != b


def _acc(folder, order=None) -> tuple[np.ndarray, list[str]]:
    """Correct (1/0) per sample, in the records' order or in the sample ids' ``order``."""
    df = pd.read_parquet(folder / "records.parquet")
    if order is not None:
        df = df.set_index("sample_id").loc[order].reset_index()
    return (df["target"] == df["pred"]).to_numpy(float), df["sample_id"].tolist()


def test_the_summary_is_the_mean_over_seeds_with_a_t_interval(run):
    study = run.summary["studies"][0]
    assert study["seeds"] == [3, 4] and run.summary["seeds"] == [3, 4]
    base, lora = study["rows"]
    assert set(lora["seeds"]) == {"3", "4"} and lora["audit"] == "mini/seed-3/audit/lora"
    per_seed = [
        json.loads((run.out_dir / f"mini/seed-{s}/audit/lora/metrics.json").read_text())[
            "tasks"]["vqa"]["metrics"]["accuracy"]["overall"]
        for s in (3, 4)
    ]  # fmt: skip
    cell = lora["values"]["vqa.accuracy"]
    assert cell["per_seed"] == pytest.approx(per_seed)
    assert cell["value"] == pytest.approx(np.mean(per_seed))
    half = stats.t.ppf(0.975, 1) * np.std(per_seed, ddof=1) / np.sqrt(2)
    assert cell["ci"] == pytest.approx([np.mean(per_seed) - half, np.mean(per_seed) + half])
    # the base model is shared by the seeds: its own audit and bootstrap CI
    base_metrics = json.loads((run.out_dir / "mini/audit/base/metrics.json").read_text())
    acc = base_metrics["tasks"]["vqa"]["metrics"]["accuracy"]
    assert base["values"]["vqa.accuracy"]["ci"] == pytest.approx(acc["ci"])
    assert "seeds" not in base
    assert "seeds [3, 4]: each value is the mean over the seeds" in study["notes"][0]
    text = format_table(run.summary)
    assert "paired bootstrap pooled over 2 seeds" in text


def test_the_change_versus_base_is_pooled_over_seeds(run):
    """vs_reference of lora: the hand-written stratified paired bootstrap (replicate b
    draws the same test samples, by position in the reference's records, for both seeds;
    the statistic is the mean change)."""
    base, ids = _acc(run.out_dir / "mini/audit/base")
    seeds = [_acc(run.out_dir / f"mini/seed-{s}/audit/lora", ids) for s in (3, 4)]
    assert all(i == ids for _, i in seeds)
    n = len(ids)
    d = []
    for b in range(N_BOOT):
        idx = np.random.default_rng((0, b)).integers(0, n, n)
        d.append(np.mean([c[idx].mean() - base[idx].mean() for c, _ in seeds]))
    d = np.array(d)
    vs = run.summary["studies"][0]["rows"][1]["values"]["vqa.accuracy"]["vs_reference"]
    assert vs["diff"] == pytest.approx(np.mean([c.mean() for c, _ in seeds]) - base.mean())
    assert vs["ci"] == pytest.approx(np.quantile(d, [0.025, 0.975]).tolist())
    low, high = (1 + (d <= 0).sum()) / (N_BOOT + 1), (1 + (d >= 0).sum()) / (N_BOOT + 1)
    assert vs["p_value"] == pytest.approx(min(1.0, 2 * min(low, high)))


def test_a_seed_fixed_in_a_method_is_refused_with_its_line(tiny_llava, tmp_path):
    save_dataset({"finetune": _samples("finetune", 4), "test": _samples("test", 4)},
                 tmp_path / "data")  # fmt: skip
    path = tmp_path / "exp.yaml"
    path.write_text(_yaml(tiny_llava, train=", seed: 1"))
    with pytest.raises(ConfigError, match=r"exp.yaml:9: train.seed: a fixed seed"):
        load_experiment(path)
    for bad in ("[]", "[1, 1]", "[1, x]", "3"):
        path.write_text(_yaml(tiny_llava).replace("seeds: [3, 4]", f"seeds: {bad}"))
        with pytest.raises(ConfigError, match=r"exp.yaml:3: seeds: .* distinct integer seeds"):
            load_experiment(path)


def test_without_seeds_the_stage_ids_are_unchanged(tiny_llava, tmp_path):
    save_dataset({"finetune": _samples("finetune", 4), "test": _samples("test", 4)},
                 tmp_path / "data")  # fmt: skip
    path = tmp_path / "exp.yaml"
    path.write_text(_yaml(tiny_llava).replace("seeds: [3, 4]\n", ""))
    [plan] = plan_experiment(load_experiment(path), tmp_path / "out")
    assert [st.id for st in plan.stages] == ["mini/audit/base", "mini/train/lora",
                                             "mini/audit/lora"]  # fmt: skip
    assert [r.seed for r in plan.rows] == [None, None]


def test_seed_cell_and_t_interval():
    assert t_interval([0.5]) is None
    lo, hi = t_interval([0.1, 0.2, 0.3], level=0.9)
    half = stats.t.ppf(0.95, 2) * 0.1 / np.sqrt(3)
    assert (lo, hi) == pytest.approx((0.2 - half, 0.2 + half))
    pair = {"groups": ["a", "b"], "diff": 0.2, "ci": [0.1, 0.3]}
    cells = [
        {"value": 0.4, "ci": [0.3, 0.5], "pair": pair},
        {"value": 0.6, "ci": [0.5, 0.7], "pair": {**pair, "diff": 0.4}},
    ]
    out = seed_cell(cells)
    assert out["value"] == pytest.approx(0.5) and out["per_seed"] == [0.4, 0.6]
    assert out["pair"]["diff"] == pytest.approx(0.3) and out["pair"]["groups"] == ["a", "b"]
    swapped = [cells[0], {**cells[1], "pair": {**pair, "groups": ["b", "a"]}}]
    assert seed_cell(swapped)["pair"] is None  # the seeds disagree on the pair
    missing = seed_cell([cells[0], {"value": None, "ci": None, "pair": None}])
    assert missing["value"] == pytest.approx(0.4) and missing["ci"] is None


def test_a_row_with_some_seeds_audited_says_so(run, tmp_path):
    """--only: a row whose other seeds are not audited yet is the mean of those done,
    and a note names them."""
    part = run_experiment(
        run.out_dir.parent / "exp.yaml", tmp_path / "part", only=["mini/audit/base",
        "mini/seed-3/*"], echo=False, report=False,
    )  # fmt: skip
    assert part.ran == ["mini/audit/base", "mini/seed-3/train/lora", "mini/seed-3/audit/lora"]
    study = part.summary["studies"][0]
    assert "lora: only seeds [3] of [3, 4] audited" in study["notes"]
    full = run.summary["studies"][0]["rows"][1]["values"]["vqa.accuracy"]["per_seed"][0]
    assert study["rows"][1]["values"]["vqa.accuracy"]["value"] == pytest.approx(full)
