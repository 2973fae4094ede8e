"""The comparison table: one row per method, columns read from each audit's metrics.json.

``summary.json`` (written by the runner, read by the report)::

    {"experiment": NAME, "seed": 0, "seeds": null | [0, 1, 2], "studies": [{
        "name": "clinical", "data": "clinical/data", "split": "test", "seeds": null | [...],
        "attributes": ["skin_tone"],
        "columns": [{"key": "vqa.accuracy", "label": ..., "task": "vqa", "metric": "accuracy",
                     "field": "overall" | "gap" | "es_fairllava" | "es_fairclip",
                     "attribute": null | "skin_tone", "goal": "max" | "min" | "zero",
                     "kind": "utility" | "gap" | "es" | "skew" | "mention",
                     "chance": c | null}, ...],
        "rows": [{"method": "base", "audit": "clinical/audit/base", "train": null,
                  "steer": null, "values": {KEY: {"value": v, "ci": [lo, hi],
                                                  "vs_reference": VS | null,
                                                  "pair": PAIR (gap cells)}},
                  "collapsed": [KEY, ...]}, ...],
        "reference": "base",
        "comparison": {"n_boot": 1000, "level": 0.95, "seed": 0, "n_tests": 12,
                       "notes": [...]},
        "better": {KEY: [method, ...]},
        "groups": {TASK: {ATTR: {GROUP: {"n": 18, "small": false}}}},
        "notes": ["vqa: skin_tone: groups [...] have fewer than 10 samples and are left
                  out of its gaps and ES ...", ...]}]}

``VS`` (``null`` for the reference row and for columns that are not compared: skews,
NDKL): ``{"diff": row - reference, "ci": [lo, hi] (paired bootstrap), "p_value",
"p_holm" (Holm over the study's ``n_tests`` cells), "significant": p_holm < 1 - level,
"better": significant and in the column's ``goal`` direction}``
(:mod:`fairvlm.experiment.reference`). A column's ``chance``: the accuracy without
looking, from the first row's audit (accuracies only); a row's ``collapsed``: the
columns where its value is at or below chance (:mod:`fairvlm.experiment.chance`); a
collapsed row has ``better: false`` in every cell. ``better`` lists, per column, the
rows marked better than the reference; a column where none is better is left out. A gap
cell's ``PAIR``: ``{"groups": [high, low], "diff": high - low, "ci": [lo, hi]}``, the
signed difference of the two groups that make the gap with the CI of that pair held
fixed (``null`` with fewer than two groups). ``groups``: the sample count of each group
of the gap columns' attributes in the first row's audit (``small``: fewer than the
audit's ``min_group_size``, left out of the gaps and ES); ``notes``: the audits' notes
on such groups (:mod:`fairvlm.experiment.groups`).

With ``seeds:``, a row run at every seed also has ``"seeds": {SEED: {"audit", "train",
"steer"}}`` (``audit``/``train``/``steer`` are the first seed's), and its cells are over
the seeds (:mod:`fairvlm.experiment.seeds`): ``value`` the mean, ``ci`` the t-interval
over the seeds, ``per_seed`` each seed's value; ``vs_reference`` is pooled over the seeds.

Paths are relative to the run folder, so a run folder can be moved and still reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fairvlm.experiment.chance import collapsed_on
from fairvlm.experiment.groups import group_sizes, small_group_notes
from fairvlm.experiment.seeds import seed_cell, seeds_note
from fairvlm.registry import AUDIT_TASKS
from fairvlm.report.collect import metric_entry

#: The stage folders a row names (one set per seed).
_STAGE_PATHS = ("audit", "train", "steer")


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
    chance: float | None = None


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
        chance = _finite(entry.get("chance"))
        cols.append(
            Column(
                key, f"{metric} ({task})", task, metric, "overall", None, "max", "utility", chance
            )
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
    """``{"value": v, "ci": [lo, hi] | None}`` of one column in one audit (value None if
    absent); a gap cell adds ``pair`` (the metrics.json ``gap_pair``)."""
    entry = metric_entry(metrics or {}, col.task, col.metric)
    if entry is None:
        return {"value": None, "ci": None}
    if col.field == "overall":
        return {"value": _finite(entry.get("overall")), "ci": _ci(entry.get("ci"))}
    attr = ((entry.get("by_attribute") or {}).get(col.attribute)) or {}
    if col.field == "gap":
        pair = attr.get("gap_pair")
        return {"value": _finite(attr.get("gap")), "ci": _ci(attr.get("gap_ci")), "pair": pair}
    return {"value": _finite(attr.get(col.field)), "ci": _ci(attr.get(f"{col.field}_ci"))}


def study_summary(
    name: str,
    base_metrics: dict,
    rows: list[dict[str, Any]],
    *,
    attributes: list[str] | None,
    utility: list[str] | None,
    extra: dict[str, Any] | None = None,
    targets: Sequence[str] = (),
    reference: str = "base",
    versus: Callable[[list[Column]], dict[str, Any]] | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """One study's block of summary.json. ``rows``: dicts with ``method``, ``metrics`` (the
    audit's metrics.json) and paths (``audit``, ``train``, ``steer``), or with ``seeds``: a
    list of such dicts, one per seed (plus ``seed``), aggregated by
    :func:`fairvlm.experiment.seeds.seed_cell`; ``seeds``: the study's seeds (``None``:
    one run per row); ``targets`` as in
    :func:`choose_columns`. ``versus(columns)``: the comparison of the other rows with the
    ``reference`` row (:func:`fairvlm.experiment.reference.compare_to_reference`); without
    it no cell is compared and none is marked."""
    columns = choose_columns(base_metrics, attributes, utility, targets)
    comparison = (
        versus(columns)
        if versus
        else {
            "cells": {},
            "notes": [f"no comparison: the reference row {reference!r} has no audit"],
        }
    )
    cells = comparison.pop("cells")
    runs = [row.pop("seeds", None) or [{**row, "seed": None}] for row in rows]
    all_metrics = [run.get("metrics") for row_runs in runs for run in row_runs]
    level = float(((base_metrics.get("config") or {}).get("ci_level")) or 0.95)
    for row, row_runs in zip(rows, runs, strict=True):
        row.pop("metrics", None)
        row.update({k: row_runs[0].get(k) for k in _STAGE_PATHS})
        if len(row_runs) > 1:
            row["seeds"] = {str(r["seed"]): {k: r.get(k) for k in _STAGE_PATHS} for r in row_runs}
        vs = cells.get(row["method"], {})
        row["values"] = {
            c.key: {**_cell(row_runs, c, level), "vs_reference": vs.get(c.key)} for c in columns
        }
        row["collapsed"] = collapsed_on(row["values"], columns)
        for v in row["values"].values() if row["collapsed"] else ():
            if v["vs_reference"]:
                v["vs_reference"]["better"] = False  # at chance: no change of it is a win
    better = {
        c.key: [
            r["method"] for r in rows if (r["values"][c.key]["vs_reference"] or {}).get("better")
        ]
        for c in columns
    }
    cols = [asdict(c) for c in columns]
    notes = small_group_notes(all_metrics, cols)
    if seeds and len(seeds) > 1:
        notes.insert(0, seeds_note(seeds))
        for row, row_runs in zip(rows, runs, strict=True):
            done = [r["seed"] for r in row_runs if r["seed"] is not None]
            if done and len(done) < len(seeds):  # --only: the other seeds not audited yet
                notes.append(f"{row['method']}: only seeds {done} of {list(seeds)} audited")
    return {
        "name": name,
        **(extra or {}),
        "seeds": list(seeds) if seeds else None,
        "attributes": sorted({c.attribute for c in columns if c.attribute}),
        "columns": cols,
        "rows": rows,
        "reference": reference,
        "comparison": comparison,
        "better": {k: v for k, v in better.items() if v},
        "groups": group_sizes(base_metrics, cols),
        "notes": notes,
    }


def _cell(runs: list[dict[str, Any]], col: Column, level: float) -> dict[str, Any]:
    """A row's cell: its audit's, or the aggregate over the seeds' audits."""
    if len(runs) == 1:
        return cell(runs[0].get("metrics"), col)
    return seed_cell([cell(r.get("metrics"), col) for r in runs], level)
