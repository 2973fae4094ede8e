"""Read what the report shows from a run folder: summary.json, each row's metrics.json,
training logs and audit records (plus the images of the samples shown)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairvlm.data import load_dataset
from fairvlm.errors import DataError
from fairvlm.registry import AUDIT_TASKS

SUMMARY_FILE = "summary.json"
#: Which tasks' outputs are shown side by side first (by ``AuditTask.kind``).
_SHOWN_FIRST = ("open", "closed", "score")
#: Trainer log keys that are bookkeeping, not curves.
_SKIP_KEYS = {
    "step",
    "epoch",
    "learning_rate",
    "grad_norm",
    "total_flos",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
}
_MI = re.compile(r"(^|[/_.])(mi|club)([/_.]|$)", re.IGNORECASE)


def sample_tasks() -> list[str]:
    """The tasks whose outputs the report shows, in order of preference (the first
    present wins): open generation first, then closed answers, then scores."""
    rank = {kind: i for i, kind in enumerate(_SHOWN_FIRST)}
    tasks = sorted(AUDIT_TASKS, key=lambda t: rank.get(t.kind, len(rank)))
    return [t.name for t in tasks]


def resolve(run_dir: Path, rel: str | None) -> Path | None:
    """A summary path (relative to the run folder, or absolute) as a Path, or None."""
    if not rel:
        return None
    p = Path(rel)
    return p if p.is_absolute() else run_dir / p


def load_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's summary.json.

    Raises:
        DataError: no summary.json (not a finished ``fairvlm run`` folder).
    """
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        raise DataError(
            f"run_dir={str(run_dir)!r} has no {SUMMARY_FILE}: give the --out folder of a "
            "finished `fairvlm run` / `fairvlm demo`"
        )
    return json.loads(path.read_text())


def load_metrics(run_dir: Path, row: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics.json of a row's audit ({} when missing)."""
    folder = resolve(run_dir, row.get("audit"))
    path = folder / "metrics.json" if folder else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


def metric_entry(metrics: dict, task: str, metric: str) -> dict | None:
    """``metrics["tasks"][task]["metrics"][metric]`` of a metrics.json, or ``None``."""
    entry = (((metrics.get("tasks") or {}).get(task) or {}).get("metrics") or {}).get(metric)
    return entry if isinstance(entry, dict) else None


def group_values(metrics: dict, task: str, metric: str, attribute: str) -> dict[str, tuple]:
    """group -> (value, ci) of one metric and attribute in a metrics.json."""
    entry = metric_entry(metrics, task, metric) or {}
    attr = (entry.get("by_attribute") or {}).get(attribute)
    groups = attr.get("groups") if isinstance(attr, dict) else None
    return {
        str(g): (d.get("value"), d.get("ci"))
        for g, d in (groups or {}).items()
        if isinstance(d, dict)
    }


def group_counts(metrics: dict, task: str, metric: str, attribute: str) -> dict[str, tuple]:
    """group -> (n, small) of one metric and attribute in a metrics.json."""
    entry = metric_entry(metrics, task, metric) or {}
    groups = ((entry.get("by_attribute") or {}).get(attribute) or {}).get("groups") or {}
    return {str(g): (d.get("n"), bool(d.get("small"))) for g, d in groups.items()}


def attribute_values(metrics: dict, task: str, metric: str) -> dict[str, tuple]:
    """attribute -> (value, None) of a ranking metric (MaxSkew, MinSkew, NDKL: one number
    per attribute, no CI)."""
    entry = metric_entry(metrics, task, metric) or {}
    by_attr = entry.get("by_attribute") or {}
    return {str(a): (v, None) for a, v in by_attr.items() if isinstance(v, int | float)}


def _curve_family(key: str) -> str | None:
    """The plot a log key belongs to: the LM loss (comparable across methods, unlike the
    total objective), MI estimates, skew, head accuracies; None for the rest."""
    if key in _SKIP_KEYS or key.startswith("eval_"):
        return None
    low = key.lower()
    if "skew" in low:
        return "skew"
    if _MI.search(low) and "acc" not in low:
        return "MI estimate"
    if key == "lm_loss":
        return "LM loss"
    if "acc" in low:
        return "head accuracy"
    return None


def training_curves(run_dir: Path, row: Mapping[str, Any]) -> dict[str, dict[str, tuple]]:
    """family (loss, MI estimate, skew, head accuracy) -> key -> (steps, values), from the
    row's ``training_log.jsonl`` (the Trainer's log history)."""
    folder = resolve(run_dir, row.get("train"))
    path = folder / "training_log.jsonl" if folder else None
    if not path or not path.is_file():
        return {}
    out: dict[str, dict[str, tuple[list, list]]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if "loss" in entry and "lm_loss" not in entry:
            entry["lm_loss"] = entry["loss"]  # a method without extra terms: loss is LM loss
        for key, value in entry.items():
            family = _curve_family(key)
            # skew is estimated once per epoch: plotted against epochs
            x = entry.get("epoch") if family == "skew" else entry.get("step", entry.get("epoch"))
            if family is None or not isinstance(value, int | float) or x is None:
                continue
            if not math.isfinite(float(value)):
                continue
            xs, ys = out.setdefault(family, {}).setdefault(key, ([], []))
            xs.append(x)
            ys.append(float(value))
    return out


def read_records(run_dir: Path, row: Mapping[str, Any]) -> Any:
    """The row's audit records (a pandas DataFrame), or None."""
    folder = resolve(run_dir, row.get("audit"))
    path = folder / "records.parquet" if folder else None
    if not path or not path.is_file():
        return None
    import pandas as pd

    return pd.read_parquet(path)


def pick_samples(
    records: Any, attribute: str | None, per_group: int
) -> tuple[str | None, dict[str, list[str]]]:
    """(task, group -> sample ids): the first ``per_group`` samples (by id) of each group
    of ``attribute`` for the first generation task present in the base records."""
    if records is None or len(records) == 0:
        return None, {}
    task = next((t for t in sample_tasks() if (records["task"] == t).any()), None)
    if task is None:
        return None, {}
    df = records[records["task"] == task].sort_values("sample_id")
    col = f"attr.{attribute}" if attribute else None
    if col is None or col not in df.columns:
        return task, {"all": list(df["sample_id"].head(per_group * 2))}
    out: dict[str, list[str]] = {}
    for group, part in df.groupby(col, dropna=True, sort=True):
        out[str(group)] = list(part["sample_id"].head(per_group))
    return task, out


def sample_images(data_dir: Path | None, split: str, ids: set[str]) -> dict[str, Any]:
    """sample id -> PIL image, read from the study's dataset (empty when unavailable)."""
    if not data_dir or not ids or not data_dir.is_dir():
        return {}

    try:
        ds = load_dataset(data_dir)[split]
    except (DataError, KeyError, OSError):
        return {}
    id_col = ds["id"]
    rows = [i for i, sid in enumerate(id_col) if sid in ids]
    out = {}
    for i in rows:
        item = ds[i]
        if item.get("image") is not None:
            out[item["id"]] = item["image"]
    return out


def outputs_by_sample(records: Any, task: str) -> dict[str, dict[str, Any]]:
    """sample id -> {output, target, prompt} of one task in a records frame."""
    if records is None:
        return {}
    df = records[records["task"] == task]
    cols = [c for c in ("output", "target", "prompt") if c in df.columns]
    return {str(r["sample_id"]): {c: r[c] for c in cols} for _, r in df.iterrows()}
