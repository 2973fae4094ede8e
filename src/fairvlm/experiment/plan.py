"""From an :class:`ExperimentConfig` to the stages of a run.

Per study (``S``), in order::

    S/data              synthesise the benchmark           (only for data: synth:)
    S/base              pretrain the base model            (only for model: pretrain:)
    S/audit/base        audit the base model
    S/train/KEY         fine-tune (one per distinct training config; rows share it)
    S/steer/ROW         build a steering vector (on the fine-tuned model for A+steering)
    S/audit/ROW         audit the row's model (adapter and/or steering vector)

With ``seeds: [0, 1, ...]`` the stages of the methods go once per seed under
``S/seed-N/`` (``S/seed-N/train/KEY``, ``S/seed-N/steer/ROW``, ``S/seed-N/audit/ROW``);
the data, the base model and its audit are shared by the seeds.

A stage's config holds everything that determines its output (the experiment seed
included); inputs produced inside the run enter through their stage ids, whose tokens
``stages.StageGraph`` checks; a dataset or model folder outside the run enters through
its content fingerprint, so one changed under the same path makes its stages stale.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.audit import AuditConfig
from fairvlm.experiment import hooks
from fairvlm.experiment.specs import BASE, ExperimentConfig, MethodSpec, StudySpec
from fairvlm.experiment.stages import Stage, StageContext, config_hash
from fairvlm.fingerprint import folder_fingerprint
from fairvlm.mitigation.steering.settings import SteerSettings
from fairvlm.training import TrainConfig
from fairvlm.training.pretrain import PretrainConfig

DATASET = "dataset"
MODEL = "model"


@dataclass
class Row:
    """One row of a study's comparison table at one seed and the stages behind it (ids or
    None); ``seed`` is None for the base row and for a run without ``seeds:``."""

    method: str
    audit: str
    train: str | None = None
    steer: str | None = None
    seed: int | None = None


@dataclass
class StudyPlan:
    """A study's stages and rows, and where its data and base model live."""

    study: StudySpec
    stages: list[Stage] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    data_stage: str | None = None
    base_stage: str | None = None

    def data_dir(self, run_dir: Path) -> Path:
        """The study's dataset folder."""
        if self.data_stage:
            return run_dir / self.data_stage / DATASET
        return Path(self.study.data.path or "")

    def model_path(self, run_dir: Path) -> str:
        """The study's base model (a folder or hub id)."""
        if self.base_stage:
            return str(run_dir / self.base_stage / MODEL)
        return str(self.study.model.path)


def _audit_options(study: StudySpec, seed: int) -> dict[str, Any]:
    options = hooks.with_seed(dict(study.audit.options), AuditConfig, seed)
    if options.get("limit") is not None:
        # in the stage's hash: audits cached when a limit took the first samples are stale
        options.setdefault("limit_mode", AuditConfig.limit_mode)
    return options


def plan_study(cfg: ExperimentConfig, study: StudySpec, run_dir: Path) -> StudyPlan:
    """The stages and rows of one study."""
    sp = StudyPlan(study)
    s = study.name
    source: dict[str, Any] = {}
    if study.data.synth:
        sp.data_stage = f"{s}/data"
        overrides = dict(study.data.overrides)
        overrides.setdefault("seed", cfg.seed)
        sp.stages.append(
            Stage(
                sp.data_stage,
                "data",
                sp.data_stage,
                {"bench": study.data.synth, "overrides": overrides},
                _data_action,
            )
        )
    else:
        source["data"] = study.data.path
        # the content, not the path, decides whether a stage is up to date
        source["data_fingerprint"] = folder_fingerprint(study.data.path, ("**/*",))
    if study.model.path is None:
        sp.base_stage = f"{s}/base"
        options = hooks.with_seed(study.model.pretrain or {}, PretrainConfig, cfg.seed)
        sp.stages.append(
            Stage(
                sp.base_stage,
                "base",
                sp.base_stage,
                {"pretrain": options, **source},
                _base_action,
                deps=_ids(sp.data_stage),
            )
        )
    else:
        source["model"] = study.model.path
        source["model_fingerprint"] = folder_fingerprint(study.model.path)
    load = {"dtype": study.model.dtype, "device": study.model.device}
    if study.model.args:  # only when given: the stage hashes of other runs stay as they were
        load["model_args"] = dict(study.model.args)
    upstream = _ids(sp.data_stage, sp.base_stage)
    audit_cfg = {"audit": _audit_options(study, cfg.seed), **load, **source}
    base_audit = Stage(
        f"{s}/audit/{BASE}",
        "audit",
        f"{s}/audit/{BASE}",
        {**audit_cfg, "train": None, "steer": None},
        _audit_action,
        upstream,
    )
    sp.stages.append(base_audit)
    sp.rows.append(Row(BASE, base_audit.id))
    trains: dict[str, str] = {}  # training config hash -> stage id (rows share equal configs)
    for spec in study.methods:
        for seed in cfg.seeds or [None]:
            prefix = s if seed is None else f"{s}/seed-{seed}"
            sp.rows.append(
                _method_row(sp, spec, cfg, seed, prefix, audit_cfg, load, source, trains)
            )
    return sp


def _method_row(
    sp: StudyPlan,
    spec: MethodSpec,
    cfg: ExperimentConfig,
    seed: int | None,
    prefix: str,
    audit_cfg: dict,
    load: dict,
    source: dict,
    trains: dict[str, str],
) -> Row:
    """One method's stages at one seed (``None``: the experiment seed), and its row."""
    run_seed = cfg.seed if seed is None else seed
    upstream = _ids(sp.data_stage, sp.base_stage)
    row = Row(spec.name, f"{prefix}/audit/{spec.name}", seed=seed)
    deps = list(upstream)
    if spec.train_method:
        row.train = _train_stage(sp, spec, run_seed, prefix, upstream, load, source, trains)
        deps.append(row.train)
    audit_steer = None
    if spec.steer_method:
        row.steer = f"{prefix}/steer/{spec.name}"
        opts = hooks.steer_options(spec.steer_method, spec.part_config(spec.steer_method), (), None)
        builder = hooks.steering_builder(spec.steer_method)
        build = hooks.with_seed(opts["build"], builder.config_class, run_seed)
        config = {"method": spec.steer_method, "build": build, "train": row.train, **load, **source}
        sp.stages.append(Stage(row.steer, "steer", row.steer, config, _steer_action, list(deps)))
        deps.append(row.steer)
        audit_steer = {"stage": row.steer, "apply": opts["apply"]}
    sp.stages.append(
        Stage(
            row.audit,
            "audit",
            row.audit,
            {**audit_cfg, "train": row.train, "steer": audit_steer},
            _audit_action,
            deps,
            label=spec.method,
        )
    )
    return row


def _train_stage(
    sp: StudyPlan,
    spec: MethodSpec,
    seed: int,
    prefix: str,
    upstream: list[str],
    load: dict,
    source: dict,
    trains: dict[str, str],
) -> str:
    method = spec.train_method or ""
    opts = hooks.train_options(sp.study, method, spec.part_config(method), (), None)
    opts["train"] = hooks.with_seed(opts["train"], TrainConfig, seed)
    if load["dtype"] or load["device"]:
        opts["train"].setdefault("dtype", load["dtype"])
        opts["train"].setdefault("device", load["device"])
    config = {"method": method, "train": opts["train"], "options": opts["method"], **source}
    if "model_args" in load:
        config["model_args"] = load["model_args"]
    key = config_hash("train", config)
    if key in trains:
        return trains[key]
    names = {st.id for st in sp.stages}
    sid = f"{prefix}/train/{method}"
    if sid in names:
        sid = f"{prefix}/train/{spec.name}"
    sp.stages.append(Stage(sid, "train", sid, config, _train_action, list(upstream)))
    trains[key] = sid
    return sid


def _ids(*ids: str | None) -> list[str]:
    return [i for i in ids if i]


# -- actions -----------------------------------------------------------------------------
def _data_dir(ctx: StageContext) -> Path:
    for sid, folder in ctx.inputs.items():
        if sid.endswith("/data"):
            return folder / DATASET
    return Path(ctx.stage.config["data"])


def _model_path(ctx: StageContext) -> str:
    for sid, folder in ctx.inputs.items():
        if sid.endswith("/base"):
            return str(folder / MODEL)
    return str(ctx.stage.config["model"])


def _data_action(ctx: StageContext) -> None:
    c = ctx.stage.config
    hooks.synthesize(c["bench"], c["overrides"], ctx.folder / DATASET)


def _base_action(ctx: StageContext) -> None:
    hooks.pretrain(_data_dir(ctx), ctx.folder / MODEL, ctx.stage.config["pretrain"])


def _train_action(ctx: StageContext) -> None:
    c = ctx.stage.config
    config = {"train": c["train"], "method": c["options"]}
    # always resume=True: the folder holds only this config's partial run (stages.py wipes
    # any other), and train() refuses a non-empty folder otherwise (stage_config.json)
    hooks.train(
        _model_path(ctx), _data_dir(ctx), c["method"], config, ctx.folder, True, c.get("model_args")
    )


def _load(ctx: StageContext, train: str | None) -> Any:
    c = ctx.stage.config
    adapter = ctx.inputs[train] if train else None
    return hooks.load_model(
        _model_path(ctx),
        adapter=adapter,
        dtype=c.get("dtype"),
        device=c.get("device"),
        model_args=c.get("model_args"),
    )


@contextlib.contextmanager
def _in_run_dir(run_dir: Path) -> Iterator[None]:
    """Work from the run folder, so that the model and data paths an audit records in
    metrics.json are relative to it: two runs in different folders write identical
    metrics.json files, and a run folder can be moved."""
    before = os.getcwd()
    os.chdir(run_dir)
    try:
        yield
    finally:
        os.chdir(before)


def _rel(path: Path | str, run_dir: Path) -> str:
    p = Path(path)
    try:
        return str(p.relative_to(run_dir))
    except ValueError:
        return str(path)  # outside the run (data: path: / model: path:): kept as given


def _steer_action(ctx: StageContext) -> None:
    c = ctx.stage.config
    vlm = _load(ctx, c.get("train"))
    hooks.build_steering(vlm, _data_dir(ctx), c["method"], c["build"], ctx.folder)


def _audit_action(ctx: StageContext) -> None:
    c = ctx.stage.config
    run = ctx.run_dir
    steer = None
    if c.get("steer"):
        vector = hooks.load_steering(ctx.inputs[c["steer"]["stage"]] / "vector.safetensors")
        steer = (vector, SteerSettings.from_dict(c["steer"]["apply"]).kwargs())
    adapter = _rel(ctx.inputs[c["train"]], run) if c.get("train") else None
    with _in_run_dir(run):
        hooks.run_audit(
            _rel(_model_path(ctx), run),
            adapter,
            _rel(_data_dir(ctx), run),
            c["audit"],
            ctx.folder,
            steer=steer,
            dtype=c.get("dtype"),
            device=c.get("device"),
            model_args=c.get("model_args"),
        )


def plan_experiment(cfg: ExperimentConfig, run_dir: Path) -> list[StudyPlan]:
    """Every study's plan (stage ids are unique across studies: they start with the study)."""
    return [plan_study(cfg, study, run_dir) for study in cfg.studies.values()]
