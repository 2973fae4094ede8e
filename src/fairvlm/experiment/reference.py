"""Every row of a study against its reference row: a paired test per cell of the table.

The comparison is :func:`fairvlm.metrics.compare.compare_audits` (paired bootstrap over
the same samples, two-sided p-value) of each row's audit folder against the reference's;
Holm's correction then runs over the cells of the table (every compared row and column),
not over every quantity ``compare_audits`` computes. A cell is **better** when its
adjusted p-value is below ``1 - level`` and the change goes the column's way (``max``:
higher, ``min``: lower, ``zero``: ``|other| < |ref|``). Ranking columns (skews, NDKL) are
not compared (see :mod:`fairvlm.metrics.paired`): their cells get ``None``.

It takes audit folders, so that any set of audits of the same samples can reuse it. With
several training seeds, a row and the reference give one folder per seed (a row that does
not depend on the seed, such as ``base``, one folder for all): each seed's pair is a
stratum of :func:`fairvlm.metrics.paired.compare_pooled`, and the test is of the mean
change over the seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairvlm.experiment.summary import Column
from fairvlm.metrics.compare import compare_audit_pairs, holm


def bootstrap_settings(audit: str | Path) -> tuple[int, float, int]:
    """``(n_boot, ci_level, seed)`` of an audit's metrics config (its ``metrics.json``): the
    comparison uses the replicates, coverage and seed the audit's own CIs use."""
    cfg = json.loads((Path(audit) / "metrics.json").read_text()).get("config") or {}
    return int(cfg.get("n_boot", 1000)), float(cfg.get("ci_level", 0.95)), int(cfg.get("seed", 0))


def improves(goal: str, ref: float, other: float) -> bool:
    """Whether ``other`` is better than ``ref`` for a column of this ``goal``."""
    if goal == "max":
        return other > ref
    if goal == "min":
        return other < ref
    return abs(other) < abs(ref)  # zero: closer to 0


def _entry(comparison: dict, col: Column) -> dict | None:
    metric = (comparison.get(col.task) or {}).get(col.metric)
    if metric is None:
        return None
    if col.field == "overall":
        return metric["overall"]
    return ((metric["by_attribute"].get(col.attribute or "")) or {}).get(col.field)


#: One audit folder, or one per seed.
Audits = str | Path | Sequence[str | Path]


def _per_seed(audits: Audits) -> list[str]:
    return [str(audits)] if isinstance(audits, str | Path) else [str(a) for a in audits]


def seed_pairs(reference: Audits, other: Audits) -> list[tuple[str, str]]:
    """The (reference, other) folder of each seed; a single folder pairs with every seed."""
    ref, oth = _per_seed(reference), _per_seed(other)
    if len(ref) == 1:
        ref = ref * len(oth)
    if len(oth) == 1:
        oth = oth * len(ref)
    if len(ref) != len(oth):
        raise ValueError(f"{len(ref)} reference audits for {len(oth)} seeds")
    return list(zip(ref, oth, strict=True))


def compare_to_reference(
    reference: Audits,
    others: Mapping[str, Audits],
    columns: Sequence[Column],
    *,
    n_boot: int | None = None,
    level: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Compare the audits ``others`` (row name -> folder, or one folder per seed) with
    ``reference``, cell by cell of ``columns`` (module doc). Bootstrap settings default to
    the (first) reference audit's (:func:`bootstrap_settings`).

    Returns ``{"n_boot", "level", "seed", "n_tests", "notes": [...], "cells": {row: {KEY:
    {"diff", "ci", "p_value", "p_holm", "significant", "better"} | None}}}``; ``diff`` is
    ``row - reference`` (its mean over the seeds), ``ci`` its paired CI, ``p_holm``
    Holm-adjusted over the ``n_tests`` cells with a p-value.
    """
    own = bootstrap_settings(_per_seed(reference)[0])
    n_boot, level, seed = (own[i] if v is None else v for i, v in enumerate((n_boot, level, seed)))
    out: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed, "n_tests": 0}
    out["cells"] = {row: dict.fromkeys(c.key for c in columns) for row in others}
    out["notes"] = []
    if not others:
        return out
    if n_boot < 1:
        out["notes"].append(
            "no comparison with the reference: the audits have no bootstrap (metrics n_boot: 0)"
        )
        return out
    tested: list[tuple[dict, dict, Column]] = []
    shown = tuple(f"{c.task} {c.metric}:" for c in columns) + ("task ",)
    noted: dict[str, list[str]] = {}  # a note of the table's columns -> the rows it concerns
    for row, folders in others.items():
        doc, notes = compare_audit_pairs(
            seed_pairs(reference, folders), n_boot=n_boot, level=level, seed=seed
        )
        for note in notes:
            if note.startswith(shown):
                noted.setdefault(note, []).append(row)
        for col in columns:
            e = _entry(doc, col)
            if e is not None and e["p_value"] is not None:
                tested.append((out["cells"][row], e, col))
    adjusted = holm([e["p_value"] for _, e, _ in tested])
    for (cells, e, col), p_holm in zip(tested, adjusted, strict=True):
        significant = math.isfinite(p_holm) and p_holm < 1.0 - level
        cells[col.key] = {
            "diff": e["diff"],
            "ci": e["ci"],
            "p_value": e["p_value"],
            "p_holm": p_holm,
            "significant": significant,
            "better": significant and improves(col.goal, e["ref"], e["other"]),
        }
    out["n_tests"] = n_tests = sum(math.isfinite(e["p_value"]) for _, e, _ in tested)
    out["notes"] = [
        n if len(r) == len(others) else f"{', '.join(r)}: {n}" for n, r in noted.items()
    ]
    floor = 2.0 / (n_boot + 1)  # the smallest p that n_boot replicates can give
    if n_tests and floor * n_tests >= 1.0 - level:
        out["notes"].append(
            f"with {n_boot} replicates no cell can be significant after Holm over "
            f"{n_tests} cells (the smallest p is {floor:.3g}): an unmarked cell is no "
            f"evidence of no change; use metrics n_boot: "
            f"{math.ceil(2 * n_tests / (1.0 - level))} or more"
        )
    return out
