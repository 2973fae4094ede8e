"""Demographic parity and equalised odds differences (fairlearn) for classification outputs.

Multi-class answers are handled one-vs-rest: for each class k the binary problem
"is k" (an unparsed answer is "not k"); the reported value is the largest difference
over classes, with the per-class values beside it.

Demographic parity is fairlearn's ``demographic_parity_difference``. Equalised odds is
``max(TPR gap, FPR gap)`` over the groups, as fairlearn's ``equalized_odds_difference``,
except where a rate is undefined: a group without positives of class k has no TPR, one
without negatives no FPR. fairlearn scores such a rate 0 (which makes the two classes of
a binary problem disagree: a one-member group lacks positives in one problem and
negatives in the other); here the undefined rate is NaN and left out of that rate's
gap, each gap needs two groups with the rate defined, and the difference is NaN when
neither gap is defined. Where every rate is defined the value is fairlearn's. With two
classes and no unparsed answers class B's TPR is 1 - class A's FPR and vice versa, so
both classes give the same numbers, degenerate groups included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fairvlm.metrics.clinical import normalize_label
from fairvlm.metrics.group import DEFAULT_INTERSECTIONS, attribute_columns


def classification_disparities(
    y_true,
    y_pred,
    sensitive_features: pd.DataFrame | pd.Series,
    *,
    labels: Sequence[str] | None = None,
    intersections: Sequence[Sequence[str]] | None = DEFAULT_INTERSECTIONS,
) -> dict[str, dict]:
    """Per attribute: ``demographic_parity_difference``, ``equalized_odds_difference``
    (max over classes) and ``per_class`` values; unknown attribute values left out.

    ``y_true`` may be ``None``: then only demographic parity (which does not use it) is
    computed. An equalised-odds rate a group cannot have (no positives: TPR; no
    negatives: FPR) is left out (module docstring); a difference is NaN when undefined.
    """
    from fairlearn.metrics import demographic_parity_difference

    yp = [normalize_label(v) for v in y_pred]
    yt = None if y_true is None else [normalize_label(v) for v in y_true]
    if labels is None:
        labels = sorted({v for v in (yt or []) + yp if v is not None})
    labels = [normalize_label(x) for x in labels]
    out: dict[str, dict] = {}
    for attr, col in attribute_columns(sensitive_features, intersections).items():
        known = np.array([v is not None for v in col])
        if known.sum() == 0:
            continue
        if known.sum() < 2:  # fairlearn cannot take one sample; a gap needs two anyway
            out[attr] = {
                "demographic_parity_difference": float("nan"),
                "equalized_odds_difference": float("nan"),
                "n_unknown": int((~known).sum()),
                "note": "undefined: fewer than 2 samples with a known value",
                "per_class": {},
            }
            if yt is None:
                del out[attr]["equalized_odds_difference"]
            continue
        groups = col[known].astype(str)
        per_class = {}
        for lab in labels:
            p = np.array([v == lab for v in yp])[known].astype(int)
            t = (
                np.zeros_like(p)
                if yt is None
                else np.array([v == lab for v in yt])[known].astype(int)
            )
            entry = {
                "demographic_parity_difference": float(
                    demographic_parity_difference(t, p, sensitive_features=groups)
                )
            }
            if yt is not None:
                entry["equalized_odds_difference"] = equalized_odds(t, p, groups)
            per_class[lab] = entry
        out[attr] = {
            key: _nanmax([c[key] for c in per_class.values()])
            for key in ("demographic_parity_difference", "equalized_odds_difference")
            if per_class and key in next(iter(per_class.values()))
        }
        out[attr]["n_unknown"] = int((~known).sum())
        out[attr]["per_class"] = per_class
    return out


def equalized_odds(y_true, y_pred, groups) -> float:
    """``max(TPR gap, FPR gap)`` of binary 0/1 arrays over ``groups``; a group's rate is
    NaN without positives (TPR) or negatives (FPR) and is left out of that gap; a gap
    needs two groups with the rate defined; NaN when neither gap is (module docstring)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    g = np.asarray(groups)
    gaps = []
    for cond in (t, ~t):  # TPR: P(pred | positive); FPR: P(pred | negative)
        rates = [p[(g == v) & cond].mean() for v in np.unique(g) if ((g == v) & cond).any()]
        if len(rates) >= 2:
            gaps.append(float(max(rates) - min(rates)))
    return max(gaps) if gaps else float("nan")


def _nanmax(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else float("nan")
