"""The CMSC-style counterfactual set: complete sets, answers that do not depend on the
attributes, all three concept groups by default, the generator settings of a ``like``
dataset, bad fields refused."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from fairvlm.data import dataset_metadata, load_samples
from fairvlm.data.concepts import CMSC_CONCEPTS, CONCEPT_GROUPS
from fairvlm.errors import ConfigError
from fairvlm.mitigation.asd import check_asd_data
from fairvlm.mitigation.asd.cmsc import CMSCConfig, build_cmsc, cmsc_samples

THREE = ["compassionate", "weapon", "university"]  # one concept of each group


def test_sets_are_complete_and_answers_do_not_follow_the_stereotype():
    splits = cmsc_samples(CMSCConfig(concepts=THREE, n_sets=2, n_test_sets=0))
    assert set(splits) == {"finetune"}
    ft = splits["finetune"]
    assert Counter(s.task for s in ft) == {"probe": 144, "concept": 72, "describe": 72}
    by_set: dict[str, set] = {}
    for s in ft:
        by_set.setdefault(s.counterfactual_set, set()).add(tuple(sorted(s.attributes.items())))
    assert len(by_set) == 6  # 2 sets x 3 concepts
    combos = {
        (("age", a), ("gender", g), ("race", r))
        for g, r, a in itertools.product(
            ("female", "male"), ("light", "brown", "dark"), ("young", "old")
        )
    }
    assert all(v == combos for v in by_set.values())
    own = [s for s in ft if s.task == "probe" and s.concept == s.meta["scene_concept"]]
    neg = [s for s in ft if s.task == "probe" and s.concept != s.meta["scene_concept"]]
    assert len(own) == 72
    # no stereotype: a scene's answers do not depend on who is in it; the scene's
    # visibility (shared by its 12 images) sets the chance of "yes"
    assert {s.target for s in own} <= {"yes", "no"}
    clear = cmsc_samples(CMSCConfig(concepts=THREE, n_sets=2, n_test_sets=0, min_visibility=1.0))
    own_clear = [
        s for s in clear["finetune"] if s.task == "probe" and s.concept == s.meta["scene_concept"]
    ]
    assert {s.target for s in own_clear} == {"yes"} and len(own_clear) == 72
    assert {s.target for s in neg} == {"no"} and len(neg) == 72
    assert {s.target for s in ft if s.task == "concept"} == set(THREE)
    assert check_asd_data(ft) == ["age", "gender", "race"]
    no_neg = cmsc_samples(
        CMSCConfig(concepts=THREE, n_sets=1, n_test_sets=0, negatives=False, tasks=["probe"])
    )
    assert len(no_neg["finetune"]) == 36
    assert all(s.concept == s.meta["scene_concept"] for s in no_neg["finetune"])


def test_default_concepts_cover_the_three_groups():
    cfg = CMSCConfig().generator_config()
    assert cfg.concepts == list(CMSC_CONCEPTS)
    assert all(any(c in cfg.concepts for c in members) for members in CONCEPT_GROUPS.values())
    assert cfg.finetune_stereotype_strength == 0.0


def test_build_writes_a_dataset_and_like_reuses_its_generator(tmp_path):
    first = build_cmsc(tmp_path / "a", concepts=THREE, n_sets=1, n_test_sets=1, image_size=24)
    meta = dataset_metadata(first)
    assert meta["cmsc"]["concepts"] == THREE and meta["generator"]["bench"] == "social"
    assert len(load_samples(first, "finetune")) == 3 * 12 * 4
    assert len(load_samples(first, "test")) == 3 * 12 * 3  # probe, concept, describe
    like = CMSCConfig(like=str(first), n_sets=1).generator_config()
    assert (like.concepts, like.image_size) == (THREE, 24)  # order kept: each cue stays
    with pytest.raises(ConfigError, match="like"):
        CMSCConfig(like=str(tmp_path / "missing")).generator_config()
    for bad in ({"n_sets": 0}, {"tasks": ["vqa"]}):
        with pytest.raises(ConfigError):
            CMSCConfig(**bad)
