"""Social metrics: Skew@K, NDKL, Bias@K by hand; mention lexicon; sentiment."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairvlm.metrics import (
    bias_at_k,
    group_report,
    mean_metric,
    mention_flags,
    ndkl,
    rank,
    ranking_bias,
    sentiment_scores,
    skew_at_k,
)


def test_skew_by_hand_with_zero_count_value():
    # Pool N=6, 3 m + 3 f; top 2 = m, m.
    s = skew_at_k(list("mmfmff"), k=2)
    assert s["m"] == pytest.approx(math.log((2 / 2) / (3 / 6)))  # ln 2
    assert s["f"] == 0.0  # zero count in top K: 0, not -inf


def test_skew_raises_k_to_number_of_values():
    # |A| = 3 > K = 1, so K becomes 3: top 3 = a, a, b.
    s = skew_at_k(list("aabbcc"), k=1)
    assert s["a"] == pytest.approx(math.log((2 / 3) / (2 / 6)))  # ln 2, not ln 3 of K=1
    assert s["b"] == pytest.approx(0.0)  # (1/3)/(2/6)
    assert s["c"] == 0.0  # absent from the top 3
    # K above the pool is capped at N: every skew is 0.
    assert skew_at_k(list("ab"), k=10) == {"a": 0.0, "b": 0.0}


def test_ndkl_by_hand():
    # Pool distribution (1/2, 1/2); prefixes of m m m f f f:
    ln2 = math.log(2)
    kl = [
        ln2,
        ln2,
        ln2,
        0.75 * math.log(1.5) + 0.25 * math.log(0.5),
        0.6 * math.log(1.2) + 0.4 * math.log(0.8),
        0,
    ]
    disc = [1 / math.log2(i + 1) for i in range(1, 7)]
    expected = sum(k * d for k, d in zip(kl, disc, strict=True)) / sum(disc)
    assert ndkl(list("mmmfff")) == pytest.approx(expected)
    assert ndkl(list("mfmfmf")) < ndkl(list("mmmfff"))
    assert ndkl(list("aaaa")) == pytest.approx(0.0)
    # An explicit target: uniform over three values, one of which is absent.
    assert ndkl(list("ab"), target={"a": 1, "b": 1, "c": 1}) > 0


def test_bias_at_k_by_hand():
    ranked = ["male", "male", "female", "male", "female", "female"]
    assert bias_at_k(ranked, 3, ("male", "female")) == pytest.approx((2 - 1) / 3)
    # K=1 is raised to |A|=2: top 2 = male, male -> (2 - 0) / 2.
    assert bias_at_k(ranked, 1, ("male", "female")) == pytest.approx(1.0)
    assert bias_at_k(["female", "male"], 1, ("male", "female")) == pytest.approx(0.0)
    assert bias_at_k(["x", "y"], 2, ("male", "female")) == 0.0  # neither value in the top K


def test_rank_ties_broken_by_id():
    assert rank(["a", "b", "c"], [0.5, 0.9, 0.5], ids=["z", "y", "x"]) == ["b", "c", "a"]


def test_ranking_bias_per_concept_table_and_unknowns():
    scores = [0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.5, 0.4, 0.3]
    gender = ["male", "male", "female", "female", "female", "female", "male", "male", None]
    concept = ["doctor"] * 4 + ["nurse"] * 4 + ["nurse"]
    out = ranking_bias(scores, gender, concept, k=2)
    doc, nurse = out["per_concept"]["doctor"], out["per_concept"]["nurse"]
    assert doc["skew"]["male"] == pytest.approx(math.log(2)) and doc["skew"]["female"] == 0.0
    assert nurse["skew"]["female"] == pytest.approx(math.log(2))
    assert out["max_skew"] == pytest.approx(math.log(2))
    assert out["min_skew"] == pytest.approx(0.0)
    assert doc["bias_at_k"] == 1.0 and nurse["bias_at_k"] == -1.0 and out["bias_at_k"] == 0.0
    assert out["bias_pair"] == ["male", "female"]
    assert out["n_unknown"] == 1 and nurse["n"] == 4
    # k=None: half of each pool.
    assert ranking_bias(scores, gender, concept)["per_concept"]["doctor"]["k"] == 2


def test_mention_lexicon_tricky_strings():
    lex = {"gender": ["woman", "man"], "age": ["middle aged", "old"]}
    texts = [
        "A woman.",
        "Two women talking",
        "Womanhood is a theme",
        "WOMAN, standing",
        "the woman's bag",
        "superwoman costume",
        "a middle-aged person",
        "a bold move",  # 'old' inside 'bold'
        "three men",
        "",
        None,
    ]
    f = mention_flags(texts, lex)
    assert f["gender"].tolist() == [
        True,
        True,
        False,
        True,
        True,
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    assert f["age"].tolist() == [
        False,
        False,
        False,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
    ]


def test_sentiment_and_its_gap():
    texts = [
        "A wonderful, happy and kind doctor.",
        "A terrible, angry, awful man.",
        None,
        "A person.",
    ]
    s = sentiment_scores(texts)
    assert s[0] > 0.5 and s[1] < -0.5 and math.isnan(s[2]) and s[3] == 0.0
    rep = group_report(
        mean_metric("sentiment"),
        None,
        s,
        pd.Series(["a", "b", "a", "b"], name="g"),
        n_boot=0,
        min_group_size=1,
    )
    # group a: mean of s0 (NaN left out); group b: mean of s1 and s3.
    assert rep.by_attribute["g"].groups["a"].value == pytest.approx(s[0])
    assert rep.by_attribute["g"].gap == pytest.approx(s[0] - (s[1] + s[3]) / 2)
    assert np.isfinite(rep.overall)


def test_k_is_raised_to_the_values_present_in_the_pool_not_the_attribute_total():
    # The attribute has 3 values (a, b, c), concept "x"'s pool holds only a and b: K=1
    # becomes 2 (values present), where the reference code would take 3.
    attr = ["a", "b", "a", "b", "c", "c"]
    concepts = ["x", "x", "x", "x", "y", "y"]
    out = ranking_bias([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], attr, concepts, k=1)
    x = out["per_concept"]["x"]
    assert x["k"] == 2 and set(x["skew"]) == {"a", "b"}
    assert x["skew"] == {"a": pytest.approx(0.0), "b": pytest.approx(0.0)}  # top 2 = a, b
    # with K = 3 (the reference's rule) the top 3 would be a, b, a: Skew(a) = ln(4/3)
    assert skew_at_k(list("abab"), k=3)["a"] == pytest.approx(math.log((2 / 3) / (2 / 4)))
