"""A CMSC-style counterfactual fine-tuning set, drawn with the social benchmark's generator.

CMSC (METHODS.md section 2) pairs counterfactual images (one scene, every value of the
social attributes) with instructions about social concepts of three groups
(personality, responsibility, education). :func:`build_cmsc` draws such sets with
``fairvlm.synth.social`` over gender x race x age with *anti-stereotype* answers: the
generator's ``finetune_stereotype_strength`` is 0, so the answer to the probe about an
image's own concept does not depend on the person's attributes (it is ``yes`` unless the
scene's concept object is too faint to see, with the same chance for every person of
the scene; ``min_visibility=1`` makes every such answer ``yes``). It writes a dataset
folder with two splits:

- ``finetune``: ``n_sets`` counterfactual sets per concept, each image giving the
  instruction/answer pairs of ``tasks``: ``probe`` ("Is this person {phrase}?" -> yes,
  plus, with ``negatives``, the same question about another concept -> no), ``concept``
  (which concept the picture shows) and ``describe`` (a description of the person);
- ``test``: ``n_test_sets`` held-out sets per concept (the post-training probe, audits).

To fine-tune a model pretrained on a social benchmark, pass that dataset as ``like``: its
generator settings (concepts in the same order, so that each concept keeps its visual
cue; image size, noise, cue visibility, mention rate, seed) are reused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairvlm.config import Config, is_int
from fairvlm.data import dataset_metadata, save_dataset
from fairvlm.data.concepts import CMSC_CONCEPTS
from fairvlm.errors import ConfigError, bad_value
from fairvlm.synth import benchmark_metadata
from fairvlm.synth.config import SocialConfig
from fairvlm.synth.social import generate_social

#: Instruction types a CMSC set can hold (the social benchmark's tasks).
CMSC_TASKS = ("probe", "concept", "describe")
#: Generator fields inherited from a ``like`` dataset.
INHERITED = ("concepts", "image_size", "noise", "min_visibility", "mention_rate", "seed")


@dataclass
class CMSCConfig(Config):
    """What :func:`build_cmsc` draws (answers independent of the attributes).

    Attributes:
        concepts: the concepts; ``None`` = the 18 CMSC concepts of all three groups, or
            the ``like`` dataset's concepts (same order) when ``like`` is given.
        n_sets: counterfactual sets per concept in ``finetune`` (12 images each).
        n_test_sets: held-out sets per concept in ``test``.
        tasks: instruction types kept (among ``probe``, ``concept``, ``describe``).
        negatives: keep the probes about another concept (answer ``no``).
        like: a social benchmark folder whose generator settings are reused.
        seed, image_size, noise, min_visibility, mention_rate: generator settings
            (overridden by ``like``'s unless ``like`` is None).
    """

    concepts: list[str] | None = None
    n_sets: int = 4
    n_test_sets: int = 2
    tasks: list[str] = dataclasses.field(default_factory=lambda: list(CMSC_TASKS))
    negatives: bool = True
    like: str | None = None
    seed: int = 0
    image_size: int = 32
    noise: float = 0.03
    min_visibility: float = 0.3
    mention_rate: float = 0.8

    def validate(self) -> None:
        for name, low in (("n_sets", 1), ("n_test_sets", 0)):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise bad_value(name, value, f"use an integer >= {low}")
        if not self.tasks or any(t not in CMSC_TASKS for t in self.tasks):
            raise bad_value("tasks", self.tasks, f"use a non-empty subset of {list(CMSC_TASKS)}")

    def generator_config(self) -> Any:
        """The ``SocialConfig`` that draws the sets (``like``'s settings when given)."""
        fields = {name: getattr(self, name) for name in INHERITED}
        fields["concepts"] = list(self.concepts) if self.concepts else list(CMSC_CONCEPTS)
        if self.like is not None:
            inherited = _like_config(self.like)
            fields.update({k: inherited[k] for k in INHERITED if k in inherited})
            if self.concepts:
                fields["concepts"] = list(self.concepts)
        return SocialConfig(
            **fields,
            n_train=1,  # the generator always draws a train split: keep it tiny, unused
            n_finetune_sets=self.n_sets,
            n_test_sets=max(self.n_test_sets, 1),
            finetune_stereotype_strength=0.0,
        )


def _like_config(path: str) -> dict[str, Any]:
    if not Path(path).exists():
        raise bad_value("like", path, "give a social benchmark folder (fairvlm data synth social)")
    gen = dataset_metadata(path).get("generator") or {}
    if gen.get("bench") != "social" or not isinstance(gen.get("config"), dict):
        raise ConfigError(
            f"like={path!r} is not a social benchmark (its metadata has no social generator "
            "config): give a folder written by `fairvlm data synth social`, or leave like unset"
        )
    return gen["config"]


def _keep(sample: Any, cfg: CMSCConfig) -> bool:
    if sample.task not in cfg.tasks:
        return False
    negative = sample.task == "probe" and sample.concept != sample.meta.get(
        "scene_concept", sample.concept
    )
    return cfg.negatives or not negative


def cmsc_samples(config: CMSCConfig | None = None) -> dict[str, list[Any]]:
    """The ``finetune`` and ``test`` samples of a CMSC-style set (nothing written)."""
    cfg = config or CMSCConfig()
    splits = generate_social(cfg.generator_config())
    out = {"finetune": [s for s in splits["finetune"] if _keep(s, cfg)]}
    if cfg.n_test_sets:
        out["test"] = [s for s in splits["test"] if s.task in cfg.tasks]
    return out


def build_cmsc(out: str | Path, config: CMSCConfig | None = None, **fields: Any) -> Path:
    """Write a CMSC-style counterfactual fine-tuning set to the dataset folder ``out``.

    ``fields`` override :class:`CMSCConfig` fields (``build_cmsc(out, n_sets=2)``). The
    CMSC config and the generator config are stored in the dataset's metadata.

    Raises:
        ConfigError: a bad field (before any drawing).
    """
    cfg = dataclasses.replace(config, **fields) if config else CMSCConfig(**fields)
    splits = cmsc_samples(cfg)
    metadata = benchmark_metadata("social", cfg.generator_config(), splits)
    metadata["cmsc"] = dataclasses.asdict(cfg)
    return save_dataset(splits, out, metadata=metadata, attributes=sorted(metadata["attributes"]))


__all__ = ["CMSC_TASKS", "CMSCConfig", "build_cmsc", "cmsc_samples"]
