"""Clinical utility metrics for closed questions: label parsing, accuracy, macro-F1,
balanced accuracy and one-vs-rest AUC from option scores.

Conventions: labels are strings; a prediction of ``None`` is an *unparsed* answer, which
counts as wrong (it misses its true class and predicts no class). Point estimates are
scikit-learn's; each metric also carries a vectorised form for the bootstrap (see
:mod:`fairvlm.metrics.base`) that tests check against scikit-learn.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fairvlm.errors import bad_value
from fairvlm.metrics.base import Metric
from fairvlm.metrics.text import keyword_regex, plural_forms

_UNPARSED = "\x00unparsed"  # stands for None where scikit-learn needs a string


def normalize_label(text) -> str | None:
    """Lower-case, collapse whitespace, strip surrounding punctuation; ``None`` stays None."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    s = re.sub(r"\s+", " ", str(text)).strip().strip(".,;:!?\"'()[]").strip().lower()
    return s or None


@dataclass
class LabelParser:
    """Map free-text answers to a label vocabulary.

    Matching is case-insensitive at word boundaries (``nevus`` is found in "It is a
    Nevus." but not in "nevuses-like"), longest form first (``basal cell carcinoma``
    wins over ``carcinoma``). Synonyms map extra surface forms to a label. When an
    answer names several different labels, ``on_multiple="unparsed"`` (default) returns
    ``None`` and ``"first"`` returns the label named first. Negation ("not a nevus") is
    not understood.

    Attributes:
        labels: the canonical labels.
        synonyms: label -> other surface forms of it.
        plurals: also match plural forms of labels and synonyms.
        on_multiple: ``"unparsed"`` or ``"first"``.
    """

    labels: Sequence[str]
    synonyms: Mapping[str, Sequence[str]] = field(default_factory=dict)
    plurals: bool = False
    on_multiple: str = "unparsed"

    def __post_init__(self) -> None:
        self.labels = [str(x) for x in self.labels]
        if not self.labels:
            raise bad_value("labels", self.labels, "give at least one label")
        unknown = [k for k in self.synonyms if k not in self.labels]
        if unknown:
            raise bad_value(
                "synonyms", unknown, f"synonym keys must be labels, one of {self.labels}"
            )
        if self.on_multiple not in ("unparsed", "first"):
            raise bad_value("on_multiple", self.on_multiple, "use 'unparsed' or 'first'")
        self._form_to_label: dict[str, str] = {}
        for label in self.labels:
            for surface in [label, *self.synonyms.get(label, ())]:
                forms = plural_forms(surface) if self.plurals else [surface]
                for form in forms:
                    self._form_to_label.setdefault(_key(form), label)
        self._regex = keyword_regex(self._form_to_label, plurals=False)

    def parse(self, text: str | None) -> str | None:
        """The label named in ``text``, or ``None`` when none (or several) is named."""
        if text is None:
            return None
        exact = self._form_to_label.get(_key(normalize_label(text) or ""))
        if exact is not None:
            return exact
        found = [self._form_to_label[_key(m.group(0))] for m in self._regex.finditer(str(text))]
        if not found:
            return None
        if len(set(found)) > 1 and self.on_multiple == "unparsed":
            return None
        return found[0]

    def parse_many(self, texts: Sequence[str | None]) -> tuple[list[str | None], int]:
        """Parse every text; returns the labels and the number left unparsed."""
        out = [self.parse(t) for t in texts]
        return out, sum(x is None for x in out)


def _key(form: str) -> str:
    return re.sub(r"[\s\-]+", " ", form.strip().lower())


def _as_str(y) -> np.ndarray:
    return np.array([_UNPARSED if normalize_label(v) is None else str(v) for v in y], dtype=object)


def _class_stats(y_true, y_pred) -> np.ndarray:
    """Per sample ``[3, K]``: one-hot of true class, of predicted class, of a hit."""
    yt, yp = _as_str(y_true), _as_str(y_pred)
    labels = sorted(set(yt.tolist()) | set(yp.tolist()) - {_UNPARSED})
    index = {lab: i for i, lab in enumerate(labels)}
    n, k = len(yt), len(labels)
    out = np.zeros((n, 3, k))
    rows = np.arange(n)
    ti = np.array([index.get(v, -1) for v in yt])
    pi = np.array([index.get(v, -1) for v in yp])
    out[rows[ti >= 0], 0, ti[ti >= 0]] = 1.0
    out[rows[pi >= 0], 1, pi[pi >= 0]] = 1.0
    hit = (ti == pi) & (ti >= 0)
    out[rows[hit], 2, ti[hit]] = 1.0
    return out


def _accuracy_fn(y_true, y_pred) -> float:
    yt, yp = _as_str(y_true), _as_str(y_pred)
    return float(np.mean((yt == yp) & (yp != _UNPARSED))) if len(yt) else float("nan")


def _accuracy_from_stats(s: np.ndarray) -> np.ndarray:
    n = s[..., 0, :].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s[..., 2, :].sum(-1) / n, np.nan)


def _macro_f1_fn(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    yt, yp = _as_str(y_true), _as_str(y_pred)
    present = sorted(set(yt.tolist()) | set(yp.tolist()) - {_UNPARSED})
    if not present:
        return float("nan")
    # labels=present: the macro average is over classes seen in this group, and the
    # unparsed placeholder is not a class (an unparsed answer is only a miss).
    return float(f1_score(yt, yp, labels=present, average="macro", zero_division=0))


def _macro_f1_from_stats(s: np.ndarray) -> np.ndarray:
    true, pred, tp = s[..., 0, :], s[..., 1, :], s[..., 2, :]
    present = (true + pred) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / np.where(present, true + pred, 1), 0.0)
        return np.where(present.any(-1), f1.sum(-1) / present.sum(-1), np.nan)


def _balanced_accuracy_fn(y_true, y_pred) -> float:
    from sklearn.metrics import balanced_accuracy_score

    yt, yp = _as_str(y_true), _as_str(y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": expected
        return float(balanced_accuracy_score(yt, yp))


def _balanced_accuracy_from_stats(s: np.ndarray) -> np.ndarray:
    true, tp = s[..., 0, :], s[..., 2, :]
    present = true > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(present, tp / np.where(present, true, 1), 0.0)
        return np.where(present.any(-1), recall.sum(-1) / present.sum(-1), np.nan)


#: Fraction of answers equal to the target; an unparsed answer is wrong.
accuracy = Metric("accuracy", _accuracy_fn, _class_stats, _accuracy_from_stats)
#: Unweighted mean of per-class F1 over the classes present (in targets or answers).
macro_f1 = Metric("macro_f1", _macro_f1_fn, _class_stats, _macro_f1_from_stats)
#: Unweighted mean of per-class recall over the classes present in the targets.
balanced_accuracy = Metric(
    "balanced_accuracy", _balanced_accuracy_fn, _class_stats, _balanced_accuracy_from_stats
)


def chance_level(targets: Sequence[str | None], n_options: Sequence[int]) -> float:
    """The accuracy a model reaches without looking at the image:
    ``max(mean_i 1 / K_i, majority-class frequency)``, where ``K_i`` is the number of
    answers offered to sample ``i`` (uniform guessing) and the majority class is the most
    frequent target (always giving it). NaN without targets."""
    known = [t for t in targets if t is not None]
    k = np.asarray(n_options, dtype=np.float64)
    if not known or k.size == 0:
        return float("nan")
    majority = max(known.count(t) for t in set(known)) / len(known)
    return float(max(np.mean(1.0 / np.maximum(k, 1.0)), majority))


def softmax_scores(logprobs: np.ndarray) -> np.ndarray:
    """Option log-probabilities ``[n, K]`` -> probabilities over the options (rows sum to 1).

    ``-inf`` (an option a row did not offer) becomes probability 0.
    """
    lp = np.asarray(logprobs, dtype=np.float64)
    lp = lp - np.max(lp, axis=1, keepdims=True)
    e = np.exp(lp)
    return e / e.sum(axis=1, keepdims=True)


def ovr_auc(labels: Sequence[str]) -> Metric:
    """One-vs-rest macro AUC; ``y_pred`` is a score matrix ``[n, K]`` in ``labels`` order.

    Each class with at least one positive and one negative sample in the set gives a
    binary AUC (scikit-learn ``roc_auc_score``); the value is their mean, NaN when no
    class qualifies. (scikit-learn's multiclass form returns NaN as soon as one class is
    absent from a group, which would blank out most small groups.)
    """
    labels = [str(x) for x in labels]

    def fn(y_true, y_pred) -> float:
        from sklearn.metrics import roc_auc_score

        yt, scores = _as_str(y_true), np.asarray(y_pred, dtype=np.float64)
        aucs = []
        for k, lab in enumerate(labels):
            pos = yt == lab
            if pos.any() and not pos.all():
                aucs.append(roc_auc_score(pos, scores[:, k]))
        return float(np.mean(aucs)) if aucs else float("nan")

    def weighted(y_true, y_pred, w) -> np.ndarray:
        yt, scores = _as_str(y_true), np.asarray(y_pred, dtype=np.float64)
        per_class = [
            _weighted_binary_auc(yt == lab, scores[:, k], w) for k, lab in enumerate(labels)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no class defined -> NaN
            return np.nanmean(np.stack(per_class, axis=1), axis=1)

    return Metric("auc", fn, weighted=weighted)


def _weighted_binary_auc(pos: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC under sample weights ``w [B, n]``, ties counted one half.

    Vectorised over replicates (scikit-learn takes one weight vector per call): scores
    are sorted once, weights summed per block of tied scores, and each positive block
    counts the negative weight strictly below it plus half the tied one.
    """
    if w.shape[1] == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wp = np.add.reduceat(w[:, order] * pos[order], starts, axis=1)
    wn = np.add.reduceat(w[:, order] * ~pos[order], starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(1)
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
