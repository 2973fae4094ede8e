"""The result objects of :func:`fairvlm.metrics.group_report` and their JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class GroupValue:
    """One group's metric value, sample count, bootstrap CI and small-group flag."""

    value: float
    n: int
    ci: tuple[float, float]
    small: bool
    diff_to_overall: float


@dataclass
class AttributeReport:
    """Per-attribute disparity summary (an attribute may be an intersection).

    ``overall_known`` is the metric over the samples whose value of this attribute is
    known; the gap, ratio, std and equity-scaled forms use it as ``M``. Small groups
    (fewer samples than ``min_group_size``) stay in ``groups``, flagged, but are left
    out of gap/ratio/std/ES (``left_out``) unless ``include_small_groups`` is set.
    ``pair``: ``{"groups": [high, low], "diff", "ci"}``, the signed difference of the two
    groups that make the gap, with the bootstrap CI of that fixed pair (``None`` with
    fewer than two groups).
    ``std`` is the population standard deviation (ddof=0) of the group values;
    ``ratio`` is min/max and is NaN when a group value is negative.
    """

    name: str
    groups: dict[str, GroupValue]
    overall_known: float
    gap: float
    gap_ci: tuple[float, float]
    ratio: float
    std: float
    es_fairclip: float
    es_fairclip_ci: tuple[float, float]
    es_fairllava: float
    es_fairllava_ci: tuple[float, float]
    n_unknown: int
    left_out: list[str] = field(default_factory=list)
    pair: dict | None = None

    @property
    def n_small(self) -> int:
        return sum(g.small for g in self.groups.values())


@dataclass
class GroupMetrics:
    """The result of :func:`group_report`, shaped like fairlearn's ``MetricFrame``."""

    metric: str
    overall: float
    overall_ci: tuple[float, float]
    n: int
    by_attribute: dict[str, AttributeReport]
    n_boot: int
    seed: int
    min_group_size: int
    ci_level: float = 0.95
    scale: str = "0-1"
    extra: dict = field(default_factory=dict)

    @property
    def by_group(self) -> pd.DataFrame:
        """One row per (attribute, group): value, n, ci_lo, ci_hi, small."""
        rows = [
            {
                "attribute": a,
                "group": g,
                "value": v.value,
                "n": v.n,
                "ci_lo": v.ci[0],
                "ci_hi": v.ci[1],
                "small": v.small,
            }
            for a, rep in self.by_attribute.items()
            for g, v in rep.groups.items()
        ]
        return pd.DataFrame(
            rows, columns=["attribute", "group", "value", "n", "ci_lo", "ci_hi", "small"]
        )

    def difference(self) -> pd.Series:
        """Gap (max - min over groups) per attribute."""
        return pd.Series({a: r.gap for a, r in self.by_attribute.items()}, name=self.metric)

    def ratio(self) -> pd.Series:
        """Ratio (min / max over groups) per attribute."""
        return pd.Series({a: r.ratio for a, r in self.by_attribute.items()}, name=self.metric)

    def to_dict(self) -> dict:
        """The ``metrics.json`` form of one metric (NaN written as ``null``)."""
        out = {
            "overall": self.overall,
            "ci": list(self.overall_ci),
            "n": self.n,
            "scale": self.scale,
            "by_attribute": {
                a: {
                    "groups": {
                        g: {
                            "value": v.value,
                            "n": v.n,
                            "ci": list(v.ci),
                            "small": v.small,
                            "diff_to_overall": v.diff_to_overall,
                        }
                        for g, v in r.groups.items()
                    },
                    "overall_known": r.overall_known,
                    "gap": r.gap,
                    "gap_ci": list(r.gap_ci),
                    "ratio": r.ratio,
                    "std": r.std,
                    "es_fairclip": r.es_fairclip,
                    "es_fairclip_ci": list(r.es_fairclip_ci),
                    "es_fairllava": r.es_fairllava,
                    "es_fairllava_ci": list(r.es_fairllava_ci),
                    "n_unknown": r.n_unknown,
                    "n_small": r.n_small,
                    "left_out_of_gap": list(r.left_out),
                    "gap_pair": r.pair,
                }
                for a, r in self.by_attribute.items()
            },
        }
        out.update(self.extra)
        return clean_json(out)


def clean_json(obj):
    """Replace NaN/inf by ``None`` and numpy scalars by Python ones, recursively."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj
