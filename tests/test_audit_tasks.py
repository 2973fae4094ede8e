"""Audit config, tasks and validation: answers from a fake model, errors before model work."""

from __future__ import annotations

import dataclasses
import math

import pytest
from audit_support import FakeVLM, audit_samples

from fairvlm.audit import AuditConfig, make_task, p_yes, plan_audit, run_audit
from fairvlm.errors import ConfigError, DataError


# -- config ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tasks": ["vqa", "caption"]}, "tasks"),
        ({"batch_size": 0}, "batch_size"),
        ({"closed_mode": "vote"}, "closed_mode"),
        ({"probe_template": "Is this a doctor?"}, "probe_template"),
        ({"probe_options": ["yes", "yes"]}, "probe_options"),
        ({"sources": {"vqa": "report"}}, "sources['vqa']"),
        ({"limit": 0}, "limit"),
        ({"metrics": {"n_bot": 5}}, "metrics.n_bot"),
        ({"batchsize": 4}, "batchsize"),
    ],
)
def test_config_errors_name_the_field(fields, named):
    with pytest.raises(ConfigError, match=f"^{named.replace('[', '.').replace(']', '.')}="):
        AuditConfig.from_dict(fields)


def test_config_from_yaml_like_mapping():
    cfg = AuditConfig.from_dict({"tasks": "vqa, probe", "metrics": {"n_boot": 7}})
    assert cfg.tasks == ["vqa", "probe"]
    assert cfg.metrics.n_boot == 7
    assert AuditConfig.from_dict(cfg.to_dict()) == cfg


# -- task answers --------------------------------------------------------------------------
def _planned(task, samples, **cfg):
    config = AuditConfig(tasks=[task], **cfg)
    plan = plan_audit(samples, config)
    return plan.tasks[task]


def test_probe_p_yes_is_the_softmax_of_the_two_scores():
    task, samples = _planned("probe", audit_samples(2, tasks=["probe"]))
    vlm = FakeVLM(scores={"probe0": [-1.0, -2.0], "probe1": [-3.0, -0.5]})
    rows = task.run(vlm, samples)
    assert rows[0]["p_yes"] == pytest.approx(1 / (1 + math.exp(-1.0)))  # 0.7311
    assert rows[1]["p_yes"] == pytest.approx(1 / (1 + math.exp(2.5)))  # 0.0759
    assert [r["pred"] for r in rows] == ["yes", "no"]
    assert rows[0]["option_logprob"] == [-1.0, -2.0]
    assert vlm.calls == {"score_options": 1}
    assert p_yes(float("-inf"), -1.0) is None


def test_vqa_parses_generations_and_keeps_option_scores():
    task, samples = _planned("vqa", audit_samples(3, tasks=["vqa"]))
    texts = {"vqa0": "It is Malignant.", "vqa1": "benign", "vqa2": "benign or malignant"}
    vlm = FakeVLM(texts=texts, scores={"vqa0": [-0.2, -3.0]})
    rows = task.run(vlm, samples)
    assert [r["pred"] for r in rows] == ["malignant", "benign", None]  # two labels: unparsed
    assert rows[0]["output"] == "It is Malignant."
    assert rows[0]["option_logprob"] == [-0.2, -3.0]
    assert rows[0]["option_mean_logprob"] == [-0.1, -1.5]
    assert vlm.calls == {"generate": 1, "score_options": 1}


def test_score_mode_answers_with_the_best_option_and_never_generates():
    task, samples = _planned("vqa", audit_samples(2, tasks=["vqa"]), closed_mode="score")
    vlm = FakeVLM(scores={"vqa0": [-0.2, -3.0], "vqa1": [-5.0, -1.0]})
    rows = task.run(vlm, samples)
    assert [r["output"] for r in rows] == ["benign", "malignant"]
    assert [r["pred"] for r in rows] == ["benign", "malignant"]
    assert vlm.calls == {"score_options": 1}


def test_closed_task_without_options_scores_the_target_vocabulary():
    samples = [dataclasses.replace(s, options=None) for s in audit_samples(4, tasks=["concept"])]
    task, chosen = _planned("concept", samples)
    rows = task.run(FakeVLM(texts={"concept0": "a nurse"}), chosen)
    assert rows[0]["options"] == ["doctor", "nurse"]
    assert rows[0]["pred"] == "nurse"


def test_probe_derived_from_describe_samples_writes_the_template_prompt():
    samples = audit_samples(2, tasks=["describe"])
    task, chosen = _planned("probe", samples, sources={"probe": "describe"})
    assert [s.prompt for s in chosen] == ["Is this person a doctor?", "Is this person a nurse?"]
    assert [s.id for s in chosen] == ["describe0", "describe1"]


def test_limit_is_per_task():
    plan = plan_audit(audit_samples(5, tasks=["vqa", "probe"]), AuditConfig(limit=2))
    assert {k: len(v[1]) for k, v in plan.tasks.items()} == {"vqa": 2, "probe": 2}
    assert [u.batch_index for u in plan.units(1)] == [0, 1, 0, 1]


# -- bad input, before any model work ------------------------------------------------------
def _no_model_work(samples, tmp_path, **cfg):
    """run_audit with a model path that does not exist: only a data error can come first."""
    vlm = FakeVLM()
    with pytest.raises(DataError) as err:
        run_audit(vlm, samples, AuditConfig(**cfg), tmp_path / "out")
    assert vlm.calls == {}
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError):
        run_audit(tmp_path / "no-such-model", samples, AuditConfig(**cfg), tmp_path / "out")
    return str(err.value)


def test_vqa_on_data_without_targets_is_a_clear_error(tmp_path):
    samples = [dataclasses.replace(s, target=None) for s in audit_samples(4, tasks=["vqa"])]
    samples[0].target = "benign"
    msg = _no_model_work(samples, tmp_path, tasks=["vqa"])
    assert "task 'vqa' needs a target on every sample: 3 of 4" in msg
    assert "'vqa1'" in msg


def test_probe_without_concepts_is_a_clear_error(tmp_path):
    samples = [dataclasses.replace(s, concept=None) for s in audit_samples(2, tasks=["probe"])]
    assert "needs a concept" in _no_model_work(samples, tmp_path)


def test_unknown_attribute_is_a_clear_error(tmp_path):
    msg = _no_model_work(audit_samples(2), tmp_path, attributes=["sex", "race"])
    assert "attributes=['race']" in msg and "['sex', 'skin_tone']" in msg


def test_empty_split_is_a_clear_error(tmp_path):
    from fairvlm.data import save_dataset

    data = save_dataset({"test": [], "train": audit_samples(2)}, tmp_path / "data")
    msg = _no_model_work(data, tmp_path, tasks=["vqa"])
    assert "split='test'" in msg and "no samples" in msg


def test_split_missing_from_the_data_is_a_clear_error(tmp_path):
    from fairvlm.data import save_dataset

    data = save_dataset({"train": audit_samples(2)}, tmp_path / "data")
    assert "choose one of ['train']" in _no_model_work(data, tmp_path, split="validation")


def test_task_absent_from_the_split_is_a_clear_error(tmp_path):
    msg = _no_model_work(audit_samples(2, tasks=["describe"]), tmp_path, tasks=["probe"])
    assert "no samples with task='probe'" in msg and "sources=" in msg


def test_missing_image_file_is_a_clear_error(tmp_path):
    samples = audit_samples(2, tasks=["describe"])
    samples[1].image = str(tmp_path / "gone.png")
    assert "image files do not exist (e.g. 'describe1')" in _no_model_work(samples, tmp_path)


def test_closed_task_with_a_single_label_is_a_clear_error(tmp_path):
    samples = [
        dataclasses.replace(s, options=None, target="benign")
        for s in audit_samples(3, tasks=["vqa"])
    ]
    assert "offer 1 answer(s)" in _no_model_work(samples, tmp_path)


def test_make_task_runs_only_its_own_samples():
    task = make_task("report", AuditConfig())
    assert [s.id for s in task.select(audit_samples(2))] == ["report0", "report1"]
