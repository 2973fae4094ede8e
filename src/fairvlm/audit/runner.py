"""The audit runner: batches through the model, records as it goes, resumes, then metrics.

Output folder::

    config.yaml        the AuditConfig, the model, the data, the steering, the identity
    records.parquet    one row per (sample, task) (``fairvlm.audit.store.RECORD_COLUMNS``)
    metrics.json       ``fairvlm.metrics.compute_metrics`` of the records
    records.parts/     finished batches of an unfinished audit (merged, then removed)

A rerun into the same folder skips the (sample, task) pairs already written and calls
the model only for the rest; the folder's identity (model, data, split, attributes,
steering, task settings) must match, so records of different audits never mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairvlm.atomic import (
    atomic_write_text,
    check_output_dir,
    check_writable,
    output_lock,
    write_marker,
)
from fairvlm.audit.config import AuditConfig
from fairvlm.audit.plan import AuditPlan, Unit, plan_audit
from fairvlm.audit.sharding import process_state, shard
from fairvlm.audit.store import ATTR_PREFIX, RecordStore
from fairvlm.errors import ConfigError, DataError, bad_value
from fairvlm.fingerprint import folder_fingerprint, samples_fingerprint
from fairvlm.metrics import compute_metrics, write_metrics

CONFIG_FILE = "config.yaml"
AUDIT_KIND = "audit"
METRICS_FILE = "metrics.json"


@dataclass
class BatchInfo:
    """What ``on_batch`` receives after each batch is written."""

    task: str
    batch_index: int
    n: int
    seconds: float
    done: int
    total: int


def run_audit(
    model_or_adapter: Any,
    data: Any,
    config: AuditConfig | Mapping[str, Any] | None = None,
    out_dir: str | Path = "audit",
    *,
    steer: Any = None,
    adapter: str | Path | None = None,
    dtype: str | None = None,
    device: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    on_batch: Callable[[BatchInfo], None] | None = None,
) -> Path:
    """Audit a model on a dataset split; write records, metrics and config to ``out_dir``.

    Args:
        model_or_adapter: a :class:`fairvlm.models.VLMAdapter`, or a model folder / hub
            id loaded with ``load_vlm`` (with ``adapter``, ``dtype``, ``device``) only
            after the data passed validation, and only if any batch is left to compute;
            ``model_args``: more ``load_vlm`` options (``attn_implementation``, ...).
        data: a dataset folder, a ``datasets.DatasetDict`` or a sequence of Samples.
        config: an :class:`AuditConfig` or a mapping of its fields (``None``: defaults).
        out_dir: the audit folder; an unfinished audit there is resumed.
        steer: a steering vector applied during the whole audit, either an object with
            ``apply(vlm, **kwargs)`` (a context manager) or a ``(vector, kwargs)`` pair.
        overwrite: forget the records already in ``out_dir`` instead of resuming.
        on_batch: called after each batch is written (progress hooks, tests).

    Returns:
        ``out_dir``.

    Raises:
        DataError: bad data (empty split, missing targets, unknown attribute ...) before
            any model work.
        ConfigError: ``out_dir`` holds records of a different audit (use ``overwrite``).
    """
    cfg = config if isinstance(config, AuditConfig) else AuditConfig.from_dict(config)
    state = process_state()
    plan = plan_audit(data, cfg)
    out = Path(out_dir)
    check_output_dir(out, AUDIT_KIND, overwrite)  # never write beside a user's files
    check_writable(out, "out_dir")  # before the model loads
    # one writer per folder; the shards of a multi-process run share their launcher's lock
    lock = output_lock(out) if state.num_processes == 1 else contextlib.nullcontext()
    with lock:
        store = RecordStore(out, plan.attributes)
        model_label = _model_label(model_or_adapter)
        identity = audit_identity(plan, cfg, model_label, adapter, steer, model_args)
        _check_identity(out, identity, overwrite)
        done = set() if overwrite else RecordStore.keys(store.load())
        if done and state.is_main_process:
            print(f"resuming: {len(done)} records already in {out}", file=sys.stderr)
        todo = []
        for unit in plan.units(cfg.batch_size):
            left = [s for s in unit.samples if (unit.task.name, s.id) not in done]
            if left:
                todo.append(Unit(unit.task, unit.batch_index, left))
        mine = shard(todo, state)
        vlm = (
            _resolve_model(model_or_adapter, adapter, dtype, device, state, model_args)
            if mine
            else None
        )
        if vlm is not None:
            with _steering(steer, vlm):  # a vector that does not fit fails here, before any write
                pass
        # every process has read the done set (and checked its steering) before any write
        state.wait_for_everyone()
        if state.is_main_process:
            if overwrite:
                store.clear()
                (out / METRICS_FILE).unlink(missing_ok=True)
            _write_config(out, cfg, identity, model_label, adapter, plan, state.num_processes)
        state.wait_for_everyone()
        if mine:
            _run_units(vlm, mine, plan, cfg, store, steer, state, on_batch)
        state.wait_for_everyone()

        if state.is_main_process:
            table = store.compact(plan.order())
            metrics = compute_metrics(
                table.to_pandas(), model=model_label, data=plan.data_label, config=cfg.metrics
            )
            write_metrics(metrics, out / METRICS_FILE)
        state.wait_for_everyone()
        return out


def _run_units(
    vlm: Any,
    units: list[Unit],
    plan: AuditPlan,
    cfg: AuditConfig,
    store: RecordStore,
    steer: Any,
    state: Any,
    on_batch: Callable[[BatchInfo], None] | None,
) -> None:
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(cfg.seed)
    total = sum(len(u.samples) for u in units)
    # None = tqdm's own choice: a bar on a terminal, nothing in logs
    bar = tqdm(
        total=total,
        desc="audit",
        unit="sample",
        disable=not (cfg.progress and state.is_main_process) or None,
    )
    done = 0
    with bar, _steering(steer, vlm):
        for unit in units:
            bar.set_postfix_str(unit.task.name)
            start = time.perf_counter()
            fields = _run_task(vlm, unit, cfg.skip_bad)
            seconds = time.perf_counter() - start
            rows = [
                _row(s, f, unit, plan, seconds / len(unit.samples))
                for s, f in zip(unit.samples, fields, strict=True)
            ]
            store.write_part(rows, unit.task.name, unit.batch_index)
            done += len(rows)
            bar.update(len(rows))
            if on_batch is not None:
                on_batch(
                    BatchInfo(unit.task.name, unit.batch_index, len(rows), seconds, done, total)
                )


def _run_task(vlm: Any, unit: Unit, skip_bad: bool) -> list[dict]:
    """The task's fields for each sample of ``unit``; with ``skip_bad``, a sample whose image
    cannot be read gets only an ``error`` and the others run without it."""
    try:
        return unit.task.run(vlm, unit.samples)
    except DataError as exc:
        errors = {s.id: _image_error(s, vlm) for s in unit.samples}
        if not any(errors.values()):
            raise  # not a bad image: a problem --skip-bad must not hide
        if not skip_bad:
            raise DataError(f"{exc}; or audit with --skip-bad to record it as failed") from None
    good = [s for s in unit.samples if errors[s.id] is None]
    done = iter(unit.task.run(vlm, good) if good else [])
    return [{"error": errors[s.id]} if errors[s.id] else next(done) for s in unit.samples]


def _image_error(sample: Any, vlm: Any) -> str | None:
    try:
        sample.load_image(getattr(vlm, "max_image_pixels", None))
    except DataError as exc:
        return str(exc)
    return None


def _row(sample: Any, fields: dict, unit: Unit, plan: AuditPlan, latency: float) -> dict:
    row = {
        "sample_id": sample.id,
        "task": unit.task.name,
        "split": sample.split or plan.split,
        "target": sample.target,
        "concept": sample.concept,
        "counterfactual_set": sample.counterfactual_set,
        "latency_s": latency,
        "batch_index": unit.batch_index,
        **fields,
    }
    for name in plan.attributes:
        row[ATTR_PREFIX + name] = sample.attributes.get(name)
    return row


def _steering(steer: Any, vlm: Any) -> contextlib.AbstractContextManager:
    if steer is None:
        return contextlib.nullcontext()
    vector, kwargs = steer if isinstance(steer, tuple) else (steer, {})
    return vector.apply(vlm, **dict(kwargs))


def _resolve_model(
    model: Any, adapter: Any, dtype: Any, device: Any, state: Any, model_args: Any = None
) -> Any:
    if not isinstance(model, str | os.PathLike):
        if adapter is not None:
            raise bad_value(
                "adapter", str(adapter), "give it to load_vlm, or pass the model path instead"
            )
        return model
    # start-up: fairvlm.models imports torch (~2.5 s); fairvlm.audit is imported without a
    # model whenever a dataset is checked (the AUDIT_TASKS registry loads audit.tasks)
    from fairvlm.models import load_vlm

    if device is None and state.num_processes > 1:
        device = str(state.device)  # one device per process
    return load_vlm(model, dtype=dtype, device=device, adapter=adapter, **dict(model_args or {}))


def _model_label(model: Any) -> str:
    if isinstance(model, str | os.PathLike):
        return str(model)
    return str(getattr(model, "name_or_path", "") or type(model).__name__)


def _steer_label(steer: Any) -> dict | None:
    """What the steering is: apply kwargs and a digest of the vector's tensors."""
    if steer is None:
        return None
    vector, kwargs = steer if isinstance(steer, tuple) else (steer, {})
    digest = hashlib.sha256(type(vector).__name__.encode())
    for tensor in _tensors(vector):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return {
        "vector": digest.hexdigest()[:16],
        "apply": {k: _plain(v) for k, v in dict(kwargs).items()},
    }


def _tensors(obj: Any, depth: int = 0) -> list:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth > 2:
        return []
    if isinstance(obj, Mapping):
        return [t for k in sorted(obj, key=str) for t in _tensors(obj[k], depth + 1)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v, depth + 1)]
    if hasattr(obj, "__dict__"):
        return _tensors(vars(obj), depth + 1)
    return []


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _draw(cfg: AuditConfig) -> dict[str, Any] | None:
    """What decides which samples ``limit`` keeps; ``None`` without a limit (all), so
    folders written before ``limit_mode`` existed resume when they had no limit."""
    if cfg.limit is None:
        return None
    seed = cfg.seed if cfg.limit_mode == "stratified" else None
    return {"limit": cfg.limit, "mode": cfg.limit_mode, "seed": seed}


def audit_identity(
    plan: AuditPlan,
    cfg: AuditConfig,
    model: str,
    adapter: Any,
    steer: Any,
    model_args: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the records of an audit depend on (config.yaml's ``identity``): the inputs'
    labels and settings, the model's load options (``revision``, ``quantization_config``
    ...; only when given, so audits made without them still resume), and the content
    fingerprints of model, adapter and data."""
    identity = {
        "model": model,
        "adapter": None if adapter is None else str(adapter),
        "data": plan.data_label,
        "split": cfg.split,
        "attributes": list(plan.attributes),
        "draw": _draw(cfg),
        "steer": _steer_label(steer),
        "tasks": {name: task.settings() for name, (task, _) in plan.tasks.items()},
        # what the paths above held: a folder's content changes under its path
        "model_fingerprint": folder_fingerprint(model),
        "adapter_fingerprint": None if adapter is None else folder_fingerprint(adapter),
        "data_fingerprint": {
            name: samples_fingerprint(samples) for name, (_, samples) in plan.tasks.items()
        },
    }
    if model_args:
        identity["model_args"] = {k: _plain_arg(v) for k, v in sorted(model_args.items())}
    return identity


def _plain_arg(value: Any) -> Any:
    """A load option as YAML can hold it (a ``BitsAndBytesConfig`` as its dict)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain_arg(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_arg(v) for v in value]
    return str(value)


#: What a changed identity key means, for the refusal message.
_CHANGED = {
    "model_fingerprint": "the model's weights or config changed under the same path",
    "adapter_fingerprint": "the adapter's weights changed under the same path (retrained?)",
    "data_fingerprint": "the data changed (regenerated or edited at the same path?)",
}
#: A path label and the fingerprint of what it held: the same content under another
#: spelling of its path (relative, absolute, a link) is the same input.
_LABELLED = {
    "model": "model_fingerprint",
    "adapter": "adapter_fingerprint",
    "data": "data_fingerprint",
}


def _check_identity(out: Path, identity: dict, overwrite: bool) -> None:
    """Refuse to resume into a folder written by a different audit."""
    import yaml

    file = out / CONFIG_FILE
    if overwrite or not file.is_file():
        return
    old = (yaml.safe_load(file.read_text()) or {}).get("identity") or {}
    fix = "audit into another folder, or pass overwrite (--overwrite) to start afresh"
    for key, value in identity.items():
        previous = old.get(key)
        if key in ("tasks", "data_fingerprint"):  # tasks may be added; shared ones must match
            previous = {t: previous[t] for t in value if t in (previous or {})}
            value = {t: value[t] for t in previous}
        if previous == value:
            continue
        if key in _LABELLED and old.get(_LABELLED[key]) is not None:
            continue  # the content decides, checked under its own key
        if key in _CHANGED:
            changed = (
                [t for t in value if previous.get(t) != value[t]]
                if key == "data_fingerprint"
                else []
            )
            detail = f" (tasks {', '.join(changed)})" if changed else ""
            raise ConfigError(
                f"out_dir={str(out)!r} holds records of another audit: {_CHANGED[key]}{detail}; "
                f"its records would not match the current inputs: {fix}"
            )
        raise ConfigError(
            f"out_dir={str(out)!r} holds an audit with {key}={previous!r}, not {value!r}; {fix}"
        )


def _write_config(
    out: Path,
    cfg: AuditConfig,
    identity: dict,
    model: str,
    adapter: Any,
    plan: AuditPlan,
    processes: int,
) -> None:
    import yaml

    doc = config_document(cfg, identity, model, adapter, plan, processes)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, AUDIT_KIND)
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(doc, sort_keys=False))


def config_document(
    cfg: AuditConfig, identity: dict, model: str, adapter: Any, plan: AuditPlan, processes: int
) -> dict[str, Any]:
    """The content of an audit's ``config.yaml``."""
    return {
        "audit": cfg.to_dict(),
        "model": model,
        "adapter": None if adapter is None else str(adapter),
        "data": plan.data_label,
        "n_samples": {name: len(samples) for name, (_, samples) in plan.tasks.items()},
        "processes": processes,
        "identity": identity,
    }


__all__ = [
    "AUDIT_KIND",
    "CONFIG_FILE",
    "METRICS_FILE",
    "BatchInfo",
    "audit_identity",
    "config_document",
    "run_audit",
]
