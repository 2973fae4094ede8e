"""The ``limit`` draw: a seeded sample stratified by group and target.

Datasets are often stored sorted (by concept, label or group), so the first N samples
of a split can all be one concept, and an audit limited to them measures nothing of the
others. The draw keeps every stratum in proportion instead. It is seeded and returns
positions in the data's order, so two audits of the same data, limit and seed take the
same sample ids (their records pair up in ``fairvlm compare``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def allocate(counts: Sequence[int], n: int) -> np.ndarray:
    """How many items of each stratum a draw of ``n`` takes.

    Proportional to ``counts`` by largest remainder (ties: the earlier stratum), so the
    total is exactly ``min(n, sum(counts))``; when ``n`` is at least the number of
    non-empty strata, each of them gets at least one, taken from the stratum furthest
    above its quota.
    """
    c = np.asarray(counts, dtype=np.int64)
    total = int(c.sum())
    n = min(n, total)
    if n <= 0:
        return np.zeros_like(c)
    # integer arithmetic: the quota of stratum k is exactly n * c[k] / total
    take, remainder = np.divmod(n * c, total)
    take[np.argsort(-remainder, kind="stable")[: n - int(take.sum())]] += 1
    if n >= np.count_nonzero(c):
        for k in np.flatnonzero((take == 0) & (c > 0)):
            above = np.where(take >= 2, take * total - n * c, np.iinfo(np.int64).min)
            donor = int(np.argmax(above))
            take[donor] -= 1
            take[k] += 1
    return take


def stratified_indices(keys: Sequence[Hashable], n: int, seed: int) -> list[int]:
    """Ascending positions of a seeded draw of ``min(n, len(keys))`` items, stratified by
    ``keys``: one stratum per distinct key (``None`` parts are values like the others),
    each drawn from with :func:`allocate`'s share."""
    strata: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        strata.setdefault(key, []).append(i)
    # strata in order of first appearance: keys need not be sortable (None), and the
    # draw must not depend on anything but the data's order
    members = list(strata.values())
    take = allocate([len(m) for m in members], n)
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(m, size=int(k), replace=False) for m, k in zip(members, take, strict=True) if k
    ]
    return sorted(int(i) for part in chosen for i in part)


__all__ = ["allocate", "stratified_indices"]
