"""Hugging Face ``TrainingArguments`` names in a ``train:`` config: the one table of aliases.

``train:`` takes fairvlm's own fields (``lr``, ``batch_size`` ...) or their Hugging Face
names (``learning_rate``, ``per_device_train_batch_size`` ...). Any other
``TrainingArguments`` field (``optim``, ``report_to``, ``gradient_checkpointing``,
``deepspeed``, ``fsdp`` ...) goes under ``train.args:`` (or beside the fields, where it
is moved there) and is passed to ``TrainingArguments`` as it is.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Mapping
from typing import Any

from fairvlm.errors import bad_value
from fairvlm.registry import did_you_mean

#: Hugging Face name -> the TrainConfig field it stands for.
ALIASES: dict[str, str] = {
    "learning_rate": "lr",
    "per_device_train_batch_size": "batch_size",
    "max_steps": "steps",
    "gradient_accumulation_steps": "grad_accum",
    "num_train_epochs": "epochs",
    "lr_scheduler_type": "scheduler",
}

#: ``TrainingArguments`` fields fairvlm derives from one of its own -> what to set instead.
DERIVED: dict[str, str] = {
    "output_dir": "checkpoints go under the output folder (--out / out_dir)",
    "bf16": "set mixed_precision: bf16",
    "fp16": "set mixed_precision: fp16",
    "disable_tqdm": "set progress: false",
    "use_cpu": "set device: cpu",
    "warmup_steps": "set warmup_ratio (a fraction of the steps)",
    "data_seed": "set seed (it seeds the data order too)",
    "remove_unused_columns": "fairvlm's collator needs every sample field: drop it",
}


@functools.cache
def training_argument_names() -> frozenset[str]:
    """The fields of the installed ``transformers.TrainingArguments``."""
    # transformers takes seconds to import: only configs that name a foreign key pay it
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments) if f.init)


def is_training_name(key: str) -> bool:
    """Whether ``key`` is a Hugging Face training name (alias, derived or passed as is)."""
    return key in ALIASES or key in DERIVED or key in training_argument_names()


def resolve_names(
    data: Mapping[str, Any], fields: Collection[str], prefix: str = "train."
) -> dict[str, Any]:
    """``data`` with aliases renamed to their field and the other ``TrainingArguments``
    fields gathered under ``args``; an unknown key, a derived one, or a field given twice
    (by both names) is a one-line error."""
    own = set(fields) - {"args"}
    out = {k: v for k, v in data.items() if k in own}
    args_in = data.get("args") or {}
    if not isinstance(args_in, Mapping):
        raise bad_value(f"{prefix}args", args_in, "use a mapping of TrainingArguments fields")
    given = [(f"{prefix}{k}", k, v) for k, v in data.items() if k not in own and k != "args"]
    given += [(f"{prefix}args.{k}", k, v) for k, v in args_in.items()]
    args: dict[str, Any] = {}
    for name, key, value in given:
        target = ALIASES.get(key, key if key in own else None)
        if target is not None:
            if target in out:
                raise bad_value(name, value, f"{target} is given too: keep one of the two")
            out[target] = value
        elif key in DERIVED:
            raise bad_value(name, value, DERIVED[key])
        elif key in training_argument_names():
            args[key] = value
        else:
            known = sorted({*own, *ALIASES, *training_argument_names()})
            raise bad_value(
                name,
                value,
                "not a TrainConfig field, a Hugging Face name of one, nor a "
                f"TrainingArguments field{did_you_mean(key, known)}",
            )
    out["args"] = args
    return out


__all__ = ["ALIASES", "DERIVED", "is_training_name", "resolve_names", "training_argument_names"]
