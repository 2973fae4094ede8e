"""The audit runner on a tiny LLaVA: record columns, metrics.json shape, resume, identity."""

from __future__ import annotations

import contextlib
import json
import math

import pandas as pd
import pytest
from audit_support import CountingVLM, audit_samples

from fairvlm.audit import RECORD_COLUMNS, AuditConfig, run_audit
from fairvlm.errors import ConfigError

CFG = {"batch_size": 4, "max_new_tokens": 6, "closed_max_new_tokens": 4, "progress": False}
METRICS = {"n_boot": 20, "min_group_size": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fairvlm.data import save_dataset

    return save_dataset({"test": audit_samples(6)}, tmp_path_factory.mktemp("audit") / "data")


def _config(**extra):
    return AuditConfig.from_dict({**CFG, "metrics": METRICS, **extra})


def _records(out) -> pd.DataFrame:
    return pd.read_parquet(out / "records.parquet")


def _same_records(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal in everything but the timings."""
    pd.testing.assert_frame_equal(a.drop(columns="latency_s"), b.drop(columns="latency_s"))


@pytest.fixture(scope="module")
def reference(tiny_vlm, data, tmp_path_factory):
    """An uninterrupted audit and its model calls."""
    vlm = CountingVLM(tiny_vlm("llava"))
    out = run_audit(vlm, data, _config(), tmp_path_factory.mktemp("ref") / "audit")
    return out, vlm


def test_records_have_exactly_the_contract_columns(reference):
    out, _ = reference
    df = _records(out)
    assert list(df.columns) == [*RECORD_COLUMNS, "attr.sex", "attr.skin_tone"]
    assert len(df) == 30 and df.groupby("task").size().to_dict() == dict.fromkeys(
        ["concept", "describe", "probe", "report", "vqa"], 6
    )
    assert not df.duplicated(["sample_id", "task"]).any()
    assert df["attr.skin_tone"].isna().sum() == 10  # every third unknown, kept as null
    probe = df[df.task == "probe"].iloc[0]
    yes, no = probe["option_logprob"]
    assert probe["p_yes"] == pytest.approx(1 / (1 + math.exp(no - yes)))
    vqa = df[df.task == "vqa"]
    assert vqa["option_logprob"].map(len).eq(2).all() and vqa["output"].notna().all()
    assert df.loc[df.task == "describe", "option_logprob"].isna().all()
    assert df.loc[df.task == "vqa", "batch_index"].tolist() == [0, 0, 0, 0, 1, 1]
    assert not (out / "records.parts").exists()


def test_metrics_json_has_the_contract_shape(reference, data):
    out, _ = reference
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"] == str(data) and m["model"]
    assert set(m["tasks"]) == {"vqa", "report", "probe", "describe", "concept"}
    for task, entry in m["tasks"].items():
        assert entry["n"] == 6
        for name, metric in entry["metrics"].items():
            if metric.get("kind") != "group":
                continue
            assert {"overall", "ci", "by_attribute"} <= set(metric), (task, name)
            sex = metric["by_attribute"]["sex"]
            assert {"gap", "gap_ci", "ratio", "std", "es_fairclip", "es_fairllava"} <= set(sex)
            assert set(sex["groups"]) == {"male", "female"}
            assert {"value", "n", "ci", "small"} <= set(sex["groups"]["male"])
            assert sex["groups"]["male"]["n"] == 3
    assert m["tasks"]["vqa"]["metrics"]["accuracy"]["by_attribute"]["skin_tone"]["n_unknown"] == 2
    assert {"max_skew", "min_skew", "ndkl", "bias_at_k"} <= set(m["tasks"]["probe"]["metrics"])
    assert "mention_rate" in m["tasks"]["describe"]["metrics"]


def test_resume_after_a_kill_writes_the_same_records_and_metrics(
    reference, tiny_vlm, data, tmp_path
):
    ref_out, ref_vlm = reference
    killed = CountingVLM(tiny_vlm("llava"))

    def kill_after_three(info):
        if info.done >= 10:  # vqa's batches of 4 and 2, then report's first batch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_audit(killed, data, _config(), tmp_path / "a", on_batch=kill_after_three)
    assert not (tmp_path / "a" / "records.parquet").exists()
    assert len(list((tmp_path / "a" / "records.parts").glob("*.parquet"))) == 3
    assert sum(killed.seen.values()) == 6 + 4  # vqa: generate_and_score; report: generate

    resumed = CountingVLM(tiny_vlm("llava"))
    run_audit(resumed, data, _config(), tmp_path / "a")
    # nothing finished is computed again, and nothing is missing
    assert not set(killed.seen) & set(resumed.seen)
    assert set(killed.seen) | set(resumed.seen) == set(ref_vlm.seen)
    assert killed.calls + resumed.calls == ref_vlm.calls
    _same_records(_records(tmp_path / "a"), _records(ref_out))
    ref_metrics = json.loads((ref_out / "metrics.json").read_text())
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == ref_metrics

    again = CountingVLM(tiny_vlm("llava"))
    run_audit(again, data, _config(), tmp_path / "a")  # complete: no model call at all
    assert again.calls == {}
    _same_records(_records(tmp_path / "a"), _records(ref_out))


def test_a_new_task_reuses_the_finished_ones(tiny_vlm, data, tmp_path):
    run_audit(tiny_vlm("llava"), data, _config(tasks=["probe"]), tmp_path / "a")
    vlm = CountingVLM(tiny_vlm("llava"))
    run_audit(vlm, data, _config(tasks=["probe", "describe"]), tmp_path / "a")
    assert {task for task, _ in vlm.seen} == {"describe"}
    assert _records(tmp_path / "a").groupby("task").size().to_dict() == {"describe": 6, "probe": 6}


def test_a_different_audit_in_the_same_folder_is_refused(tiny_vlm, data, tmp_path):
    run_audit(tiny_vlm("llava"), data, _config(tasks=["vqa"]), tmp_path / "a")
    with pytest.raises(ConfigError, match="closed_mode"):
        run_audit(
            tiny_vlm("llava"), data, _config(tasks=["vqa"], closed_mode="score"), tmp_path / "a"
        )
    vlm = CountingVLM(tiny_vlm("llava"))
    run_audit(
        vlm, data, _config(tasks=["vqa"], closed_mode="score"), tmp_path / "a", overwrite=True
    )
    assert vlm.calls == {"score_options": 2}
    assert _records(tmp_path / "a")["output"].isin(["benign", "malignant"]).all()


def test_attribute_selection_limits_the_columns(tiny_vlm, data, tmp_path):
    out = run_audit(
        tiny_vlm("llava"), data, _config(tasks=["probe"], attributes=["sex"]), tmp_path / "a"
    )
    assert [c for c in _records(out).columns if c.startswith("attr.")] == ["attr.sex"]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["tasks"]["probe"]["metrics"]["p_yes"]["by_attribute"]) == {"sex"}


def test_metrics_are_a_function_of_the_records_alone(reference):
    from fairvlm.metrics import compute_metrics, read_records

    out, _ = reference
    saved = json.loads((out / "metrics.json").read_text())
    again = compute_metrics(
        read_records(out), model=saved["model"], data=saved["data"], config=_config().metrics
    )
    assert json.loads(json.dumps(again)) == saved


class ToyVector:
    """A test double of a steering vector: adds ``scale * v`` after decoder layer 0."""

    def __init__(self, hidden: int) -> None:
        import torch

        self.v = torch.ones(hidden)
        self.active = 0

    @contextlib.contextmanager
    def apply(self, vlm, scale: float = 1.0):
        def hook(module, args, output):
            return output + scale * self.v

        handle = vlm.decoder_layers[0].register_forward_hook(hook)
        self.active += 1
        try:
            yield self
        finally:
            handle.remove()
            self.active -= 1


def test_steering_is_applied_during_the_audit_and_names_the_folder(tiny_vlm, data, tmp_path):
    vlm = tiny_vlm("llava")
    vector = ToyVector(vlm.hidden_size)
    seen = []
    cfg = _config(tasks=["probe"])
    plain = run_audit(vlm, data, cfg, tmp_path / "plain")
    # transformers may keep hooks of its own (output capture for hidden states): compare
    hooks_before = dict(vlm.decoder_layers[0]._forward_hooks)
    steered = run_audit(
        vlm, data, cfg, tmp_path / "steered", steer=(vector, {"scale": 4.0}),
        on_batch=lambda info: seen.append(vector.active),
    )  # fmt: skip
    assert seen == [1, 1] and vector.active == 0  # on during every batch, removed after
    assert dict(vlm.decoder_layers[0]._forward_hooks) == hooks_before
    p_plain, p_steered = (_records(o)["p_yes"].to_numpy() for o in (plain, steered))
    assert abs(p_plain - p_steered).max() > 1e-3
    with pytest.raises(ConfigError, match="steer"):  # another scale: another audit
        run_audit(vlm, data, cfg, tmp_path / "steered", steer=(vector, {"scale": 2.0}))
    with pytest.raises(ConfigError, match="steer"):
        run_audit(vlm, data, cfg, tmp_path / "plain", steer=(vector, {"scale": 4.0}))


def test_records_of_a_dropped_task_leave_the_folder_with_a_warning(tiny_vlm, data, tmp_path):
    run_audit(tiny_vlm("llava"), data, _config(tasks=["probe", "describe"]), tmp_path / "a")
    with pytest.warns(UserWarning, match="6 earlier records"):
        run_audit(tiny_vlm("llava"), data, _config(tasks=["probe"]), tmp_path / "a")
    assert set(_records(tmp_path / "a")["task"]) == {"probe"}
