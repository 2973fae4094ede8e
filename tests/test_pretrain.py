"""``pretrain``: a LLaVA trained from scratch on a benchmark, cached, deterministic, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from fairvlm.errors import ConfigError
from fairvlm.training.pretrain import (
    RECORD_FILE,
    PretrainConfig,
    data_fingerprint,
    load_pretrain_config,
    pretrain,
)

TINY = {
    "steps": 4,
    "batch_size": 4,
    "hidden_size": 16,
    "num_heads": 2,
    "num_layers": 1,
    "vision_hidden_size": 16,
    "vision_layers": 1,
    "vocab_size": 320,
    "save_steps": 2,
    "logging_steps": 1,
    "progress": False,
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from fairvlm.synth import synthesize

    sets = ["image_size=16", "n_train=16", "n_finetune=2", "n_test=6", "noise=0.02"]
    return synthesize("clinical", tmp_path_factory.mktemp("bench") / "data", sets)


def _weights(out):
    return load_file(out / "model.safetensors")


def test_config_validation_and_overrides():
    cfg = load_pretrain_config(["steps=50", "lr=1e-3", "tasks=[vqa]"])
    assert (cfg.steps, cfg.lr, cfg.tasks) == (50, 1e-3, ["vqa"])
    with pytest.raises(ConfigError, match="steps=0"):
        PretrainConfig(steps=0)
    with pytest.raises(ConfigError, match="hidden_size=30.*num_heads=4"):
        PretrainConfig.from_dict({"hidden_size": 30})
    with pytest.raises(ConfigError, match="stepz"):
        load_pretrain_config(["stepz=3"])
    # the model's sizes are a nested TinyConfig, also settable flat; unset ones keep the
    # base model's defaults
    nested = load_pretrain_config(["model.hidden_size=128"]).model
    assert nested == load_pretrain_config(["hidden_size=128"]).model
    assert (nested.hidden_size, nested.patch_size, nested.image_size) == (128, 4, None)
    # fields that only change logging or checkpoint cadence keep the cache key
    a, b = PretrainConfig(progress=False), PretrainConfig(save_steps=7)
    assert a.cache_key("d") == b.cache_key("d") != PretrainConfig(seed=1).cache_key("d")
    assert a.cache_key("d") != a.cache_key("e")


class _Initial(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_pretrain_trains_every_part_and_load_vlm_reads_it(bench, tmp_path):
    from fairvlm.models import load_vlm

    initial = _Initial()
    out = pretrain(bench, tmp_path / "m", TINY, callbacks=[initial])
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["complete"] and record["global_step"] == 4
    assert record["data_fingerprint"] == data_fingerprint(bench)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-4"]
    vlm = load_vlm(out)
    assert vlm.family == "llava" and vlm.hidden_size == 16
    trained = vlm.model.state_dict()
    assert trained.keys() == initial.state.keys()
    for part in ("vision_tower", "multi_modal_projector", "language_model", "lm_head"):
        names = [k for k in trained if part in k]
        assert names, part
        assert any(not torch.equal(trained[k], initial.state[k]) for k in names), part
    from fairvlm.data import load_samples

    test = [s for s in load_samples(bench, "test") if s.task == "vqa"]
    scores = vlm.score_options(test, test[0].options)
    assert np.isfinite(scores.sum_logprob).all()


def test_same_config_is_reused_other_config_is_refused(bench, tmp_path):
    out = pretrain(bench, tmp_path / "m", TINY)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert pretrain(bench, out, {**TINY, "progress": True}) == out  # same key: cached
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="another config or data"):
        pretrain(bench, out, {**TINY, "lr": 1e-4})


def test_seed_decides_the_weights(bench, tmp_path):
    a = _weights(pretrain(bench, tmp_path / "a", TINY))
    b = _weights(pretrain(bench, tmp_path / "b", TINY))
    c = _weights(pretrain(bench, tmp_path / "c", {**TINY, "seed": 1}))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class _Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise RuntimeError("killed")


def test_resume_after_a_kill_ends_with_the_same_weights(bench, tmp_path):
    full = _weights(pretrain(bench, tmp_path / "a", TINY))
    with pytest.raises(RuntimeError, match="killed"):
        pretrain(bench, tmp_path / "b", TINY, callbacks=[_Kill()])
    assert not (tmp_path / "b" / "model.safetensors").exists()
    with pytest.raises(ConfigError, match="unfinished"):
        pretrain(bench, tmp_path / "b", TINY)
    resumed = _weights(pretrain(bench, tmp_path / "b", TINY, resume=True))
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    record = json.loads((tmp_path / "b" / RECORD_FILE).read_text())
    assert record["global_step"] == 4


def test_bad_data_is_reported_before_training(bench, tmp_path):
    with pytest.raises(ConfigError, match="split='valid'"):
        pretrain(bench, tmp_path / "m", {**TINY, "split": "valid"})
    with pytest.raises(ConfigError, match="tasks=\\['probe'\\]"):
        pretrain(bench, tmp_path / "m", {**TINY, "tasks": ["probe"]})
    assert not (tmp_path / "m").exists()


def test_cli_pretrain(bench, tmp_path, capsys):
    from fairvlm.cli import main

    sets = [x for k, v in TINY.items() if k != "progress" for x in ("--set", f"{k}={v}")]
    assert (
        main(["pretrain", str(bench), str(tmp_path / "m"), *sets, "--set", "progress=false"]) == 0
    )
    assert "4 steps" in capsys.readouterr().out
    assert main(["pretrain", str(bench), str(tmp_path / "x"), "--set", "steps=-1"]) == 2
    assert "steps=-1" in capsys.readouterr().err
