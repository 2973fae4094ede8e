"""A metric function with an optional fast form for the bootstrap.

Any plain ``f(y_true, y_pred) -> float`` works with :func:`fairvlm.metrics.group_report`;
it is then re-evaluated on each resample (a Python loop). Wrapping it in a
:class:`Metric` with one of two fast forms makes the bootstrap vectorised:

- ``stats`` + ``from_stats``: the metric is a function of per-sample statistics summed
  over the samples (accuracy: ``[correct, 1]``; macro-F1: a one-hot confusion cell;
  BLEU: n-gram match counts). Every replicate of every group is then one matrix product
  of bootstrap counts with the statistics.
- ``weighted(y_true, y_pred, w)``: the metric evaluated under sample weights ``w``
  ``[B, n]`` for all replicates at once (used for AUC, which needs a ranking).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

StatsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
FromStatsFn = Callable[[np.ndarray], np.ndarray]
WeightedFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A named metric ``fn(y_true, y_pred) -> float`` with optional vectorised forms.

    Attributes:
        name: key used in reports and ``metrics.json``.
        fn: the point estimate on a set of samples (this is what fairlearn's
            ``MetricFrame`` evaluates per group).
        stats: per-sample statistics ``[n, ...]`` whose sum determines the metric.
        from_stats: summed statistics ``[..., *stat_shape]`` -> metric values ``[...]``.
        weighted: ``(y_true, y_pred, w[B, n]) -> [B]`` values under sample weights.
        scale: the value range, stated because equity-scaled forms depend on it.
    """

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    stats: StatsFn | None = None
    from_stats: FromStatsFn | None = None
    weighted: WeightedFn | None = None
    scale: str = "0-1"

    def __call__(self, y_true, y_pred) -> float:
        return self.fn(y_true, y_pred)


def _mean_stats(_y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    v = np.asarray(y_pred, dtype=np.float64)
    ok = np.isfinite(v)
    return np.stack([np.where(ok, v, 0.0), ok.astype(np.float64)], axis=1)


def _ratio(s: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s[..., 1] > 0, s[..., 0] / np.where(s[..., 1] > 0, s[..., 1], 1), np.nan)


def _mean_fn(_y_true, y_pred) -> float:
    v = np.asarray(y_pred, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def mean_metric(name: str, scale: str = "0-1") -> Metric:
    """The mean of per-sample values passed as ``y_pred`` (``y_true`` is ignored).

    Non-finite values (NaN: not measurable for that sample) are left out.
    """
    return Metric(name, _mean_fn, stats=_mean_stats, from_stats=_ratio, scale=scale)


def _as_metric(metric: Metric | Callable, name: str | None = None) -> Metric:
    """Wrap a plain function (no fast form: the bootstrap loops over replicates)."""
    if isinstance(metric, Metric):
        return metric
    return Metric(name or getattr(metric, "__name__", "metric"), metric)
