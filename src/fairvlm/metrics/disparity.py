"""Demographic parity and equalised odds differences (fairlearn) for classification outputs.

Multi-class answers are handled one-vs-rest: for each class k the binary problem
"is k" (an unparsed answer is "not k"); the reported value is the largest difference
over classes, with the per-class values beside it. For two classes without unparsed
answers both classes give the same numbers.
"""

from __future__ import annotations

import warnings
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
    computed. Values are NaN where fairlearn finds them undefined (a group without
    positives or negatives for equalised odds).
    """
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

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
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        eo = float(equalized_odds_difference(t, p, sensitive_features=groups))
                    except ValueError:  # a group lacks positives or negatives
                        eo = float("nan")
                entry["equalized_odds_difference"] = eo
            per_class[lab] = entry
        out[attr] = {
            key: _nanmax([c[key] for c in per_class.values()])
            for key in ("demographic_parity_difference", "equalized_odds_difference")
            if per_class and key in next(iter(per_class.values()))
        }
        out[attr]["n_unknown"] = int((~known).sum())
        out[attr]["per_class"] = per_class
    return out


def _nanmax(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else float("nan")
