"""Group metrics: per-group values, gaps, equity-scaled forms, bootstrap CIs.

Point estimates come from fairlearn's :class:`~fairlearn.metrics.MetricFrame` (per
group value, overall, ``difference()`` = gap, ``ratio()``). Written here, because
fairlearn lacks them or they are too slow for an audit: unknown attribute values
(MetricFrame refuses missing values; we leave them out of that attribute and count
them), intersections with unknowns, the two equity-scaled forms of METHODS.md section 4,
small groups (flagged, and left out of the gap and ES unless asked), and the bootstrap. MetricFrame's own bootstrap (``n_boot=``)
rebuilds a whole MetricFrame per replicate (~8 ms each, so ~8 s per metric and
attribute at 1000 replicates); here each replicate's indices are drawn once and every
group and attribute is evaluated from them, vectorised when the metric allows
(:mod:`fairvlm.metrics.base`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from fairvlm.errors import DataError, bad_value
from fairvlm.metrics.base import Metric, _as_metric
from fairvlm.metrics.bootstrap import counts_from_indices, percentile_ci, replicate_indices
from fairvlm.metrics.results import AttributeReport, GroupMetrics, GroupValue

#: Intersections computed by default when both columns are present.
DEFAULT_INTERSECTIONS: tuple[tuple[str, ...], ...] = (("race", "sex"),)

#: Joins attribute names and values of an intersection, e.g. ``race&sex`` / ``black&female``.
INTERSECTION_SEP = "&"


def es_fairclip(overall: float, group_values: Sequence[float]) -> float:
    """FairCLIP / Harvard-FairVLMed equity-scaled metric ``M / (1 + sum_g |M_g - M|)``.

    Scale dependent: pass ``M`` and ``M_g`` on the same scale (fairvlm uses 0-1).
    Groups whose value is NaN are left out of the sum; when no group value is defined
    the result is NaN (as :func:`es_fairllava`), not ``M``.
    """
    g = np.asarray(group_values, dtype=np.float64)
    g = g[np.isfinite(g)]
    if g.size == 0:
        return float("nan")
    return float(overall / (1.0 + np.sum(np.abs(g - overall))))


def es_fairllava(overall: float, group_values: Sequence[float]) -> float:
    """FairLLaVA equity-scaled metric ``M / (1 + (max_g M_g - min_g M_g))`` (scale dependent)."""
    g = np.asarray(group_values, dtype=np.float64)
    g = g[np.isfinite(g)]
    gap = float(g.max() - g.min()) if g.size else float("nan")
    return float(overall / (1.0 + gap))


def attribute_columns(
    sensitive_features: pd.DataFrame | pd.Series,
    intersections: Sequence[Sequence[str]] | None = DEFAULT_INTERSECTIONS,
) -> dict[str, np.ndarray]:
    """Attribute name -> object array of string values, ``None`` for unknown.

    Intersections whose columns are not all present are skipped; a sample is unknown in
    an intersection when any of its parts is unknown.
    """
    if isinstance(sensitive_features, pd.Series):
        sensitive_features = sensitive_features.to_frame(name=sensitive_features.name or "group")
    if not isinstance(sensitive_features, pd.DataFrame):
        raise bad_value(
            "sensitive_features",
            type(sensitive_features).__name__,
            "pass a pandas DataFrame or Series",
            DataError,
        )
    cols: dict[str, np.ndarray] = {}
    for name in sensitive_features.columns:
        raw = sensitive_features[name].to_numpy(dtype=object)
        cols[str(name)] = np.array([None if _is_unknown(v) else str(v) for v in raw], dtype=object)
    for parts in intersections or ():
        if len(parts) < 2 or not all(p in cols for p in parts):
            continue
        key = INTERSECTION_SEP.join(parts)
        stacked = zip(*(cols[p] for p in parts), strict=True)
        cols[key] = np.array(
            [
                None if any(v is None for v in vals) else INTERSECTION_SEP.join(vals)
                for vals in stacked
            ],
            dtype=object,
        )
    return cols


def _is_unknown(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _evaluator(metric: Metric, yt: np.ndarray, yp: np.ndarray) -> Callable:
    """``(w [c, n], idx [c, n], members) -> [c]`` values of the metric on each replicate."""
    n = len(yp)
    if metric.stats is not None and metric.from_stats is not None:
        stats = np.asarray(metric.stats(yt, yp), dtype=np.float64)
        shape = stats.shape[1:]
        flat = stats.reshape(n, -1)

        def by_stats(w, _idx, members):
            summed = w[:, members] @ flat[members]
            return np.asarray(metric.from_stats(summed.reshape(len(w), *shape)), dtype=np.float64)

        return by_stats
    if metric.weighted is not None:
        return lambda w, _idx, members: np.asarray(
            metric.weighted(yt[members], yp[members], w[:, members]), dtype=np.float64
        )

    def by_loop(_w, idx, members):
        in_set = np.zeros(n, dtype=bool)
        in_set[members] = True
        out = np.full(len(idx), np.nan)
        for b, row in enumerate(idx):
            row = row[row >= 0]  # -1: a drawn sample this metric does not cover (compare)
            sel = row[in_set[row]]
            if sel.size:
                # ValueError: undefined on this resample (e.g. one class only) -> NaN.
                with contextlib.suppress(ValueError):
                    out[b] = metric.fn(yt[sel], yp[sel])
        return out

    return by_loop


def _point(metric: Metric, yt, yp, col: np.ndarray, name: str) -> tuple[pd.Series, float]:
    """Per-group values and the known-only overall, by fairlearn's MetricFrame."""
    from fairlearn.metrics import MetricFrame

    known = np.flatnonzero([v is not None for v in col])

    # MetricFrame is given sample positions, not the values: it coerces object arrays
    # to strings (None -> "nan", an unparsed answer would become a class); the metric
    # then sees the original values of each group.
    def on_positions(pos, _pos) -> float:
        return metric.fn(yt[pos], yp[pos])

    on_positions.__name__ = metric.name
    mf = MetricFrame(
        metrics=on_positions,
        y_true=known,
        y_pred=known,
        sensitive_features=pd.Series(col[known].astype(str), name=name),
    )
    by_group = mf.by_group.astype(np.float64)
    by_group.index = by_group.index.astype(str)
    return by_group.sort_index(), float(mf.overall)


def group_report(
    metric_fn: Metric | Callable,
    y_true,
    y_pred,
    sensitive_features: pd.DataFrame | pd.Series,
    *,
    min_group_size: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
    intersections: Sequence[Sequence[str]] | None = DEFAULT_INTERSECTIONS,
    ci_level: float = 0.95,
    name: str | None = None,
    include_small_groups: bool = False,
) -> GroupMetrics:
    """Evaluate a metric overall and per group of every sensitive attribute.

    Args:
        metric_fn: a :class:`Metric` (fast bootstrap) or any ``f(y_true, y_pred)``.
        y_true, y_pred: per-sample arrays of equal length (``y_pred`` may be 2-D, e.g.
            option scores; ``y_true`` may be ``None`` for a mean of per-sample values).
        sensitive_features: one column per attribute; ``None``/NaN = unknown, left out
            of that attribute's groups and counted in ``n_unknown``.
        min_group_size: groups with fewer samples are reported with ``small=True`` and
            left out of the gap, ratio, std and both ES forms (their value is too noisy
            to decide a max - min); listed in the attribute's ``left_out``.
        include_small_groups: count small groups in those quantities too.
        n_boot: bootstrap replicates (0: no CIs); ``seed`` makes them reproducible.
        intersections: tuples of attribute names to cross (skipped when absent).
        ci_level: coverage of the percentile intervals.
    """
    metric = _as_metric(metric_fn, name)
    yp = _array(y_pred)
    n = len(yp)
    yt = np.zeros(n) if y_true is None else _array(y_true)
    if n == 0:
        raise bad_value("y_pred", "[]", "group metrics need at least one sample", DataError)
    if len(yt) != n or len(sensitive_features) != n:
        raise bad_value(
            "y_true/y_pred/sensitive_features lengths",
            (len(yt), n, len(sensitive_features)),
            "pass one entry per sample in each",
            DataError,
        )
    if min_group_size < 1:
        raise bad_value("min_group_size", min_group_size, "use a positive integer (default 10)")
    if not 0.0 < ci_level < 1.0:
        raise bad_value("ci_level", ci_level, "use a coverage in (0, 1), e.g. 0.95")
    cols = attribute_columns(sensitive_features, intersections)

    # Index sets evaluated on every replicate: all samples, and per attribute its known
    # samples and each group.
    sets: dict[tuple, np.ndarray] = {("overall",): np.arange(n)}
    points: dict[str, tuple[pd.Series, float]] = {}
    for attr, col in cols.items():
        known = np.flatnonzero([v is not None for v in col])
        if known.size == 0:
            continue
        points[attr] = _point(metric, yt, yp, col, attr)
        sets[(attr, None)] = known
        for g in points[attr][0].index:
            sets[(attr, g)] = np.flatnonzero(col == g)

    boot: dict[tuple, np.ndarray] = {k: np.empty(0) for k in sets}
    if n_boot > 0:
        evaluate = _evaluator(metric, yt, yp)
        parts: dict[tuple, list[np.ndarray]] = {k: [] for k in sets}
        for idx in replicate_indices(n, n_boot, seed):
            w = counts_from_indices(idx, n)
            for key, members in sets.items():
                parts[key].append(evaluate(w, idx, members))
        boot = {k: np.concatenate(v) for k, v in parts.items()}

    def ci(values: np.ndarray) -> tuple[float, float]:
        return percentile_ci(values, ci_level) if n_boot > 0 else (float("nan"), float("nan"))

    overall = float(metric.fn(yt, yp))
    by_attribute: dict[str, AttributeReport] = {}
    for attr, col in cols.items():
        n_unknown = int(sum(v is None for v in col))
        if attr not in points:
            by_attribute[attr] = _empty_attribute(attr, n_unknown)
            continue
        values, m_known = points[attr]
        groups = {
            g: GroupValue(
                value=float(v),
                n=int(np.sum(col == g)),
                ci=ci(boot[(attr, g)]),
                small=bool(np.sum(col == g) < min_group_size),
                diff_to_overall=float(v - m_known),
            )
            for g, v in values.items()
        }
        in_gap = [g for g in values.index if include_small_groups or not groups[g].small]
        gv = values[in_gap].to_numpy()
        known = ~np.isnan(gv)  # every group NaN (e.g. AUC of one class): NaN, not a warning
        gap_ci, fc_ci, fl_ci = _disparity_cis(
            np.stack([boot[(attr, g)] for g in in_gap], axis=1) if n_boot and in_gap else None,
            boot[(attr, None)],
            ci,
        )
        by_attribute[attr] = AttributeReport(
            name=attr,
            groups=groups,
            overall_known=m_known,
            # one group has no gap (as a replicate with one group drawn): NaN, not 0
            gap=float(np.nanmax(gv) - np.nanmin(gv)) if known.sum() >= 2 else float("nan"),
            gap_ci=gap_ci,
            ratio=_ratio(gv),
            std=float(np.nanstd(gv)) if known.any() else float("nan"),
            es_fairclip=es_fairclip(m_known, gv),
            es_fairclip_ci=fc_ci,
            es_fairllava=es_fairllava(m_known, gv) if known.sum() >= 2 else float("nan"),
            es_fairllava_ci=fl_ci,
            n_unknown=n_unknown,
            left_out=[g for g in values.index if g not in in_gap],
            pair=_pair(values[in_gap], boot, attr, ci, n_boot),
        )
    return GroupMetrics(
        metric=metric.name,
        overall=overall,
        overall_ci=ci(boot[("overall",)]),
        n=n,
        by_attribute=by_attribute,
        n_boot=n_boot,
        seed=seed,
        min_group_size=min_group_size,
        ci_level=ci_level,
        scale=metric.scale,
    )


def _pair(values: pd.Series, boot: dict, attr: str, ci: Callable, n_boot: int) -> dict | None:
    """The signed difference of the two groups that make the gap (highest minus lowest
    in the estimate), held fixed in every replicate: its CI is centred on the estimate,
    unlike that of max - min, which re-picks the extremes of each replicate."""
    defined = values.dropna()
    if len(defined) < 2:
        return None
    # highest first; a tie keeps the name order, so the two groups always differ
    order = defined.sort_values(ascending=False, kind="stable").index
    high, low = str(order[0]), str(order[-1])
    lo_hi = ci(boot[(attr, high)] - boot[(attr, low)]) if n_boot > 0 else (math.nan, math.nan)
    return {"groups": [high, low], "diff": float(defined[high] - defined[low]), "ci": list(lo_hi)}


def _empty_attribute(name: str, n_unknown: int) -> AttributeReport:
    """An attribute with no known value at all: reported (all unknown), not dropped."""
    nan, nan2 = float("nan"), (float("nan"), float("nan"))
    return AttributeReport(name, {}, nan, nan, nan2, nan, nan, nan, nan2, nan, nan2, n_unknown)


def _ratio(gv: np.ndarray) -> float:
    gv = gv[np.isfinite(gv)]
    if gv.size == 0 or gv.min() < 0 or gv.max() <= 0:
        return float("nan")
    return float(gv.min() / gv.max())


def _disparity_cis(group_boot: np.ndarray | None, known_boot: np.ndarray, ci: Callable):
    """CIs of gap and both ES forms from replicate group values ``[B, G]``."""
    nan2 = (float("nan"), float("nan"))
    if group_boot is None or group_boot.size == 0:
        return nan2, nan2, nan2
    gap, fairclip, fairllava = disparity_replicates(group_boot, known_boot)
    return ci(gap), ci(fairclip), ci(fairllava)


def disparity_replicates(
    group_boot: np.ndarray, known_boot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replicate values ``[B]`` of the gap, ``es_fairclip`` and ``es_fairllava`` from
    replicate group values ``[B, G]`` and the known-only overall ``[B]``.

    A replicate's gap needs at least two groups drawn (else NaN); its ``es_fairclip``
    needs at least one group value (else NaN, as :func:`es_fairclip`).
    """
    defined = np.isfinite(group_boot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as wanted
        gap = np.where(
            defined.sum(1) >= 2,
            np.nanmax(group_boot, axis=1) - np.nanmin(group_boot, axis=1),
            np.nan,
        )
        dev = np.nansum(np.abs(group_boot - known_boot[:, None]), axis=1)
    fairclip = np.where(defined.any(1), known_boot / (1.0 + dev), np.nan)
    return gap, fairclip, known_boot / (1.0 + gap)


def _array(x) -> np.ndarray:
    if isinstance(x, pd.Series | pd.Index):
        return x.to_numpy()
    if isinstance(x, np.ndarray):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "US":  # keep strings as objects so that None is allowed beside them
        arr = arr.astype(object)
    return arr
