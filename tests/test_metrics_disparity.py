"""Demographic parity / equalised odds differences against fairlearn, degenerate groups."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from fairvlm.metrics import classification_disparities
from fairvlm.metrics.disparity import equalized_odds

LABELS = np.array(["no", "yes"])


def _data(n: int, seed: int, groups):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.7, t, 1 - t)
    return t, p, np.asarray(groups)


def test_equalised_odds_equals_fairlearn_when_every_rate_is_defined():
    for seed in range(5):
        t, p, g = _data(60, seed, ["a", "b", "c"] * 20)
        out = classification_disparities(LABELS[t], LABELS[p], pd.Series(g, name="g"))["g"]
        for pos, lab in enumerate(LABELS):
            tt, pp = (t == pos).astype(int), (p == pos).astype(int)
            fl = equalized_odds_difference(tt, pp, sensitive_features=g)
            assert out["per_class"][lab]["equalized_odds_difference"] == pytest.approx(fl)
            dp = demographic_parity_difference(tt, pp, sensitive_features=g)
            assert out["per_class"][lab]["demographic_parity_difference"] == pytest.approx(dp)


def test_a_one_member_group_leaves_its_undefined_rate_out_and_both_classes_agree():
    t, p, g = _data(30, 0, ["a"] * 14 + ["b"] * 15 + ["c"])
    t[-1], p[-1] = 1, 1  # group c: one positive, no negative -> its FPR is undefined
    out = classification_disparities(LABELS[t], LABELS[p], pd.Series(g, name="g"))["g"]
    per = {lab: out["per_class"][lab]["equalized_odds_difference"] for lab in LABELS}
    # fairlearn scores the undefined rate 0, so its two one-vs-rest problems disagree
    fl = [
        equalized_odds_difference((t == k).astype(int), (p == k).astype(int), sensitive_features=g)
        for k in (0, 1)
    ]
    assert fl[0] != pytest.approx(fl[1])
    # here: the same number for both classes, computed by hand from the defined rates
    tpr = {v: p[(g == v) & (t == 1)].mean() for v in "abc"}
    fpr = {v: p[(g == v) & (t == 0)].mean() for v in "ab"}  # c has no negatives
    hand = max(max(tpr.values()) - min(tpr.values()), max(fpr.values()) - min(fpr.values()))
    assert per["yes"] == pytest.approx(hand) and per["no"] == pytest.approx(hand)
    assert out["equalized_odds_difference"] == pytest.approx(hand)


def test_equalised_odds_is_nan_when_no_gap_is_defined():
    # two groups, each with one sample: no rate is defined for two groups
    assert math.isnan(equalized_odds([1, 0], [1, 1], ["a", "b"]))
    # only the TPR gap is defined: it is the value
    assert equalized_odds([1, 1, 0], [1, 0, 0], ["a", "b", "b"]) == pytest.approx(1.0)
