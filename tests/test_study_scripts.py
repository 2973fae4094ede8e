"""The statistics the efficacy studies (``scripts/``) print, checked by hand."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fairllava_study_table_is_mean_and_t_interval_per_scenario_and_method():
    study = _load("fairllava_study")
    half = 4.303 * 0.1 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert study.summarise([0.1, 0.2, 0.3]) == f"0.200 ± {half:.3f}"
    assert study.summarise([0.5, None, float("nan")]) == "0.500"
    assert study.summarise([None]) == "-"
    rows = [
        {"scenario": "s", "method": m, "accuracy": a, "gap": g, "es_fairllava": a / (1 + g),
         "probe": 0.5, "club_mi_last": None}
        for m, a, g in (("lora", 0.8, 0.2), ("lora", 0.9, 0.1), ("fairllava", 0.7, 0.0))
    ]  # fmt: skip
    lines = study.format_table(rows).splitlines()
    assert len(lines) == 4  # header, rule, one row per (scenario, method)
    assert lines[2].startswith("| s | lora | 2 | 0.850 ± ")
    assert lines[3] == "| s | fairllava | 1 | 0.700 | 0.000 | 0.700 | 0.500 | - |"
    assert study.method_of("strong-input") == "fairllava"
    assert study.method_of("lora-lr1e-3") == "lora-lr1e-3"


def test_asd_study_pairs_asd_and_naive_by_seed():
    study = _load("asd_study")
    runs = {
        "naive": [{"min_skew": -0.3}, {"min_skew": -0.2}, {"min_skew": -0.1}],
        "asd": [{"min_skew": -0.2}, {"min_skew": -0.2}, {"min_skew": 0.0}],
    }
    # |ASD| - |naive| per seed: -0.1, 0, -0.1
    mean, half = -0.2 / 3, 4.303 * math.sqrt(1 / 300) / math.sqrt(3)
    text = study._paired(runs, "min_skew")
    assert f"{mean:+.3f} ± {half:.3f} (n=3)" in text
    assert study._paired({"naive": runs["naive"][:1], "asd": runs["asd"][:1]}, "min_skew") == ""
    with pytest.raises(ValueError):  # the two variants must have the same seeds
        study._paired({"naive": runs["naive"], "asd": runs["asd"][:2]}, "min_skew")


def test_fairllava_sweep_table_has_one_row_per_layer_and_positions():
    study = _load("fairllava_study")
    sweep = [
        {"entry": e, "tokens": t, "probe": p, "balanced_accuracy": b}
        for e, t, p, b in ((0, "image", "linear", 0.5), (0, "image", "mlp", 0.9),
                           (2, "text", "linear", 0.6), (2, "text", "mlp", 0.7))
    ]  # fmt: skip
    rows = [
        {"scenario": "s", "method": "strong", "sweep": sweep},
        {
            "scenario": "s",
            "method": "strong",
            "sweep": [{**x, "balanced_accuracy": 0.7} for x in sweep],
        },  # fmt: skip
    ]
    lines = study.format_sweep(rows).splitlines()
    assert len(lines) == 4
    half = 12.706 * math.sqrt(0.02) / math.sqrt(2)  # linear at entry 0: 0.5, 0.7
    assert lines[2] == f"| s | strong | 2 | 0 | image | 0.600 ± {half:.3f} | 0.800 ± {half:.3f} |"
    assert lines[3].startswith("| s | strong | 2 | 2 | text | 0.650 ± ")


def test_asd_grid_pairs_by_seed_and_tests_the_difference():
    from scipy import stats

    grid = _load("asd_grid")
    naive = [{"max_skew": v} for v in (0.30, 0.20, 0.25, 0.22, 0.28)]
    asd = [{"max_skew": v} for v in (0.20, -0.12, 0.20, 0.15, 0.21)]
    t = grid._paired(naive, asd, "max_skew", True)
    diffs = [abs(a["max_skew"]) - abs(n["max_skew"]) for a, n in zip(asd, naive, strict=True)]
    assert t["per_seed"] == pytest.approx(diffs)
    assert t["diff"] == pytest.approx(sum(diffs) / 5)
    assert t["p"] == pytest.approx(stats.ttest_rel([abs(a["max_skew"]) for a in asd],
                                                   [n["max_skew"] for n in naive]).pvalue)  # fmt: skip
    signed = grid._paired(naive, asd, "max_skew", False)  # utility: no absolute value
    assert signed["per_seed"][1] == pytest.approx(-0.32)
    same = grid._paired(naive, naive, "max_skew", True)
    assert (same["diff"], same["p"]) == (0.0, 1.0)


def test_steering_seeds_chooses_by_the_fixed_rule():
    steer = _load("steering_seeds")
    args = steer._args(["--root", "r", "--out", "o"])
    base = {"concept_accuracy": {"value": 0.99}}

    def row(mention, acc, named, scale):
        return {"mention_rate": {"value": mention}, "concept_accuracy": {"value": acc},
                "concept_named": named, "scale": scale}  # fmt: skip

    rows = [
        row(0.05, 0.95, 1.0, -6),  # lowest mention, but costs 4 points of accuracy
        row(0.08, 0.99, 0.90, -4),  # keeps accuracy, but breaks the descriptions
        row(0.20, 0.985, 0.97, -3),
        row(0.20, 0.99, 0.99, -2),  # the same mention rate at a smaller |scale|
        row(0.60, 0.99, 1.0, -1),
    ]
    assert steer._choose(rows, base, args)["scale"] == -2
    assert steer._choose(rows[:2], base, args) is None
