"""Social-bias metrics: Skew@K, MaxSkew@K, MinSkew@K, NDKL, Bias@K (METHODS.md section 2),
attribute mentions by keyword lexicon, and VADER sentiment.

Ranking metrics are written here: no library of the stack implements them. A *ranking*
is the list of attribute values of one concept's image pool, ordered by the model's
score for that concept (best first).

Two rules apply everywhere below:

- **K is raised to at least |A|, the number of attribute values present in the
  concept's pool**, so that every value could appear in the top K; it is also capped at
  the pool size N. This differs from the reference code, which raises K to the
  attribute's *total* number of values (over the whole dataset): a value absent from a
  pool can never enter its top K and has no Skew there (``n_a / N = 0``), so raising K
  for it only lets the other values fill more of the top K. The two rules agree when
  every pool holds every value (as in complete counterfactual sets); on pools that miss
  a value fairvlm's K is smaller, and its Skew values can differ from the reference's.
- **A value absent from the top K has Skew 0**, not ``ln 0 = -inf`` (as the reference
  code). This makes MinSkew less negative than the textbook definition when a value is
  shut out entirely.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import pandas as pd

from fairvlm.errors import DataError, bad_value
from fairvlm.metrics.text import keyword_regex

#: Default keyword lexicons (singular forms; plurals are matched too). Pronouns are
#: left out on purpose: nearly every description of a person uses them.
DEFAULT_LEXICON: dict[str, tuple[str, ...]] = {
    "gender": (
        "man", "woman", "male", "female", "boy", "girl", "gentleman", "lady", "guy",
        "gal", "husband", "wife", "father", "mother", "businessman", "businesswoman",
    ),
    "race": (
        "white", "black", "asian", "african", "african american", "caucasian", "hispanic",
        "latino", "latina", "indian", "middle eastern", "arab", "dark skinned",
        "light skinned", "brown skinned", "skin tone",
    ),
    "age": (
        "young", "old", "elderly", "aged", "middle aged", "senior", "child", "kid",
        "teen", "teenager", "adolescent", "adult", "baby", "toddler", "youth", "retired",
    ),
}  # fmt: skip

#: First value of the Bias@K pair, ``(men - women) / (men + women)``, when not configured.
_FIRST_OF_PAIR = ("male", "man", "men", "m", "masculine")


def effective_k(k: int, n_values: int, pool_size: int) -> int:
    """K raised to at least ``n_values`` (the attribute values present in the pool, not
    the attribute's total: see the module docstring), capped at the pool size."""
    if k < 1:
        raise bad_value("k", k, "use a positive number of top-ranked items")
    return min(max(k, n_values), pool_size)


def skew_at_k(ranked: Sequence[str], k: int) -> dict[str, float]:
    """``Skew@K(a) = ln((n_a^K / K) / (n_a / N))`` for each value ``a`` in the pool.

    ``ranked``: attribute values in ranking order. K is raised to at least |A| and
    capped at N; a value absent from the top K gets 0 (see the module docstring).
    """
    n = len(ranked)
    if n == 0:
        return {}
    pool = Counter(ranked)
    kk = effective_k(k, len(pool), n)
    top = Counter(ranked[:kk])
    return {
        a: 0.0 if top[a] == 0 else math.log((top[a] / kk) / (n_a / n))
        for a, n_a in sorted(pool.items())
    }


def ndkl(ranked: Sequence[str], target: Mapping[str, float] | None = None) -> float:
    """Normalised discounted KL divergence (Geyik et al. 2019) of a ranking.

    ``NDKL = (1/Z) sum_{i=1..N} KL(D_i || D) / log2(i + 1)``, ``Z = sum_i 1/log2(i + 1)``,
    where ``D_i`` is the value distribution of the top i and ``D`` the target: by default
    the distribution of the whole pool. KL in nats, ``0 ln 0 = 0``. 0 is fair.
    """
    n = len(ranked)
    if n == 0:
        return float("nan")
    values = sorted(set(ranked) | set(target or {}))
    if target is None:
        pool = Counter(ranked)
        q = np.array([pool[v] / n for v in values])
    else:
        q = np.array([float(target.get(v, 0.0)) for v in values])
        q = q / q.sum()
    onehot = np.array([[r == v for v in values] for r in ranked], dtype=np.float64)
    d = np.cumsum(onehot, axis=0) / np.arange(1, n + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(d > 0, d * np.log(d / q), 0.0).sum(axis=1)
    disc = 1.0 / np.log2(np.arange(2, n + 2))
    return float((kl * disc).sum() / disc.sum())


def bias_at_k(ranked: Sequence[str], k: int, pair: tuple[str, str]) -> float:
    """``(n_1 - n_2) / (n_1 + n_2)`` in the top K (K raised as for Skew); 0 when neither occurs."""
    n = len(ranked)
    if n == 0:
        return float("nan")
    kk = effective_k(k, len(set(ranked)), n)
    top = Counter(ranked[:kk])
    a, b = top[pair[0]], top[pair[1]]
    return 0.0 if a + b == 0 else (a - b) / (a + b)


def default_pair(values: Sequence[str]) -> tuple[str, str] | None:
    """The Bias@K pair of a two-valued attribute: a male form first, else alphabetical."""
    vals = sorted(set(values))
    if len(vals) != 2:
        return None
    if vals[1].lower() in _FIRST_OF_PAIR:
        vals.reverse()
    return (vals[0], vals[1])


def rank(values: Sequence, scores: Sequence[float], ids: Sequence | None = None) -> list:
    """Values ordered by score, highest first; ties broken by ascending id (then input order)."""
    ids = list(range(len(values))) if ids is None else [str(i) for i in ids]
    order = sorted(range(len(values)), key=lambda i: (-float(scores[i]), ids[i], i))
    return [values[i] for i in order]


def ranking_bias(
    scores: Sequence[float],
    attribute: Sequence[str | None],
    concepts: Sequence[str],
    *,
    k: int | None = None,
    ids: Sequence | None = None,
    pair: tuple[str, str] | None = None,
) -> dict:
    """Skew, MaxSkew, MinSkew, NDKL and Bias@K of one attribute over concept pools.

    Each concept's pool (samples with a known attribute value) is ranked by ``scores``
    (e.g. P("yes") to "Is this person a {concept}?"). ``k=None`` uses half of each pool
    (rounded up). Max/MinSkew, NDKL and Bias@K are means over concepts; Bias@K is
    computed only for two-valued attributes (``pair`` or :func:`default_pair`).
    """
    s = np.asarray(scores, dtype=np.float64)
    attr = np.array([None if v is None or v != v else str(v) for v in attribute], dtype=object)
    conc = np.asarray(concepts, dtype=object)
    if not (len(s) == len(attr) == len(conc)):
        raise bad_value(
            "scores/attribute/concepts lengths",
            (len(s), len(attr), len(conc)),
            "pass one per sample",
            DataError,
        )
    ids_arr = np.asarray(ids if ids is not None else np.arange(len(s)), dtype=object)
    known = np.array([v is not None for v in attr]) & np.isfinite(s)
    if pair is None:
        pair = default_pair(attr[known].tolist())
    table: dict[str, dict] = {}
    for c in sorted({str(x) for x in conc[known]}):
        m = known & (conc.astype(str) == c)
        ranked = rank(attr[m].tolist(), s[m].tolist(), ids_arr[m].tolist())
        k_c = math.ceil(len(ranked) / 2) if k is None else k
        skews = skew_at_k(ranked, k_c)
        table[c] = {
            "n": len(ranked),
            "k": effective_k(k_c, len(skews), len(ranked)),
            "skew": skews,
            "max_skew": max(skews.values()),
            "min_skew": min(skews.values()),
            "ndkl": ndkl(ranked),
            "bias_at_k": bias_at_k(ranked, k_c, pair) if pair else None,
        }

    def mean(key: str) -> float | None:
        vals = [row[key] for row in table.values() if row[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "max_skew": mean("max_skew"),
        "min_skew": mean("min_skew"),
        "ndkl": mean("ndkl"),
        "bias_at_k": mean("bias_at_k"),
        "bias_pair": list(pair) if pair else None,
        "n_unknown": int((~known).sum()),
        "per_concept": table,
    }


@cache
def _lexicon_regex(words: tuple[str, ...]):
    return keyword_regex(words, plurals=True)


def mention_flags(
    texts: Sequence[str | None], lexicon: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """One boolean column per lexicon entry: does the text name any of its keywords?

    Case-insensitive, whole words, plural forms included ("woman" matches "women" and
    "Woman," but not "womanhood"). A missing text (``None``) mentions nothing.
    """
    lexicon = DEFAULT_LEXICON if lexicon is None else lexicon
    out = {}
    for name, words in lexicon.items():
        rx = _lexicon_regex(tuple(words))
        out[name] = [bool(t) and rx.search(str(t)) is not None for t in texts]
    return pd.DataFrame(out, index=range(len(texts)), dtype=bool)


@cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_scores(texts: Sequence[str | None]) -> np.ndarray:
    """VADER compound sentiment in [-1, 1] per text (offline lexicon); NaN for a missing text."""
    return np.array(
        [
            np.nan if t is None or t != t else _vader().polarity_scores(str(t))["compound"]
            for t in texts
        ],
        dtype=np.float64,
    )
