"""Rows at chance: a model whose accuracy is no better than not looking at the image.

A row is **collapsed** on an accuracy column when its value is at or below the column's
chance level (``value <= chance``, the point estimate: a CI bound would flag nothing on
a small test split, and a model exactly at chance must be flagged). Chance is the
audit's (:func:`fairvlm.metrics.clinical.chance_level`: ``max(1/K, majority-class
frequency)``). Such a row's gap is no fairness (a model that always answers the same
has no gap) and its other numbers are no trade-off: it is never marked better and the
report draws it apart from the Pareto front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Values within this of chance count as at chance (float noise of the means).
TOLERANCE = 1e-9


def collapsed_on(values: dict[str, dict[str, Any]], columns: Sequence[Any]) -> list[str]:
    """The keys of the columns (with a ``chance``) where the row's value is at or below
    chance."""
    out = []
    for col in columns:
        value = values.get(col.key, {}).get("value")
        if col.chance is not None and value is not None and value <= col.chance + TOLERANCE:
            out.append(col.key)
    return out
