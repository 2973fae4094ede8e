"""The comparison table: one row per method, columns read from each audit's metrics.json.

``summary.json`` (written by the runner, read by the report)::

    {"experiment": NAME, "seed": 0, "studies": [{
        "name": "clinical", "data": "clinical/data", "split": "test",
        "attributes": ["skin_tone"],
        "columns": [{"key": "vqa.accuracy", "label": ..., "task": "vqa", "metric": "accuracy",
                     "field": "overall" | "gap" | "es_fairllava" | "es_fairclip",
                     "attribute": null | "skin_tone", "goal": "max" | "min" | "zero",
                     "kind": "utility" | "gap" | "es" | "skew" | "mention"}, ...],
        "rows": [{"method": "base", "audit": "clinical/audit/base", "train": null,
                  "steer": null, "values": {KEY: {"value": v, "ci": [lo, hi]}}}, ...],
        "best": {KEY: [method, ...]}}]}

Paths are relative to the run folder, so a run folder can be moved and still reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fairvlm.registry import AUDIT_TASKS
from fairvlm.report.collect import fmt_value

_ABBREV = {"es_fairllava": "ES", "es_fairclip": "ES-FairCLIP"}


@dataclass
class Column:
    """One column of the comparison table (see the module doc)."""

    key: str
    label: str
    task: str
    metric: str
    field: str
    attribute: str | None
    goal: str
    kind: str


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _ci(x: Any) -> list[float] | None:
    if isinstance(x, list | tuple) and len(x) == 2:
        lo, hi = _finite(x[0]), _finite(x[1])
        if lo is not None and hi is not None:
            return [lo, hi]
    return None


def metric_entry(metrics: dict, task: str, metric: str) -> dict | None:
    """``metrics["tasks"][task]["metrics"][metric]`` or ``None``."""
    entry = (((metrics.get("tasks") or {}).get(task) or {}).get("metrics") or {}).get(metric)
    return entry if isinstance(entry, dict) else None


def _goal(task: str, metric: str) -> str:
    spec = AUDIT_TASKS.get(task) if task in AUDIT_TASKS else None
    return spec.goals.get(metric, "max") if spec else "max"


def _fairness() -> list[tuple[str, str, str]]:
    """``(task, metric, kind)`` of every task's default fairness columns (registry order)."""
    return [(t.name, m, kind) for t in AUDIT_TASKS for m, kind in t.fairness.items()]


def choose_columns(
    metrics: dict,
    attributes: list[str] | None = None,
    utility: list[str] | None = None,
    targets: Sequence[str] = (),
) -> list[Column]:
    """The table's columns for an audit's metrics.json (normally the base model's).

    Utility columns (``task.metric``: overall with CI; by default each task's ``utility``
    metrics), then per attribute its gap and FairLLaVA equity-scaled value, then the
    fairness metrics present (each task's ``fairness`` ones: skews, mention rate).
    ``targets``: ``task.metric`` keys the study's methods set out to move (their
    registry entries' ``metrics``), added where the defaults lack them.
    """
    fairness = _fairness()
    if utility is None:
        utility = [f"{t.name}.{m}" for t in AUDIT_TASKS for m in t.utility]
        shown = set(utility) | {f"{t}.{m}" for t, m, _ in fairness}
        extra = [tuple(k.split(".", 1)) for k in targets if k not in shown and "." in k]
        utility += [f"{t}.{m}" for t, m in extra if _goal(t, m) == "max"]
        fairness += [(t, m, "target") for t, m in extra if _goal(t, m) != "max"]
        utility = [k for k in utility if metric_entry(metrics, *k.split(".", 1)) is not None]
    cols: list[Column] = []
    for key in utility:
        task, _, metric = key.partition(".")
        entry = metric_entry(metrics, task, metric) or {}
        cols.append(
            Column(key, f"{metric} ({task})", task, metric, "overall", None, "max", "utility")
        )
        by_attr = entry.get("by_attribute") or {}
        for attr in attributes if attributes is not None else sorted(by_attr):
            if attr not in by_attr:
                continue
            cols.append(
                Column(
                    f"{key}.gap.{attr}",
                    f"gap {attr} ({task})",
                    task,
                    metric,
                    "gap",
                    attr,
                    "min",
                    "gap",
                )
            )
            cols.append(
                Column(
                    f"{key}.es.{attr}",
                    f"ES {attr} ({task})",
                    task,
                    metric,
                    "es_fairllava",
                    attr,
                    "max",
                    "es",
                )
            )
    for task, metric, kind in fairness:
        if metric_entry(metrics, task, metric) is not None:
            label = metric.replace("_", " ")
            goal = _goal(task, metric)
            cols.append(
                Column(f"{task}.{metric}", label, task, metric, "overall", None, goal, kind)
            )
    return cols


def cell(metrics: dict | None, col: Column) -> dict[str, Any]:
    """``{"value": v, "ci": [lo, hi] | None}`` of one column in one audit (value None if absent)."""
    entry = metric_entry(metrics or {}, col.task, col.metric)
    if entry is None:
        return {"value": None, "ci": None}
    if col.field == "overall":
        return {"value": _finite(entry.get("overall")), "ci": _ci(entry.get("ci"))}
    attr = ((entry.get("by_attribute") or {}).get(col.attribute)) or {}
    ci = _ci(attr.get("gap_ci")) if col.field == "gap" else _ci(attr.get(f"{col.field}_ci"))
    return {"value": _finite(attr.get(col.field)), "ci": ci}


def best_rows(rows: list[dict], columns: list[Column]) -> dict[str, list[str]]:
    """Per column, the methods with the best value (ties all marked)."""
    out: dict[str, list[str]] = {}
    for col in columns:
        vals = [(r["method"], r["values"][col.key]["value"]) for r in rows]
        vals = [(m, v) for m, v in vals if v is not None]
        if not vals:
            continue

        def score(v: float, goal: str = col.goal) -> float:
            return -v if goal == "max" else (abs(v) if goal == "zero" else v)

        top = min(score(v) for _, v in vals)
        out[col.key] = [m for m, v in vals if math.isclose(score(v), top, abs_tol=1e-12)]
    return out


def study_summary(
    name: str,
    base_metrics: dict,
    rows: list[dict[str, Any]],
    *,
    attributes: list[str] | None,
    utility: list[str] | None,
    extra: dict[str, Any] | None = None,
    targets: Sequence[str] = (),
) -> dict[str, Any]:
    """One study's block of summary.json. ``rows``: dicts with ``method``, ``metrics`` (the
    audit's metrics.json) and paths (``audit``, ``train``, ``steer``); ``targets`` as in
    :func:`choose_columns`."""
    columns = choose_columns(base_metrics, attributes, utility, targets)
    out_rows = []
    for row in rows:
        metrics = row.pop("metrics", None)
        row["values"] = {c.key: cell(metrics, c) for c in columns}
        out_rows.append(row)
    return {
        "name": name,
        **(extra or {}),
        "attributes": sorted({c.attribute for c in columns if c.attribute}),
        "columns": [asdict(c) for c in columns],
        "rows": out_rows,
        "best": best_rows(out_rows, columns),
    }


def format_table(summary: dict[str, Any], ci: bool = True) -> str:
    """The comparison tables of summary.json as plain text (best per column marked ``*``)."""
    blocks = []
    for study in summary.get("studies", []):
        cols = study["columns"]
        header = ["method"] + [c["label"] for c in cols]
        lines = []
        for row in study["rows"]:
            cells = [row["method"]]
            for c in cols:
                v = row["values"][c["key"]]
                mark = "*" if row["method"] in study["best"].get(c["key"], []) else " "
                cells.append(fmt_value(v["value"], v["ci"] if ci else None) + mark)
            lines.append(cells)
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        text = [f"== {study['name']} ({study.get('split', 'test')} split) ==", fmt.format(*header)]
        text += [fmt.format(*r) for r in lines]
        blocks.append("\n".join(text))
    if blocks:
        blocks.append("* = best in column (gap, NDKL, mention rate: lowest; skews: closest to 0)")
    return "\n\n".join(blocks)
