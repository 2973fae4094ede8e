"""Counterfactual sets: building, completeness, seeded balancing."""

from __future__ import annotations

from collections import Counter

import pytest

from fairvlm.data import Sample, assign_counterfactual_sets, balance, check_completeness
from fairvlm.data.counterfactual import cell_counts


def _s(i, concept, gender, race=None, scene=None):
    return Sample(
        f"s{i}",
        None,
        "p",
        attributes={"gender": gender, "race": race},
        concept=concept,
        meta={"scene": scene},
    )


def test_assign_sets_by_key():
    samples = [
        _s(0, "doctor", "m", scene=1),
        _s(1, "doctor", "f", scene=1),
        _s(2, "doctor", "m", scene=2),
        _s(3, "nurse", "f", scene=1),
    ]
    out = assign_counterfactual_sets(samples, ("concept", "meta.scene"))
    assert [s.counterfactual_set for s in out] == ["cf0", "cf0", "cf1", "cf2"]
    assert samples[0].counterfactual_set is None  # inputs untouched


def test_completeness_reports_incomplete_ids_and_missing_combos():
    combos = [("m", "a"), ("m", "b"), ("f", "a"), ("f", "b")]
    samples = [
        Sample(f"x{i}", None, "p", attributes={"gender": g, "race": r}, counterfactual_set="A")
        for i, (g, r) in enumerate(combos)
    ]
    samples += [
        Sample(f"y{i}", None, "p", attributes={"gender": g, "race": r}, counterfactual_set="B")
        for i, (g, r) in enumerate(combos[:3])
    ]
    samples += [
        Sample("z0", None, "p", attributes={"gender": "m", "race": None}, counterfactual_set="C"),
        Sample("z1", None, "p", attributes={"gender": "f", "race": "a"}, counterfactual_set="C"),
    ]
    report = check_completeness(samples, ["gender", "race"])
    assert report.complete == ["A"] and set(report.incomplete) == {"B", "C"}
    assert report.incomplete["B"]["missing"] == [{"gender": "f", "race": "b"}]
    assert report.incomplete["C"]["unknown"] == 1
    # a declared vocabulary makes A incomplete too
    wider = check_completeness(samples, ["gender", "race"], vocab={"race": ["a", "b", "c"]})
    assert "A" in wider.incomplete and len(wider.incomplete["A"]["missing"]) == 2


def test_sets_varying_different_attributes_are_checked_separately():
    samples = [
        Sample(
            f"g{i}", None, "p", attributes={"gender": g, "physical": None}, counterfactual_set="g"
        )
        for i, g in enumerate(("m", "f"))
    ]
    samples += [
        Sample(
            f"p{i}", None, "p", attributes={"gender": None, "physical": v}, counterfactual_set="p"
        )
        for i, v in enumerate(("tall", "short"))
    ]
    report = check_completeness(samples)
    assert report.all_complete and report.n_sets == 2


def _skewed():
    # doctor: 6 male, 2 female, 1 unknown; nurse: 1 male, 3 female
    rows = (
        [("doctor", "m")] * 6
        + [("doctor", "f")] * 2
        + [("doctor", None)]
        + [("nurse", "m")]
        + [("nurse", "f")] * 3
    )
    return [_s(i, c, g) for i, (c, g) in enumerate(rows)]


def test_balance_down_per_concept():
    out = balance(_skewed(), ["gender"], mode="down", seed=0)
    counts = cell_counts(out, ["gender"])
    assert counts == {
        ("doctor", ("m",)): 2,
        ("doctor", ("f",)): 2,
        ("doctor", (None,)): 1,
        ("nurse", ("m",)): 1,
        ("nurse", ("f",)): 1,
    }
    assert [s.id for s in out] == sorted((s.id for s in out), key=lambda x: int(x[1:]))
    assert [s.id for s in balance(_skewed(), ["gender"], seed=0)] == [s.id for s in out]
    assert [s.id for s in balance(_skewed(), ["gender"], seed=1)] != [s.id for s in out]


def test_balance_up_and_global():
    out = balance(_skewed(), ["gender"], mode="up", seed=3)
    counts = cell_counts(out, ["gender"])
    assert counts[("doctor", ("f",))] == 6 and counts[("nurse", ("m",))] == 3
    copies = [s for s in out if "#up" in s.id]
    assert len(copies) == 4 + 2 and all(
        s.meta["duplicate_of"] == s.id.split("#")[0] for s in copies
    )
    assert len({s.id for s in out}) == len(out)
    flat = balance(_skewed(), ["gender"], mode="down", per_concept=False)
    assert Counter(cell_counts(flat, ["gender"]).values()) == Counter({1: 5})


def test_balance_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode='sideways'"):
        balance(_skewed(), ["gender"], mode="sideways")
