"""The experiment's bridge to the other fairvlm modules: validation of every part of a
study with its owner's config class and registry (before any work), and the calls each
stage makes. Nothing here re-implements a stage; it only adapts arguments (seeds, paths,
``key=value`` overrides)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairvlm import synth
from fairvlm.audit import AuditConfig
from fairvlm.audit import run_audit as audit_run
from fairvlm.data.storage import dataset_metadata
from fairvlm.errors import FairVLMError
from fairvlm.mitigation.steering import SteeringVector
from fairvlm.mitigation.steering.builders import Builder, builder_of_method
from fairvlm.mitigation.steering.settings import SteerSettings
from fairvlm.models import load_vlm
from fairvlm.registry import TRAINING_METHODS
from fairvlm.training import TrainConfig, get_method
from fairvlm.training import pretrain as train_base
from fairvlm.training import train as train_method
from fairvlm.training.pretrain import PretrainConfig
from fairvlm.yamlpos import Marks

if TYPE_CHECKING:
    from fairvlm.experiment.specs import StudySpec
    from fairvlm.yamlpos import KeyPath


def with_seed(options: Mapping[str, Any], cls: type | None, seed: int) -> dict[str, Any]:
    """``options`` plus ``seed`` (the experiment's) when ``cls`` has a seed field not set."""
    out = dict(options)
    fields = dataclasses.fields(cls) if cls is not None and dataclasses.is_dataclass(cls) else ()
    if "seed" not in out and any(f.name == "seed" for f in fields):
        out["seed"] = seed
    return out


def _sections(opts: Mapping[str, Any], allowed: tuple[str, str], where: Any, marks: Marks) -> None:
    for key in opts:
        if key not in allowed:
            raise marks.error(
                (*where, key), f"unknown key {key!r}: use {allowed[0]}: or {allowed[1]}:"
            )


# -- validation of one study --------------------------------------------------------------
def validate_study(study: StudySpec, path: KeyPath, marks: Marks) -> None:
    """Check every part of a study with its owner's config class, and against the tasks
    its data has in each split (known before the data is generated).

    Raises:
        ConfigError: located at the offending key (``file:line: path``).
    """
    TrainConfig.from_dict(study.train, marks=marks, path=(*path, "train"))
    tasks = split_tasks(study)
    where = (*path, "audit", "config")
    audit = AuditConfig.from_dict(study.audit.options, marks=marks, path=where)
    _check_audit_data(audit, tasks, where, marks)
    for spec in study.methods:
        for part in spec.parts:
            opts = spec.part_config(part)
            where = (*spec.path, "config") if len(spec.parts) == 1 else (*spec.path, "config", part)
            if part in TRAINING_METHODS:
                train = train_options(study, part, opts, where, marks)
                split = TrainConfig.from_dict(train["train"]).split
                _check_split(tasks, split, None, (*where, "train", "split"), marks, part)
            else:
                builder = steering_builder(part)
                cfg = builder.parse(steer_options(part, opts, where, marks)["build"])
                split, task = builder.reads(cfg)
                _check_split(tasks, split, task, (*where, "build"), marks, part)
    if study.data.synth:
        where = (*path, "data", "overrides")
        synth.BENCH_CONFIGS[study.data.synth].from_dict(
            study.data.overrides, marks=marks, path=where
        )
    if study.model.pretrain is not None:
        PretrainConfig.from_dict(
            study.model.pretrain, marks=marks, path=(*path, "model", "pretrain")
        )


def split_tasks(study: StudySpec) -> dict[str, set[str]] | None:
    """The sample tasks of each split of the study's data (``None``: not known)."""
    if study.data.synth:
        return {split: set(synth.BENCH_TASKS[study.data.synth]) for split in synth.SPLITS}
    per_split = dataset_metadata(study.data.path).get("split_tasks")
    return {s: set(t) for s, t in per_split.items()} if per_split else None


def _check_split(
    tasks: dict[str, set[str]] | None,
    split: str,
    task: str | None,
    where: Any,
    marks: Marks,
    user: str,
) -> None:
    if tasks is None:
        return
    if split not in tasks:
        raise marks.error(
            where, f"{user} reads split {split!r}, which the data lacks: use one of {sorted(tasks)}"
        )
    if task is not None and task not in tasks[split]:
        raise marks.error(
            where,
            f"{user} reads {task!r} samples of split {split!r}, which has only "
            f"{sorted(tasks[split])}: set its split/task, or use data with {task} samples",
        )


def _check_audit_data(
    audit: AuditConfig, tasks: dict[str, set[str]] | None, where: Any, marks: Marks
) -> None:
    _check_split(tasks, audit.split, None, (*where, "split"), marks, "the audit")
    for name in audit.tasks or ():
        source = audit.sources.get(name, name)
        _check_split(tasks, audit.split, source, (*where, "tasks"), marks, f"audit task {name!r}")


def train_options(
    study: StudySpec, method: str, opts: Mapping[str, Any], where: Any, marks: Marks | None
) -> dict[str, Any]:
    """The ``{"train": ..., "method": ...}`` config of one fine-tuning part, validated."""
    marks = marks or Marks("<experiment>")
    _sections(opts, ("train", "method"), where, marks)
    own = dict(opts.get("train") or {})
    TrainConfig.from_dict(own, marks=marks, path=(*where, "train"))
    train = {**study.train, **own}
    TrainConfig.from_dict(train, marks=marks, path=(*where, "train"))
    try:
        get_method(method).parse(dict(opts.get("method") or {}))
    except FairVLMError as exc:
        raise marks.error((*where, "method"), str(exc)) from None
    return {"train": train, "method": dict(opts.get("method") or {})}


def steer_options(method: str, opts: Mapping[str, Any], where: Any, marks: Marks | None) -> dict:
    """``{"build": ..., "apply": ...}`` of a steering part, validated by its builder's
    config class and :class:`SteerSettings`."""
    marks = marks or Marks("<experiment>")
    _sections(opts, ("build", "apply"), where, marks)
    builder = steering_builder(method)
    build = dict(opts.get("build") or {})
    builder.parse(build, marks=marks, path=(*where, "build"))
    apply = SteerSettings.from_dict(opts.get("apply"), marks=marks, path=(*where, "apply"))
    return {"build": build, "apply": apply.kwargs()}


def steering_builder(method: str) -> Builder:
    """The builder of an experiment method ``steering-NAME``."""
    builder = builder_of_method(method)
    if builder is None:
        raise KeyError(method)  # the method names were checked when the YAML was parsed
    return builder


# -- the calls ----------------------------------------------------------------------------
def synthesize(bench: str, overrides: Mapping[str, Any], out: Path) -> Path:
    """Generate a benchmark dataset into ``out``."""
    return Path(synth.synthesize(bench, out, dict(overrides)))


def pretrain(data_dir: Path, out: Path, options: Mapping[str, Any]) -> Path:
    """Train the base model on ``data_dir`` into ``out`` (resuming an interrupted run)."""
    return Path(train_base(data_dir, out, PretrainConfig.from_dict(options), resume=True))


def load_model(
    model: str,
    *,
    adapter: Path | None,
    dtype: str | None,
    device: str | None,
    model_args: Mapping[str, Any] | None = None,
) -> Any:
    """``load_vlm(model, adapter=..., **model_args)``."""
    return load_vlm(model, dtype=dtype, device=device, adapter=adapter, **dict(model_args or {}))


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
    model_args: Mapping[str, Any] | None = None,
) -> None:
    """``fairvlm.audit.run_audit`` into ``out`` (records.parquet + metrics.json); the
    model is loaded only if a batch is left to compute (a resumed audit may need none)."""
    cfg = AuditConfig.from_dict(options)
    audit_run(
        model,
        data_dir,
        cfg,
        out,
        steer=steer,
        adapter=adapter,
        dtype=dtype,
        device=device,
        model_args=model_args,
    )


def train(
    model: str,
    data_dir: Path,
    method: str,
    config: Mapping[str, Any],
    out: Path,
    resume: bool,
    model_args: Mapping[str, Any] | None = None,
) -> None:
    """``fairvlm.training.train`` into ``out`` (adapter, heads, training_log.jsonl)."""
    result = train_method(
        model, data_dir, method, dict(config), out, resume=resume, model_args=model_args
    )
    del result  # the adapter in memory is dropped: audits reload it from ``out``


def build_steering(
    vlm: Any, data_dir: Path, method: str, options: Mapping[str, Any], out: Path
) -> Path:
    """Build the steering vector of experiment method ``method`` on ``vlm`` into ``out``."""
    builder = steering_builder(method)
    vector = builder.build(vlm, data_dir, builder.parse(options))
    path = out / "vector.safetensors"
    vector.save(path)
    return path


def load_steering(path: Path) -> SteeringVector:
    """A saved ``SteeringVector``."""
    return SteeringVector.load(path)


def method_targets(study: StudySpec) -> list[str]:
    """The ``task.metric`` keys the study's methods set out to move (registry ``metrics``)."""
    keys: list[str] = []
    for spec in study.methods:
        for part in spec.parts:
            entry = (
                TRAINING_METHODS.get(part) if part in TRAINING_METHODS else steering_builder(part)
            )
            keys += [k for k in entry.metrics if k not in keys]
    return keys
