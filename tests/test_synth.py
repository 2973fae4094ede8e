"""The embedded benchmarks: configs, determinism, and the bias knobs in the data itself."""

from __future__ import annotations

import dataclasses
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from fairvlm.errors import ConfigError
from fairvlm.synth import (
    ClinicalConfig,
    SocialConfig,
    bench_config,
    generate,
    parse_overrides,
    synthesize,
)
from fairvlm.synth import clinical as clin
from fairvlm.synth import social as soc
from fairvlm.synth.common import allocate, fingerprint

TINY_CLINICAL = {"image_size": 16, "n_train": 60, "n_finetune": 12, "n_test": 12}
TINY_SOCIAL = {
    "image_size": 16,
    "concepts": ["doctor", "chef", "weapon"],
    "n_train": 6,
    "n_finetune_sets": 1,
    "n_test_sets": 1,
}


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int64)


def test_overrides_are_typed_and_errors_name_the_field():
    cfg = parse_overrides(
        ClinicalConfig, ["n_train=600", "noise=0", "classes=[nevus, melanoma]", "mechanism=none"]
    )
    assert (cfg.n_train, cfg.noise, cfg.classes, cfg.mechanism) == (
        600,
        0.0,
        ["nevus", "melanoma"],
        "none",
    )
    assert isinstance(cfg.noise, float)
    social = bench_config(
        "social", {"concepts": "doctor,nurse", "finetune_stereotype_strength": None}
    )
    assert social.concepts == ["doctor", "nurse"]
    with pytest.raises(ConfigError, match="n_trian.*known fields"):
        parse_overrides(ClinicalConfig, ["n_trian=5"])
    with pytest.raises(ConfigError, match="mechanism='both'.*underrep"):
        parse_overrides(ClinicalConfig, ["mechanism=both"])
    with pytest.raises(ConfigError, match="spurious_strength=1.5"):
        ClinicalConfig(spurious_strength=1.5)
    with pytest.raises(ConfigError, match="n_train='many'"):
        parse_overrides(ClinicalConfig, ["n_train=many"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(SocialConfig, ["seed"])
    with pytest.raises(ConfigError, match="bench='xray'"):
        bench_config("xray")


def test_allocate_is_exact_by_largest_remainder():
    assert allocate(10, [0.1, 0.9]) == [1, 9]
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(allocate(7, [0.2, 0.5, 0.3])) == 7


@pytest.mark.parametrize("bench,tiny", [("clinical", TINY_CLINICAL), ("social", TINY_SOCIAL)])
def test_same_seed_same_fingerprint_other_seed_other_data(bench, tiny):
    def fp(seed):
        cfg = bench_config(bench, {**tiny, "seed": seed})
        return fingerprint(generate(bench, cfg), cfg)

    assert fp(0) == fp(0)
    assert fp(0) != fp(1)


def test_synthesize_writes_splits_config_and_fingerprint(tmp_path):
    from fairvlm.data import dataset_metadata, load_samples

    out = synthesize("clinical", tmp_path / "d", [f"{k}={v}" for k, v in TINY_CLINICAL.items()])
    meta = dataset_metadata(out)
    assert meta["splits"] == {"train": 120, "finetune": 24, "test": 24}  # 2 tasks per image
    assert meta["generator"]["bench"] == "clinical"
    assert meta["generator"]["config"]["n_train"] == 60
    assert meta["attributes"]["skin_tone"] == ["light", "dark"]
    test = load_samples(out, "test")
    cfg = bench_config("clinical", TINY_CLINICAL)
    assert meta["fingerprint"] == fingerprint(generate("clinical", cfg), cfg)
    vqa = [s for s in test if s.task == "vqa"]
    assert vqa[0].options == ["nevus", "melanoma", "keratosis"]
    assert vqa[0].load_image().size == (16, 16)


def _cells(samples):
    return Counter((s.attributes["skin_tone"], s.target) for s in samples if s.task == "vqa")


def test_underrep_makes_the_minority_rare_and_leaves_labels_independent():
    cfg = ClinicalConfig(**{**TINY_CLINICAL, "n_train": 300}, mechanism="underrep")
    splits = clin.generate_clinical(cfg)
    train = _cells(splits["train"])
    assert sum(v for (t, _), v in train.items() if t == "dark") == 30  # 0.1 x 300
    assert {train[("dark", c)] for c in cfg.classes} == {10}
    assert {train[("light", c)] for c in cfg.classes} == {90}
    assert set(_cells(splits["test"]).values()) == {2}  # 12 / (2 tones x 3 classes)


def test_spurious_ties_the_minority_to_one_diagnosis_in_train_only():
    cfg = ClinicalConfig(
        **{**TINY_CLINICAL, "n_train": 100}, mechanism="spurious", spurious_strength=0.7
    )
    splits = clin.generate_clinical(cfg)
    train = _cells(splits["train"])
    # dark: p(melanoma) = 1/3 + 0.7 x 2/3 = 0.8 of 50; light: uniform
    assert [train[("dark", c)] for c in ("melanoma", "nevus", "keratosis")] == [40, 5, 5]
    assert sorted(train[("light", c)] for c in cfg.classes) == [16, 17, 17]
    assert set(_cells(splits["test"]).values()) == {2}
    # the finetune split follows train unless it has its own strength
    assert (
        _cells(splits["finetune"])[("dark", "melanoma")]
        > _cells(splits["finetune"])[("dark", "nevus")]
    )
    curated = clin.generate_clinical(dataclasses.replace(cfg, finetune_spurious_strength=0.0))
    assert _cells(curated["train"]) == train
    finetune = _cells(curated["finetune"])
    dark = [finetune[("dark", c)] for c in cfg.classes]
    assert max(dark) - min(dark) <= 1, finetune
    with pytest.raises(ConfigError, match="finetune_spurious_strength=2"):
        ClinicalConfig(finetune_spurious_strength=2)


def _render(cfg, tone, diagnosis="melanoma", seed=3):
    png, _ = clin.render(cfg, clin.Case(tone, diagnosis, None, None), np.random.default_rng(seed))
    return _pixels(png)


def test_lesions_are_equally_visible_on_both_skin_tones_without_knobs():
    # Same random stream: the two images differ only by the skin colour, everywhere
    # (the lesion is an offset that never clips), so no gap is built into the drawing.
    cfg = ClinicalConfig(mechanism="none", noise=0.0)
    for diagnosis in cfg.classes:
        diff = _render(cfg, "dark", diagnosis) - _render(cfg, "light", diagnosis)
        expected = np.array(clin.SKIN["dark"]) - np.array(clin.SKIN["light"])
        assert np.abs(diff - expected).max() <= 1, diagnosis


def test_minority_contrast_scales_the_lesion_offset():
    base = ClinicalConfig(
        mechanism="underrep", noise=0.0, minority_hue_shift=0.0, minority_contrast=0.5
    )
    faint = ClinicalConfig(
        mechanism="underrep", noise=0.0, minority_hue_shift=0.0, minority_contrast=0.25
    )
    full = ClinicalConfig(mechanism="none", noise=0.0)
    strength = {}  # summed |pixel - background| (the corner is background)
    for name, cfg in (("full", full), ("half", base), ("quarter", faint)):
        img = _render(cfg, "dark")
        strength[name] = np.abs(img - img[0, 0]).sum()
    assert strength["half"] / strength["full"] == pytest.approx(0.5, abs=0.03)
    assert strength["quarter"] / strength["full"] == pytest.approx(0.25, abs=0.03)


def test_contrast_floor_bounds_each_lesions_own_contrast():
    contrasts = {}
    for floor in (0.2, 0.9):
        cfg = ClinicalConfig(**TINY_CLINICAL, mechanism="none", contrast_floor=floor)
        train = clin.generate_clinical(cfg)["train"]
        contrasts[floor] = np.array([s.meta["contrast"] for s in train if s.task == "vqa"])
        assert floor <= contrasts[floor].min() and contrasts[floor].max() <= 1.0
    # a low floor gives faint lesions (the hard cases), a high one does not
    assert (contrasts[0.2] < 0.5).mean() > 0.25
    assert (contrasts[0.9] < 0.5).sum() == 0
    with pytest.raises(ConfigError, match="contrast_floor=0.0"):
        ClinicalConfig(contrast_floor=0.0)


def test_subtle_cue_shares_the_background_and_shifts_the_lesion_hue():
    cfg = ClinicalConfig(mechanism="none", noise=0.0, group_cue="subtle", subtle_strength=20)
    dark, light = _render(cfg, "dark", "nevus"), _render(cfg, "light", "nevus")
    assert np.array_equal(dark[0, 0], light[0, 0])  # same skin
    assert np.abs(dark - light).max() > 3  # the lesions differ
    assert np.abs(dark - light)[:3, :3].max() == 0


def test_report_names_the_findings_and_the_diagnosis():
    splits = clin.generate_clinical(ClinicalConfig(**TINY_CLINICAL))
    for s in splits["test"]:
        if s.task == "report":
            assert s.target.startswith(f"Findings: a {s.meta['size']} {s.meta['shape']} ")
            diagnosis = s.target.rsplit("Diagnosis: ", 1)[1].rstrip(".")
            vqa = next(v for v in splits["test"] if v.id == s.id.replace("-report", "-vqa"))
            assert diagnosis == vqa.target
            assert s.attributes == vqa.attributes


def test_unknown_rate_leaves_sex_and_age_unknown():
    none = clin.generate_clinical(ClinicalConfig(**TINY_CLINICAL, unknown_rate=0.0))["train"]
    assert all(s.attributes["sex"] is not None for s in none)
    many = clin.generate_clinical(ClinicalConfig(**TINY_CLINICAL, unknown_rate=0.9))["train"]
    share = np.mean([s.attributes["sex"] is None for s in many])
    assert 0.75 < share < 1.0
    assert all(s.attributes["skin_tone"] is not None for s in many)


def test_test_sets_are_counterfactual_and_truthful():
    cfg = SocialConfig(**TINY_SOCIAL, noise=0.0)
    test = soc.generate_social(cfg)["test"]
    probes = [s for s in test if s.task == "probe"]
    assert len(probes) == 3 * 12
    assert {s.target for s in probes} == {"yes"}
    by_set: dict[str, list] = {}
    for s in probes:
        by_set.setdefault(s.counterfactual_set, []).append(s)
    for members in by_set.values():
        combos = {tuple(s.attributes[a] for a in soc.ATTRIBUTES) for s in members}
        assert len(combos) == 12 and len({s.concept for s in members}) == 1
        images = [np.asarray(s.load_image(), dtype=np.int64) for s in members]
        right = [im[:, 11:] for im in images]  # the concept object's side of the scene
        assert all(np.array_equal(right[0], r) for r in right[1:])
        assert not all(np.array_equal(images[0], im) for im in images[1:])
    from fairvlm.metrics import mention_flags

    described = [s.target for s in test if s.task == "describe"]
    assert not mention_flags(described).any(axis=None)


def _train_probes(**kw):
    cfg = SocialConfig(**{**TINY_SOCIAL, "n_train": 40, **kw})
    train = soc.generate_social(cfg)["train"]
    table = soc.stereotypes(cfg.concepts)
    own = [s for s in train if s.task == "probe" and not s.id.endswith("-neg")]
    return train, own, table


def test_stereotype_strength_sets_the_probe_labels():
    # P(yes) = visibility x (1 - s) ** mismatches; visibility 1 leaves the stereotype only
    _, own, table = _train_probes(stereotype_strength=1.0, min_visibility=1.0)
    for s in own:
        matches = all(s.attributes[a] == table[s.concept][a] for a in soc.ATTRIBUTES)
        assert s.target == ("yes" if matches else "no")
    train, own, _ = _train_probes(stereotype_strength=0.0, min_visibility=1.0)
    assert {s.target for s in own} == {"yes"}
    _, faint, _ = _train_probes(stereotype_strength=0.0, min_visibility=0.1, n_train=200)
    seen = [(s.meta["visibility"], s.target == "yes") for s in faint]
    low = [y for v, y in seen if v < 0.4]
    high = [y for v, y in seen if v > 0.7]
    assert np.mean(low) < 0.45 < 0.7 < np.mean(high)
    negatives = [s for s in train if s.id.endswith("-neg")]
    assert {s.target for s in negatives} == {"no"}
    assert all(s.concept != s.meta["scene_concept"] for s in negatives)


def test_cooccurrence_and_mention_rate():
    _, own, table = _train_probes(cooccurrence=1.0)
    assert all(s.attributes == table[s.concept] for s in own)
    _, own, table = _train_probes(cooccurrence=0.0)
    assert any(s.attributes != table[s.concept] for s in own)
    from fairvlm.metrics import mention_flags

    for rate, expected in ((0.0, 0.0), (1.0, 1.0)):
        train, _, _ = _train_probes(mention_rate=rate)
        texts = [s.target for s in train if s.task == "describe"]
        assert mention_flags(texts).all(axis=1).mean() == expected


def test_stereotypes_cover_every_value():
    table = soc.stereotypes([f"concept{i}" for i in range(6)])
    for attr, values in soc.VALUES.items():
        assert {row[attr] for row in table.values()} == set(values)
