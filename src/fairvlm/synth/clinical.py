"""The clinical benchmark: dermoscopy-like images, a skin-tone group, a lesion diagnosis.

A lesion is drawn as colour *offsets* added to the skin: the same offset is as visible
on light as on dark skin (the backgrounds are chosen so that no offset clips), so with
the knobs at zero both groups are equally easy and any accuracy gap comes from a knob:

- ``underrep``: the minority group is rare in train/finetune, and its lesions (in every
  split) have their offsets scaled by ``minority_contrast`` and hue-rotated by
  ``minority_hue_shift``: an appearance the model sees too rarely to learn well.
- ``spurious``: in train/finetune the minority group mostly has ``spurious_class``; the
  test split breaks the correlation, so a model that learned the shortcut errs there.

Diagnoses differ in shape and colour pattern: nevus (round/oval, uniform brown, smooth
border), melanoma (irregular, asymmetric, dark brown with a blue-grey area), keratosis
(oval, light brown with dark dots).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fairvlm.data.schema import Sample
from fairvlm.synth import draw
from fairvlm.synth.common import allocate, make_sample, split_rng
from fairvlm.synth.config import ClinicalConfig

#: Background skin colours of the two groups; the darkest offset below stays >= 0 on both.
SKIN = {"light": (232.0, 196.0, 172.0), "dark": (140.0, 100.0, 80.0)}
#: The one background of ``group_cue="subtle"`` (between the two tones).
SUBTLE_SKIN = (186.0, 148.0, 126.0)
SEXES = ("female", "male")
AGE_GROUPS = ("young", "middle", "old")
ATTRIBUTES = ("skin_tone", "sex", "age_group")

# RGB offsets added to the skin (before contrast / hue changes).
NEVUS = (-65.0, -60.0, -50.0)
MELANOMA_CORE = (-85.0, -70.0, -62.0)
MELANOMA_BLUE = (-60.0, -35.0, 20.0)
KERATOSIS = (-25.0, -35.0, -55.0)
KERATOSIS_DOT = (-80.0, -68.0, -60.0)

#: Direction of the ``group_cue="subtle"`` tint (red up, blue down for the dark group).
SUBTLE_TINT = (0.7071, 0.0, -0.7071)
#: Range of the lesion radius (x image side).
RADIUS = (0.14, 0.3)

VQA_PROMPT = "What is the diagnosis? Options: {options}."
REPORT_PROMPT = "Write a short report with the findings and the diagnosis."


@dataclass
class Case:
    """One image to draw: its group, diagnosis and metadata attributes."""

    skin_tone: str
    diagnosis: str
    sex: str | None
    age_group: str | None


def _groups(cfg: ClinicalConfig) -> tuple[str, str]:
    """``(minority, majority)`` skin tones."""
    minority = cfg.minority_group
    return minority, next(t for t in SKIN if t != minority)


def _biased_cells(cfg: ClinicalConfig, n: int, strength: float) -> list[tuple[str, str]]:
    """(skin tone, diagnosis) of ``n`` train/finetune images under the bias mechanism.

    ``strength`` is the split's spurious strength (``spurious`` mechanism only).
    """
    minority, majority = _groups(cfg)
    k = len(cfg.classes)
    frac = cfg.minority_fraction if cfg.mechanism == "underrep" else 0.5
    n_min, n_maj = allocate(n, [frac, 1 - frac])
    min_probs = [1.0 / k] * k
    if cfg.mechanism == "spurious":
        min_probs = [
            (1 / k + strength * (1 - 1 / k)) if c == cfg.spurious_class else (1 - strength) / k
            for c in cfg.classes
        ]
    cells = []
    for tone, count, probs in ((minority, n_min, min_probs), (majority, n_maj, [1 / k] * k)):
        for cls, m in zip(cfg.classes, allocate(count, probs), strict=True):
            cells += [(tone, cls)] * m
    return cells


def _test_cells(cfg: ClinicalConfig) -> list[tuple[str, str]]:
    """Balanced over skin tone x diagnosis (hence decorrelated)."""
    per = cfg.n_test // (len(SKIN) * len(cfg.classes))
    return [(tone, cls) for tone in SKIN for cls in cfg.classes for _ in range(per)]


def _cases(cfg: ClinicalConfig, cells: list[tuple[str, str]], rng: np.random.Generator):
    order = rng.permutation(len(cells))
    out = []
    for i in order:
        tone, cls = cells[i]
        sex = str(rng.choice(SEXES)) if rng.random() >= cfg.unknown_rate else None
        age = str(rng.choice(AGE_GROUPS)) if rng.random() >= cfg.unknown_rate else None
        out.append(Case(tone, cls, sex, age))
    return out


def _appearance(cfg: ClinicalConfig, tone: str) -> tuple[float, float]:
    """``(contrast multiplier, hue rotation in degrees)`` of a lesion on ``tone`` skin."""
    contrast, hue = cfg.lesion_contrast, 0.0
    if cfg.mechanism == "underrep" and tone == cfg.minority_group:
        contrast *= cfg.minority_contrast
        hue += cfg.minority_hue_shift
    return contrast, hue


def render(
    cfg: ClinicalConfig, case: Case, rng: np.random.Generator
) -> tuple[bytes, dict[str, Any]]:
    """Draw one image; returns its PNG bytes and what was drawn (for the report)."""
    size = cfg.image_size
    side = size * draw.SUPERSAMPLE
    skin = SUBTLE_SKIN if cfg.group_cue == "subtle" else SKIN[case.skin_tone]
    img = draw.canvas(size, draw.jitter_colour(rng, skin, 8.0))
    contrast, hue = _appearance(cfg, case.skin_tone)
    # Per-image contrast spread: some lesions are faint, so the task has hard cases
    # (where a shortcut can take over) at every knob setting.
    contrast *= rng.uniform(cfg.contrast_floor, 1.0)

    def offset(delta: tuple[float, float, float]) -> np.ndarray:
        return contrast * draw.rotate_hue(delta, hue)

    centre = (side * (0.5 + rng.uniform(-0.08, 0.08)), side * (0.5 + rng.uniform(-0.08, 0.08)))
    radius = side * rng.uniform(*RADIUS)
    found: dict[str, Any] = {
        "size": "large" if radius > 0.22 * side else "small",
        "contrast": round(float(contrast), 4),
        "hue_shift": round(float(hue), 4),
    }
    if case.diagnosis == "nevus":
        aspect = rng.uniform(0.8, 1.0)
        mask = draw.polygon_mask(side, draw.blob_points(rng, centre, radius, 0.05, aspect=aspect))
        draw.paint(img, mask, offset(NEVUS))
        lesion = mask
        found["shape"] = "round" if aspect > 0.9 else "oval"
    elif case.diagnosis == "melanoma":
        core = draw.polygon_mask(side, draw.blob_points(rng, centre, radius, 0.6))
        angle = rng.uniform(0, 2 * np.pi)
        sub = (centre[0] + 0.4 * radius * np.cos(angle), centre[1] + 0.4 * radius * np.sin(angle))
        blue = draw.polygon_mask(side, draw.blob_points(rng, sub, 0.55 * radius, 0.4)) * core
        draw.paint(img, core, offset(MELANOMA_CORE))
        draw.paint(img, blue, offset(MELANOMA_BLUE) - offset(MELANOMA_CORE))
        lesion = core
        found["shape"] = "irregular"
    else:
        aspect = rng.uniform(1.15, 1.4)
        body = draw.polygon_mask(side, draw.blob_points(rng, centre, radius, 0.15, aspect=aspect))
        draw.paint(img, body, offset(KERATOSIS))
        dots = np.zeros_like(body)
        for _ in range(int(rng.integers(5, 9))):
            r = radius * rng.uniform(0.0, 0.7)
            a = rng.uniform(0, 2 * np.pi)
            x, y = centre[0] + r * np.cos(a) * aspect, centre[1] + r * np.sin(a) / aspect
            d = side * 0.035
            dots = np.maximum(dots, draw.ellipse_mask(side, (x - d, y - d, x + d, y + d)))
        draw.paint(img, dots * body, offset(KERATOSIS_DOT) - offset(KERATOSIS))
        lesion = body
        found["shape"] = "oval"
    if cfg.group_cue == "subtle":  # the group as a faint tint, only inside the lesion
        sign = 0.5 if case.skin_tone == "dark" else -0.5
        draw.paint(img, lesion, sign * cfg.subtle_strength * np.asarray(SUBTLE_TINT))
    return draw.finish(img, size, rng, cfg.noise), found


def report_text(diagnosis: str, found: dict[str, Any]) -> str:
    """The templated report of a drawn lesion: findings, then the diagnosis."""
    size, shape = found["size"], found["shape"]
    findings = {
        "nevus": f"a {size} {shape} lesion with uniform brown colour and a smooth border",
        "melanoma": f"a {size} {shape} asymmetric lesion with dark brown and blue-grey areas "
        "and an irregular border",
        "keratosis": f"a {size} {shape} light brown waxy lesion with dark dots",
    }[diagnosis]
    return f"Findings: {findings}. Diagnosis: {diagnosis}."


def _samples(cfg: ClinicalConfig, split: str, cases: list[Case], rng) -> list[Sample]:
    options = list(cfg.classes)
    vqa_prompt = VQA_PROMPT.format(options=", ".join(options))
    out = []
    for i, case in enumerate(cases):
        png, found = render(cfg, case, rng)
        attrs = {"skin_tone": case.skin_tone, "sex": case.sex, "age_group": case.age_group}
        meta = {"image": i, **found}
        common = {"attributes": attrs, "split": split, "meta": meta}
        out.append(
            make_sample(
                png,
                id=f"clinical-{split}-{i:05d}-vqa",
                prompt=vqa_prompt,
                target=case.diagnosis,
                task="vqa",
                options=options,
                **common,
            )
        )
        out.append(
            make_sample(
                png,
                id=f"clinical-{split}-{i:05d}-report",
                prompt=REPORT_PROMPT,
                target=report_text(case.diagnosis, found),
                task="report",
                **common,
            )
        )
    return out


def generate_clinical(cfg: ClinicalConfig) -> dict[str, list[Sample]]:
    """The train / finetune / test samples of the clinical benchmark for ``cfg``."""
    splits = {}
    finetune_strength = (
        cfg.spurious_strength
        if cfg.finetune_spurious_strength is None
        else cfg.finetune_spurious_strength
    )
    for split, cells in (
        ("train", _biased_cells(cfg, cfg.n_train, cfg.spurious_strength)),
        ("finetune", _biased_cells(cfg, cfg.n_finetune, finetune_strength)),
        ("test", _test_cells(cfg)),
    ):
        rng = split_rng(cfg.seed, "clinical", split)
        splits[split] = _samples(cfg, split, _cases(cfg, cells, rng), rng)
    return splits


def vocabularies(cfg: ClinicalConfig) -> dict[str, list[str]]:
    """The attribute values the benchmark can produce (declared in the metadata)."""
    return {"skin_tone": list(SKIN), "sex": list(SEXES), "age_group": list(AGE_GROUPS)}


__all__ = ["ATTRIBUTES", "Case", "generate_clinical", "render", "report_text", "vocabularies"]
