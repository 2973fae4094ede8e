"""The paired bootstrap of two audits' records (and its pooling over strata).

Two audits of the same samples (same split, same sample ids) are compared metric by
metric: for each task, each group metric (``kind: group``) and its overall value, and
each attribute's ``gap``, ``es_fairllava`` and ``es_fairclip``, the difference
``other - ref``, a **paired** bootstrap CI of that difference and a two-sided p-value.

How the replicates are drawn. A task's records of both audits are aligned by
``sample_id``. Replicate ``b`` draws ``n`` positions with replacement by
``np.random.default_rng((seed, b))`` (:func:`fairvlm.metrics.replicate_indices`, as the
audit's own bootstrap) and takes the **same samples** from both audits; every metric is
recomputed on both resampled record sets with the audit's own metric functions (the
task's ``compute`` is run once on each audit's records, its per-sample inputs are kept,
and the replicates re-evaluate the same :class:`~fairvlm.metrics.Metric` on them), so
the point estimates are those of ``metrics.json``. A metric computed on part of a task's
records (``auc``, ``option_accuracy``: records with option scores) sees the drawn
samples it covers. A replicate where a value is undefined on either side (a group not
drawn, a gap with fewer than two groups) is left out of that CI and p-value.

The p-value (:data:`P_VALUE_DEFINITION`): with ``d*_b`` the ``B`` defined replicate
differences, ``p = min(1, 2 * min((1 + #{d*_b <= 0}) / (B + 1), (1 + #{d*_b >= 0}) / (B + 1)))``:
the percentile-bootstrap test of "no difference", dual to the percentile CI (``p <
1 - level`` about when the CI excludes 0), with the +1 correction so that it is never 0.
Identical audits give ``d* = 0`` on every replicate, a CI ``[0, 0]`` and ``p = 1``.

:func:`holm` is Holm's step-down correction, which
:func:`fairvlm.metrics.compare.compare_audits` runs over every p-value of one call.

Ranking metrics (Skew@K, NDKL, Bias@K) and the fairlearn disparity differences are not
compared: a bootstrap resample repeats samples inside a concept's ranked pool, where
Skew@K has no defined meaning, and the audit reports no CI for them either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairvlm.errors import DataError, bad_value
from fairvlm.metrics.base import Metric, _as_metric
from fairvlm.metrics.bootstrap import counts_from_indices, percentile_ci, replicate_indices
from fairvlm.metrics.config import MetricsConfig
from fairvlm.metrics.group import (
    _array,
    _evaluator,
    attribute_columns,
    disparity_replicates,
    group_report,
)
from fairvlm.metrics.records import TaskRecords, _failed_counts, _validate, task_contexts
from fairvlm.registry import AUDIT_TASKS

#: The quantities compared per attribute.
ATTRIBUTE_FIELDS = ("gap", "es_fairllava", "es_fairclip")
#: Written into ``comparison.json``.
P_VALUE_DEFINITION = (
    "two-sided percentile-bootstrap p = min(1, 2*min((1+#{d*<=0})/(B+1), (1+#{d*>=0})/(B+1))) "
    "over the B defined paired replicate differences d* = other* - ref*"
)


class _Capture(TaskRecords):
    """A task's context that keeps the inputs of every ``group`` call instead of
    computing it: the task's compute runs unchanged and names its metrics."""

    def __init__(self, df, attrs, cfg):
        super().__init__(df, attrs, cfg)
        self.calls: list[tuple] = []

    def group(self, metric, y_true, y_pred, rows=None) -> dict:
        self.calls.append((metric, y_true, y_pred, rows))
        return {"kind": "group", "_call": len(self.calls) - 1}


@dataclass
class _Side:
    """One metric of one audit: its inputs, the index sets evaluated, the point values."""

    metric: Metric
    yt: np.ndarray
    yp: np.ndarray
    rows: np.ndarray  # task positions the metric covers, in its own order
    n_task: int
    sets: dict
    groups: dict  # attr -> group names (the order of the replicate columns)
    point: object  # GroupMetrics with n_boot=0: the numbers of metrics.json
    evaluate: object = None  # group._evaluator of the metric (built once)

    def replicate_values(self, idx: np.ndarray) -> dict:
        """``idx [c, n_task]`` task positions -> {set key: [c] values}."""
        local = np.full(self.n_task, -1, dtype=np.int64)
        local[self.rows] = np.arange(len(self.rows))
        idx_local = local[idx]
        w = counts_from_indices(idx, self.n_task)[:, self.rows]
        if self.evaluate is None:
            self.evaluate = _evaluator(self.metric, self.yt, self.yp)
        return {key: self.evaluate(w, idx_local, members) for key, members in self.sets.items()}


def _side(ctx: TaskRecords, call: tuple, cfg: MetricsConfig) -> _Side:
    metric_fn, y_true, y_pred, rows = call
    metric = _as_metric(metric_fn)
    n_task = len(ctx.df)
    rows = np.arange(n_task) if rows is None else np.asarray(rows, dtype=np.int64)
    yp = _array(y_pred)
    yt = np.zeros(len(yp)) if y_true is None else _array(y_true)
    sf = ctx.sf.iloc[rows].reset_index(drop=True)
    point = group_report(
        metric, yt, yp, sf, min_group_size=cfg.min_group_size, n_boot=0,
        intersections=ctx.intersections, ci_level=cfg.ci_level,
        include_small_groups=cfg.include_small_groups,
    )  # fmt: skip
    sets: dict = {("overall",): np.arange(len(rows))}
    groups: dict = {}
    for attr, col in attribute_columns(sf, ctx.intersections).items():
        rep = point.by_attribute.get(attr)
        in_gap = [g for g in (rep.groups if rep else ()) if g not in rep.left_out]
        if not in_gap:
            continue
        sets[(attr, None)] = np.flatnonzero([v is not None for v in col])
        groups[attr] = in_gap  # the groups the gap and ES use (small ones left out)
        for g in groups[attr]:
            sets[(attr, g)] = np.flatnonzero(col == g)
    return _Side(metric, yt, yp, rows, n_task, sets, groups, point)


def _quantities(side: _Side, values: dict) -> dict:
    """Replicate values of every compared quantity: ``overall`` and (attr, field)."""
    out = {("overall",): values[("overall",)]}
    for attr, groups in side.groups.items():
        group_boot = np.stack([values[(attr, g)] for g in groups], axis=1)
        gap, fairclip, fairllava = disparity_replicates(group_boot, values[(attr, None)])
        out[(attr, "gap")] = gap
        out[(attr, "es_fairclip")] = fairclip
        out[(attr, "es_fairllava")] = fairllava
    return out


def _points(side: _Side) -> dict:
    out = {("overall",): side.point.overall}
    for attr in side.groups:
        rep = side.point.by_attribute[attr]
        for f in ATTRIBUTE_FIELDS:
            out[(attr, f)] = getattr(rep, f)
    return out


def paired_p_value(diffs: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value of "no difference" (:data:`P_VALUE_DEFINITION`);
    NaN replicates are left out, NaN when none is defined."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    b = d.size
    low = (1 + np.sum(d <= 0)) / (b + 1)
    high = (1 + np.sum(d >= 0)) / (b + 1)
    return float(min(1.0, 2.0 * min(low, high)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN and is not
    counted in the family): ``p_(i) * (m - i + 1)`` made monotone, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return [float(v) for v in out]


def _drop_failed(records: pd.DataFrame) -> pd.DataFrame:
    if _failed_counts(records):
        records = records[records["error"].isna()]
    return records


def _task_ids(df: pd.DataFrame, label: str, task: str) -> pd.Index:
    ids = pd.Index(df["sample_id"].astype(str))
    if ids.has_duplicates:
        dup = ids[ids.duplicated()][0]
        raise bad_value(
            f"{label} records of task {task!r}",
            f"sample_id {dup!r} twice",
            "compare audits with one record per (sample, task)",
            DataError,
        )
    return ids


def _check_same_ids(ref: pd.Index, other: pd.Index, task: str, ref_label, other_label) -> None:
    if set(ref) == set(other):
        return
    only_ref = sorted(set(ref) - set(other))
    only_other = sorted(set(other) - set(ref))
    raise DataError(
        f"sample ids of task {task!r} differ: {len(only_ref)} only in {ref_label} "
        f"{only_ref[:3]}, {len(only_other)} only in {other_label} {only_other[:3]}; compare "
        "audits of the same samples (same data, split, --limit, --limit-mode and --seed)"
    )


def _paired_tasks(
    ref: pd.DataFrame,
    other: pd.DataFrame,
    cfgs: tuple[MetricsConfig, MetricsConfig],
    labels: tuple[str, str],
) -> tuple[dict, list[str]]:
    """The compared metrics of every common task: ``{task: (pairs, n, other_pos)}`` with
    ``pairs = {metric: (ref _Side, other _Side)}``, and the notes on what is left out."""
    prepared = []
    for records, cfg in zip((ref, other), cfgs, strict=True):
        records = _drop_failed(records)
        _validate(records, cfg)
        prepared.append(dict(task_contexts(records, cfg, _Capture)))
    ref_ctx, other_ctx = prepared
    notes = [
        f"task {t!r} only in {lab}: not compared"
        for ctxs, lab in ((ref_ctx, labels[0]), (other_ctx, labels[1]))
        for t in ctxs
        if t not in (other_ctx if ctxs is ref_ctx else ref_ctx)
    ]
    common = [t for t in ref_ctx if t in other_ctx]
    if not common:
        raise bad_value(
            "tasks",
            f"{labels[0]}: {sorted(ref_ctx)}, {labels[1]}: {sorted(other_ctx)}",
            "compare audits that share at least one task",
            DataError,
        )
    out: dict = {}
    for task in common:
        rc, oc = ref_ctx[task], other_ctx[task]
        rid = _task_ids(rc.df, labels[0], task)
        oid = _task_ids(oc.df, labels[1], task)
        _check_same_ids(rid, oid, task, *labels)
        rm = AUDIT_TASKS.get(task).compute(rc, None)
        om = AUDIT_TASKS.get(task).compute(oc, None)
        pairs = {}
        for name, entry in rm.items():
            oentry = om.get(name)
            if not (isinstance(entry, dict) and "_call" in entry):
                if isinstance(entry, dict) and entry.get("kind") in ("ranking", "disparity"):
                    notes.append(f"{task} {name}: {entry['kind']} metric, not compared")
                continue
            if not (isinstance(oentry, dict) and "_call" in oentry):
                notes.append(f"{task} {name}: only in {labels[0]}, not compared")
                continue
            pairs[name] = (
                _side(rc, rc.calls[entry["_call"]], cfgs[0]),
                _side(oc, oc.calls[oentry["_call"]], cfgs[1]),
            )
        # OTHER position of each REF position
        out[task] = (pairs, len(rid), oid.get_indexer(rid))
    return out, notes


def _check_boot(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise bad_value("n_boot", n_boot, "a paired comparison needs replicates, e.g. 1000")
    if not 0.0 < level < 1.0:
        raise bad_value("level", level, "use a coverage in (0, 1), e.g. 0.95")


def compare_records(
    ref: pd.DataFrame,
    other: pd.DataFrame,
    *,
    ref_config: MetricsConfig | None = None,
    other_config: MetricsConfig | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    labels: tuple[str, str] = ("REF", "OTHER"),
) -> tuple[dict, list[str]]:
    """Paired comparison of two audits' records (module docstring).

    Returns ``({task: {metric: {"overall": entry, "by_attribute": {attr: {field: entry}}}}},
    notes)`` with ``entry = {"ref", "other", "diff", "ci", "p_value"}`` (unadjusted).

    Raises:
        DataError: no task in common, or a task whose sample ids differ.
    """
    return compare_pooled(
        [(ref, other)], configs=[(ref_config, other_config)], n_boot=n_boot, level=level,
        seed=seed, labels=[labels],
    )  # fmt: skip


def compare_pooled(
    pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    configs: Sequence[tuple[MetricsConfig | None, MetricsConfig | None]] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    labels: Sequence[tuple[str, str]] | None = None,
) -> tuple[dict, list[str]]:
    """The paired comparison pooled over strata: ``pairs`` of (ref, other) records, one per
    stratum (a training seed, say), each pair of the same samples.

    Each stratum is resampled on its own samples, and replicate ``b`` draws the indices of
    ``replicate_indices(n, n_boot, seed)`` in every stratum: strata over one test split
    (the same ``n``) draw the same samples, so the noise of the test set they share is
    counted once, not averaged away. The pooled quantity is the mean over strata: ``ref``,
    ``other`` and ``diff`` are the strata's means, the CI and p-value come from the means of
    the replicate differences (a replicate undefined in any stratum is left out). With one
    pair this is :func:`compare_records`. Returns the same ``(document, notes)``; a task or
    metric missing from some stratum is left out, with a note.
    """
    _check_boot(n_boot, level)
    if not pairs:
        raise bad_value("pairs", [], "give at least one (ref, other) pair", DataError)
    configs = configs or [(None, None)] * len(pairs)
    labels = labels or [("REF", "OTHER")] * len(pairs)
    strata = []
    notes: list[str] = []
    for (ref, other), cfgs, labs in zip(pairs, configs, labels, strict=True):
        cfgs = (cfgs[0] or MetricsConfig(), cfgs[1] or MetricsConfig())
        tasks, stratum_notes = _paired_tasks(ref, other, cfgs, labs)
        notes += [n for n in stratum_notes if n not in notes]
        strata.append(
            {
                task: _task_replicates(task_pairs, n, pos, n_boot, seed)
                for task, (task_pairs, n, pos) in tasks.items()
            }
        )
    out: dict = {}
    for task, first in strata[0].items():
        metrics: dict = {}
        for name in first:
            sides = [s.get(task, {}).get(name) for s in strata]
            if any(x is None for x in sides):
                notes.append(f"{task} {name}: not in every stratum, not compared")
                continue
            metrics[name] = _pooled_entries(sides, level)
        out[task] = metrics
    return out, notes


def _task_replicates(pairs: dict, n: int, other_pos, n_boot: int, seed: int) -> dict:
    """``{metric: (ref points, other points, {quantity: [n_boot] differences}, attributes)}``
    of one task."""
    boot: dict = {name: {} for name in pairs}
    for idx in replicate_indices(n, n_boot, seed):
        for name, (rs, os_) in pairs.items():
            rq = _quantities(rs, rs.replicate_values(idx))
            oq = _quantities(os_, os_.replicate_values(other_pos[idx]))
            for key in rq.keys() & oq.keys():
                boot[name].setdefault(key, []).append(oq[key] - rq[key])
    return {
        name: (
            _points(rs),
            _points(os_),
            {k: np.concatenate(v) for k, v in boot[name].items()},
            [a for a in rs.groups if a in os_.groups],
        )
        for name, (rs, os_) in pairs.items()
    }


def _pooled_entries(sides: list[tuple], level: float) -> dict:
    """The ``overall`` / ``by_attribute`` entries of one metric, pooled over strata."""

    def entry(key):
        ref_v = float(np.mean([float(rp[key]) for rp, _, _, _ in sides]))
        other_v = float(np.mean([float(op[key]) for _, op, _, _ in sides]))
        d = np.mean([diffs[key] for _, _, diffs, _ in sides], axis=0)
        return {
            "ref": ref_v,
            "other": other_v,
            "diff": other_v - ref_v,
            "ci": list(percentile_ci(d, level)),
            "p_value": paired_p_value(d),
        }

    attrs = [a for a in sides[0][3] if all(a in s[3] for s in sides)]
    by_attr = {attr: {f: entry((attr, f)) for f in ATTRIBUTE_FIELDS} for attr in attrs}
    return {"overall": entry(("overall",)), "by_attribute": by_attr}


__all__ = [
    "ATTRIBUTE_FIELDS",
    "P_VALUE_DEFINITION",
    "compare_pooled",
    "compare_records",
    "holm",
    "paired_p_value",
]
