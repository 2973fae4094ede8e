"""Group metrics: equity-scaled forms, gaps, unknowns, small groups, bootstrap CIs."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from fairvlm.metrics import (
    Metric,
    accuracy,
    es_fairclip,
    es_fairllava,
    group_report,
    mean_metric,
    percentile_ci,
    replicate_indices,
)


def test_fairclip_check_from_methods():
    # METHODS.md section 4: groups 0.7242, 0.7078, 0.6741, overall 0.6902 -> 0.6464.
    assert round(es_fairclip(0.6902, [0.7242, 0.7078, 0.6741]), 4) == 0.6464
    # FairLLaVA form on the same numbers: 0.6902 / (1 + (0.7242 - 0.6741)).
    assert es_fairllava(0.6902, [0.7242, 0.7078, 0.6741]) == pytest.approx(0.6902 / 1.0501)


def _toy():
    # sex f: 3 of 4 right; m: 1 of 2 right; one unknown (right).
    y_true = ["a", "a", "b", "b", "a", "b", "a"]
    y_pred = ["a", "a", "b", "a", "a", "a", "a"]
    sf = pd.DataFrame({"sex": ["f", "f", "f", "f", "m", "m", None]})
    return y_true, y_pred, sf


def test_group_values_gap_ratio_std_and_unknowns_by_hand():
    y_true, y_pred, sf = _toy()
    rep = group_report(
        accuracy, y_true, y_pred, sf, n_boot=0, min_group_size=3, include_small_groups=True
    )
    sex = rep.by_attribute["sex"]
    assert rep.overall == pytest.approx(5 / 7)
    assert sex.groups["f"].value == pytest.approx(0.75) and sex.groups["f"].n == 4
    assert sex.groups["m"].value == pytest.approx(0.5) and sex.groups["m"].n == 2
    assert sex.n_unknown == 1
    assert sex.overall_known == pytest.approx(4 / 6)  # the unknown sample is left out
    assert sex.gap == pytest.approx(0.25)
    assert sex.ratio == pytest.approx(0.5 / 0.75)
    assert sex.std == pytest.approx(0.125)
    assert sex.es_fairclip == pytest.approx((4 / 6) / (1 + abs(0.75 - 4 / 6) + abs(0.5 - 4 / 6)))
    assert sex.es_fairllava == pytest.approx((4 / 6) / 1.25)
    assert sex.groups["m"].diff_to_overall == pytest.approx(0.5 - 4 / 6)
    # Small groups are flagged; asked to, the gap counts them.
    assert sex.groups["m"].small and not sex.groups["f"].small
    assert sex.n_small == 1 and sex.left_out == []


def test_signed_pair_difference_keeps_its_groups_fixed_in_the_replicates():
    # two close groups: a 0.52, b 0.50 on 100 samples each
    y_true = ["x"] * 200
    y_pred = ["x"] * 52 + ["y"] * 48 + ["x"] * 50 + ["y"] * 50
    sf = pd.Series(["a"] * 100 + ["b"] * 100, name="g")
    rep = group_report(accuracy, y_true, y_pred, sf, n_boot=400, seed=1).by_attribute["g"]
    assert rep.pair["groups"] == ["a", "b"] and rep.pair["diff"] == pytest.approx(0.02)
    assert rep.gap == pytest.approx(0.02)
    # the pair's replicates, written out: the same draws, a minus b every time
    correct = np.array([p == "x" for p in y_pred], dtype=float)
    groups = sf.to_numpy()
    d = []
    for idx in replicate_indices(200, 400, 1):
        for row in idx:
            c, g = correct[row], groups[row]
            d.append(c[g == "a"].mean() - c[g == "b"].mean())
    assert rep.pair["ci"] == pytest.approx(np.quantile(d, [0.025, 0.975]).tolist())
    # the pair's CI crosses 0 and holds its estimate; max - min's sits above it
    assert rep.pair["ci"][0] < 0 < 0.02 < rep.pair["ci"][1]
    assert rep.gap_ci[0] > 0 and rep.gap_ci[1] > rep.pair["ci"][1]
    doc = group_report(accuracy, y_true, y_pred, sf, n_boot=0).to_dict()["by_attribute"]["g"]
    assert doc["gap_pair"] == {
        "groups": ["a", "b"],
        "diff": pytest.approx(0.02),
        "ci": [None, None],
    }


def test_small_group_is_left_out_of_the_gap_unless_asked():
    # a: 20 samples, 15 right; b: 20 samples, 10 right; c: 3 samples, none right (extreme)
    n = {"a": 20, "b": 20, "c": 3}
    right = {"a": 15, "b": 10, "c": 0}
    y_true = ["x"] * sum(n.values())
    y_pred = [p for g in n for p in ["x"] * right[g] + ["y"] * (n[g] - right[g])]
    sf = pd.Series([g for g in n for _ in range(n[g])], name="site")
    rep = group_report(accuracy, y_true, y_pred, sf, n_boot=200, min_group_size=10)
    site = rep.by_attribute["site"]
    assert site.groups["c"].value == 0.0 and site.groups["c"].n == 3 and site.groups["c"].small
    assert site.left_out == ["c"]
    assert site.gap == pytest.approx(0.75 - 0.5)  # c (0.0) would make it 0.75
    assert site.ratio == pytest.approx(0.5 / 0.75) and site.std == pytest.approx(0.125)
    m = site.overall_known  # all 43 samples: the small group is still in M
    assert m == pytest.approx(25 / 43)
    assert site.es_fairllava == pytest.approx(m / 1.25)
    assert site.es_fairclip == pytest.approx(m / (1 + abs(0.75 - m) + abs(0.5 - m)))
    assert site.gap_ci[1] < 0.75  # the replicates leave c out too
    doc = rep.to_dict()["by_attribute"]["site"]
    assert doc["left_out_of_gap"] == ["c"] and doc["groups"]["c"]["small"] is True
    full = group_report(
        accuracy, y_true, y_pred, sf, n_boot=200, min_group_size=10, include_small_groups=True
    ).by_attribute["site"]
    assert full.gap == pytest.approx(0.75) and full.left_out == []
    assert full.gap_ci[1] > 0.75 > site.gap_ci[1]
    # one group left in the gap: no gap (NaN), not 0
    one = group_report(accuracy, y_true[:23], y_pred[:23], sf[:23].where(sf[:23] != "b", "c"),
                       n_boot=0, min_group_size=10).by_attribute["site"]  # fmt: skip
    assert one.left_out == ["c"] and math.isnan(one.gap) and math.isnan(one.es_fairllava)


def test_intersections_and_all_unknown_attribute():
    sf = pd.DataFrame(
        {
            "race": ["x", "x", "y", "y", "y", None],
            "sex": ["f", "m", "f", "f", None, "m"],
            "age": [None] * 6,
        }
    )
    values = np.array([1.0, 0.0, 1.0, 0.5, 0.2, 0.9])
    rep = group_report(mean_metric("v"), None, values, sf, n_boot=0)
    inter = rep.by_attribute["race&sex"]
    assert set(inter.groups) == {"x&f", "x&m", "y&f"}
    assert inter.groups["y&f"].value == pytest.approx(0.75) and inter.groups["y&f"].n == 2
    assert inter.n_unknown == 2  # unknown in either part -> unknown intersection
    assert rep.by_attribute["age"].groups == {} and rep.by_attribute["age"].n_unknown == 6
    # Intersections whose columns are absent are skipped without error.
    rep2 = group_report(mean_metric("v"), None, values, sf[["sex"]], n_boot=0)
    assert set(rep2.by_attribute) == {"sex"}


def test_bootstrap_seeded_and_json_clean():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.where(rng.random(200) < 0.7, y, 1 - y)
    sf = pd.DataFrame({"g": rng.choice(["a", "b", "c"], 200)})
    a = group_report(accuracy, y, p, sf, n_boot=200, seed=3)
    b = group_report(accuracy, y, p, sf, n_boot=200, seed=3)
    c = group_report(accuracy, y, p, sf, n_boot=200, seed=4)
    assert a.overall_ci == b.overall_ci and a.by_attribute["g"].gap_ci == b.by_attribute["g"].gap_ci
    assert a.overall_ci != c.overall_ci
    lo, hi = a.overall_ci
    assert lo < a.overall < hi
    d = a.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["by_attribute"]["g"]["groups"]["a"]["n"] == int((sf.g == "a").sum())


def test_replicates_independent_of_chunking():
    first = np.concatenate(list(replicate_indices(50, 30, seed=5)))
    import fairvlm.metrics.bootstrap as bs

    old = bs._CHUNK_CELLS
    bs._CHUNK_CELLS = 100  # two replicates per chunk
    try:
        second = np.concatenate(list(replicate_indices(50, 30, seed=5)))
    finally:
        bs._CHUNK_CELLS = old
    assert np.array_equal(first, second)


def test_vectorised_bootstrap_equals_the_loop():
    rng = np.random.default_rng(2)
    y = rng.choice(["a", "b", "c"], 120).astype(object)
    p = np.where(rng.random(120) < 0.6, y, rng.choice(["a", "b", None], 120)).astype(object)
    sf = pd.DataFrame({"g": rng.choice(["u", "v"], 120), "h": rng.choice(["s", "t", None], 120)})
    fast = group_report(accuracy, y, p, sf, n_boot=60, seed=7)
    slow = group_report(
        Metric("accuracy", accuracy.fn), y, p, sf, n_boot=60, seed=7
    )  # no fast form
    assert fast.overall_ci == pytest.approx(slow.overall_ci, abs=1e-12)
    for attr in ("g", "h"):
        assert fast.by_attribute[attr].gap_ci == pytest.approx(
            slow.by_attribute[attr].gap_ci, abs=1e-12
        )
        for g in fast.by_attribute[attr].groups:
            assert fast.by_attribute[attr].groups[g].ci == pytest.approx(
                slow.by_attribute[attr].groups[g].ci, abs=1e-12
            )


def test_percentile_ci_ignores_undefined_replicates():
    assert percentile_ci(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5) == pytest.approx((1.5, 2.5))
    assert all(math.isnan(v) for v in percentile_ci(np.array([np.nan, np.nan])))


def _coverage_run(n_rep: int) -> float:
    """Share of replications whose 95% gap CI covers the true gap (0.8 - 0.6 = 0.2)."""
    covered = 0
    for r in range(n_rep):
        rng = np.random.default_rng(1000 + r)
        group = np.repeat(["a", "b"], 300)
        correct = np.where(group == "a", rng.random(600) < 0.8, rng.random(600) < 0.6)
        rep = group_report(
            mean_metric("acc"),
            None,
            correct.astype(float),
            pd.Series(group, name="g"),
            n_boot=1000,
            seed=r,
        )
        lo, hi = rep.by_attribute["g"].gap_ci
        covered += lo <= 0.2 <= hi
    return covered / n_rep


@pytest.mark.slow
def test_gap_ci_coverage_100_replications():
    assert _coverage_run(100) >= 0.90


def test_gap_ci_coverage_quick():
    # A fast version of the slow test above; it also bounds the bootstrap's cost.
    t0 = time.perf_counter()
    assert _coverage_run(20) >= 0.80
    assert time.perf_counter() - t0 < 20


def test_es_fairclip_is_nan_when_no_group_value_is_defined():
    from fairvlm.metrics.group import disparity_replicates

    nan = float("nan")
    assert math.isnan(es_fairclip(0.7, [nan, nan])) and math.isnan(es_fairllava(0.7, [nan, nan]))
    assert math.isnan(es_fairclip(0.7, []))
    assert es_fairclip(0.7, [0.6, nan]) == pytest.approx(0.7 / 1.1)  # NaN groups left out
    gap, fairclip, fairllava = disparity_replicates(
        np.array([[nan, nan], [0.6, nan], [0.6, 0.8]]), np.array([0.7, 0.7, 0.7])
    )
    assert np.isnan(fairclip[0]) and fairclip[1] == pytest.approx(0.7 / 1.1)
    assert np.isnan(gap[:2]).all() and np.isnan(fairllava[:2]).all()
    assert fairclip[2] == pytest.approx(0.7 / 1.2) and fairllava[2] == pytest.approx(0.7 / 1.2)
