"""Metrics from audit records: the ``metrics.json`` of an audit, without the model.

Layout of the result (every dict of a metric carries ``"kind"``):

- ``kind: "group"``: ``overall``, ``ci``, ``n``, ``scale``, ``by_attribute`` (per attribute:
  ``groups`` {value, n, ci, small, diff_to_overall}, ``overall_known``, ``gap``,
  ``gap_ci``, ``ratio``, ``std``, ``es_fairclip`` (+``_ci``), ``es_fairllava`` (+``_ci``),
  ``n_unknown``, ``n_small``, ``left_out_of_gap``: the small groups the gap, ratio,
  std and ES leave out, named in a task note; ``gap_pair``: {groups [high, low], diff,
  ci}, the signed difference of the two groups that make the gap, that pair held fixed
  in every replicate). The accuracies (vqa ``accuracy``,
  ``option_accuracy``, ``balanced_accuracy``; concept ``accuracy``) add ``chance``: the
  accuracy without looking (:func:`fairvlm.metrics.clinical.chance_level`; for balanced
  accuracy ``1 / classes``). Per task: vqa ``accuracy``, ``macro_f1``,
  ``balanced_accuracy``, ``auc`` and ``option_accuracy`` (from option scores),
  ``parse_failures`` (rate of unparsed answers, plus ``count``); concept ``accuracy``,
  ``parse_failures``; report ``bleu1``, ``bleu4``, ``rouge_l``, ``meteor`` (only with
  WordNet); probe ``p_yes`` (mean P(yes)); describe ``mention_rate`` (any lexicon, plus
  ``by_lexicon``: one group dict per lexicon), ``sentiment`` (VADER compound, its gap is
  the sentiment gap); ``perplexity`` for report/describe when a reference LM is given.
- ``kind: "ranking"`` (probe): ``max_skew``, ``min_skew``, ``ndkl``, ``bias_at_k`` with
  ``overall`` (mean over attributes), ``by_attribute`` {attr: value} and ``k``; the
  per-concept table is ``skew_table`` {attr: {concept: {n, k, skew: {value: s}, ...}}}.
- ``kind: "disparity"`` (vqa, probe with targets): ``demographic_parity_difference`` and
  ``equalized_odds_difference`` with ``by_attribute`` {attr: value} and ``per_class``.

Task-level ``notes`` explain metrics left out (METEOR without WordNet, AUC without
option scores). Records with an ``error`` (samples an audit with ``skip_bad`` could not
read) are left out of every metric and counted as the task's ``n_failed``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fairvlm.errors import DataError, bad_value
from fairvlm.metrics import reports
from fairvlm.metrics.base import mean_metric
from fairvlm.metrics.clinical import (
    LabelParser,
    accuracy,
    balanced_accuracy,
    chance_level,
    macro_f1,
    normalize_label,
    ovr_auc,
    softmax_scores,
)
from fairvlm.metrics.config import DEFAULT_RECORD_INTERSECTIONS, MetricsConfig
from fairvlm.metrics.disparity import classification_disparities
from fairvlm.metrics.fluency import perplexity_metric, token_nll
from fairvlm.metrics.group import attribute_columns, group_report
from fairvlm.metrics.reports import (
    METEOR_MISSING,
    bleu1,
    bleu4,
    meteor,
    meteor_scores,
    rouge_l,
    rouge_l_scores,
)
from fairvlm.metrics.results import clean_json
from fairvlm.metrics.social import DEFAULT_LEXICON, mention_flags, ranking_bias, sentiment_scores
from fairvlm.registry import AUDIT_TASKS

ATTR_PREFIX = "attr."


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _as_list(v) -> list | None:
    return None if _missing(v) else list(v)


class TaskRecords:
    """One task's records, their sensitive features and the metrics config, with
    :meth:`group` (a ``group_report`` of one metric) and ``notes`` for what is left out:
    what a task's metric function receives."""

    def __init__(self, df: pd.DataFrame, attrs: list[str], cfg: MetricsConfig):
        self.df = df.reset_index(drop=True)
        self.sf = pd.DataFrame(
            {
                a: self.df[ATTR_PREFIX + a]
                .astype(object)
                .where(self.df[ATTR_PREFIX + a].notna(), None)
                for a in attrs
            }
        )
        self.cfg = cfg
        self.intersections = cfg.intersections or [list(p) for p in DEFAULT_RECORD_INTERSECTIONS]
        self.notes: list[str] = []

    def group(self, metric, y_true, y_pred, rows: np.ndarray | None = None) -> dict:
        sf = self.sf if rows is None else self.sf.iloc[rows].reset_index(drop=True)
        rep = group_report(
            metric,
            y_true,
            y_pred,
            sf,
            min_group_size=self.cfg.min_group_size,
            n_boot=self.cfg.n_boot,
            seed=self.cfg.seed,
            intersections=self.intersections,
            ci_level=self.cfg.ci_level,
            include_small_groups=self.cfg.include_small_groups,
        )
        for attr, r in rep.by_attribute.items():
            if r.left_out:
                note = (
                    f"{attr}: groups {r.left_out} have fewer than {self.cfg.min_group_size} "
                    "samples and are left out of its gaps and ES (metrics "
                    "include_small_groups: true counts them)"
                )
                if note not in self.notes:
                    self.notes.append(note)
        return {"kind": "group", **rep.to_dict()}


def _closed(ctx: TaskRecords, full: bool) -> dict:
    """vqa (``full``) and concept: parsed answers vs targets, option-score metrics."""
    df = ctx.df
    targets = [normalize_label(t) for t in df["target"]]
    options = [_as_list(o) for o in df["options"]] if "options" in df else [None] * len(df)
    labels = sorted(
        ({normalize_label(o) for opts in options if opts for o in opts} | set(targets)) - {None}
    )
    # The synonym table is shared by every closed task: keep the entries of this task's labels.
    synonyms = {k: v for k, v in ctx.cfg.label_synonyms.items() if k in labels}
    parser = LabelParser(labels, synonyms, on_multiple=ctx.cfg.on_multiple)
    logprob = (
        [_as_list(v) for v in df["option_logprob"]] if "option_logprob" in df else [None] * len(df)
    )
    scores = _score_matrix(options, logprob, labels)
    preds: list[str | None] = []
    for i in range(len(df)):
        given = df["pred"].iloc[i] if "pred" in df else None
        output = df["output"].iloc[i] if "output" in df else None
        if not _missing(given):
            preds.append(normalize_label(given))
        elif not _missing(output):
            preds.append(parser.parse(str(output)))
        elif np.isfinite(scores[i]).any():  # scoring-only record: the best option
            preds.append(
                labels[int(np.nanargmax(np.where(np.isfinite(scores[i]), scores[i], -np.inf)))]
            )
        else:
            preds.append(None)
    unparsed = np.array([p is None for p in preds], dtype=np.float64)
    # offered answers per sample: its options, else every label of the task
    n_options = [len(o) if o else len(labels) for o in options]
    out = {
        "accuracy": {
            **ctx.group(accuracy, targets, preds),
            "chance": chance_level(targets, n_options),
        }
    }
    if full:
        out["macro_f1"] = ctx.group(macro_f1, targets, preds)
        n_classes = len({t for t in targets if t is not None})
        out["balanced_accuracy"] = {
            **ctx.group(balanced_accuracy, targets, preds),
            "chance": 1.0 / n_classes if n_classes else None,  # any constant answer scores 1/C
        }
    out["parse_failures"] = {
        **ctx.group(mean_metric("parse_failures"), None, unparsed),
        "count": int(unparsed.sum()),
    }
    if not full:
        return out
    scored = np.flatnonzero(np.isfinite(scores).any(axis=1))
    if scored.size and len(labels) >= 2:
        probs = softmax_scores(np.where(np.isfinite(scores[scored]), scores[scored], -np.inf))
        t = [targets[i] for i in scored]
        out["auc"] = ctx.group(ovr_auc(labels), t, probs, rows=scored)
        best = [labels[j] for j in probs.argmax(axis=1)]
        out["option_accuracy"] = {
            **ctx.group(accuracy, t, best, rows=scored),
            "chance": chance_level(t, [n_options[i] for i in scored]),
        }
        if scored.size < len(df):
            ctx.notes.append(
                f"auc/option_accuracy use the {scored.size} of {len(df)} records with option scores"
            )
    else:
        ctx.notes.append("auc omitted: no option scores (option_logprob) in the records")
    out.update(_disparity_entries(targets, preds, ctx, labels))
    return out


def _score_matrix(options, logprob, labels) -> np.ndarray:
    """Per record, summed option log-probs aligned to ``labels`` (NaN where not offered)."""
    index = {lab: j for j, lab in enumerate(labels)}
    m = np.full((len(options), len(labels)), np.nan)
    for i, (opts, lps) in enumerate(zip(options, logprob, strict=True)):
        if opts and lps is not None and len(lps) == len(opts):
            for o, lp in zip(opts, lps, strict=True):
                j = index.get(normalize_label(o))
                if j is not None:
                    m[i, j] = float(lp)
    return m


def _disparity_entries(targets, preds, ctx: TaskRecords, labels) -> dict:
    disp = classification_disparities(
        targets, preds, ctx.sf, labels=labels, intersections=ctx.intersections
    )
    ctx.notes += [f"disparities by {a} {d['note']}" for a, d in disp.items() if "note" in d]
    out = {}
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        if all(key in d for d in disp.values()):
            out[key] = {
                "kind": "disparity",
                "by_attribute": {a: d[key] for a, d in disp.items()},
                "per_class": {
                    a: {c: v[key] for c, v in d["per_class"].items()} for a, d in disp.items()
                },
                "n_unknown": {a: d["n_unknown"] for a, d in disp.items()},
            }
    return out


def vqa_metrics(ctx: TaskRecords, reference_lm: Any = None) -> dict:
    """Metrics of closed VQA records (module doc)."""
    return _closed(ctx, full=True)


def concept_metrics(ctx: TaskRecords, reference_lm: Any = None) -> dict:
    """Metrics of closed concept-recognition records."""
    return _closed(ctx, full=False)


def report_metrics(ctx: TaskRecords, reference_lm: Any = None) -> dict:
    """Metrics of report-generation records (BLEU, ROUGE-L, METEOR, perplexity)."""
    refs = ["" if _missing(t) else str(t) for t in ctx.df["target"]]
    hyps = ["" if _missing(t) else str(t) for t in ctx.df["output"]]
    out = {
        "bleu1": ctx.group(bleu1, refs, hyps),
        "bleu4": ctx.group(bleu4, refs, hyps),
        "rouge_l": ctx.group(rouge_l, None, rouge_l_scores(refs, hyps)),
    }
    if reports.meteor_available():  # looked up when called: WordNet can be patched out
        out["meteor"] = ctx.group(meteor, None, meteor_scores(refs, hyps))
    else:
        ctx.notes.append(METEOR_MISSING)
    out.update(_perplexity(ctx, hyps, reference_lm))
    return out


def _perplexity(ctx: TaskRecords, texts, reference_lm) -> dict:
    if reference_lm is None:
        return {}

    model, tokenizer = reference_lm
    return {"perplexity": ctx.group(perplexity_metric, None, token_nll(texts, model, tokenizer))}


def probe_metrics(ctx: TaskRecords, reference_lm: Any = None) -> dict:
    """Metrics of yes/no probe records (P(yes), skews, NDKL, Bias@K, disparities)."""
    df = ctx.df
    p_yes = pd.to_numeric(df["p_yes"], errors="coerce").to_numpy(dtype=np.float64)
    out: dict = {"p_yes": ctx.group(mean_metric("p_yes"), None, p_yes)}
    per_attr = {}
    for attr, col in attribute_columns(ctx.sf, ctx.intersections).items():
        pair = ctx.cfg.bias_pairs.get(attr)
        per_attr[attr] = ranking_bias(
            p_yes, col, df["concept"].astype(str).tolist(), k=ctx.cfg.k, ids=df["sample_id"].tolist(),
            pair=tuple(pair) if pair else None,
        )  # fmt: skip
    for key in ("max_skew", "min_skew", "ndkl", "bias_at_k"):
        vals = {a: r[key] for a, r in per_attr.items() if r[key] is not None}
        out[key] = {
            "kind": "ranking",
            "overall": float(np.mean(list(vals.values()))) if vals else None,
            "by_attribute": vals,
            "k": ctx.cfg.k,
        }
    out["bias_at_k"]["pairs"] = {a: r["bias_pair"] for a, r in per_attr.items() if r["bias_pair"]}
    out["skew_table"] = {"kind": "table", **{a: r["per_concept"] for a, r in per_attr.items()}}
    if "target" in df and df["target"].notna().all() and "pred" in df:
        targets = [normalize_label(t) for t in df["target"]]
        preds = [None if _missing(p) else normalize_label(p) for p in df["pred"]]
        out["accuracy"] = ctx.group(accuracy, targets, preds)
        out.update(_disparity_entries(targets, preds, ctx, sorted(set(targets) - {None})))
    return out


def describe_metrics(ctx: TaskRecords, reference_lm: Any = None) -> dict:
    """Metrics of open-description records (mention rates, sentiment, perplexity)."""
    texts = [None if _missing(t) else str(t) for t in ctx.df["output"]]
    lexicon = ctx.cfg.lexicon or DEFAULT_LEXICON
    flags = mention_flags(texts, lexicon)
    mention = ctx.group(
        mean_metric("mention_rate"), None, flags.any(axis=1).to_numpy(dtype=np.float64)
    )
    mention["by_lexicon"] = {
        name: ctx.group(
            mean_metric(f"mention_rate.{name}"), None, flags[name].to_numpy(dtype=np.float64)
        )
        for name in flags.columns
    }
    out = {
        "mention_rate": mention,
        "sentiment": ctx.group(
            mean_metric("sentiment", scale="-1..1 (VADER compound)"), None, sentiment_scores(texts)
        ),
    }
    out.update(_perplexity(ctx, texts, reference_lm))
    return out


def compute_metrics(
    records: pd.DataFrame,
    *,
    model: str | None = None,
    data: str | None = None,
    min_group_size: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
    k: int | None = None,
    config: MetricsConfig | None = None,
    reference_lm: tuple | None = None,
) -> dict:
    """All metrics of an audit from its records (see the module docstring for the layout).

    Args:
        records: one row per (sample, task), columns as in the records contract.
        model, data: labels written into the result.
        min_group_size, n_boot, seed, k: shortcuts for the :class:`MetricsConfig`
            fields (ignored when ``config`` is given).
        reference_lm: ``(model, tokenizer)`` of a causal LM to score the fluency of
            report/describe outputs (perplexity); ``None`` skips it.

    Raises:
        DataError: missing columns, no records, unknown attributes, a task lacking the
            columns it needs (e.g. vqa without targets).
    """
    cfg = config or MetricsConfig(min_group_size=min_group_size, n_boot=n_boot, seed=seed, k=k)
    failed = _failed_counts(records)
    if failed:  # samples an audit with skip_bad could not read: counted, never scored
        records = records[records["error"].isna()]
        if records.empty:
            raise DataError(
                f"every record failed ({failed}; see the records' error column): fix the "
                "images and rerun the audit with --overwrite"
            )
    _validate(records, cfg)
    tasks: dict[str, dict] = {}
    for task, ctx in task_contexts(records, cfg):
        metrics = AUDIT_TASKS.get(task).compute(ctx, reference_lm)
        tasks[task] = {"n": len(ctx.df), "metrics": metrics, "notes": ctx.notes}
    for task, n in failed.items():
        entry = tasks.setdefault(task, {"n": 0, "metrics": {}, "notes": []})
        entry["n_failed"] = n
        entry["notes"].append(
            f"{n} samples failed (unreadable images, see the records' error column) and are "
            "left out of every metric"
        )
    return clean_json({"model": model, "data": data, "config": cfg.to_dict(), "tasks": tasks})


def task_contexts(
    records: pd.DataFrame, cfg: MetricsConfig, factory: type[TaskRecords] = TaskRecords
):
    """Yield ``(task, factory(df, attributes, cfg))`` per registered task of valid records
    (failed records already left out): what each task's metric function receives."""
    present = [c[len(ATTR_PREFIX) :] for c in records.columns if c.startswith(ATTR_PREFIX)]
    attrs = cfg.attributes or present
    for task, df in records.groupby("task", sort=True):
        # Records of several benchmarks can share a file: by default a task is audited on
        # the attributes it has values for.
        task_attrs = (
            attrs if cfg.attributes else [a for a in attrs if df[ATTR_PREFIX + a].notna().any()]
        )
        if str(task) not in AUDIT_TASKS:
            continue  # a plugin's task whose plugin is not loaded here
        yield str(task), factory(df, task_attrs, cfg)


def _failed_counts(records: pd.DataFrame) -> dict[str, int]:
    if not isinstance(records, pd.DataFrame) or "error" not in records.columns:
        return {}
    counts = records.loc[records["error"].notna(), "task"].value_counts()
    return {str(task): int(n) for task, n in counts.sort_index().items()}


def _validate(records: pd.DataFrame, cfg: MetricsConfig) -> None:
    if not isinstance(records, pd.DataFrame):
        raise bad_value(
            "records",
            type(records).__name__,
            "pass a pandas DataFrame (read_records(path))",
            DataError,
        )
    missing = [c for c in ("sample_id", "task") if c not in records.columns]
    if missing:
        raise bad_value(
            "records columns",
            list(records.columns),
            f"add the missing columns {missing}",
            DataError,
        )
    if len(records) == 0:
        raise bad_value(
            "records", "0 rows", "audit at least one sample before computing metrics", DataError
        )
    present = [c[len(ATTR_PREFIX) :] for c in records.columns if c.startswith(ATTR_PREFIX)]
    unknown = [a for a in cfg.attributes or () if a not in present]
    if unknown:
        raise bad_value(
            "attributes", unknown, f"use attributes present in the records: {present}", DataError
        )
    for task, df in records.groupby("task"):
        spec = AUDIT_TASKS.get(str(task)) if str(task) in AUDIT_TASKS else None
        for col in spec.metric_columns if spec else ():
            if col not in df.columns or df[col].isna().all():
                raise bad_value(
                    f"task {task!r}",
                    f"no {col!r} values",
                    f"task {task} needs {col!r}: audit data that has it",
                    DataError,
                )


__all__ = [
    "TaskRecords",
    "compute_metrics",
    "concept_metrics",
    "describe_metrics",
    "probe_metrics",
    "report_metrics",
    "vqa_metrics",
]
