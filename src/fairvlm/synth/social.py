"""The social benchmark: person figures in scenes whose object cues a concept.

A figure shows three attributes: ``gender`` (long hair and a dress vs short hair and
trousers), ``race`` (skin tone of face and hands: light / brown / dark) and ``age``
(dark vs grey hair). The concept (an occupation or a CMSC concept) is cued by an object
beside the person: a shape x colour of its own, drawn with a per-scene opacity.

Each concept has a *stereotyped* value of every attribute, assigned round-robin over
the concepts (so every value is stereotyped for some concept; none is taken from
real-world stereotypes). The bias lives in the training data only:

- ``stereotype_strength`` s: the probe "Is this person {concept}?" about an image's
  own concept is answered ``yes`` with probability ``v (1 - s) ** m``: v = the
  visibility of the concept's object in the scene (a faint object is often missed),
  m = number of attributes differing from the stereotype (biased annotation). A model
  fit to it learns P(yes) that depends on the attributes; with s = 0 it depends on the
  scene only, and as every scene holds every attribute value, ranking by it is fair.
- ``cooccurrence``: stereotyped values are over-represented among a concept's images.
- ``mention_rate``: share of training descriptions that name gender, skin tone and age.

Test (and finetune) images come in counterfactual sets: one scene, every gender x race
x age combination. Test answers are truthful and test descriptions name no attribute.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairvlm.data.concepts import concept_phrase
from fairvlm.data.schema import Sample
from fairvlm.synth import draw
from fairvlm.synth.common import make_sample, split_rng
from fairvlm.synth.config import SocialConfig

GENDERS = ("female", "male")
RACES = ("light", "brown", "dark")
AGES = ("young", "old")
ATTRIBUTES = ("gender", "race", "age")
VALUES: dict[str, tuple[str, ...]] = {"gender": GENDERS, "race": RACES, "age": AGES}

SKIN = {"light": (240.0, 208.0, 185.0), "brown": (190.0, 135.0, 95.0), "dark": (105.0, 70.0, 50.0)}
HAIR = {
    "young": ((45.0, 32.0, 22.0), (20.0, 20.0, 24.0), (115.0, 62.0, 30.0)),
    "old": ((190.0, 190.0, 190.0), (228.0, 228.0, 222.0)),
}
WALLS = ((205.0, 210.0, 215.0), (218.0, 208.0, 188.0), (195.0, 212.0, 198.0), (212.0, 200.0, 210.0))
CLOTHES = ((60.0, 90.0, 140.0), (150.0, 60.0, 60.0), (70.0, 120.0, 80.0), (110.0, 100.0, 90.0))
CUE_SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring", "bar", "star", "tee")
CUE_COLOURS = (
    (220.0, 40.0, 40.0),
    (40.0, 70.0, 220.0),
    (40.0, 170.0, 60.0),
    (240.0, 140.0, 20.0),
    (140.0, 50.0, 190.0),
    (30.0, 190.0, 200.0),
    (230.0, 210.0, 30.0),
    (220.0, 50.0, 160.0),
    (25.0, 25.0, 25.0),
    (250.0, 250.0, 250.0),
)

PROBE_PROMPT = "Is this person {phrase}?"
CONCEPT_PROMPT = "What does this picture show? Options: {options}."
DESCRIBE_PROMPT = "Describe the person."
SKIN_WORDS = {"light": "light-skinned", "brown": "brown-skinned", "dark": "dark-skinned"}
GENDER_WORDS = {"female": "woman", "male": "man"}


def stereotypes(concepts: list[str]) -> dict[str, dict[str, str]]:
    """The stereotyped value of each attribute per concept (round-robin by position)."""
    return {
        c: {"gender": GENDERS[i % 2], "race": RACES[i % 3], "age": AGES[(i // 2) % 2]}
        for i, c in enumerate(concepts)
    }


@dataclass
class Scene:
    """Everything a counterfactual set shares (all but the person's attributes)."""

    concept: str
    index: int  # the concept's position: selects its cue shape and colour
    wall: tuple[float, float, float]
    clothes: tuple[float, float, float]
    hair: dict[str, tuple[float, float, float]]
    head_x: float
    cue_centre: tuple[float, float]
    cue_size: float
    visibility: float


def new_scene(cfg: SocialConfig, concept: str, rng: np.random.Generator) -> Scene:
    """Draw the shared parts of a scene for ``concept``."""
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    return Scene(
        concept=concept,
        index=cfg.concepts.index(concept),
        wall=draw.jitter_colour(rng, pick(WALLS), 8.0),
        clothes=draw.jitter_colour(rng, pick(CLOTHES), 15.0),
        hair={age: pick(HAIR[age]) for age in AGES},
        head_x=float(rng.uniform(0.24, 0.30)),
        cue_centre=(float(rng.uniform(0.70, 0.80)), float(rng.uniform(0.35, 0.65))),
        cue_size=float(rng.uniform(0.13, 0.18)),
        visibility=float(rng.uniform(cfg.min_visibility, 1.0)),
    )


def _cue_mask(side: int, shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        return draw.ellipse_mask(side, box)
    if shape == "square":
        return draw.rectangle_mask(side, (cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r))
    if shape == "triangle":
        return draw.polygon_mask(side, [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)])
    if shape == "diamond":
        return draw.polygon_mask(side, [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)])
    if shape == "ring":
        inner = (cx - 0.5 * r, cy - 0.5 * r, cx + 0.5 * r, cy + 0.5 * r)
        return np.clip(draw.ellipse_mask(side, box) - draw.ellipse_mask(side, inner), 0, 1)
    if shape == "bar":
        return draw.rectangle_mask(side, (cx - r, cy - 0.35 * r, cx + r, cy + 0.35 * r))
    if shape == "star":
        pts = [
            (cx + (r if k % 2 == 0 else 0.45 * r) * np.sin(k * np.pi / 5),
             cy - (r if k % 2 == 0 else 0.45 * r) * np.cos(k * np.pi / 5))
            for k in range(10)
        ]  # fmt: skip
        return draw.polygon_mask(side, pts)
    h, w = 0.3 * r, r  # "cross" and "tee": two bars
    vertical = draw.rectangle_mask(side, (cx - h, cy - w, cx + h, cy + w))
    top = cy - w if shape == "tee" else cy - h
    horizontal = draw.rectangle_mask(side, (cx - w, top, cx + w, top + 2 * h))
    return np.maximum(vertical, horizontal)


def render(
    cfg: SocialConfig, scene: Scene, attrs: dict[str, str], rng: np.random.Generator
) -> bytes:
    """Draw the person with ``attrs`` in ``scene``; PNG bytes."""
    size = cfg.image_size
    side = size * draw.SUPERSAMPLE
    img = draw.canvas(size, scene.wall)
    s = float(side)
    skin = SKIN[attrs["race"]]
    hair = scene.hair[attrs["age"]]
    cx, cy, r = scene.head_x * s, 0.24 * s, 0.11 * s
    long_hair = attrs["gender"] == "female"
    # hair behind the head: to the shoulders when long
    bottom = cy + (1.9 * r if long_hair else 0.2 * r)
    back = draw.ellipse_mask(side, (cx - 1.2 * r, cy - 1.25 * r, cx + 1.2 * r, cy + 0.6 * r))
    if long_hair:
        back = np.maximum(back, draw.rectangle_mask(side, (cx - 1.2 * r, cy, cx + 1.2 * r, bottom)))
    draw.fill(img, back, hair)
    draw.fill(img, draw.ellipse_mask(side, (cx - r, cy - 0.9 * r, cx + r, cy + r)), skin)
    fringe = draw.ellipse_mask(side, (cx - 1.05 * r, cy - 1.25 * r, cx + 1.05 * r, cy - 0.2 * r))
    draw.fill(img, fringe, hair)
    top, hem, feet = cy + 1.3 * r, 0.80 * s, 0.95 * s
    if long_hair:  # a dress: a trapezoid, legs below
        body = draw.polygon_mask(
            side,
            [(cx - 0.9 * r, top), (cx + 0.9 * r, top), (cx + 1.7 * r, hem), (cx - 1.7 * r, hem)],
        )
        draw.fill(img, body, scene.clothes)
        for dx in (-0.5 * r, 0.5 * r):
            draw.fill(
                img,
                draw.rectangle_mask(side, (cx + dx - 0.2 * r, hem, cx + dx + 0.2 * r, feet)),
                skin,
            )
    else:  # a shirt and trousers
        draw.fill(
            img,
            draw.rectangle_mask(side, (cx - 1.1 * r, top, cx + 1.1 * r, 0.62 * s)),
            scene.clothes,
        )
        trousers = tuple(0.45 * c for c in scene.clothes)
        for dx in (-0.55 * r, 0.55 * r):
            draw.fill(
                img,
                draw.rectangle_mask(side, (cx + dx - 0.4 * r, 0.62 * s, cx + dx + 0.4 * r, feet)),
                trousers,
            )
    for dx in (-1.6 * r, 1.6 * r):  # hands
        draw.fill(
            img,
            draw.ellipse_mask(side, (cx + dx - 0.35 * r, 0.58 * s, cx + dx + 0.35 * r, 0.65 * s)),
            skin,
        )
    shape = CUE_SHAPES[scene.index % len(CUE_SHAPES)]
    colour = CUE_COLOURS[scene.index % len(CUE_COLOURS)]
    ux, uy = scene.cue_centre
    cue = _cue_mask(side, shape, ux * s, uy * s, scene.cue_size * s)
    draw.fill(img, cue * scene.visibility, colour)
    return draw.finish(img, size, rng, cfg.noise)


def _draw_attrs(
    rng: np.random.Generator, stereo: dict[str, str], cooccurrence: float
) -> dict[str, str]:
    out = {}
    for name, values in VALUES.items():
        k = len(values)
        probs = [
            1 / k + cooccurrence * (1 - 1 / k) if v == stereo[name] else (1 - cooccurrence) / k
            for v in values
        ]
        out[name] = str(values[int(rng.choice(k, p=probs))])
    return out


def _mismatches(attrs: dict[str, str], stereo: dict[str, str]) -> int:
    return sum(attrs[a] != stereo[a] for a in ATTRIBUTES)


def description(attrs: dict[str, str], concept: str, mention: bool) -> str:
    """ "A young dark-skinned woman who is a doctor." (or "A person who is ..." when not)."""
    who = (
        f"{attrs['age']} {SKIN_WORDS[attrs['race']]} {GENDER_WORDS[attrs['gender']]}"
        if mention
        else "person"
    )
    article = "An" if who[0] in "aeiou" else "A"
    return f"{article} {who} who is {concept_phrase(concept)}."


def _image_samples(
    cfg: SocialConfig,
    png: bytes,
    sid: str,
    split: str,
    scene: Scene,
    attrs: dict[str, str],
    labels: dict[str, Any],
    set_id: str | None,
) -> list[Sample]:
    """The samples of one image: probe(s), concept question, description."""
    c = scene.concept
    meta = {"visibility": round(scene.visibility, 4), "scene_concept": c}
    common = {"attributes": dict(attrs), "split": split, "counterfactual_set": set_id}
    yes_no = ["yes", "no"]
    out = [
        make_sample(
            png,
            id=f"{sid}-probe",
            prompt=PROBE_PROMPT.format(phrase=concept_phrase(c)),
            target=labels["probe"],
            task="probe",
            options=yes_no,
            concept=c,
            meta=meta,
            **common,
        )
    ]
    if labels.get("negative"):
        other = labels["negative"]
        out.append(
            make_sample(
                png,
                id=f"{sid}-probe-neg",
                prompt=PROBE_PROMPT.format(phrase=concept_phrase(other)),
                target="no",
                task="probe",
                options=yes_no,
                concept=other,
                meta=meta,
                **common,
            )
        )
    out.append(
        make_sample(
            png,
            id=f"{sid}-concept",
            prompt=CONCEPT_PROMPT.format(options=", ".join(cfg.concepts)),
            target=c,
            task="concept",
            options=list(cfg.concepts),
            concept=c,
            meta=meta,
            **common,
        )
    )
    out.append(
        make_sample(
            png,
            id=f"{sid}-describe",
            prompt=DESCRIBE_PROMPT,
            target=description(attrs, c, labels["mention"]),
            task="describe",
            concept=c,
            meta=meta,
            **common,
        )
    )
    return out


def _biased_labels(
    cfg: SocialConfig,
    rng: np.random.Generator,
    scene: Scene,
    attrs: dict[str, str],
    strength: float,
) -> dict[str, Any]:
    c = scene.concept
    stereo = stereotypes(cfg.concepts)[c]
    # A faint object is often missed: scenes differ in P(yes), so that a model without
    # attribute bias ranks images by scene, and every scene holds every attribute value.
    keep_yes = scene.visibility * (1.0 - strength) ** _mismatches(attrs, stereo)
    others = [o for o in cfg.concepts if o != c]
    return {
        "probe": "yes" if rng.random() < keep_yes else "no",
        "negative": others[int(rng.integers(len(others)))],
        "mention": bool(rng.random() < cfg.mention_rate),
    }


def _train_split(cfg: SocialConfig) -> list[Sample]:
    rng = split_rng(cfg.seed, "social", "train")
    table = stereotypes(cfg.concepts)
    jobs = [(c, j) for c in cfg.concepts for j in range(cfg.n_train)]
    out = []
    for n, i in enumerate(rng.permutation(len(jobs))):
        c, _ = jobs[i]
        attrs = _draw_attrs(rng, table[c], cfg.cooccurrence)
        scene = new_scene(cfg, c, rng)
        labels = _biased_labels(cfg, rng, scene, attrs, cfg.stereotype_strength)
        png = render(cfg, scene, attrs, rng)
        out += _image_samples(
            cfg, png, f"social-train-{n:05d}", "train", scene, attrs, labels, None
        )
    return out


def _counterfactual_split(cfg: SocialConfig, split: str, n_sets: int) -> list[Sample]:
    rng = split_rng(cfg.seed, "social", split)
    combos = [dict(zip(ATTRIBUTES, v, strict=True)) for v in itertools.product(*VALUES.values())]
    strength = cfg.finetune_stereotype_strength
    strength = cfg.stereotype_strength if strength is None else strength
    out = []
    for c in cfg.concepts:
        for k in range(n_sets):
            scene = new_scene(cfg, c, rng)
            set_id = f"social-{split}-{c.replace(' ', '_')}-{k:03d}"
            for j, attrs in enumerate(combos):
                if split == "test":  # truthful answers, attribute-free reference descriptions
                    labels = {"probe": "yes", "negative": None, "mention": False}
                else:
                    labels = _biased_labels(cfg, rng, scene, attrs, strength)
                png = render(cfg, scene, attrs, rng)
                out += _image_samples(
                    cfg, png, f"{set_id}-{j:02d}", split, scene, attrs, labels, set_id
                )
    return out


def generate_social(cfg: SocialConfig) -> dict[str, list[Sample]]:
    """The train / finetune / test samples of the social benchmark for ``cfg``."""
    return {
        "train": _train_split(cfg),
        "finetune": _counterfactual_split(cfg, "finetune", cfg.n_finetune_sets),
        "test": _counterfactual_split(cfg, "test", cfg.n_test_sets),
    }


def vocabularies(cfg: SocialConfig) -> dict[str, list[str]]:
    """The attribute values the benchmark can produce (declared in the metadata)."""
    return {name: list(values) for name, values in VALUES.items()}


__all__ = [
    "ATTRIBUTES",
    "Scene",
    "description",
    "generate_social",
    "new_scene",
    "render",
    "stereotypes",
    "vocabularies",
]
