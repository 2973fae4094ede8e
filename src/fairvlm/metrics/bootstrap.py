"""Seeded, vectorised non-parametric bootstrap.

A replicate draws ``n`` sample indices with replacement from the whole evaluation set
(not per group, so group sizes vary between replicates as they would in a new draw of
the data). Replicate ``b`` uses its own generator seeded by ``(seed, b)``, so a
replicate's indices depend only on ``(seed, b, n)``: the same seed gives the same CI
whatever the chunking, and every metric of one audit sees the same resamples.

Each replicate is also expressed as a vector of counts ``w[b, i]`` (how often sample
``i`` was drawn), which lets a metric that is a function of summed per-sample
statistics (accuracy, a confusion matrix, BLEU n-gram counts) evaluate every replicate
and every group with one matrix product.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from fairvlm.errors import bad_value

#: At most this many index cells (replicates x samples) are held at once.
_CHUNK_CELLS = 2_000_000


def replicate_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield the resampled indices in chunks of replicates, each ``[c, n]`` (int64).

    Replicate ``b`` is drawn by ``np.random.default_rng((seed, b))``.
    """
    if n < 1:
        raise bad_value("n", n, "the bootstrap needs at least one sample")
    if n_boot < 0:
        raise bad_value("n_boot", n_boot, "use 0 (no CI) or a positive number of replicates")
    chunk = max(1, min(n_boot, _CHUNK_CELLS // n))
    for start in range(0, n_boot, chunk):
        yield _drawn(n, start, min(n_boot, start + chunk), seed)


# An audit resamples the same (n, seed) once per metric and attribute; one generator per
# replicate costs ~35 us, so the draws are kept (read-only; at most 8 x 16 MB).
@functools.lru_cache(maxsize=8)
def _drawn(n: int, start: int, stop: int, seed: int) -> np.ndarray:
    out = np.stack([np.random.default_rng((seed, b)).integers(0, n, n) for b in range(start, stop)])
    out.setflags(write=False)
    return out


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """``[c, n]`` resampled indices -> ``[c, n]`` float counts of each sample."""
    c = indices.shape[0]
    offsets = (np.arange(c)[:, None] * n + indices).ravel()
    return np.bincount(offsets, minlength=c * n).reshape(c, n).astype(np.float64)


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values, ignoring NaN replicates.

    NaN marks a replicate where the statistic is undefined (e.g. a group drawn zero
    times); such replicates are left out rather than biasing the interval. Returns
    ``(nan, nan)`` when no replicate is defined.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))
