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
