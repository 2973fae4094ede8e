"""A table cell over training seeds: the mean, a t-interval over the seeds, each seed's value.

A row run at ``k`` seeds has one audit per seed. Its cell's ``value`` is the mean of the
seeds' values and its ``ci`` the Student-t interval of that mean, ``mean ± t_{k-1} · s /
sqrt(k)``: the spread of training (the seeds), not the noise of the test samples, which
the change versus the reference measures (a paired bootstrap pooled over the seeds,
:mod:`fairvlm.experiment.reference`). ``per_seed`` keeps every seed's value. A row with
one audit (the base model, shared by the seeds) keeps that audit's bootstrap CI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """The Student-t interval of the mean of ``values`` (``None`` with fewer than two)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None
    mean = float(v.mean())
    half = float(stats.t.ppf(0.5 + level / 2.0, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return [mean - half, mean + half]


def seed_cell(cells: Sequence[Mapping[str, Any]], level: float = 0.95) -> dict[str, Any]:
    """One cell from the same cell of every seed's audit (module doc). A gap cell's
    ``pair`` is averaged the same way when every seed names the same two groups."""
    values = [c["value"] for c in cells]
    found = [v for v in values if v is not None]
    out: dict[str, Any] = {
        "value": float(np.mean(found)) if found else None,
        "ci": t_interval(found, level) if len(found) == len(values) else None,
        "per_seed": values,
    }
    if "pair" in cells[0]:
        out["pair"] = _seed_pair([c.get("pair") for c in cells], level)
    return out


def _seed_pair(pairs: list[Mapping[str, Any] | None], level: float) -> dict[str, Any] | None:
    if not pairs or any(not p or p.get("diff") is None for p in pairs):
        return None
    groups = pairs[0]["groups"]
    if any(p["groups"] != groups for p in pairs):
        return None  # the seeds disagree on which groups make the gap
    diffs = [float(p["diff"]) for p in pairs]
    return {"groups": groups, "diff": float(np.mean(diffs)), "ci": t_interval(diffs, level)}


def seeds_note(seeds: Sequence[int]) -> str:
    """The line under a multi-seed table saying what its numbers are."""
    return (
        f"seeds {list(seeds)}: each value is the mean over the seeds, [CI] the t-interval "
        "over the seeds (the spread of training); Δ and the marks: a paired bootstrap of the "
        "test samples pooled over the seeds (each seed's audit against the reference's); the "
        f"group details below are those of seed {seeds[0]}"
    )
