"""``train.args:`` and Hugging Face names in a training config (``fairvlm.training.hf_names``)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from training_support import group_samples, train_cfg
from transformers import TrainerCallback, TrainingArguments

from fairvlm.errors import ConfigError
from fairvlm.training import train
from fairvlm.training.arguments import training_arguments
from fairvlm.training.config import load_train_config
from fairvlm.training.hf_names import ALIASES


@pytest.mark.parametrize(
    ("hf", "value", "field", "expected"),
    [
        ("learning_rate", 2e-4, "lr", 2e-4),
        ("per_device_train_batch_size", 2, "batch_size", 2),
        ("max_steps", 7, "steps", 7),
        ("gradient_accumulation_steps", 4, "grad_accum", 4),
        ("num_train_epochs", 3.0, "epochs", 3.0),
        ("lr_scheduler_type", "linear", "scheduler", "linear"),
    ],
)
@pytest.mark.parametrize("where", ["beside", "args", "--set"])
def test_a_hugging_face_name_sets_the_fairvlm_field(hf, value, field, expected, where):
    assert ALIASES[hf] == field
    if where == "--set":
        cfg, method = load_train_config(None, [f"{hf}={value}"])
        assert method == {}
    else:
        train = {hf: value} if where == "beside" else {"args": {hf: value}}
        cfg, _ = load_train_config({"train": train})
    assert getattr(cfg, field) == expected
    assert cfg.args == {}


def test_other_training_arguments_fields_gather_under_args():
    cfg, method = load_train_config(
        {"train": {"optim": "adamw_torch", "args": {"report_to": "tensorboard"}}},
        ["gradient_checkpointing=true", "train.args.warmup_ratio=0.1"],
    )
    assert cfg.args == {
        "optim": "adamw_torch",
        "report_to": "tensorboard",
        "gradient_checkpointing": True,
    }
    assert cfg.warmup_ratio == 0.1  # a TrainConfig field under args: is that field
    assert method == {}


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (
            {"lerning_rate": 1e-4},
            "train.lerning_rate=0.0001 is not valid: not a TrainConfig field, a Hugging Face "
            "name of one, nor a TrainingArguments field (did you mean 'learning_rate'?)",
        ),
        (
            {"args": {"optimm": "sgd"}},
            "train.args.optimm='sgd' is not valid: not a TrainConfig field, a Hugging Face "
            "name of one, nor a TrainingArguments field (did you mean 'optim'?)",
        ),
        (
            {"lr": 1e-4, "learning_rate": 2e-4},
            "train.learning_rate=0.0002 is not valid: lr is given too: keep one of the two",
        ),
        (
            {"steps": 3, "args": {"max_steps": 5}},
            "train.args.max_steps=5 is not valid: steps is given too: keep one of the two",
        ),
        ({"args": {"bf16": True}}, "train.args.bf16=True is not valid: set mixed_precision: bf16"),
        ({"args": {"output_dir": "x"}}, "checkpoints go under the output folder (--out"),
        ({"args": [1]}, "train.args=[1] is not valid: use a mapping of TrainingArguments fields"),
    ],
)
def test_bad_keys_are_one_line_errors(train, message):
    with pytest.raises(ConfigError) as err:
        load_train_config({"train": train})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_value_training_arguments_refuses_is_a_config_error(tmp_path):
    common = dict(batch_size=1, steps=1, lr=1e-4, warmup_ratio=0.0, weight_decay=0.0)
    common.update(max_grad_norm=1.0, logging_steps=1, save_steps=1, save_total_limit=None)
    common.update(seed=0, progress=False, use_cpu=True)
    with pytest.raises(ConfigError, match=r"^train.args=\{'optim': 'nope'\}: TrainingArguments"):
        training_arguments(tmp_path, **common, extra={"optim": "nope"})


def test_args_reach_the_trainers_training_arguments(tiny_llava, tmp_path):
    seen = {}

    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            seen["args"] = args

    # activation_checkpointing: the newer transformers 5 name of gradient_checkpointing
    # (deprecated since), which the floor's TrainingArguments (5.18) does not have yet
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    ckpt = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    extra = {"optim": "adafactor", "report_to": "none", ckpt: True}
    result = train(
        tiny_llava,
        group_samples(8),
        "lora",
        train_cfg(steps=2, args=extra, lr=5e-3),
        tmp_path / "o",
        probe_data=[],
        callbacks=[Spy()],
    )
    args = seen["args"]
    assert args.optim == "adafactor"
    assert args.report_to == []  # "none", as transformers stores it
    assert getattr(args, ckpt) is True
    assert args.learning_rate == 5e-3
    assert result.global_step == 2
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert saved["train"]["args"] == extra  # --config OUT/config.yaml reproduces the run


def test_a_run_without_args_saves_none(tiny_llava, tmp_path):
    # runs saved before train.args existed compare equal on resume
    train(tiny_llava, group_samples(8), "lora", train_cfg(steps=1), tmp_path / "o", probe_data=[])
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert "args" not in saved["train"] and saved["train"]["steps"] == 1


def test_a_quantized_base_is_prepared_for_kbit_training(tiny_llava, monkeypatch):
    # a 4-bit base needs CUDA: the quantized flag is faked, PEFT's preparation is spied on
    import peft

    from fairvlm.models import load_vlm
    from fairvlm.training.config import LoraSettings
    from fairvlm.training.lora import apply_lora

    vlm = load_vlm(tiny_llava, device="cpu")
    monkeypatch.setattr(vlm.model, "hf_quantizer", object(), raising=False)
    prepared = []

    def spy(model, use_gradient_checkpointing=True):
        prepared.append((model, use_gradient_checkpointing))
        return model

    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", spy)
    base = vlm.model
    peft_model = apply_lora(vlm, LoraSettings(r=2, alpha=4, targets=["q_proj"]))
    assert prepared == [(base, False)]
    assert peft_model.get_base_model() is base


def test_a_full_precision_base_is_not_prepared(tiny_llava, monkeypatch):
    import peft

    from fairvlm.models import load_vlm
    from fairvlm.training.config import LoraSettings
    from fairvlm.training.lora import apply_lora

    monkeypatch.setattr(peft, "prepare_model_for_kbit_training", pytest.fail)
    apply_lora(load_vlm(tiny_llava, device="cpu"), LoraSettings(r=2, alpha=4, targets=["q_proj"]))
