"""The knobs of the embedded benchmarks: one validated dataclass per benchmark.

``parse_overrides(ClinicalConfig, ["mechanism=spurious", "n_train=600"])`` builds a
config from ``key=value`` strings (values are YAML scalars or flow lists, e.g.
``concepts=[doctor, nurse, chef]``), as ``fairvlm data synth --set`` passes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairvlm.config import Config, is_int
from fairvlm.errors import ConfigError, bad_value
from fairvlm.yamlpos import parse_yaml_value

#: Diagnoses the clinical generator can draw (see :mod:`fairvlm.synth.clinical`).
DIAGNOSES = ("nevus", "melanoma", "keratosis")
MECHANISMS = ("none", "underrep", "spurious")
GROUP_CUES = ("background", "subtle")
SKIN_TONES = ("light", "dark")
#: Default social concepts: four occupations and four CMSC concepts (fast on CPU).
DEFAULT_CONCEPTS = ("doctor", "nurse", "engineer", "teacher", "chef", "tool", "weapon", "science")


def _check_fraction(name: str, value: float, *, low: float = 0.0, high: float = 1.0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_value(name, value, f"use a number in [{low}, {high}]")


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if not is_int(value) or value < minimum:
        raise bad_value(name, value, f"use an integer >= {minimum}")


def _check_common(cfg: Any) -> None:
    _check_positive_int("seed", cfg.seed, 0)
    _check_positive_int("image_size", cfg.image_size, 16)
    if cfg.image_size % 8:
        raise bad_value("image_size", cfg.image_size, "use a multiple of 8 (e.g. 32 or 64)")
    _check_fraction("noise", cfg.noise, high=0.5)


@dataclass
class ClinicalConfig(Config):
    """Dermoscopy-like benchmark: skin-tone group, lesion diagnosis, VQA + report.

    Attributes:
        seed: seeds everything; the same config gives byte-identical data.
        image_size: image side in pixels (a multiple of 8).
        n_train, n_finetune: images in the train / finetune splits (both biased alike);
            each image gives one ``vqa`` and one ``report`` sample.
        n_test: images in the test split, balanced over skin tone x diagnosis and
            decorrelated (rounded down to a multiple of 2 x len(classes)).
        classes: the diagnoses drawn, a subset of ``nevus, melanoma, keratosis``.
        mechanism: the bias in train/finetune: ``none``; ``underrep`` (the minority group
            is rare and its lesions render with less contrast and another hue; labels
            independent of group); ``spurious`` (group correlates with diagnosis).
        minority_group: the disadvantaged skin tone (``dark`` or ``light``).
        minority_fraction: share of the minority group in train/finetune (``underrep``).
        minority_contrast: lesion contrast multiplier of the minority group, all splits
            (``underrep``; 1 = no appearance shift).
        minority_hue_shift: hue rotation in degrees of minority lesions (``underrep``).
        spurious_strength: in train/finetune, the minority group's images have diagnosis
            ``spurious_class`` with probability ``1/K + s (1 - 1/K)``; the other group
            stays uniform (``spurious``; 0 = no correlation).
        finetune_spurious_strength: ``spurious_strength`` of the finetune split alone
            (``None`` = the same as train). 0 models fine-tuning a biased base model on
            curated, decorrelated data: the shortcut is in the base model only.
        spurious_class: the diagnosis correlated with the minority group.
        lesion_contrast: global lesion contrast multiplier (lower = harder task).
        contrast_floor: each lesion's own contrast factor is drawn in
            ``[contrast_floor, 1]``: the faint lesions are the hard cases where a shortcut
            or an appearance shift takes over, the clear ones keep the task learnable.
        noise: Gaussian pixel noise std as a fraction of 255.
        group_cue: ``background`` (the group is the skin-tone background) or ``subtle``
            (one shared background; the group is a faint tint inside the lesion,
            entangled with the diagnostic colours: a harder case for MI minimisation).
        subtle_strength: the size of the ``group_cue=subtle`` tint inside the lesion
            (pixel units along a red-blue axis; the groups differ by this much).
        unknown_rate: probability that ``sex`` / ``age_group`` are unknown (None).
    """

    seed: int = 0
    image_size: int = 32
    n_train: int = 1800
    n_finetune: int = 600
    n_test: int = 1200
    classes: list[str] = field(default_factory=lambda: list(DIAGNOSES))
    mechanism: str = "underrep"
    minority_group: str = "dark"
    minority_fraction: float = 0.1
    minority_contrast: float = 0.6
    minority_hue_shift: float = 40.0
    spurious_strength: float = 0.95
    finetune_spurious_strength: float | None = None
    spurious_class: str = "melanoma"
    lesion_contrast: float = 1.0
    contrast_floor: float = 0.2
    noise: float = 0.06
    group_cue: str = "background"
    subtle_strength: float = 12.0
    unknown_rate: float = 0.05

    def validate(self) -> None:
        _check_common(self)
        for name in ("n_train", "n_finetune"):
            _check_positive_int(name, getattr(self, name), 0)
        bad = [c for c in self.classes if c not in DIAGNOSES]
        if bad or len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise bad_value("classes", self.classes, f"use >= 2 distinct names from {DIAGNOSES}")
        _check_positive_int("n_test", self.n_test, 2 * len(self.classes))
        if self.mechanism not in MECHANISMS:
            raise bad_value("mechanism", self.mechanism, f"use one of {MECHANISMS}")
        if self.minority_group not in SKIN_TONES:
            raise bad_value("minority_group", self.minority_group, f"use one of {SKIN_TONES}")
        _check_fraction("minority_fraction", self.minority_fraction, low=0.01, high=0.5)
        _check_fraction("minority_contrast", self.minority_contrast, low=0.05)
        _check_fraction("minority_hue_shift", self.minority_hue_shift, low=-180, high=180)
        _check_fraction("spurious_strength", self.spurious_strength)
        if self.finetune_spurious_strength is not None:
            _check_fraction("finetune_spurious_strength", self.finetune_spurious_strength)
        if self.spurious_class not in self.classes:
            raise bad_value("spurious_class", self.spurious_class, f"use one of {self.classes}")
        _check_fraction("lesion_contrast", self.lesion_contrast, low=0.05, high=2.0)
        _check_fraction("contrast_floor", self.contrast_floor, low=0.05)
        if self.group_cue not in GROUP_CUES:
            raise bad_value("group_cue", self.group_cue, f"use one of {GROUP_CUES}")
        _check_fraction("subtle_strength", self.subtle_strength, low=0, high=60)
        _check_fraction("unknown_rate", self.unknown_rate, high=0.9)


@dataclass
class SocialConfig(Config):
    """Counterfactual person figures with concept cues: probe, concept VQA, description.

    Attributes:
        seed, image_size, noise: as in :class:`ClinicalConfig`.
        concepts: the concepts (occupations or CMSC concepts), each cued by its own
            object (shape x colour) beside the person.
        n_train: training images per concept (attributes drawn at random, see
            ``cooccurrence``); each gives a probe about its concept, a probe about another
            concept (answer ``no``), a concept question and a description.
        n_finetune_sets, n_test_sets: counterfactual sets per concept in finetune / test;
            a set is one scene drawn with every gender x race x age combination.
        stereotype_strength: each concept has a stereotyped value of every attribute
            (assigned round-robin over the concepts, not taken from real-world
            stereotypes). In train, the probe about an image's own concept is answered
            ``yes`` with probability ``v (1 - s) ** m``: v = the object's visibility,
            m = the number of attributes that differ from the stereotype (biased
            annotation). 0 = labels independent of the attributes.
        finetune_stereotype_strength: the same for the finetune split (None = same).
        cooccurrence: in train, each attribute takes the concept's stereotyped value with
            probability ``1/|A| + c (1 - 1/|A|)`` (0 = uniform).
        mention_rate: share of training descriptions that name the person's gender,
            skin tone and age; the rest say "a person".
        min_visibility: the concept object's opacity is drawn in [min_visibility, 1] per
            scene, so that scenes differ in how clearly they show the concept (and in how
            often the training probe says ``yes``). Default 1 (all fully visible): with
            fainter objects the default base model learned the stereotype less reliably.
    """

    seed: int = 0
    image_size: int = 32
    concepts: list[str] = field(default_factory=lambda: list(DEFAULT_CONCEPTS))
    n_train: int = 150
    n_finetune_sets: int = 4
    n_test_sets: int = 10
    stereotype_strength: float = 0.8
    finetune_stereotype_strength: float | None = None
    cooccurrence: float = 0.3
    mention_rate: float = 0.8
    min_visibility: float = 1.0
    noise: float = 0.03

    def validate(self) -> None:
        _check_common(self)
        if (
            not isinstance(self.concepts, list)
            or len(self.concepts) < 2
            or len(set(self.concepts)) != len(self.concepts)
            or not all(isinstance(c, str) and c.strip() for c in self.concepts)
        ):
            raise bad_value("concepts", self.concepts, "give >= 2 distinct concept names")
        _check_positive_int("n_train", self.n_train, 1)
        _check_positive_int("n_finetune_sets", self.n_finetune_sets, 0)
        _check_positive_int("n_test_sets", self.n_test_sets, 1)
        _check_fraction("stereotype_strength", self.stereotype_strength)
        if self.finetune_stereotype_strength is not None:
            _check_fraction("finetune_stereotype_strength", self.finetune_stereotype_strength)
        _check_fraction("cooccurrence", self.cooccurrence)
        _check_fraction("mention_rate", self.mention_rate)
        _check_fraction("min_visibility", self.min_visibility, low=0.05)


#: Benchmark name -> its config class.
BENCH_CONFIGS: dict[str, type[Config]] = {"clinical": ClinicalConfig, "social": SocialConfig}


def parse_overrides(cls: type, overrides: Sequence[str] | Mapping[str, Any] | None = None) -> Any:
    """Build ``cls`` from its defaults plus ``key=value`` strings (or a mapping).

    Values of strings are parsed as YAML (``n_train=600`` -> 600, ``x=null`` -> None,
    ``classes=[nevus, melanoma]`` -> a list).

    Raises:
        ConfigError: a malformed item, an unknown key or an invalid value; the message
            names the key, the value and the fix.
    """

    if overrides is None:
        return cls()
    if isinstance(overrides, Mapping):
        data = dict(overrides)
    else:
        if isinstance(overrides, str):
            overrides = [overrides]
        data = {}
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise bad_value("--set", item, "write key=value, e.g. n_train=600")
            key, text = item.split("=", 1)
            key = key.strip()
            if not key:
                raise bad_value("--set", item, "the key before '=' is empty")
            data[key] = parse_yaml_value(text, key)
    return cls.from_dict(data)


def bench_config(bench: str, overrides: Sequence[str] | Mapping[str, Any] | None = None) -> Any:
    """The validated config of benchmark ``bench`` (``clinical`` / ``social``)."""
    if bench not in BENCH_CONFIGS:
        raise ConfigError(f"bench={bench!r} is not valid: use one of {sorted(BENCH_CONFIGS)}")
    return parse_overrides(BENCH_CONFIGS[bench], overrides)


__all__ = [
    "BENCH_CONFIGS",
    "DEFAULT_CONCEPTS",
    "DIAGNOSES",
    "GROUP_CUES",
    "MECHANISMS",
    "ClinicalConfig",
    "SocialConfig",
    "bench_config",
    "parse_overrides",
]
