"""ASD by hand: SFLoss weights, drop probabilities, the accumulator, the chosen attribute,
the skew table of a hand-ranked pool, and the errors on bad data or config."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fairvlm.data.schema import Sample
from fairvlm.errors import ConfigError, DataError
from fairvlm.mitigation.asd import (
    ASDConfig,
    BiasAwareSampler,
    SkewEstimator,
    SkewTable,
    build_pools,
    check_asd_data,
    drop_probability,
    epoch_order,
    missing_values,
    resample,
    sample_skews,
    sfloss_weights,
    skew_table,
)

# A small table of skews, dataset order.
SKEWS = np.array([0.5, -0.4, 1.0, -0.7, 0.0, -0.2, 2.0, -1.1])


def test_sfloss_weights_are_exp_minus_skew_and_clip_only_when_asked():
    w = sfloss_weights([math.log(2.0), 0.0, -math.log(1.5)])
    np.testing.assert_allclose(w, [0.5, 1.0, 1.5], rtol=1e-6)
    clipped = sfloss_weights([math.log(2.0), 0.0, -math.log(1.5)], clip=[0.6, 1.2])
    np.testing.assert_allclose(clipped, [0.6, 1.0, 1.2], rtol=1e-6)
    # normalised over an epoch that trains on samples 0, 2, 2 (mean weight 3.5 / 3)
    normed = sfloss_weights([math.log(2.0), 0.0, -math.log(1.5)], normalize_over=[0, 2, 2])
    np.testing.assert_allclose(normed, np.array([0.5, 1.0, 1.5]) * 3 / 3.5, rtol=1e-6)


def test_drop_probability_formula_by_hand():
    p = drop_probability(SKEWS, tau1=1.0)
    np.testing.assert_allclose(p, [1 / 3, 0, 0.5, 0, 0, 0, 2 / 3, 0])
    np.testing.assert_allclose(drop_probability([1.0, -1.0], tau1=3.0), [0.25, 0.0])


def test_empirical_drop_rate_matches_the_formula():
    skews = np.repeat([0.5, 1.0, 3.0, -1.0], 20000)
    out = resample(skews, tau1=1.0, tau2=1e9, rng=123)
    rates = out.dropped.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(rates[:3], [1 / 3, 0.5, 0.75], atol=0.012)
    assert rates[3] == 0.0  # skew <= 0 is never dropped
    again = resample(skews, tau1=1.0, tau2=1e9, rng=123)
    assert np.array_equal(out.dropped, again.dropped)  # seeded


def test_accumulator_inserts_copies_exactly():
    # non-positive skews in order: 0.4 -> acc .4; 0.7 -> 1.1 > 1: copy at 3, acc .1;
    # 0 -> .1; 0.2 -> .3; 1.1 -> 1.4 > 1: copy at 7, acc .4
    out = resample(SKEWS, tau1=1.0, tau2=1.0, rng=0)
    assert out.copies.tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    kept = [i for i in range(8) if not out.dropped[i]]
    expected = [j for i in kept for j in ([i, i] if i in (3, 7) else [i])]
    assert out.indices.tolist() == expected
    assert not out.dropped[[1, 3, 4, 5, 7]].any()


def test_subtract_and_reset_rules_differ_as_computed_by_hand():
    skews = [-0.9] * 5
    # subtract: .9, 1.8 c->.8, 1.7 c->.7, 1.6 c->.6, 1.5 c
    assert resample(skews, rng=0).copies.tolist() == [0, 1, 1, 1, 1]
    # reset: .9, 1.8 c->0, .9, 1.8 c->0, .9
    assert resample(skews, rng=0, accumulator="reset").copies.tolist() == [0, 1, 0, 1, 0]
    assert resample(skews, tau2=2.0, rng=0).copies.tolist() == [0, 0, 1, 0, 1]


def test_sampler_draws_a_fixed_length_epoch_from_the_multiset():
    multiset = np.array([0, 0, 0, 2])  # sample 0 three times, sample 2 once
    sampler = BiasAwareSampler(8, lambda epoch: multiset, seed=5)
    sampler.set_epoch(3)
    order = list(sampler)
    assert len(order) == len(sampler) == 8
    assert sorted(order) == [0] * 6 + [2] * 2  # two shuffled passes
    sampler.set_epoch(3)
    assert list(sampler) == order  # seeded by (seed, epoch)
    plain = BiasAwareSampler(5, None, seed=0)
    assert sorted(plain) == [0, 1, 2, 3, 4]
    assert len(epoch_order(np.arange(10), 4, np.random.default_rng(0))) == 4


# -- the skew table and the chosen attribute --------------------------------------------
def _pool_samples() -> list[Sample]:
    """doctor: gender x race (2 x 3) in one set; nurse: a set lacking race c."""
    out = []
    for g in ("f", "m"):
        for r in ("a", "b", "c"):
            out.append(
                Sample(
                    id=f"doc-{g}{r}",
                    image=None,
                    prompt="Is this person a doctor?",
                    target="yes",
                    task="probe",
                    attributes={"gender": g, "race": r},
                    concept="doctor",
                    counterfactual_set="doc-set",
                )
            )
    for g in ("f", "m"):
        for r in ("a", "b"):
            out.append(
                Sample(
                    id=f"nur-{g}{r}",
                    image=None,
                    prompt="Is this person a nurse?",
                    target="yes",
                    task="probe",
                    attributes={"gender": g, "race": r},
                    concept="nurse",
                    counterfactual_set="nur-set",
                )
            )
    return out


# P(yes) per pool image; doctor ranking: m-a, m-b, f-a, m-c, f-b, f-c
P_YES = {"doc-fa": 0.7, "doc-fb": 0.3, "doc-fc": 0.1, "doc-ma": 0.9, "doc-mb": 0.8, "doc-mc": 0.6}
P_YES.update({"nur-fa": 0.9, "nur-fb": 0.8, "nur-ma": 0.2, "nur-mb": 0.1})


def test_skew_table_and_chosen_attribute_by_hand():
    samples = _pool_samples()
    attrs = ["gender", "race"]
    pools = build_pools(samples, attrs)
    assert len(pools) == 10
    scores = [P_YES[samples[i].id] for i in pools.items]
    table = skew_table(scores, pools, attrs, k=3)
    doc = table.skew
    # doctor, K=3, top = m-a, m-b, f-a (pool 6: 3 m, 3 f, 2 of each race)
    assert doc["gender"]["doctor"]["m"] == pytest.approx(math.log((2 / 3) / (3 / 6)))
    assert doc["gender"]["doctor"]["f"] == pytest.approx(math.log((1 / 3) / (3 / 6)))
    assert doc["race"]["doctor"]["a"] == pytest.approx(math.log(2.0))
    assert doc["race"]["doctor"]["b"] == pytest.approx(0.0)
    assert doc["race"]["doctor"]["c"] == 0.0  # absent from the top K: 0, not -inf
    # nurse, K=3: top = f-a, f-b, m-a
    assert doc["gender"]["nurse"]["f"] == pytest.approx(math.log((2 / 3) / 0.5))
    # the nurse pool lacks race c: reported, not skewed
    assert table.missing == [{"concept": "nurse", "attribute": "race", "values": ["c"]}]
    assert "c" not in doc["race"]["nurse"]

    extra = [
        Sample("x1", None, "q", "yes", attributes={"gender": "f", "race": None}, concept="doctor", counterfactual_set="s"),
        Sample("x2", None, "q", "yes", attributes={"gender": None, "race": "c"}, concept="nurse", counterfactual_set="s"),
        Sample("x3", None, "q", "yes", attributes={"gender": "m", "race": "a"}, concept="chef", counterfactual_set="s"),
    ]  # fmt: skip
    skews, chosen = sample_skews(samples[:6] + extra, table, attrs)
    ln = math.log
    # f-a: gender -.405 vs race +.693 -> race; m-b: gender +.288 vs race 0 -> gender
    np.testing.assert_allclose(
        skews,
        [ln(2), ln(2 / 3), ln(2 / 3), ln(2), ln(4 / 3), ln(4 / 3), ln(2 / 3), 0.0, 0.0],
        atol=1e-12,
    )
    # f-b: gender ln(2/3) (|.405|) beats race b's 0; m-a: race ln 2 beats gender ln(4/3)
    assert chosen[:6] == ["race", "gender", "gender", "race", "gender", "gender"]
    assert chosen[6:] == ["gender", None, None]  # unknown race; missing value; no pool


def test_check_asd_data_names_the_needed_columns():
    samples = _pool_samples()
    plain = [Sample(f"p{i}", None, "q", "yes", attributes={"gender": "f"}) for i in range(3)]
    with pytest.raises(DataError) as err:
        check_asd_data(plain)
    msg = str(err.value)
    assert "counterfactual_set, concept, attributes" in msg
    assert "3 of 3 samples have no counterfactual_set" in msg and "'p0'" in msg
    assert check_asd_data(samples) == ["gender", "race"]
    with pytest.raises(DataError, match="'age' is not in the training data"):
        check_asd_data(samples, ["age"])


def test_config_validation_names_field_value_and_fix():
    assert ASDConfig().tau1 == 1.0 and ASDConfig().accumulator == "subtract"
    assert ASDConfig().weight_clip is None and ASDConfig().normalize_weights is False
    for bad, field in (
        ({"tau1": 0}, "tau1"),
        ({"accumulator": "halve"}, "accumulator"),
        ({"weight_clip": [2.0, 1.0]}, "weight_clip"),
        ({"probe_template": "Is this person?"}, "probe_template"),
        ({"variant": "fancy"}, "variant"),
        ({"k": 0}, "k"),
        ({"normalize_weights": "yes"}, "normalize_weights"),
    ):
        with pytest.raises(ConfigError, match=field):
            ASDConfig(**bad)
    with pytest.raises(ConfigError, match="method.variant"):
        ASDConfig.for_variant({"variant": "naive"}, "asd")
    with pytest.raises(ConfigError, match="known fields"):
        ASDConfig.for_variant({"tau3": 1}, "asd")
    cfg = ASDConfig.for_variant({"tau2": "2"}, "asd-sampling-only")
    assert (cfg.resamples, cfg.reweights, cfg.tau2) == (True, False, 2.0)


# -- a hand-written table of skews: chosen attribute, weights, drops and copies together --
def _table(skew: dict) -> SkewTable:
    return SkewTable(skew=skew, per_concept={}, summary={})


HAND = _table(
    {
        "gender": {"chef": {"f": -0.6, "m": 0.5}, "tool": {"f": 0.3, "m": -0.3}},
        "race": {"chef": {"a": 0.6, "b": -0.2}, "tool": {"a": -0.9, "b": 0.1}},
        "age": {"chef": {"young": 1.2, "old": -1.2}},  # no age skew for "tool"
    }
)


def _s(i: int, concept: str, **attrs: str | None) -> Sample:
    return Sample(f"h{i}", None, "q", "yes", attributes=attrs, concept=concept)


def test_chosen_attribute_on_a_hand_table_keeps_sign_and_breaks_ties_in_order():
    samples = [
        _s(0, "chef", gender="f", race="a", age=None),  # |-0.6| = |0.6|: tie -> gender (first)
        _s(1, "chef", gender="m", race="b", age="old"),  # age |-1.2| wins, sign kept
        _s(2, "tool", gender="f", race="a", age="young"),  # race -0.9; no age skew for tool
        _s(3, "tool", gender="m", race="b", age="old"),  # gender -0.3 beats race 0.1
        _s(4, "chef", gender=None, race="b", age=None),  # only race known
        _s(5, "nurse", gender="f", race="a", age="old"),  # concept not in the table
    ]
    skews, chosen = sample_skews(samples, HAND, ["gender", "race", "age"])
    np.testing.assert_allclose(skews, [-0.6, -1.2, -0.9, -0.3, -0.2, 0.0])
    assert chosen == ["gender", "age", "race", "gender", "race", None]
    # order of ``attributes`` decides the tie: race first -> race's +0.6 is chosen
    skews_r, chosen_r = sample_skews(samples[:1], HAND, ["race", "gender"])
    assert (skews_r.tolist(), chosen_r) == ([0.6], ["race"])
    # only the named attributes count: without age, sample 1 takes gender +0.5
    skews_g, chosen_g = sample_skews(samples[1:2], HAND, ["gender", "race"])
    assert (skews_g.tolist(), chosen_g) == ([0.5], ["gender"])


def test_weights_drops_and_copies_of_a_hand_table():
    skews = np.array([0.5, -1.2, -0.9, -0.3, -0.2, 0.0, 1.2, 0.6])
    np.testing.assert_allclose(sfloss_weights(skews), np.exp(-skews), rtol=1e-6)
    np.testing.assert_allclose(
        drop_probability(skews, tau1=1.0), [1 / 3, 0, 0, 0, 0, 0, 1.2 / 2.2, 0.6 / 1.6]
    )
    np.testing.assert_allclose(drop_probability(skews, tau1=0.5)[[0, 6]], [0.5, 1.2 / 1.7])
    # tau1 -> 0 drops every positive skew for sure, so the multiset is exact:
    # accumulator 1.2 -> copy of 1 (.2 left); 1.1 -> copy of 2 (.1); .4; .6; .6 (0 adds 0)
    out = resample(skews, tau1=1e-12, tau2=1.0, rng=0)
    assert out.dropped.tolist() == [True, False, False, False, False, False, True, True]
    assert out.copies.tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert out.indices.tolist() == [1, 1, 2, 2, 3, 4, 5]
    assert out.stats() == {"asd/n_dropped": 3.0, "asd/n_copies": 2.0, "asd/n_resampled": 7.0}
    # tau2 = 0.5: 1.2 -> copy (.7); .7 + .9 = 1.6 -> copy (1.1); 1.4 -> copy (.9);
    # 1.1 -> copy (.6); skew 0 adds nothing but the carried .6 > .5 -> copy (.1): at most
    # one copy per sample, so a surplus carries over to the next non-positive sample
    half = resample(skews, tau1=1e-12, tau2=0.5, rng=0)
    assert half.copies.tolist() == [0, 1, 1, 1, 1, 1, 0, 0]
    reset = resample(skews, tau1=1e-12, tau2=0.5, rng=0, accumulator="reset")
    # reset: 1.2 c -> 0; .9 c -> 0; .3; .5 (not > .5); .5
    assert reset.copies.tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    # a huge tau1 drops (almost) nothing; a huge tau2 copies nothing
    assert resample(skews, tau1=1e12, tau2=1e12, rng=0).indices.tolist() == list(range(8))


def test_check_asd_data_names_each_missing_column_with_counts():
    ok = _pool_samples()
    partial = [dataclasses.replace(s) for s in ok]
    partial[0].concept = None
    partial[1].concept = ""
    partial[2].attributes = {"gender": None, "race": None}
    with pytest.raises(DataError) as err:
        check_asd_data(partial)
    msg = str(err.value)
    assert "needs the columns counterfactual_set, concept, attributes" in msg
    assert "2 of 10 samples have no concept (e.g. 'doc-fa', 'doc-fb')" in msg
    assert "1 of 10 samples have no attributes (e.g. 'doc-fc')" in msg
    assert "counterfactual_set (" not in msg  # every sample has a set: not blamed
    with pytest.raises(DataError, match="samples=\\[\\] is empty"):
        check_asd_data([])
    one_value = [dataclasses.replace(s, attributes={"gender": "f"}) for s in ok]
    with pytest.raises(DataError, match="no attribute of the training data has >= 2"):
        check_asd_data(one_value)
    with pytest.raises(DataError, match="'gender' has 1 known value"):
        check_asd_data(one_value, ["gender"])


def test_a_pool_lacking_a_value_is_reported_not_skewed():
    samples = _pool_samples()  # the nurse set has no race "c"
    with pytest.warns(UserWarning, match="'nurse' has no image with race=c"):
        est = SkewEstimator(None, samples, ["gender", "race"], ASDConfig(progress=False))
    assert est.missing == [{"concept": "nurse", "attribute": "race", "values": ["c"]}]
    assert missing_values(est.pools, ["gender"]) == []
    # one probe per pool image, about the image's own concept
    assert len(est.probes) == 10
    assert {p.prompt for p in est.probes} == {"Is this person a doctor?", "Is this person a nurse?"}
    assert all(p.options == ["yes", "no"] and p.target is None for p in est.probes)
    # a nurse image of race "a" has a race skew; nothing is invented for race "c"
    pools = est.pools
    scores = [P_YES[samples[i].id] for i in pools.items]
    table = skew_table(scores, pools, ["gender", "race"], k=3)
    assert set(table.skew["race"]["nurse"]) == {"a", "b"}
    assert sorted(table.skew["race"]["doctor"]) == ["a", "b", "c"]
