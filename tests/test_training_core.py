"""Shared training machinery: config, LM loss and weights, LoRA targets, registry, resume."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from training_support import TINY_LORA, group_samples, train_cfg
from transformers import TrainerCallback

from fairvlm.errors import ConfigError
from fairvlm.models import load_vlm
from fairvlm.registry import TRAINING_METHODS
from fairvlm.training import (
    LoraSettings,
    Method,
    MethodSetup,
    TrainConfig,
    available_methods,
    get_method,
    load_train_config,
    lora_targets,
    per_sample_lm_loss,
    register_method,
    train,
)


def test_config_sections_overrides_and_errors(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "train:\n  steps: 7\n  lora: {r: 8}\nmethod:\n  fairness_lambda: 0.5\n"
    )
    cfg, method = load_train_config(
        tmp_path / "c.yaml",
        ["lr=2e-4", "lora.alpha=16", "lambdas.sex=0.1", "method.w_club=0.2", "train.seed=3"],
    )
    assert (cfg.steps, cfg.lr, cfg.seed, cfg.lora.r, cfg.lora.alpha) == (7, 2e-4, 3, 8, 16.0)
    assert cfg.lora.targets == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    assert method == {"fairness_lambda": 0.5, "lambdas": {"sex": 0.1}, "w_club": 0.2}
    with pytest.raises(ConfigError, match="train.stepz"):
        load_train_config({"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match="lora.projector"):
        load_train_config(None, ["lora.projector=half"])
    with pytest.raises(ConfigError, match="--set"):
        load_train_config(None, ["lr"])
    with pytest.raises(ConfigError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.5)


def test_per_sample_lm_loss_by_hand():
    logits = torch.zeros(2, 4, 3)
    logits[0, 1] = torch.tensor([0.0, math.log(3.0), 0.0])  # p(token 1) = 3/5
    labels = torch.tensor([[-100, -100, 1, -100], [-100, 2, 0, 1]])
    got = per_sample_lm_loss(logits, labels)
    # sample 0: one target token (position 2, predicted from position 1): -log(3/5)
    # sample 1: three target tokens with uniform logits: log 3
    assert got.tolist() == pytest.approx([-math.log(0.6), math.log(3.0)], abs=1e-6)
    # logits kept only for the last positions are aligned with the end of the labels
    assert per_sample_lm_loss(logits[:, 1:], labels).tolist() == pytest.approx(
        got.tolist(), abs=1e-6
    )


def test_lora_targets_stay_in_the_language_model(tiny_llava):
    vlm = load_vlm(tiny_llava)
    targets, save = lora_targets(vlm, LoraSettings())
    assert len(targets) == 14 and all(".language_model." in t for t in targets)
    assert save == ["model.multi_modal_projector"]
    with_vision, _ = lora_targets(vlm, LoraSettings(vision=True, projector="lora"))
    assert any("vision_tower" in t for t in with_vision)
    assert "model.multi_modal_projector.linear_1" in with_vision
    assert not any("lm_head" in t for t in with_vision)
    _, none = lora_targets(vlm, LoraSettings(projector="frozen"))
    assert none == []
    from fairvlm.errors import ModelError

    with pytest.raises(ModelError, match="qkv"):
        lora_targets(vlm, LoraSettings(targets=["qkv"]))


def test_registry_lists_builtins_and_takes_plugins():
    assert {"lora", "fairllava", "reweight", "resample", "adversarial"} <= set(available_methods())
    with pytest.raises(ConfigError, match="not a registered training method"):
        get_method("asd-unknown")
    extra = Method("demo-extra", "test only", lambda ctx: MethodSetup(lm_weight=0.5))
    try:
        register_method(extra)
        assert get_method("demo-extra") is extra
        with pytest.raises(ConfigError, match="already a registered training method"):
            register_method(Method("demo-extra", "x", lambda ctx: MethodSetup()))
    finally:
        TRAINING_METHODS.unregister("demo-extra")


def test_weights_scale_the_lm_loss(tiny_llava, tmp_path):
    samples = group_samples(8)
    # a method that weights dark-skinned samples 3x through the shared trainer
    heavy = Method(
        "demo-weights",
        "test only",
        lambda ctx: MethodSetup(
            weights=[3.0 if s.attributes["skin_tone"] == "dark" else 1.0 for s in ctx.samples]
        ),
    )
    register_method(heavy)
    try:
        cfg = train_cfg(steps=1, batch_size=8, lr=1e-12)
        w = train(tiny_llava, samples, "demo-weights", cfg, tmp_path / "w", probe_data=[])
        p = train(tiny_llava, samples, "lora", cfg, tmp_path / "p", probe_data=[])
    finally:
        TRAINING_METHODS.unregister("demo-weights")
    # same model, same batch: plain loss = mean(l); weighted = mean(w * l) with w in {1, 3}
    (lw,) = [r["loss"] for r in w.log_history if "loss" in r]
    (lp,) = [r["loss"] for r in p.log_history if "loss" in r]
    assert lw == pytest.approx(2.0 * lp, rel=0.05)  # half the batch is dark
    assert lw != pytest.approx(lp, rel=0.05)


class _Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 4:
            raise RuntimeError("killed")


def test_resume_after_a_kill_ends_with_the_same_weights(tiny_llava, tmp_path):
    # random token draws, several head updates, an epoch boundary (20 / 4 = 5 steps)
    cfg = train_cfg(
        {"lambdas": {"skin_tone": 0.5, "sex": 0.1}, "head_updates": 2}, steps=6, save_steps=3
    )
    cfg["train"]["lora"]["dropout"] = 0.1
    data = group_samples(20)
    full = train(tiny_llava, data, "fairllava", cfg, tmp_path / "a", probe_data=[])
    with pytest.raises(RuntimeError, match="killed"):
        train(
            tiny_llava, data, "fairllava", cfg, tmp_path / "b", callbacks=[_Kill()], probe_data=[]
        )
    assert not (tmp_path / "b" / "adapter_model.safetensors").exists()
    with pytest.raises(ConfigError, match="not empty"):
        train(tiny_llava, data, "fairllava", cfg, tmp_path / "b", probe_data=[])
    other = train_cfg({"lambdas": {"skin_tone": 0.9}}, steps=6, save_steps=3)
    with pytest.raises(ConfigError, match="differs"):
        train(tiny_llava, data, "fairllava", other, tmp_path / "b", resume=True, probe_data=[])
    resumed = train(tiny_llava, data, "fairllava", cfg, tmp_path / "b", resume=True, probe_data=[])
    assert resumed.global_step == full.global_step == 6
    for name in ("adapter_model.safetensors", "heads.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    losses = lambda r: [x["loss"] for x in r.log_history if "loss" in x]  # noqa: E731
    assert losses(resumed) == losses(full)


def test_resume_skips_a_checkpoint_left_incomplete_by_a_kill(tiny_llava, tmp_path, capsys):
    """A kill while saving leaves checkpoint-N without trainer_state.json: resume from
    the newest complete one, say which was skipped, and end with the same weights."""
    cfg = train_cfg(steps=6, save_steps=3)
    data = group_samples(16)
    train(tiny_llava, data, "lora", cfg, tmp_path / "a", probe_data=[])
    with pytest.raises(RuntimeError, match="killed"):
        train(tiny_llava, data, "lora", cfg, tmp_path / "b", callbacks=[_Kill()], probe_data=[])
    root = tmp_path / "b" / "checkpoints"
    broken = root / "checkpoint-5"
    broken.mkdir()
    (broken / "adapter_model.safetensors").write_bytes(b"half-written")
    capsys.readouterr()
    resumed = train(tiny_llava, data, "lora", cfg, tmp_path / "b", resume=True, probe_data=[])
    assert f"skipping {broken}" in capsys.readouterr().err
    assert resumed.global_step == 6
    a, b = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_config_is_saved_next_to_the_adapter(tiny_llava, tmp_path):
    import yaml

    train(
        tiny_llava,
        group_samples(8),
        "reweight",
        train_cfg({"attributes": ["skin_tone"]}, steps=1),
        tmp_path / "o",
        probe_data=[],
    )
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert saved["method"] == "reweight"
    assert saved["method_config"] == {
        "attributes": ["skin_tone"],
        "by_label": False,
        "max_weight": None,
    }
    assert saved["train"]["lora"]["r"] == TINY_LORA["r"]
    assert saved["attribute_space"]["values"] == {"skin_tone": ["dark", "light"]}
    assert (tmp_path / "o" / "training_log.jsonl").read_text().count("\n") == 2  # 1 step + summary
    # the saved record is itself a config: --config OUT/config.yaml reproduces the run
    cfg, options = load_train_config(tmp_path / "o" / "config.yaml")
    assert cfg.steps == 1 and cfg.lora.r == TINY_LORA["r"]
    assert options == saved["method_config"]


def test_gradient_accumulation_matches_the_full_batch(tiny_llava, tmp_path):
    data = group_samples(16)
    full = train(
        tiny_llava, data, "lora", train_cfg(batch_size=4), tmp_path / "full", probe_data=[]
    )
    accum = train(
        tiny_llava,
        data,
        "lora",
        train_cfg(batch_size=2, grad_accum=2),
        tmp_path / "acc",
        probe_data=[],
    )
    a = [r["loss"] for r in full.log_history if "loss" in r]
    b = [r["loss"] for r in accum.log_history if "loss" in r]
    assert len(a) == len(b) == 4
    assert a == pytest.approx(b, abs=1e-4)
    assert a[0] != pytest.approx(a[-1], abs=1e-3)


def test_label_vocabulary_comes_from_closed_questions():
    from fairvlm.data.schema import Sample
    from fairvlm.training import AttributeSpace

    samples = [
        Sample(
            id="1",
            image=None,
            prompt="q",
            target="melanoma",
            options=["nevus", "melanoma"],
            attributes={"sex": "f"},
        ),
        Sample(
            id="2",
            image=None,
            prompt="q",
            target="nevus",
            options=["nevus", "melanoma"],
            attributes={"sex": None},
        ),
        Sample(
            id="3",
            image=None,
            prompt="r",
            target="A round lesion. Diagnosis: nevus.",
            task="report",
            attributes={"sex": "m"},
        ),
    ]
    space = AttributeSpace.from_samples(samples)
    assert space.labels == ["melanoma", "nevus"] and space.values == {"sex": ["f", "m"]}
    attrs, labels = space.encode(samples)
    assert labels.tolist() == [0, 1, -1]
    assert attrs[:, 0].tolist() == [0, -1, 1]


def test_resume_of_a_finished_run_does_not_train_again(tiny_llava, tmp_path, capsys):
    # 20 samples / batch 4: the run ends mid-epoch, where the Trainer used to replay a step
    cfg = train_cfg({"lambdas": {"skin_tone": 0.5}})
    data = group_samples(20)
    out = tmp_path / "o"
    full = train(tiny_llava, data, "fairllava", cfg, out, probe_data=[])
    files = ("adapter_model.safetensors", "heads.safetensors", "training_log.jsonl")
    before = {name: (out / name).read_bytes() for name in files}
    again = train(tiny_llava, data, "fairllava", cfg, out, resume=True, probe_data=[])
    assert again.global_step == full.global_step == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-4"]
    assert {name: (out / name).read_bytes() for name in files} == before
    assert again.log_history == _json_rows(out / "training_log.jsonl")
    assert "already reached max_steps=4: not training again" in capsys.readouterr().out
    # killed after the last checkpoint, before the final outputs: they are written from it
    for name in files:
        (out / name).unlink()
    third = train(tiny_llava, data, "fairllava", cfg, out, resume=True, probe_data=[])
    assert "writing the final outputs" in capsys.readouterr().out
    assert third.global_step == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-4"]
    for name in ("adapter_model.safetensors", "heads.safetensors"):
        a, b = load_file(tmp_path / "o" / name), _tensors(before[name])
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def _json_rows(path):
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def _tensors(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)
