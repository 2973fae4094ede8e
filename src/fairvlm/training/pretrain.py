"""``pretrain``: train the small benchmark base model (a LLaVA-architecture VLM) from scratch.

Full training of every parameter (vision tower, projector, language model) on the
training split's tasks, through :class:`fairvlm.training.FairTrainer` (a
``transformers.Trainer``: checkpoints with safetensors + optimizer state, resume, a
fixed step budget, seeded data order). The tokenizer is trained on the split's text.

Output directory (``load_vlm(OUT)`` loads it like any checkpoint)::

    OUT/config.json, model.safetensors, tokenizer + processor files
    OUT/pretrain.json      config, data fingerprint, cache key, steps, wall time, log
    OUT/checkpoints/       Trainer checkpoints (``resume=True`` continues from the last)

A finished OUT is a cache: calling again with the same data fingerprint and config
returns it without training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.atomic import atomic_write_text
from fairvlm.config import Config, is_int
from fairvlm.data import METADATA_FILE, dataset_metadata, load_dataset, load_samples
from fairvlm.errors import ConfigError, DataError, bad_value
from fairvlm.models import build_tiny_vlm
from fairvlm.models.loading import parse_device
from fairvlm.models.tiny_configs import TinyConfig
from fairvlm.training.arguments import training_arguments
from fairvlm.training.checkpoints import last_complete_checkpoint
from fairvlm.training.dataset import AttributeSpace, SampleDataset, TrainCollator
from fairvlm.training.trainer import FairTrainer
from fairvlm.yamlpos import parse_yaml_value

RECORD_FILE = "pretrain.json"
CHECKPOINTS = "checkpoints"
#: Fields that change how a run is shown or saved, not the model it produces.
_NOT_IN_KEY = ("progress", "save_steps", "logging_steps")


@dataclass
class BaseModelSizes(TinyConfig):
    """The benchmark base model's sizes: a :class:`~fairvlm.models.TinyConfig` with wider
    layers and smaller patches; the image size is the dataset's (``None`` until then)."""

    hidden_size: int = 64
    vision_hidden_size: int = 64
    patch_size: int = 4
    image_size: int | None = None


#: ``TinyConfig`` fields a user may write flat among the pretrain fields.
_MODEL_FIELDS = tuple(f for f in TinyConfig.field_names() if f != "seed")


@dataclass
class PretrainConfig(Config):
    """How to pretrain the benchmark base model.

    Attributes:
        steps: the fixed optimiser step budget (the bias a model shows depends on it).
        batch_size, lr, warmup_ratio, weight_decay, max_grad_norm: AdamW optimisation
            with a cosine schedule.
        seed: seeds the weights, the tokenizer-independent init and the data order.
        split: the dataset split to train on; ``tasks``: the tasks used (None = all).
        limit: use at most this many samples of the split (None = all).
        model: the sizes of the LLaVA-architecture model (a
            :class:`fairvlm.models.TinyConfig`: Llama language model, CLIP vision tower,
            byte-level BPE vocabulary trained on the split's text); its image size is the
            dataset's and its seed is ``seed``. Its fields may also be given flat
            (``hidden_size: 128``).
        save_steps, logging_steps, progress: checkpoint / log cadence, progress bar.
        device: ``cpu`` / ``cuda`` / None (cuda when available).
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    split: str = "train"
    tasks: list[str] | None = None
    limit: int | None = None
    model: BaseModelSizes = field(default_factory=lambda: BaseModelSizes())
    save_steps: int = 200
    logging_steps: int = 20
    progress: bool = True
    device: str | None = None

    def validate(self) -> None:
        for name in ("steps", "batch_size", "save_steps", "logging_steps"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise bad_value(name, value, "use a positive integer")
        if not is_int(self.seed) or self.seed < 0:
            raise bad_value("seed", self.seed, "use a non-negative integer")
        if not self.lr > 0:
            raise bad_value("lr", self.lr, "use a positive learning rate, e.g. 3e-3")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise bad_value("warmup_ratio", self.warmup_ratio, "use a fraction in [0, 1)")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            bad = "weight_decay" if self.weight_decay < 0 else "max_grad_norm"
            raise bad_value(bad, getattr(self, bad), "use a non-negative / positive number")
        if self.limit is not None and (not is_int(self.limit) or self.limit < 1):
            raise bad_value("limit", self.limit, "use a positive integer or null for all")
        if self.tasks is not None and not self.tasks:
            raise bad_value("tasks", self.tasks, "name at least one task, or null for all")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, **kwargs: Any) -> PretrainConfig:
        """From a mapping; the model's sizes flat (``hidden_size: 128``) or under
        ``model:``; ``kwargs`` as :meth:`fairvlm.config.Config.from_dict`."""
        data = dict(data or {})
        flat = {k: data.pop(k) for k in _MODEL_FIELDS if k in data}
        if flat:
            nested = data.get("model") or {}
            if not isinstance(nested, Mapping):
                raise bad_value("model", nested, f"give {sorted(flat)} inside model: or only flat")
            data["model"] = {**nested, **flat}
        return super().from_dict(data, **kwargs)

    def cache_key(self, data_fingerprint: str) -> str:
        """SHA-256 of the fields that determine the model, and of the data."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_IN_KEY}
        blob = json.dumps({"config": fields, "data": data_fingerprint}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def load_pretrain_config(overrides: Sequence[str] = ()) -> PretrainConfig:
    """A config from ``key=value`` strings (``--set``; values parsed as YAML; a dotted key
    such as ``model.hidden_size=128`` sets a nested field)."""

    data: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise bad_value("--set", item, "write key=value, e.g. steps=300")
        key, text = (part.strip() for part in item.split("=", 1))
        *sections, name = key.split(".")
        node = data
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = parse_yaml_value(text, key)
    return PretrainConfig.from_dict(data)


def data_fingerprint(data_dir: str | Path) -> str:
    """The dataset's content fingerprint (``fairvlm.synth`` stores one), else a hash of
    its Arrow files and metadata."""
    stored = dataset_metadata(data_dir).get("fingerprint")
    if stored:
        return str(stored)
    h = hashlib.sha256()
    root = Path(data_dir)
    for path in sorted(root.rglob("*.arrow")) + [root / METADATA_FILE]:
        h.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _read_record(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / RECORD_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _check_out(out: Path, key: str, resume: bool) -> str:
    """``done`` (cached), ``resume`` or ``fresh``; raises when OUT holds something else."""
    record = _read_record(out)
    if record is None:
        if out.exists() and any(out.iterdir()):
            raise ConfigError(
                f"out={str(out)!r} is not empty and holds no {RECORD_FILE}: choose another OUT"
            )
        return "fresh"
    if record.get("key") != key:
        raise ConfigError(
            f"out={str(out)!r} holds a model pretrained with another config or data "
            f"(key {str(record.get('key'))[:12]} != {key[:12]}); choose another OUT or remove it"
        )
    if record.get("complete"):
        return "done"
    if not resume:
        raise ConfigError(
            f"out={str(out)!r} holds an unfinished run of this config: pass resume=True "
            "(--resume) to continue it, or remove the folder"
        )
    return "resume"


def _samples(data_dir: Path, cfg: PretrainConfig) -> list[Any]:
    splits = list(load_dataset(data_dir))
    if cfg.split not in splits:
        raise bad_value("split", cfg.split, f"the data has splits {splits}")
    samples = load_samples(data_dir, cfg.split)
    if cfg.tasks is not None:
        present = sorted({s.task for s in samples})
        missing = [t for t in cfg.tasks if t not in present]
        if missing:
            raise bad_value("tasks", cfg.tasks, f"split {cfg.split!r} has tasks {present}")
        samples = [s for s in samples if s.task in cfg.tasks]
    if cfg.limit is not None:
        samples = samples[: cfg.limit]
    if not samples:
        raise DataError(f"split={cfg.split!r} of {str(data_dir)!r} is empty: nothing to train on")
    return samples


def _corpus(samples: Sequence[Any]) -> list[str]:
    """Every distinct prompt, target and option of the training samples."""
    texts = [s.prompt for s in samples] + [s.target for s in samples if s.target]
    texts += [o for s in samples for o in (s.options or [])]
    return sorted(set(texts))


def _image_size(samples: Sequence[Any], patch_size: int) -> int:
    img = samples[0].load_image()
    side = min(img.size)
    if side % patch_size:
        raise bad_value("patch_size", patch_size, f"use a divisor of the image size {side}")
    return side


def _trainer_class() -> type:
    class PretrainTrainer(FairTrainer):
        """``FairTrainer`` whose resume reads full-model checkpoints through ``from_pretrained``."""

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            # Checkpoints are written by save_pretrained, which stores LLaVA's original
            # key names; the Trainer reads them back with a raw load_state_dict, which
            # matches none of them (transformers 5). from_pretrained maps the names.
            model = model if model is not None else self.model
            saved = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
            model.load_state_dict(saved.state_dict(), strict=True)

    return PretrainTrainer


def _save_model(adapter: Any, out: Path) -> None:
    """``save_pretrained`` model + processor into ``out``, file by file via a temp folder."""
    tmp = Path(tempfile.mkdtemp(prefix=".model-", dir=out))
    try:
        adapter.model.save_pretrained(tmp)
        adapter.processor.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pretrain(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: PretrainConfig | Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
) -> Path:
    """Pretrain the benchmark base model on ``data_dir`` into ``out_dir``; return ``out_dir``.

    Args:
        data_dir: a dataset folder (``fairvlm data synth`` writes one).
        out_dir: the model folder; a finished run of the same config and data is reused.
        config: a :class:`PretrainConfig`, a mapping of its fields, or None (defaults).
        resume: continue an unfinished run in ``out_dir`` from its last checkpoint.
        callbacks: extra ``transformers.TrainerCallback``s.

    Raises:
        ConfigError / DataError: bad config, data or output folder, before any training.
    """
    cfg = config if isinstance(config, PretrainConfig) else PretrainConfig.from_dict(config or {})
    data = Path(data_dir)
    out = Path(out_dir)
    fingerprint = data_fingerprint(data)
    key = cfg.cache_key(fingerprint)
    state = _check_out(out, key, resume)
    if state == "done":
        print(f"fairvlm pretrain: {out} already holds this model (key {key[:12]}); reused")
        return out
    samples = _samples(data, cfg)

    from transformers import set_seed

    set_seed(cfg.seed)
    sizes = {**cfg.model.to_dict(), "seed": cfg.seed}
    sizes["image_size"] = _image_size(samples, cfg.model.patch_size)
    adapter = build_tiny_vlm("llava", corpus=_corpus(samples), **sizes)
    if cfg.device is not None:
        adapter.model.to(parse_device(cfg.device))
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "key": key,
        "complete": False,
        "config": dataclasses.asdict(cfg),
        "data": str(data),
        "data_fingerprint": fingerprint,
        "n_samples": len(samples),
    }
    if state == "fresh":
        atomic_write_text(out / RECORD_FILE, json.dumps(record, indent=2))
    ckpt_root = out / CHECKPOINTS
    ckpt = last_complete_checkpoint(ckpt_root) if state == "resume" else None

    args = training_arguments(
        ckpt_root,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=1,
        seed=cfg.seed,
        progress=cfg.progress,
        use_cpu=adapter.device.type == "cpu",
    )
    space = AttributeSpace.from_samples(samples)
    trainer = _trainer_class()(
        adapter.model,
        args=args,
        train_dataset=SampleDataset(samples, space),
        data_collator=TrainCollator(adapter),
        space=space,
        callbacks=list(callbacks),
    )
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=ckpt)
    wall = time.perf_counter() - start
    adapter.model.eval()
    _save_model(adapter, out)
    history = list(trainer.state.log_history)
    losses = [row["loss"] for row in history if "loss" in row]
    record.update(
        complete=True,
        global_step=trainer.state.global_step,
        wall_time_s=round(wall, 2),
        final_loss=losses[-1] if losses else None,
        n_parameters=sum(p.numel() for p in adapter.model.parameters()),
        log_history=history,
    )
    atomic_write_text(
        out / RECORD_FILE, json.dumps(record, indent=2)
    )  # last: marks the folder complete
    return out


__all__ = ["PretrainConfig", "data_fingerprint", "load_pretrain_config", "pretrain"]
