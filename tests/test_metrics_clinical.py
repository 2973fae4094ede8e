"""Clinical metrics: label parsing, classification metrics vs scikit-learn, AUC, report metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from fairvlm.errors import ConfigError
from fairvlm.metrics import (
    METEOR_MISSING,
    LabelParser,
    Metric,
    accuracy,
    balanced_accuracy,
    bleu1,
    bleu4,
    group_report,
    macro_f1,
    meteor_scores,
    ovr_auc,
    rouge_l_scores,
    softmax_scores,
)
from fairvlm.metrics.clinical import _class_stats, _weighted_binary_auc


def test_label_parser_boundaries_synonyms_and_ambiguity():
    p = LabelParser(
        ["melanoma", "nevus", "basal cell carcinoma", "carcinoma"],
        synonyms={"nevus": ["mole", "naevus"]},
    )
    assert p.parse("Melanoma.") == "melanoma"
    assert p.parse("The diagnosis is a benign NEVUS") == "nevus"
    assert p.parse("looks like a mole to me") == "nevus"
    assert p.parse("basal cell carcinoma, most likely") == "basal cell carcinoma"  # longest first
    assert p.parse("melanomatous growth") is None  # no word boundary
    assert p.parse("melanoma or nevus") is None  # several labels: unparsed by default
    assert (
        LabelParser(["melanoma", "nevus"], on_multiple="first").parse("melanoma or nevus")
        == "melanoma"
    )
    labels, n_unparsed = p.parse_many(["nevus", "no idea", None, "a mole"])
    assert labels == ["nevus", None, None, "nevus"] and n_unparsed == 2


def test_label_parser_validates_config():
    with pytest.raises(ConfigError, match="synonyms"):
        LabelParser(["a"], synonyms={"b": ["c"]})
    with pytest.raises(ConfigError, match="on_multiple"):
        LabelParser(["a"], on_multiple="last")


def test_unparsed_answer_counts_as_wrong_by_hand():
    y_true = ["a", "a", "b", "b"]
    y_pred = ["a", None, "b", "a"]
    assert accuracy(y_true, y_pred) == pytest.approx(0.5)
    # recall a = 1/2, recall b = 1/2
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(0.5)
    # F1 a: tp 1, true 2, pred 2 -> 0.5; F1 b: tp 1, true 2, pred 1 -> 2/3. None is no class.
    assert macro_f1(y_true, y_pred) == pytest.approx((0.5 + 2 / 3) / 2)


def test_fast_forms_match_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(5):
        n = 80
        y = rng.choice(["a", "b", "c", "d"], n).astype(object)
        p = rng.choice(["a", "b", "c", None], n).astype(object)
        s = _class_stats(y, p).sum(0)
        yp = np.array(["<none>" if v is None else v for v in p])
        present = sorted((set(y) | set(p)) - {None})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_f1 = f1_score(y.astype(str), yp, labels=present, average="macro", zero_division=0)
            ref_bal = balanced_accuracy_score(y.astype(str), yp)
        assert macro_f1.from_stats(s) == pytest.approx(ref_f1), trial
        assert macro_f1(y, p) == pytest.approx(ref_f1)
        assert balanced_accuracy.from_stats(s) == pytest.approx(ref_bal)
        assert accuracy.from_stats(s) == pytest.approx(np.mean(y == p))


def test_weighted_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    pos = rng.random(60) < 0.4
    score = np.round(rng.random(60), 1)  # many ties
    w = rng.integers(0, 4, (3, 60)).astype(float)
    got = _weighted_binary_auc(pos, score, w)
    for b in range(3):
        assert got[b] == pytest.approx(roc_auc_score(pos, score, sample_weight=w[b]))


def test_ovr_auc_by_hand_and_bootstrap_equals_loop():
    labels = ["x", "y"]
    scores = softmax_scores(np.log([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]))
    assert scores.sum(1) == pytest.approx(np.ones(4))
    auc = ovr_auc(labels)
    assert auc(["x", "y", "x", "y"], scores) == pytest.approx(
        0.75
    )  # 3 of 4 pairs ordered, per class
    rng = np.random.default_rng(3)
    y = rng.choice(["x", "y", "z"], 90).astype(object)
    sc = softmax_scores(rng.normal(size=(90, 3)))
    sf = pd.DataFrame({"g": rng.choice(["u", "v"], 90)})
    a3 = ovr_auc(["x", "y", "z"])
    fast = group_report(a3, y, sc, sf, n_boot=40, seed=1)
    slow = group_report(Metric("auc", a3.fn), y, sc, sf, n_boot=40, seed=1)
    assert fast.overall == pytest.approx(slow.overall)
    assert fast.overall_ci == pytest.approx(slow.overall_ci, abs=1e-12)
    assert fast.by_attribute["g"].gap_ci == pytest.approx(slow.by_attribute["g"].gap_ci, abs=1e-12)


def test_bleu_from_stats_equals_sacrebleu_and_group_bootstrap_equals_loop():
    import sacrebleu

    refs = [
        "the lesion is dark and round",
        "a light irregular mole",
        "no finding today",
        "a small dark spot",
    ] * 5
    hyps = ["the lesion is dark", "a light mole", "no finding", "a big dark spot here"] * 5
    ref4 = sacrebleu.corpus_bleu(hyps, [refs]).score / 100
    assert bleu4(refs, hyps) == pytest.approx(ref4)
    assert bleu4.from_stats(bleu4.stats(refs, hyps).sum(0)) == pytest.approx(ref4)
    ref1 = sacrebleu.metrics.BLEU(max_ngram_order=1).corpus_score(hyps, [refs]).score / 100
    assert bleu1.from_stats(bleu1.stats(refs, hyps).sum(0)) == pytest.approx(ref1)
    sf = pd.Series(["f", "m"] * 10, name="sex")
    fast = group_report(bleu4, refs, hyps, sf, n_boot=30, seed=2)
    slow = group_report(Metric("bleu4", bleu4.fn), refs, hyps, sf, n_boot=30, seed=2)
    assert fast.by_attribute["sex"].groups["f"].ci == pytest.approx(
        slow.by_attribute["sex"].groups["f"].ci
    )


def test_rouge_l_by_hand_and_meteor_without_wordnet(monkeypatch):
    r = rouge_l_scores(["a b c d", "x y"], ["a b c d", "a b"])
    assert r == pytest.approx([1.0, 0.0])
    import fairvlm.metrics.reports as reports

    monkeypatch.setattr(reports, "meteor_available", lambda: False)
    with pytest.raises(LookupError, match="nltk.downloader wordnet"):
        meteor_scores(["a"], ["a"])
    assert "python -m nltk.downloader wordnet" in METEOR_MISSING
