"""Report-generation metrics: BLEU-1/4 (sacrebleu), ROUGE-L (rouge-score), METEOR (nltk).

All on a 0-1 scale (sacrebleu's 0-100 BLEU is divided by 100), so that equity-scaled
forms are comparable across metrics. BLEU is corpus-level: a group's BLEU is computed
from the summed n-gram statistics of its reports, which is also what makes its
bootstrap a matrix product. ROUGE-L and METEOR are means of per-report F-scores.
METEOR needs NLTK's WordNet data; without it the metric is omitted (never faked).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from fairvlm.metrics.base import Metric, mean_metric

#: Shown when METEOR is asked for and WordNet is missing.
METEOR_MISSING = (
    "METEOR omitted: NLTK's WordNet data is not installed. "
    "Install it with `python -m nltk.downloader wordnet` (and `omw-1.4`), then recompute."
)


def _texts(x) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in x]


@cache
def _bleu(order: int):
    from sacrebleu.metrics import BLEU

    return BLEU(max_ngram_order=order)


def bleu(order: int = 4) -> Metric:
    """Corpus BLEU with n-grams up to ``order`` (sacrebleu defaults: 13a, exp smoothing).

    ``y_true`` are the reference reports, ``y_pred`` the generated ones.
    """

    def fn(refs, hyps) -> float:
        return _bleu(order).corpus_score(_texts(hyps), [_texts(refs)]).score / 100.0

    def stats(refs, hyps) -> np.ndarray:
        # sacrebleu's sufficient statistics of one segment: lengths, matches, totals.
        out = []
        for r, h in zip(_texts(refs), _texts(hyps), strict=True):
            s = _bleu(order).corpus_score([h], [[r]])
            out.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
        return np.asarray(out, dtype=np.float64).reshape(-1, 2 + 2 * order)

    def from_stats(s: np.ndarray) -> np.ndarray:
        from sacrebleu.metrics import BLEU

        b = _bleu(order)
        flat = s.reshape(-1, s.shape[-1])
        vals = [
            BLEU.compute_bleu(
                row[2 : 2 + order].tolist(),
                row[2 + order :].tolist(),
                int(row[0]),
                int(row[1]),
                smooth_method=b.smooth_method,
                smooth_value=b.smooth_value,
                max_ngram_order=order,
            ).score
            / 100.0
            if row[1] > 0
            else np.nan
            for row in flat
        ]
        return np.asarray(vals).reshape(s.shape[:-1])

    return Metric(f"bleu{order}", fn, stats=stats, from_stats=from_stats)


@cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_scores(refs, hyps) -> np.ndarray:
    """Per-report ROUGE-L F-measure (rouge-score, Porter stemming)."""
    return np.array(
        [
            _rouge().score(r, h)["rougeL"].fmeasure
            for r, h in zip(_texts(refs), _texts(hyps), strict=True)
        ]
    )


def meteor_available() -> bool:
    """Whether NLTK's WordNet data can be loaded (METEOR needs it)."""
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
    except LookupError:
        return False
    return True


def meteor_scores(refs, hyps) -> np.ndarray:
    """Per-report METEOR (nltk, lower-cased whitespace tokens). Needs WordNet.

    Raises:
        LookupError: WordNet is missing; the message says how to install it.
    """
    if not meteor_available():
        raise LookupError(METEOR_MISSING)
    from nltk.translate.meteor_score import meteor_score

    return np.array(
        [
            meteor_score([r.lower().split()], h.lower().split())
            for r, h in zip(_texts(refs), _texts(hyps), strict=True)
        ]
    )


#: Mean of per-sample values; feed ``rouge_l_scores`` / ``meteor_scores`` as ``y_pred``.
rouge_l = mean_metric("rouge_l")
meteor = mean_metric("meteor")
bleu1 = bleu(1)
bleu4 = bleu(4)
