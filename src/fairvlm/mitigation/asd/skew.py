"""Skew estimation with the model being trained (METHODS.md section 2).

For each concept, the *pool* of counterfactual images is scored with the yes/no probe
P("yes" | "Is this person {phrase}?"), ranked, and Skew@K is computed per (attribute
value, concept) for every social attribute with ``fairvlm.metrics.ranking_bias`` (its
rules apply: K raised to at least |A|, Skew 0 for a value absent from the top K).

A training sample P_i then gets ``Skew(P_i)`` = the signed skew of its attribute with the
largest ``|Skew|`` for its concept (ties: the first attribute in ``attributes`` order).

Pools: an image is identified by its counterfactual set and its attribute values (a set
holds one image per attribute combination), so the several instruction samples of one
image are scored once. The image's concept is the concept of its counterfactual set (the
most common ``concept`` among the set's samples), so that a negative probe ("Is this
doctor a nurse?", concept ``nurse``) does not put a doctor's image into the nurse pool.
A sample's skew is looked up under the sample's own ``concept``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairvlm.audit.tasks import p_yes
from fairvlm.data.concepts import concept_phrase
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError
from fairvlm.metrics.social import ranking_bias

#: The sample fields ASD reads (the columns of a stored split).
REQUIRED_COLUMNS = ("counterfactual_set", "concept", "attributes")


def _examples(ids: Sequence[str]) -> str:
    return ", ".join(repr(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")


def check_asd_data(samples: Sequence[Sample], attributes: Sequence[str] | None = None) -> list[str]:
    """Validate training data for ASD; return the social attributes whose skew is estimated.

    Every sample needs a ``counterfactual_set``, a ``concept`` and at least one known
    value among ``attributes``; each of ``attributes`` (default: every attribute with
    >= 2 known values) needs >= 2 known values. Runs before any model work.

    Raises:
        DataError: naming the columns ASD needs, how many samples lack each, examples
            and the fix.
    """
    samples = list(samples)
    if not samples:
        raise DataError("samples=[] is empty: ASD needs counterfactual training samples")
    lacking: dict[str, list[str]] = {
        "counterfactual_set": [s.id for s in samples if not s.counterfactual_set],
        "concept": [s.id for s in samples if not s.concept],
        "attributes": [
            s.id for s in samples if not any(v is not None for v in (s.attributes or {}).values())
        ],
    }
    problems = [
        f"{len(ids)} of {len(samples)} samples have no {col} (e.g. {_examples(ids)})"
        for col, ids in lacking.items()
        if ids
    ]
    if problems:
        raise DataError(
            f"ASD needs the columns {', '.join(REQUIRED_COLUMNS)} on every training sample "
            f"(counterfactual image sets with a social concept and social attributes), but "
            f"{'; '.join(problems)}. Train on counterfactual data, e.g. "
            "`fairvlm.mitigation.asd.build_cmsc` or the finetune split of `fairvlm data synth "
            "social`, or use a method that does not need them (lora, naive)."
        )
    present = sorted({k for s in samples for k in s.attributes})
    known = {a: sorted({s.attributes.get(a) for s in samples} - {None}) for a in present}
    if attributes is None:
        chosen = [a for a in present if len(known[a]) >= 2]
        if not chosen:
            raise DataError(
                f"attributes: no attribute of the training data has >= 2 known values "
                f"({ {a: known[a] for a in present} }); skew compares values: use data whose "
                "counterfactual sets vary a social attribute"
            )
        return chosen
    for name in attributes:
        if name not in known:
            raise DataError(
                f"attributes: {name!r} is not in the training data (its attributes: "
                f"{', '.join(present) or 'none'}); name one of those"
            )
        if len(known[name]) < 2:
            raise DataError(
                f"attributes: {name!r} has {len(known[name])} known value(s) ({known[name]}) in "
                "the training data; skew compares values: drop it or use data with >= 2"
            )
    return list(attributes)


@dataclass
class ConceptPools:
    """The distinct images of the training data, grouped by concept.

    Attributes:
        items: index (in the training samples) of the sample whose image represents each
            pool image; ``ids``: a stable id per pool image (ranking tie-break).
        concepts: the concept of each pool image (its counterfactual set's concept).
        values: attribute -> the value of each pool image (``None`` = unknown).
        vocab: attribute -> every known value in the training data.
    """

    items: list[int]
    ids: list[str]
    concepts: list[str]
    values: dict[str, list[str | None]]
    vocab: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.items)


def build_pools(samples: Sequence[Sample], attributes: Sequence[str]) -> ConceptPools:
    """Group the training samples' distinct images into concept pools (see module docstring)."""
    by_set: dict[str, Counter] = {}
    for s in samples:
        by_set.setdefault(str(s.counterfactual_set), Counter())[str(s.concept)] += 1
    set_concept = {
        k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in by_set.items()
    }
    seen: dict[tuple, int] = {}
    for i, s in enumerate(samples):
        key = (str(s.counterfactual_set), tuple(sorted((k, v) for k, v in s.attributes.items())))
        seen.setdefault(key, i)
    items = list(seen.values())
    return ConceptPools(
        items=items,
        ids=[f"{samples[i].counterfactual_set}/{samples[i].id}" for i in items],
        concepts=[set_concept[str(samples[i].counterfactual_set)] for i in items],
        values={a: [samples[i].attributes.get(a) for i in items] for a in attributes},
        vocab={a: sorted({s.attributes.get(a) for s in samples} - {None}) for a in attributes},
    )


@dataclass
class SkewTable:
    """Skew@K per (attribute, concept, value), with the per-attribute summaries.

    Attributes:
        skew: attribute -> concept -> value -> Skew@K.
        per_concept: attribute -> ``ranking_bias(...)["per_concept"]`` (n, k, max/min skew, NDKL).
        summary: attribute -> {"max_skew", "min_skew", "ndkl"} (means over concepts).
        missing: one entry per (concept, attribute) whose pool lacks values of the
            attribute's vocabulary: ``{"concept", "attribute", "values"}``. Those values
            have no skew for that concept (a sample carrying one is not skewed by it).
    """

    skew: dict[str, dict[str, dict[str, float]]]
    per_concept: dict[str, dict[str, Any]]
    summary: dict[str, dict[str, float | None]]
    missing: list[dict[str, Any]] = field(default_factory=list)

    def mean(self, key: str) -> float | None:
        """Mean over attributes of a summary entry (``max_skew``, ``min_skew``, ``ndkl``)."""
        vals = [s[key] for s in self.summary.values() if s.get(key) is not None]
        return float(np.mean(vals)) if vals else None


def missing_values(pools: ConceptPools, attributes: Sequence[str]) -> list[dict[str, Any]]:
    """(concept, attribute) pairs whose pool lacks some of the attribute's known values."""
    out = []
    for concept in sorted(set(pools.concepts)):
        idx = [i for i, c in enumerate(pools.concepts) if c == concept]
        for attr in attributes:
            have = {pools.values[attr][i] for i in idx} - {None}
            absent = [v for v in pools.vocab[attr] if v not in have]
            if absent:
                out.append({"concept": concept, "attribute": attr, "values": absent})
    return out


def skew_table(
    p_yes: Sequence[float], pools: ConceptPools, attributes: Sequence[str], k: int | None = None
) -> SkewTable:
    """Skew@K of every (attribute value, concept) from the pool images' P(yes)."""
    skew, per_concept, summary = {}, {}, {}
    for attr in attributes:
        res = ranking_bias(p_yes, pools.values[attr], pools.concepts, k=k, ids=pools.ids)
        per_concept[attr] = res["per_concept"]
        skew[attr] = {c: dict(row["skew"]) for c, row in res["per_concept"].items()}
        summary[attr] = {key: res[key] for key in ("max_skew", "min_skew", "ndkl")}
    return SkewTable(skew, per_concept, summary, missing_values(pools, attributes))


def sample_skews(
    samples: Sequence[Sample], table: SkewTable, attributes: Sequence[str]
) -> tuple[np.ndarray, list[str | None]]:
    """``(Skew(P_i) [N], the attribute chosen for each sample)``.

    The chosen attribute is the one with the largest ``|Skew|`` for the sample's concept
    (the first in ``attributes`` order on ties); ``None`` with Skew 0 when no attribute
    of the sample has a skew for its concept (unknown values, missing pool values).
    """
    skews = np.zeros(len(samples), dtype=np.float64)
    chosen: list[str | None] = []
    for i, s in enumerate(samples):
        best: tuple[float, str] | None = None
        for attr in attributes:
            value = s.attributes.get(attr)
            row = table.skew.get(attr, {}).get(str(s.concept), {})
            if value is None or value not in row:
                continue
            if best is None or abs(row[value]) > abs(best[0]):
                best = (row[value], attr)
        if best is not None:
            skews[i] = best[0]
        chosen.append(None if best is None else best[1])
    return skews, chosen


@dataclass
class EpochSkew:
    """The skew estimate of one epoch: pool scores, the table and each sample's skew."""

    epoch: int
    p_yes: np.ndarray
    table: SkewTable
    skews: np.ndarray
    chosen: list[str | None]

    def summary(self) -> dict[str, float]:
        """Flat scalars for the Trainer's log (``asd/...``)."""
        out: dict[str, float] = {"asd/epoch": float(self.epoch)}
        for key in ("max_skew", "min_skew", "ndkl"):
            mean = self.table.mean(key)
            if mean is not None:
                out[f"asd/{key}"] = mean
            for attr, row in self.table.summary.items():
                if row.get(key) is not None:
                    out[f"asd/{key}/{attr}"] = float(row[key])
        out["asd/sample_skew_mean"] = float(self.skews.mean()) if len(self.skews) else 0.0
        out["asd/sample_skew_abs_mean"] = (
            float(np.abs(self.skews).mean()) if len(self.skews) else 0.0
        )
        out["asd/p_yes_mean"] = float(np.nanmean(self.p_yes)) if len(self.p_yes) else math.nan
        for attr, n in Counter(a for a in self.chosen if a is not None).items():
            out[f"asd/chosen/{attr}"] = float(n)
        return out


class SkewEstimator:
    """Scores the concept pools with the current model and caches the result per epoch.

    Args:
        adapter: the ``VLMAdapter`` being trained (its ``model`` may be a ``PeftModel``).
        samples: the training samples (validated with :func:`check_asd_data`).
        attributes: the social attributes whose skew is estimated.
        config: an ``ASDConfig`` (probe template and options, K, batch size, progress).
    """

    def __init__(
        self, adapter: Any, samples: Sequence[Sample], attributes: Sequence[str], config: Any
    ) -> None:
        self.adapter = adapter
        self.samples = list(samples)
        self.attributes = list(attributes)
        self.config = config
        self.pools = build_pools(self.samples, self.attributes)
        self.probes = [
            dataclasses.replace(
                self.samples[i],
                prompt=config.probe_template.format(concept=c, phrase=concept_phrase(c)),
                task="probe",
                target=None,
                options=list(config.probe_options),
            )
            for i, c in zip(self.pools.items, self.pools.concepts, strict=True)
        ]
        self.missing = missing_values(self.pools, self.attributes)
        for row in self.missing:
            warnings.warn(
                f"ASD: the pool of concept {row['concept']!r} has no image with "
                f"{row['attribute']}={', '.join(row['values'])}: those values get no skew for "
                "that concept (they are reported in the training log, not skewed)",
                stacklevel=2,
            )
        self._cache: dict[int, EpochSkew] = {}

    def score(self) -> np.ndarray:
        """P(yes) of every pool image under the current model (eval mode, batched)."""
        from tqdm.auto import tqdm

        model = self.adapter.model
        was_training = model.training
        model.eval()
        out = np.full(len(self.probes), np.nan)
        size = self.config.batch_size
        starts = range(0, len(self.probes), size)
        try:
            for start in tqdm(starts, desc="ASD skew", disable=not self.config.progress):
                chunk = self.probes[start : start + size]
                scores = self.adapter.score_options(
                    chunk, list(self.config.probe_options), batch_size=2 * len(chunk)
                )
                for j, (lp_yes, lp_no) in enumerate(scores.sum_logprob[:, :2]):
                    value = p_yes(float(lp_yes), float(lp_no))
                    out[start + j] = np.nan if value is None else value
        finally:
            model.train(was_training)
        return out

    def estimate(self, epoch: int) -> EpochSkew:
        """The skew of ``epoch`` (scored once per epoch, then cached)."""
        if epoch not in self._cache:
            scores = self.score()
            table = skew_table(scores, self.pools, self.attributes, self.config.k)
            skews, chosen = sample_skews(self.samples, table, self.attributes)
            self._cache[epoch] = EpochSkew(epoch, scores, table, skews, chosen)
        return self._cache[epoch]


__all__ = [
    "REQUIRED_COLUMNS",
    "ConceptPools",
    "EpochSkew",
    "SkewEstimator",
    "SkewTable",
    "build_pools",
    "check_asd_data",
    "missing_values",
    "sample_skews",
    "skew_table",
]
