"""``training_arguments``: the one place fairvlm's two training pipelines (``pretrain`` and
``train``) build their ``transformers.TrainingArguments``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from fairvlm.errors import ConfigError


def training_arguments(
    output_dir: str | Path,
    *,
    batch_size: int,
    steps: int | None,
    lr: float,
    warmup_ratio: float,
    weight_decay: float,
    max_grad_norm: float,
    logging_steps: int,
    save_steps: int,
    save_total_limit: int | None,
    seed: int,
    progress: bool,
    use_cpu: bool,
    scheduler: str = "cosine",
    grad_accum: int = 1,
    epochs: float = 1.0,
    mixed_precision: str = "no",
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """``TrainingArguments`` for a run checkpointed under ``output_dir``: a fixed step budget
    (``steps``; ``None``: ``epochs``), seeded data order, no reporting integrations, and
    the raw samples passed to fairvlm's collator (no column removal, no worker processes).
    ``extra``: more ``TrainingArguments`` fields (``train.args:``), over these defaults."""
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        max_steps=steps if steps is not None else -1,
        num_train_epochs=epochs,
        learning_rate=lr,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup_ratio,  # a float < 1 is a ratio of the steps
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        logging_steps=logging_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        seed=seed,
        data_seed=seed,
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=not progress,
        bf16=mixed_precision == "bf16",
        fp16=mixed_precision == "fp16",
        use_cpu=use_cpu,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    kwargs.update(extra or {})
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"train.args={dict(extra or {})!r}: TrainingArguments refused them ({reason}); "
            "fix the value (see transformers' TrainingArguments)"
        ) from None


__all__ = ["training_arguments"]
