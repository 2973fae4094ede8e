"""Prefix-shared option scoring equals independent scoring (every family, LoRA, steering)."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch
from audit_support import audit_samples

from fairvlm.audit import AuditConfig, run_audit
from fairvlm.errors import ConfigError
from fairvlm.mitigation.steering import SteeringVector
from fairvlm.models import adapter as adapter_module
from fairvlm.models import load_vlm, shared_scoring, supported_families
from fairvlm.training.config import LoraSettings
from fairvlm.training.lora import lora_targets

# Ragged per-sample lists: multi- and single-token options, options that are prefixes of
# each other, and more options than one pass takes (batch_size=3 below).
OPTIONS = [
    ["yes", "no", "yes indeed", "a nurse in white"],
    ["doctor", "doc"],
    ["x", "nurse practitioner", "n", "nurse", "nurse practitioner of the ward"],
]
ATOL = 1e-4


def _both(vlm, samples, options=OPTIONS, batch_size=3):
    a = vlm.score_options(samples, options, batch_size=batch_size, scoring="independent")
    b = vlm.score_options(samples, options, batch_size=batch_size, scoring="shared")
    return a, b


def _assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.n_tokens, b.n_tokens)
    np.testing.assert_array_equal(np.isnan(a.sum_logprob), np.isnan(b.sum_logprob))
    np.testing.assert_allclose(a.sum_logprob, b.sum_logprob, atol=ATOL, rtol=0)
    np.testing.assert_allclose(a.mean_logprob, b.mean_logprob, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", supported_families())
def test_shared_equals_independent(tiny_vlm, make_samples, family):
    vlm = tiny_vlm(family)
    samples = make_samples(3)
    a, b = _both(vlm, samples)
    _assert_same(a, b)
    assert (a.n_tokens[2, :5] > 0).all() and a.n_tokens.max() > 1  # multi-token options
    assert np.isnan(a.sum_logprob[1, 2:]).all()  # ragged: the unused cells stay NaN


@pytest.mark.parametrize("family", supported_families())
def test_in_float64_the_paths_agree_to_rounding_of_float64(tiny_vlm_dir, make_samples, family):
    # what separates the paths in float32 is rounding alone: in float64 they agree to 1e-9
    vlm = load_vlm(tiny_vlm_dir(family))
    vlm.model = vlm.model.double()
    a, b = _both(vlm, make_samples(3))
    assert a.sum_logprob.dtype == np.float64
    np.testing.assert_allclose(a.sum_logprob, b.sum_logprob, atol=1e-9, rtol=0)


@pytest.mark.parametrize("family", supported_families())
def test_single_token_options_are_read_from_the_prefill(tiny_vlm, make_samples, family):
    vlm = tiny_vlm(family)
    samples = make_samples(4)
    a, b = _both(vlm, samples, options=["yes", "no"], batch_size=8)
    _assert_same(a, b)


def test_shared_makes_one_prefill_per_sample_group(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    calls = []

    class Listener:
        def begin(self, input_length, answer_length=0, start=0):
            calls.append((input_length, answer_length, start))

        def end(self):
            pass

    vlm.call_listeners.append(listener := Listener())
    try:
        vlm.score_options(make_samples(2), ["yes", "no"], batch_size=4, scoring="shared")
        assert len(calls) == 1 and calls[0][1:] == (0, 0)  # single tokens: the prefill only
        calls.clear()
        long = ["a nurse in white", "yes indeed", "nurse practitioner", "an x-ray of a chest"]
        scores = vlm.score_options(make_samples(3), long, batch_size=4, scoring="shared")
        rows = int((scores.n_tokens > 1).sum())
        assert rows == 12
        # one prefill of the 3 samples, then the 12 (sample, option) rows in passes of 4
        assert [c[2] == 0 for c in calls] == [True, False, False, False]
        width = calls[0][0]
        tail = int(scores.n_tokens.max()) - 1
        assert all(c == (width, tail, width) for c in calls[1:])
    finally:
        vlm.call_listeners.remove(listener)


def test_the_token_budget_bounds_the_rows_of_a_continuation_pass(
    tiny_vlm, make_samples, monkeypatch
):
    vlm = tiny_vlm("llava")
    passes = []
    real = shared_scoring._continue

    def spy(vlm, prefix, rows, tail):
        passes.append((len(rows), prefix.width + tail))
        return real(vlm, prefix, rows, tail)

    long = ["a nurse in white", "yes indeed", "nurse practitioner", "an x-ray of a chest"]
    samples = make_samples(3)
    free = vlm.score_options(samples, long, batch_size=12)
    monkeypatch.setattr(shared_scoring, "_continue", spy)
    tokens = None
    for budget in (10_000, 250, 1):
        passes.clear()
        scores = vlm.score_options(samples, long, batch_size=12, token_budget=budget)
        np.testing.assert_allclose(scores.sum_logprob, free.sum_logprob, atol=ATOL, rtol=0)
        tokens = passes[0][1]
        per_pass = max(1, min(12, budget // tokens))
        assert [n for n, _ in passes] == [per_pass] * (12 // per_pass) + (
            [12 % per_pass] if 12 % per_pass else []
        )
    assert 1 < 250 // tokens < 12  # the middle budget splits the rows
    with pytest.raises(ConfigError, match="token_budget"):
        vlm.score_options(samples, long, token_budget=0)


def test_unknown_scoring_is_refused(tiny_vlm, make_samples):
    with pytest.raises(ConfigError, match="scoring"):
        tiny_vlm("llava").score_options(make_samples(1), ["yes"], scoring="fast")
    with pytest.raises(ConfigError, match="scoring"):
        AuditConfig.from_dict({"scoring": "fast"})


def test_a_fallback_family_is_scored_independently(tiny_vlm, make_samples, monkeypatch):
    vlm = tiny_vlm("llava")
    taken = []
    monkeypatch.setattr(adapter_module, "SHARED_SCORING_FALLBACK", frozenset({"llava"}))
    monkeypatch.setattr(
        adapter_module.shared_scoring, "score_samples", lambda *a: taken.append("shared")
    )
    real = adapter_module.score_independent
    monkeypatch.setattr(
        adapter_module, "score_independent", lambda *a: (taken.append("independent"), real(*a))
    )
    scores = vlm.score_options(make_samples(1), ["yes", "no"], scoring="shared")
    assert taken == ["independent"] and np.isfinite(scores.sum_logprob).all()


@pytest.mark.parametrize("family", supported_families())
def test_shared_equals_independent_with_a_lora_adapter(tiny_vlm_dir, make_samples, family):
    from peft import LoraConfig, get_peft_model

    vlm = load_vlm(tiny_vlm_dir(family))
    targets, _ = lora_targets(vlm, LoraSettings(targets=["q_proj", "v_proj"]))
    vlm.model = get_peft_model(vlm.model, LoraConfig(r=4, target_modules=targets))
    with torch.no_grad():
        for name, p in vlm.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.3)
    a, b = _both(vlm, make_samples(3))
    _assert_same(a, b)
    base = load_vlm(tiny_vlm_dir(family)).score_options(make_samples(3), OPTIONS, batch_size=3)
    assert np.nanmax(np.abs(base.sum_logprob - b.sum_logprob)) > 1e-3  # the adapter acts


def _vector(vlm, seed=0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    vecs = {}
    for layer in range(vlm.num_layers):
        v = torch.randn(vlm.hidden_size, generator=g)
        vecs[layer] = v / v.norm() * 4.0
    return SteeringVector(vecs, num_layers=vlm.num_layers, family=vlm.family)


@pytest.mark.parametrize("family", supported_families())
@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_shared_equals_independent_under_steering(tiny_vlm, make_samples, family, positions):
    vlm = tiny_vlm(family)
    samples = make_samples(3)
    plain = vlm.score_options(samples, OPTIONS, batch_size=3, scoring="independent")
    with _vector(vlm).apply(vlm, scale=2.0, positions=positions):
        a, b = _both(vlm, samples)
    _assert_same(a, b)
    assert np.nanmax(np.abs(plain.sum_logprob - a.sum_logprob)) > 1e-3  # the vector acts


class _Calls:
    """Records each model call's (prompt length, answer length, start)."""

    def __init__(self):
        self.calls = []

    def begin(self, input_length, answer_length=0, start=0):
        self.calls.append((input_length, answer_length, start))

    def end(self):
        pass


@pytest.mark.parametrize("family", supported_families())
@pytest.mark.parametrize("positions", [None, "all", "generated"])
def test_generate_and_score_share_one_prefill(tiny_vlm, make_samples, family, positions):
    vlm = tiny_vlm(family)
    samples = make_samples(3)
    steer = _vector(vlm).apply(vlm, scale=2.0, positions=positions) if positions else None
    with steer or contextlib.nullcontext():
        texts = vlm.generate(samples, max_new_tokens=4, batch_size=3)
        ref = vlm.score_options(samples, OPTIONS, batch_size=3, scoring="independent")
        vlm.call_listeners.append(calls := _Calls())
        try:
            both, scores = vlm.generate_and_score(
                samples, OPTIONS, max_new_tokens=4, batch_size=3, option_batch_size=4
            )
        finally:
            vlm.call_listeners.remove(calls)
    assert both == texts
    _assert_same(ref, scores)
    # one call from position 0 (generate: its prefill scores every first token), then
    # the continuations after the cached prompt
    assert [c[2] == 0 for c in calls.calls].count(True) == 1
    width = calls.calls[0][0]
    assert len(calls.calls) > 1 and all(c[2] == width for c in calls.calls[1:])


def test_beam_search_answers_and_scores_apart(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    texts, scores = vlm.generate_and_score(samples, OPTIONS[:2], max_new_tokens=3, num_beams=2)
    assert texts == vlm.generate(samples, max_new_tokens=3, num_beams=2)
    _assert_same(vlm.score_options(samples, OPTIONS[:2], scoring="independent"), scores)


def test_generated_positions_steer_only_the_option_tokens(tiny_vlm, make_samples):
    """Option tokens count as generated tokens: a vector on generated positions leaves
    an option's first token (scored from the prompt alone) unchanged, and its others not."""
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    options = ["yes", "a nurse in white"]
    for scoring in ("independent", "shared"):
        plain = vlm.score_options(samples, options, scoring=scoring)
        with _vector(vlm).apply(vlm, scale=2.0, positions="generated"):
            steered = vlm.score_options(samples, options, scoring=scoring)
        assert plain.n_tokens[0, 0] == 1
        np.testing.assert_allclose(plain.sum_logprob[:, 0], steered.sum_logprob[:, 0], atol=1e-6)
        assert np.abs(plain.sum_logprob[:, 1] - steered.sum_logprob[:, 1]).max() > 1e-3


def test_audit_records_agree_between_scoring_paths(tiny_vlm, tmp_path):
    from fairvlm.data import save_dataset

    data = save_dataset({"test": audit_samples(6)}, tmp_path / "data")
    base = {"batch_size": 4, "closed_mode": "score", "tasks": ["vqa", "probe"]}
    base |= {"progress": False, "metrics": {"n_boot": 10, "min_group_size": 2}}
    records = {}
    for scoring in ("independent", "shared"):
        cfg = AuditConfig.from_dict({**base, "scoring": scoring})
        out = run_audit(tiny_vlm("llava"), data, cfg, tmp_path / scoring)
        records[scoring] = pd.read_parquet(out / "records.parquet").sort_values(
            ["task", "sample_id"]
        )
    a, b = records["independent"], records["shared"]
    assert len(a) == len(b) > 0 and a["p_yes"].notna().any()
    assert a["option_logprob"].notna().any()
    for la, lb in zip(a["option_logprob"], b["option_logprob"], strict=True):
        if la is None:
            assert lb is None
        else:
            np.testing.assert_allclose(np.asarray(la), np.asarray(lb), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        a["p_yes"].to_numpy(dtype=float), b["p_yes"].to_numpy(dtype=float), atol=ATOL
    )
    assert list(a["pred"]) == list(b["pred"])


def test_the_scoring_flag_reaches_the_config_and_relaunches():
    import argparse

    from fairvlm.commands import audit as audit_command

    parser = argparse.ArgumentParser()
    audit_command.add_arguments(parser)
    args = parser.parse_args(["m", "d", "--out", "o", "--scoring", "independent"])
    assert audit_command._config(args).scoring == "independent"
    relaunch = audit_command._relaunch_args(args)
    assert relaunch[relaunch.index("--scoring") + 1] == "independent"
    default = parser.parse_args(["m", "d", "--out", "o"])
    assert audit_command._config(default).scoring == "shared"
    with pytest.raises(ConfigError, match="scoring"):
        audit_command._config(parser.parse_args(["m", "d", "--out", "o", "--scoring", "x"]))


def test_the_step_tracker_places_answer_tokens_after_the_prompt():
    from fairvlm.mitigation.steering.apply import StepTracker

    tracker = StepTracker("prompt")
    tracker.begin(4, 3)  # prompt + answers in one pass (independent)
    assert tracker.split(0, torch.zeros(2, 7, 1)).tolist() == [1, 1, 1, 1, 0, 0, 0]
    tracker.begin(4, 3, start=4)  # answers after a cached 4-token prompt (shared)
    assert tracker.split(0, torch.zeros(6, 3, 1)) == "generated"
    tracker.begin(4, 3, start=4)
    with pytest.raises(ConfigError, match="re-reads"):
        tracker.split(0, torch.zeros(1, 4, 1))  # more than the announced answers
    tracker.begin(4, 3)
    with pytest.raises(ConfigError, match="first step"):
        tracker.split(0, torch.zeros(1, 8, 1))
