"""The experiment YAML, validated strictly before any work starts, into the dataclasses of
:mod:`fairvlm.experiment.specs`.

An experiment is one or more *studies*; each study is one dataset, one base model, one
audit and a list of methods compared on it::

    name: demo
    seed: 0                 # seeds the data, the base model and the audits
    seeds: [0, 1, 2]        # optional: train and steer every method once per seed
    threads: 1              # torch threads per process
    jobs: 2                 # stages run at once, each in its own worker process
    studies:
      clinical:
        data: {synth: clinical, overrides: {n_train: 600}}    # or {path: DIR}
        model: {pretrain: {steps: 300}}                       # or {path: DIR_OR_HUB_ID}
        audit: {tasks: [vqa, report], split: test, batch_size: 32}
        train: {steps: 60, batch_size: 8}                     # defaults of every method
        methods:
          - lora
          - method: fairllava
            config: {train: {steps: 80}, method: {fairness_lambda: 1.0}}
          - method: steering-contrastive
            config: {build: {layers: [1]}, apply: {scale: 4.0}}
          - fairllava+steering-contrastive                    # a composition
        summary: {attributes: [skin_tone], reference: base}  # reference: a row name

A single-study file may put ``data``/``model``/``audit``/``train``/``methods``/``summary``
at the top level instead of under ``studies``. ``quick:`` holds overrides (same shape,
merged over the file) applied by ``run_experiment(..., quick=True)``.

Every error names the key path and its line (``demo.yaml:14: studies.clinical.methods[1]
.method``). The method-specific parts (``config:``) are checked by the owning modules'
own config dataclasses (``fairvlm.training``, ``fairvlm.mitigation.steering``, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairvlm.atomic import check_name
from fairvlm.config import is_int
from fairvlm.data.storage import METADATA_FILE
from fairvlm.errors import ConfigError
from fairvlm.experiment import hooks
from fairvlm.experiment.specs import (
    BASE,
    AuditSpec,
    DataSpec,
    ExperimentConfig,
    MethodSpec,
    ModelSpec,
    ReportSpec,
    StudySpec,
    SummarySpec,
)
from fairvlm.mitigation.steering.builders import EXPERIMENT_PREFIX, builder_of_method
from fairvlm.plugins import load_plugins
from fairvlm.registry import AUDIT_TASKS, STEERING_BUILDERS, TRAINING_METHODS, did_you_mean
from fairvlm.synth import BENCHES
from fairvlm.yamlpos import KeyPath, Marks, load_yaml_file, load_yaml_with_marks

#: ``audit:`` keys that are AuditConfig fields given at the study level.
_AUDIT_SHORTCUTS = ("tasks", "split", "limit", "batch_size")
_STUDY_KEYS = ("data", "model", "audit", "train", "methods", "summary")
_TOP_KEYS = (
    "name", "seed", "seeds", "threads", "jobs", "plugins", "studies", "quick", "report", *_STUDY_KEYS
)  # fmt: skip


def known_methods() -> list[str]:
    """Every method name a row may compose: the training methods and ``steering-NAME``
    for each steering builder (from the registries, plugins included)."""
    return [*TRAINING_METHODS.names(), *(EXPERIMENT_PREFIX + b for b in STEERING_BUILDERS.names())]


# -- small checkers ----------------------------------------------------------------------
def _mapping(value: Any, path: KeyPath, marks: Marks, allowed: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise marks.error(path, f"expected a mapping with keys {list(allowed)}, got {value!r}")
    for key in value:
        if key not in allowed:
            raise marks.error((*path, key), f"unknown key {key!r}: use one of {list(allowed)}")
    return dict(value)


def _int(value: Any, path: KeyPath, marks: Marks, what: str = "an integer") -> int | None:
    if value is None or is_int(value):
        return value
    raise marks.error(path, f"{value!r} is not {what}")


def _positive(value: Any, path: KeyPath, marks: Marks) -> int | None:
    _int(value, path, marks)
    if value is not None and value < 1:
        raise marks.error(path, f"{value!r} must be a positive integer")
    return value


def _str_list(value: Any, path: KeyPath, marks: Marks) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise marks.error(path, f"{value!r} is not a list of names")
    return list(value)


# -- sections ----------------------------------------------------------------------------
def _data(raw: Any, path: KeyPath, marks: Marks, base_dir: Path) -> DataSpec:
    d = _mapping(raw, path, marks, ("synth", "path", "overrides"))
    if ("synth" in d) == ("path" in d):
        raise marks.error(path, "give exactly one of synth: (clinical|social) or path: DIR")
    spec = DataSpec(overrides=_any_mapping(d.get("overrides"), (*path, "overrides"), marks))
    if "synth" in d:
        if d["synth"] not in BENCHES:
            raise marks.error((*path, "synth"), f"{d['synth']!r} is not a benchmark: use {BENCHES}")
        spec.synth = d["synth"]
        return spec
    if d.get("overrides"):
        raise marks.error((*path, "overrides"), "overrides apply to synth: data only")
    p = Path(str(d["path"])).expanduser()
    p = p if p.is_absolute() else (base_dir / p)
    if not p.is_dir():
        raise marks.error((*path, "path"), f"{str(p)!r} does not exist: give a dataset folder")
    if not (p / METADATA_FILE).is_file():
        raise marks.error(
            (*path, "path"),
            f"{str(p)!r} has no {METADATA_FILE}: not a fairvlm dataset (write one with "
            "`fairvlm data import` or `fairvlm data synth`)",
        )
    spec.path = str(p.resolve())
    return spec


def _model(raw: Any, path: KeyPath, marks: Marks, base_dir: Path) -> ModelSpec:
    d = _mapping(raw, path, marks, ("pretrain", "path", "dtype", "device", "args"))
    if "pretrain" in d and "path" in d:
        raise marks.error(path, "give one of pretrain: {...} or path: MODEL, not both")
    args = d.get("args") or {}
    if not isinstance(args, Mapping):
        raise marks.error((*path, "args"), "expected a mapping of from_pretrained options")
    spec = ModelSpec(dtype=d.get("dtype"), device=d.get("device"), args=dict(args))
    if "path" in d:
        src = str(d["path"])
        local = Path(src).expanduser()
        local = local if local.is_absolute() else base_dir / local
        if local.exists():
            spec.path = str(local.resolve())
        elif src.count("/") == 1 and not src.startswith((".", "/", "~")):
            spec.path = src  # a hub id; load_vlm says whether it can be fetched
        else:
            raise marks.error((*path, "path"), f"{src!r} does not exist: give a model folder")
        return spec
    pretrain = d.get("pretrain")
    if pretrain is not None and not isinstance(pretrain, Mapping):
        raise marks.error((*path, "pretrain"), "expected a mapping of PretrainConfig fields")
    spec.pretrain = dict(pretrain or {})  # its fields are checked by PretrainConfig (hooks)
    return spec


def _audit(raw: Any, path: KeyPath, marks: Marks) -> AuditSpec:
    d = _mapping(raw, path, marks, (*_AUDIT_SHORTCUTS, "config"))
    options = _any_mapping(d.get("config"), (*path, "config"), marks)
    for key in _AUDIT_SHORTCUTS:
        if key in d and key in options:
            raise marks.error(
                (*path, key),
                f"{key} is given twice (audit.{key} and audit.config.{key}): keep one",
            )
    tasks = _str_list(d.get("tasks"), (*path, "tasks"), marks)
    names = AUDIT_TASKS.names()
    for i, task in enumerate(tasks or []):
        if task not in names:
            raise marks.error(
                (*path, "tasks", i),
                f"{task!r} is not an audit task{did_you_mean(task, names)}: use {names}",
            )
    for key in _AUDIT_SHORTCUTS:
        if key in d:
            options[key] = tasks if key == "tasks" else d[key]
    # the merged fields are checked as audit.config: errors there name the shortcut's line
    for key in _AUDIT_SHORTCUTS:
        line = marks.lines.get((*path, key))
        if line is not None:
            marks.lines[(*path, "config", key)] = line
    return AuditSpec(options)


def _any_mapping(value: Any, path: KeyPath, marks: Marks) -> dict[str, Any]:
    """A mapping whose keys another module's config class checks (see ``hooks``)."""
    if value is not None and not isinstance(value, Mapping):
        raise marks.error(path, f"expected a mapping, got {value!r}")
    return dict(value or {})


def _methods(raw: Any, path: KeyPath, marks: Marks) -> list[MethodSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise marks.error(path, "expected a list of methods (names or {method:, name:, config:})")
    out: list[MethodSpec] = []
    for i, item in enumerate(raw):
        here = (*path, i)
        if isinstance(item, str):
            item = {"method": item}
        d = _mapping(item, here, marks, ("method", "name", "config"))
        if not isinstance(d.get("method"), str):
            raise marks.error(here, "each entry needs method: NAME")
        name = d.get("name", d["method"])
        try:
            check_name(name, "name")  # it names the method's stage folders
        except ConfigError as exc:
            raise marks.error((*here, "name" if "name" in d else "method"), str(exc)) from None
        spec = MethodSpec(d["method"], str(name), dict(d.get("config") or {}), here)
        _check_parts(spec, marks)
        if spec.name == BASE or any(m.name == spec.name for m in out):
            raise marks.error(
                (*here, "name" if "name" in d else "method"),
                f"row name {spec.name!r} is taken: give this entry its own name:",
            )
        out.append(spec)
    # a composition's part without options takes those of that method's own row
    single = {m.method: m.config for m in out if len(m.parts) == 1}
    for spec in out:
        if len(spec.parts) > 1:
            for part in spec.parts:
                if part not in spec.config and part in single:
                    spec.config[part] = copy.deepcopy(single[part])
    return out


def _check_parts(spec: MethodSpec, marks: Marks) -> None:
    here = (*spec.path, "method")
    parts = spec.parts
    known = known_methods()
    for part in parts:
        if part not in known:
            raise marks.error(
                here,
                f"{part!r} is not a method{did_you_mean(part, known)}: use one of {known} or "
                "A+B (a plugin's methods need plugins: [MODULE])",
            )
    if (
        len(set(parts)) != len(parts)
        or sum(p in TRAINING_METHODS for p in parts) > 1
        or sum(builder_of_method(p) is not None for p in parts) > 1
    ):
        raise marks.error(
            here,
            f"{spec.method!r}: compose at most one fine-tuning method "
            "and one steering method, e.g. fairllava+steering-contrastive",
        )
    allowed = (
        tuple(parts)
        if len(parts) > 1
        else (("train", "method") if parts[0] in TRAINING_METHODS else ("build", "apply"))
    )
    _mapping(spec.config, (*spec.path, "config"), marks, allowed)


# -- the whole file ----------------------------------------------------------------------
def _merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: mappings recursively, everything else replaced."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _study(name: str, raw: Any, path: KeyPath, marks: Marks, base_dir: Path) -> StudySpec:
    d = _mapping(raw, path, marks, _STUDY_KEYS)
    if "data" not in d:
        raise marks.error(path, "a study needs data: {synth: ...} or {path: ...}")
    summary = _mapping(
        d.get("summary"), (*path, "summary"), marks, ("attributes", "utility", "reference")
    )
    study = StudySpec(
        name=name,
        data=_data(d["data"], (*path, "data"), marks, base_dir),
        model=_model(d.get("model"), (*path, "model"), marks, base_dir),
        audit=_audit(d.get("audit"), (*path, "audit"), marks),
        train=_any_mapping(d.get("train"), (*path, "train"), marks),
        methods=_methods(d.get("methods"), (*path, "methods"), marks),
        summary=SummarySpec(
            _str_list(summary.get("attributes"), (*path, "summary", "attributes"), marks),
            _str_list(summary.get("utility"), (*path, "summary", "utility"), marks),
        ),
    )
    rows = [BASE, *(m.name for m in study.methods)]
    reference = summary.get("reference", BASE)
    if reference not in rows:
        raise marks.error(
            (*path, "summary", "reference"),
            f"{reference!r} is not a row of this study: use one of {rows}",
        )
    study.summary.reference = reference
    return study


def parse_experiment(
    data: Any,
    marks: Marks,
    base_dir: str | Path = ".",
    quick: bool = False,
    seeds: list[int] | None = None,
) -> ExperimentConfig:
    """Validate a loaded YAML mapping (with its marks) into an :class:`ExperimentConfig`;
    ``seeds`` replaces the file's ``seeds:`` (``fairvlm run --seeds``)."""
    base = Path(base_dir)
    d = _mapping(data, (), marks, _TOP_KEYS)
    if quick:
        if "quick" not in d:
            raise marks.error((), "quick=True but this experiment has no quick: section")
        _mapping(d["quick"], ("quick",), marks, tuple(k for k in _TOP_KEYS if k != "quick"))
        # an overridden key is reported at its line in quick:
        for path, line in list(marks.sub(("quick",))):
            marks.lines[path[1:]] = line
        d = _merge({k: v for k, v in d.items() if k != "quick"}, d["quick"])
    d.pop("quick", None)
    if seeds is not None:
        d["seeds"] = list(seeds)
        marks.lines.pop(("seeds",), None)  # an error names --seeds' value, not a file line
    plugins = _str_list(d.get("plugins"), ("plugins",), marks) or []
    try:
        load_plugins(plugins)  # before any name is looked up: they register methods, tasks ...
    except ConfigError as exc:
        raise marks.error(("plugins",), str(exc)) from None
    seed = _int(d.get("seed", 0), ("seed",), marks, "an integer seed") or 0
    threads = _positive(d.get("threads", 1), ("threads",), marks) or 1
    jobs = _positive(d.get("jobs", 1), ("jobs",), marks) or 1
    rep = _mapping(d.get("report"), ("report",), marks, ("samples_per_group",))
    per_group = _positive(rep.get("samples_per_group", 2), ("report", "samples_per_group"), marks)
    report = ReportSpec(per_group or 2)
    flat = [k for k in _STUDY_KEYS if k in d]
    name = str(d.get("name") or Path(marks.source).stem or "experiment")
    if flat and "studies" in d:
        raise marks.error((flat[0],), "put study keys under studies: NAME: when studies: is used")
    if flat:  # a single-study file: errors keep the paths as written (no studies.NAME.)
        where = {name: ()}
        raw_studies = {name: {k: d[k] for k in flat}}
    else:
        raw_studies = d.get("studies")
        if not isinstance(raw_studies, Mapping) or not raw_studies:
            raise marks.error(("studies",), "name at least one study: studies: {NAME: {data: ...}}")
        where = {str(k): ("studies", k) for k in raw_studies}
    studies = {}
    for sname, sraw in raw_studies.items():
        if not str(sname).replace("-", "").replace("_", "").isalnum():
            raise marks.error(("studies", sname), "study names are letters, digits, - and _")
        studies[str(sname)] = _study(str(sname), sraw, where[str(sname)], marks, base)
    # the structure is sound everywhere; now each module checks its own options
    for sname, study in studies.items():
        hooks.validate_study(study, where[sname], marks)
    seeds = _seeds(d.get("seeds"), marks)
    if seeds:
        _check_no_method_seed(studies, where, marks)
    return ExperimentConfig(
        name, seed, seeds, threads, jobs, studies, report, marks.source, d, plugins
    )


def _seeds(value: Any, marks: Marks) -> list[int] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and value and all(is_int(v) for v in value)
    if not ok or len(set(value)) < len(value):
        raise marks.error(("seeds",), f"{value!r} is not a list of distinct integer seeds")
    return list(value)


def _check_no_method_seed(
    studies: dict[str, StudySpec], where: dict[str, KeyPath], marks: Marks
) -> None:
    """With ``seeds:``, a ``seed`` fixed in a method's options would make every seed's run
    the same: refused, naming it."""
    for sname, study in studies.items():
        found = [(*where[sname], "train")] if "seed" in study.train else []
        for spec in study.methods:
            for part in spec.parts:
                opts = spec.part_config(part)
                for section in ("train", "build"):
                    if "seed" in (opts.get(section) or {}):
                        inner = (part,) if len(spec.parts) > 1 else ()
                        found.append((*spec.path, "config", *inner, section))
        if found:
            raise marks.error(
                (*found[0], "seed"),
                "a fixed seed here repeats one run for every entry of seeds: remove it "
                "(seeds: gives each run its seed)",
            )


def load_experiment(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    quick: bool = False,
    seeds: list[int] | None = None,
) -> ExperimentConfig:
    """Read and validate an experiment YAML (a file, or ``text``); ``seeds`` replaces its
    ``seeds:``.

    Raises:
        ConfigError: an unknown key, an unknown method, a missing data path, a bad value
            of a method's config...: the message names the key path and its line.
    """
    if text is not None:
        data, marks = load_yaml_with_marks(text, str(path or "<string>"))
        base_dir = Path(path).parent if path else Path.cwd()
    elif path is not None:
        data, marks = load_yaml_file(path)
        base_dir = Path(path).resolve().parent
    else:
        raise ConfigError("load_experiment needs a path or text")
    return parse_experiment(data, marks, base_dir, quick=quick, seeds=seeds)
