"""The experiment's bridge to the other fairvlm modules: their config classes (for
validation before any work) and the calls each stage makes. Nothing here re-implements
a stage; it only adapts arguments (seeds, paths, ``key=value`` overrides)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairvlm.errors import ConfigError, FairVLMError

if TYPE_CHECKING:
    from fairvlm.experiment.config import StudySpec
    from fairvlm.yamlpos import KeyPath, Marks


def _attr(module: str, name: str, needed_for: str) -> Any:
    """``module.name``; a ConfigError when that part of fairvlm is not there (yet)."""
    obj = getattr(require(module, needed_for), name, None)
    if obj is None:
        raise ConfigError(f"{needed_for} needs {module}.{name}, which this fairvlm lacks")
    return obj


def require(name: str, needed_for: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ConfigError(
                f"{needed_for} needs {name}, which is not installed in this fairvlm"
            ) from None
        raise


# -- config classes ----------------------------------------------------------------------
def pretrain_config_class() -> type:
    """``fairvlm.training.PretrainConfig``."""
    return _attr("fairvlm.training.pretrain", "PretrainConfig", "model: pretrain:")


def audit_config_class() -> type:
    """``fairvlm.audit.AuditConfig``."""
    return _attr("fairvlm.audit", "AuditConfig", "the audit stage")


def check_dataclass(cls: type, options: Mapping[str, Any], path: Any, marks: Any) -> Any:
    """``cls`` built from ``options``; an unknown key is reported at its own line, a bad
    value (``__post_init__``) at the section's."""
    check_fields(cls, options, path, marks)
    try:
        return build_config(cls, options)
    except (FairVLMError, TypeError) as exc:
        raise marks.error(path, str(exc)) from None


def check_fields(cls: type, options: Mapping[str, Any], path: Any, marks: Any) -> None:
    """An unknown key of dataclass ``cls`` is an error at the key's own line."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in options:
        if key not in names:
            raise marks.error((*path, key), f"unknown key {key!r}: {cls.__name__} has {names}")


def build_config(cls: type, options: Mapping[str, Any]) -> Any:
    """``cls.from_dict(options)`` when the class has one (its owner's own reader), else
    the training module's generic ``from_mapping``."""
    from fairvlm.training.config import from_mapping

    reader = getattr(cls, "from_dict", None)
    return reader(dict(options)) if reader is not None else from_mapping(cls, options)


def with_seed(options: Mapping[str, Any], cls: type | None, seed: int) -> dict[str, Any]:
    """``options`` plus ``seed`` (the experiment's) when ``cls`` has a seed field not set."""
    out = dict(options)
    fields = dataclasses.fields(cls) if cls is not None and dataclasses.is_dataclass(cls) else ()
    if "seed" not in out and any(f.name == "seed" for f in fields):
        out["seed"] = seed
    return out


# -- validation of one study --------------------------------------------------------------
def validate_study(study: StudySpec, path: KeyPath, marks: Marks) -> None:
    """Check every method-specific config of a study with the owners' own classes.

    Raises:
        ConfigError: located at the offending key (``file:line: path``).
    """
    from fairvlm.experiment.config import STEER_METHODS, TRAIN_METHODS
    from fairvlm.training.config import TrainConfig

    check_dataclass(TrainConfig, study.train, (*path, "train"), marks)
    for spec in study.methods:
        for part in spec.parts:
            opts = spec.part_config(part)
            where = (*spec.path, "config") if len(spec.parts) == 1 else (*spec.path, "config", part)
            if part in TRAIN_METHODS:
                train_options(study, part, opts, where, marks)
            elif part in STEER_METHODS:
                steer_options(part, opts, where, marks)
    if study.data.synth:
        synth = require("fairvlm.synth", "data: synth:")
        where = (*path, "data", "overrides")
        cls = synth.BENCH_CONFIGS[study.data.synth]
        check_fields(cls, study.data.overrides, where, marks)
        try:
            synth.bench_config(study.data.synth, dict(study.data.overrides))
        except FairVLMError as exc:
            raise marks.error(where, str(exc)) from None
    if study.model.pretrain is not None:
        check_dataclass(
            pretrain_config_class(), study.model.pretrain, (*path, "model", "pretrain"), marks
        )
    check_dataclass(audit_config_class(), study.audit.config, (*path, "audit", "config"), marks)


def train_options(
    study: StudySpec, method: str, opts: Mapping[str, Any], where: Any, marks: Any
) -> dict[str, Any]:
    """The ``{"train": ..., "method": ...}`` config of one fine-tuning part, validated."""
    from fairvlm.training import get_method
    from fairvlm.training.config import TrainConfig

    marks = marks or _no_marks()
    require(_owner(method), f"method {method!r}")
    for key in opts:
        if key not in ("train", "method"):
            raise marks.error((*where, key), f"unknown key {key!r}: use train: or method:")
    own = dict(opts.get("train") or {})
    check_dataclass(TrainConfig, own, (*where, "train"), marks)
    train = {**study.train, **own}
    check_dataclass(TrainConfig, train, (*where, "train"), marks)
    try:
        spec = get_method(method)
        spec.parse(dict(opts.get("method") or {}))
    except FairVLMError as exc:
        raise marks.error((*where, "method"), str(exc)) from None
    return {"train": train, "method": dict(opts.get("method") or {})}


def _no_marks() -> Marks:
    from fairvlm.yamlpos import Marks

    return Marks("<experiment>")


def _owner(method: str) -> str:
    from fairvlm.experiment.config import TRAIN_METHODS

    return TRAIN_METHODS[method]


def steer_options(method: str, opts: Mapping[str, Any], where: Any, marks: Any) -> dict:
    """``{"build": ..., "apply": ...}`` of a steering part, validated by the steering module."""
    marks = marks or _no_marks()
    steering = require("fairvlm.mitigation.steering", f"method {method!r}")
    for key in opts:
        if key not in ("build", "apply"):
            raise marks.error((*where, key), f"unknown key {key!r}: use build: or apply:")
    from fairvlm.experiment.config import STEER_METHODS

    builder = STEER_METHODS[method]
    cls = steering_config_class(steering, builder)
    if cls is not None:
        check_dataclass(cls, dict(opts.get("build") or {}), (*where, "build"), marks)
    apply = dict(opts.get("apply") or {})
    for key in apply:
        if key not in APPLY_KEYS:
            raise marks.error((*where, "apply", key), f"unknown key {key!r}: use {APPLY_KEYS}")
    return {"build": dict(opts.get("build") or {}), "apply": apply}


#: Keyword arguments of ``SteeringVector.apply`` settable from the YAML.
APPLY_KEYS = ("scale", "operator", "positions", "layers")


def steering_config_class(steering: Any, builder: str) -> type | None:
    """The builder's config dataclass (``ContrastiveConfig`` / ``GradientConfig``)."""
    name = {"contrastive": "ContrastiveConfig", "gradient": "GradientConfig"}[builder]
    return getattr(steering, name, None)


# -- the calls ----------------------------------------------------------------------------
def synthesize(bench: str, overrides: Mapping[str, Any], out: Path) -> Path:
    """Generate a benchmark dataset into ``out``."""
    synth = require("fairvlm.synth", "data: synth:")
    return Path(synth.synthesize(bench, out, dict(overrides)))


def pretrain(data_dir: Path, out: Path, options: Mapping[str, Any]) -> Path:
    """Train the base model on ``data_dir`` into ``out`` (resuming an interrupted run)."""
    module = require("fairvlm.training.pretrain", "model: pretrain:")
    cfg = _build_plain(module.PretrainConfig, options)
    return Path(module.pretrain(data_dir, out, cfg, resume=True))


def _build_plain(cls: type, options: Mapping[str, Any]) -> Any:
    return build_config(cls, options)


def load_model(model: str, *, adapter: Path | None, dtype: str | None, device: str | None) -> Any:
    """``load_vlm(model, adapter=...)``."""
    from fairvlm.models import load_vlm

    return load_vlm(model, dtype=dtype, device=device, adapter=adapter)


def run_audit(
    model: str,
    adapter: str | None,
    data_dir: str,
    options: Mapping[str, Any],
    out: Path,
    *,
    steer: Any = None,
    dtype: str | None = None,
    device: str | None = None,
) -> None:
    """``fairvlm.audit.run_audit`` into ``out`` (records.parquet + metrics.json); the
    model is loaded only if a batch is left to compute (a resumed audit may need none)."""
    audit = require("fairvlm.audit", "the audit stage")
    cfg = _build_plain(audit.AuditConfig, options)
    audit.run_audit(
        model, data_dir, cfg, out, steer=steer, adapter=adapter, dtype=dtype, device=device
    )


def train(
    model: str, data_dir: Path, method: str, config: Mapping[str, Any], out: Path, resume: bool
) -> None:
    """``fairvlm.training.train`` into ``out`` (adapter, heads, training_log.jsonl)."""
    from fairvlm.training import train as run_train

    result = run_train(model, data_dir, method, dict(config), out, resume=resume)
    del result  # the adapter in memory is dropped: audits reload it from ``out``


def build_steering(
    vlm: Any, data_dir: Path, builder: str, options: Mapping[str, Any], out: Path
) -> Path:
    """Build a steering vector with ``builder`` on ``vlm`` and save it to ``out``."""
    steering = require("fairvlm.mitigation.steering", "steering")
    cls = steering_config_class(steering, builder)
    cfg = _build_plain(cls, options) if cls is not None else dict(options)
    vector = getattr(steering, f"build_{builder}")(vlm, data_dir, cfg)
    path = out / "vector.safetensors"
    vector.save(path)
    return path


def load_steering(path: Path) -> Any:
    """A saved ``SteeringVector``."""
    steering = require("fairvlm.mitigation.steering", "steering")
    return steering.SteeringVector.load(path)
