"""Training configuration: LoRA settings, optimisation settings, YAML and ``--set`` overrides.

A run config has two parts, saved together as ``config.yaml`` next to every output::

    train:            # TrainConfig (this module), with a nested ``lora:`` block
      steps: 300
      lora: {r: 64, alpha: 128}
    method:           # the method's own config dataclass (e.g. FairLLaVAConfig)
      fairness_lambda: 1.0

``--set key=value`` overrides either part: ``lr=2e-4`` or ``train.lr=2e-4``,
``lora.r=8``, ``method.fairness_lambda=0.5``; a key that is not a training field goes to
the method (``fairness_lambda=0.5``). Values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.config import Config, is_int, located, to_plain
from fairvlm.errors import FairVLMError, bad_value
from fairvlm.representation.probe import ProbeSettings
from fairvlm.training.hf_names import is_training_name, resolve_names
from fairvlm.yamlpos import parse_yaml_value, read_yaml_mapping

#: Every Linear of a LLaMA-style language model block (what FairLLaVA adapts).
LM_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
PROJECTOR_MODES = ("full", "lora", "frozen")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class LoraSettings(Config):
    """Where LoRA goes and what else trains.

    Attributes:
        r, alpha, dropout: LoRA rank, scaling numerator and dropout (FairLLaVA: 64, 128, 0.05).
        targets: names of the language model's Linear layers to adapt (last name component).
        projector: ``full`` (trained in full, saved through PEFT ``modules_to_save`` so that
            ``PeftModel.from_pretrained`` restores it), ``lora`` (LoRA on its Linears), ``frozen``.
        vision: also put LoRA on every Linear of the vision tower (off by default).
        lm_head: also put LoRA on the LM head (off by default).
    """

    r: int = 64
    alpha: float = 128.0
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: list(LM_TARGETS))
    projector: str = "full"
    vision: bool = False
    lm_head: bool = False

    def validate(self) -> None:
        if not is_int(self.r) or self.r < 1:
            raise bad_value("r", self.r, "use a positive integer rank, e.g. 64")
        if self.alpha <= 0:
            raise bad_value("alpha", self.alpha, "use a positive number, e.g. 2 * r")
        if not 0.0 <= self.dropout < 1.0:
            raise bad_value("dropout", self.dropout, "use a probability in [0, 1)")
        if not self.targets:
            raise bad_value(
                "targets", self.targets, f"name at least one layer, e.g. {list(LM_TARGETS)}"
            )
        if self.projector not in PROJECTOR_MODES:
            raise bad_value("projector", self.projector, f"use one of {PROJECTOR_MODES}")


@dataclass
class TrainConfig(Config):
    """How to fine-tune (shared by every method).

    Attributes:
        split: the dataset split to train on; ``probe_split``: the held-out split for the
            post-training probe (``None``: no probe), at most ``probe_limit`` samples of it;
            ``probe``: which probe (``{kind: linear | mlp, hidden, steps}``, see
            :class:`fairvlm.representation.ProbeSettings`).
        limit: use at most this many training samples (``None``: all).
        steps: optimiser steps; when ``None`` train for ``epochs`` epochs.
        batch_size: per-device batch; ``grad_accum``: micro-batches per optimiser step.
        lr, scheduler, warmup_ratio, weight_decay, max_grad_norm: optimisation
            (FairLLaVA: 1e-4, cosine, 3 % warmup).
        seed: seeds model init of new parameters, data order, dropout and token draws.
        save_steps, save_total_limit, logging_steps: checkpointing and logging cadence.
        mixed_precision: ``no`` / ``bf16`` / ``fp16`` autocast (through Accelerate).
        dtype, device: how to load the base model (see ``fairvlm.models.load_vlm``).
        progress: show the progress bar.
        args: more ``transformers.TrainingArguments`` fields, passed as they are
            (``optim``, ``report_to``, ``gradient_checkpointing``, ``deepspeed`` ...).
            Hugging Face names of the fields above (``learning_rate``, ``max_steps`` ...)
            are accepted here or beside them: see :mod:`fairvlm.training.hf_names`.
    """

    split: str = "finetune"
    probe_split: str | None = "test"
    probe_limit: int = 512
    limit: int | None = None
    steps: int | None = 300
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    save_steps: int = 100
    save_total_limit: int | None = 2
    logging_steps: int = 10
    mixed_precision: str = "no"
    dtype: str | None = None
    device: str | None = None
    progress: bool = True
    lora: LoraSettings = field(default_factory=LoraSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any] | None = None,
        *,
        prefix: str = "",
        marks: Any = None,
        path: tuple = (),
    ) -> TrainConfig:
        """As :meth:`Config.from_dict`, Hugging Face names resolved first (``hf_names``)."""
        if isinstance(data, Mapping):
            try:
                data = resolve_names(data, cls.field_names(), prefix or "train.")
            except FairVLMError as exc:
                raise located(exc, marks, path) from None
        return super().from_dict(data, prefix=prefix, marks=marks, path=path)

    def validate(self) -> None:
        for name in ("batch_size", "grad_accum", "save_steps", "logging_steps", "probe_limit"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise bad_value(name, value, "use a positive integer")
        if self.steps is not None and (not is_int(self.steps) or self.steps < 1):
            raise bad_value(
                "steps", self.steps, "use a positive integer, or null to train by epochs"
            )
        if self.steps is None and not self.epochs > 0:
            raise bad_value("epochs", self.epochs, "use a positive number of epochs")
        if self.limit is not None and (not is_int(self.limit) or self.limit < 1):
            raise bad_value("limit", self.limit, "use a positive integer or null for all samples")
        if not self.lr > 0:
            raise bad_value("lr", self.lr, "use a positive learning rate, e.g. 1e-4")
        if self.scheduler not in SCHEDULERS:
            raise bad_value("scheduler", self.scheduler, f"use one of {SCHEDULERS}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise bad_value(
                "warmup_ratio", self.warmup_ratio, "use a fraction in [0, 1), e.g. 0.03"
            )
        if self.mixed_precision not in MIXED_PRECISION:
            raise bad_value(
                "mixed_precision", self.mixed_precision, f"use one of {MIXED_PRECISION}"
            )
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise bad_value(
                "save_total_limit", self.save_total_limit, "use >= 1 or null to keep all"
            )


def _set_path(tree: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise bad_value(".".join(keys), value, f"{key!r} is not a section")
        tree = node
    tree[keys[-1]] = value


def parse_overrides(sets: Sequence[str], raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply ``key=value`` strings to a raw ``{"train": ..., "method": ...}`` tree."""

    tree: dict[str, Any] = {
        "train": dict((raw or {}).get("train") or {}),
        "method": dict((raw or {}).get("method") or {}),
    }
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in sets:
        if "=" not in item:
            raise bad_value(
                "--set", item, "write key=value, e.g. lr=2e-4 or method.fairness_lambda=0.5"
            )
        key, text = item.split("=", 1)
        keys = [k for k in key.strip().split(".") if k]
        if not keys:
            raise bad_value("--set", item, "the key is empty")
        value = parse_yaml_value(text, key.strip())
        if keys[0] in ("train", "method"):
            section, keys = keys[0], keys[1:]
        else:
            is_train = keys[0] in train_fields or is_training_name(keys[0])
            section = "train" if is_train else "method"
        if not keys:
            raise bad_value("--set", item, "name a field after the section")
        _set_path(tree[section], keys, value)
    return tree


#: Keys of a saved run record (``OUT/config.yaml``) besides ``train``: ignored on reading,
#: so that ``--config OUT/config.yaml`` reproduces a run.
_RECORD_KEYS = {"method", "method_config", "model", "data", "attribute_space", "setup", "n_train"}


def read_config(config: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """A raw ``{"train": ..., "method": ...}`` tree from a YAML path, a mapping or ``None``.

    Accepted shapes: ``{train: {...}, method: {...}}``; a run's saved ``config.yaml``
    (``method_config`` holds the method options); or flat training fields with an
    optional ``method:`` mapping (``{"steps": 10, "method": {...}}``).
    """

    if config is None:
        return {"train": {}, "method": {}}
    data = read_yaml_mapping(config, "config") if isinstance(config, str | Path) else dict(config)
    if not isinstance(data, Mapping):
        raise bad_value(
            "config", type(data).__name__, "use a mapping with train: and method: sections"
        )
    method = data.get("method_config", data.get("method"))
    method = dict(method) if isinstance(method, Mapping) else {}
    if "train" in data:
        extra = sorted(set(data) - {"train"} - _RECORD_KEYS)
        if extra:
            raise bad_value(f"config.{extra[0]}", data[extra[0]], "put it under train: or method:")
        return {"train": dict(data["train"] or {}), "method": method}
    train = {k: v for k, v in data.items() if k not in ("method", "method_config")}
    return {"train": train, "method": method}


def load_train_config(
    config: str | Path | Mapping[str, Any] | TrainConfig | None = None,
    overrides: Sequence[str] = (),
) -> tuple[TrainConfig, dict[str, Any]]:
    """``(TrainConfig, raw method options)`` from a YAML path / mapping plus ``--set`` overrides."""
    if isinstance(config, TrainConfig):
        raw = {"train": to_plain(config), "method": {}}
    else:
        raw = read_config(config)
    tree = parse_overrides(overrides, raw)
    return TrainConfig.from_dict(tree["train"], prefix="train."), tree["method"]
