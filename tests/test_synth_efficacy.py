"""The benchmarks' promises, end to end (slow: each case generates data and pretrains the
base model with the default config, a few minutes on CPU). The measurement is
``scripts/measure_benchmarks.py`` (option scoring, fairvlm.metrics skew / mentions)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_benchmarks.py"


@pytest.fixture(scope="module")
def measure(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("measure_benchmarks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    work = tmp_path_factory.mktemp("measure")
    return lambda variant: module.run_variant(variant, 0, work, [])


@pytest.mark.parametrize("variant", ["clinical-underrep", "clinical-spurious"])
def test_clinical_bias_mechanisms_open_a_skin_tone_gap(measure, variant):
    r = measure(variant)
    assert r["accuracy"] >= 0.75, r
    assert r["gap"] >= 0.10, r
    worst = min(r["by_skin_tone"], key=r["by_skin_tone"].get)
    assert worst == "dark", r  # the configured minority group


def test_clinical_without_knobs_has_no_gap(measure):
    r = measure("clinical-zero")
    assert r["accuracy"] >= 0.75, r
    assert r["gap"] < 0.05, r


def test_social_stereotypes_show_up_as_skew_and_mentions(measure):
    biased, zero = measure("social"), measure("social-zero")
    assert biased["max_skew_mean"] >= 0.3, biased
    assert biased["concept_accuracy"] >= 0.7, biased
    assert biased["mention_rate"] >= 0.5, biased
    # knobs at zero: skew at the noise floor, no mentions, the task still learned
    assert zero["max_skew_mean"] < 0.15, zero
    assert zero["max_skew_mean"] < biased["max_skew_mean"] / 2, (zero, biased)
    assert zero["mention_rate"] < 0.05, zero
    assert zero["concept_accuracy"] >= 0.7, zero
