"""``ASDConfig``: the knobs of ASD (METHODS.md section 2), validated before any model work.

Choices that the published description leaves open are fields, with our default named:

- ``accumulator``: what happens to the resampling accumulator after it passes ``tau2``
  and a copy is inserted. Unpublished; we ``subtract`` ``tau2`` (the surplus carries
  over to the next under-represented sample); ``reset`` sets it to 0 instead.
- ``weight_clip``: SFLoss weights ``exp(-Skew)`` are unbounded in the paper; a
  ``[low, high]`` clip is offered, off by default.
- ``normalize_weights``: the paper's weights average about 2 when most samples are
  under-represented, so SFLoss takes larger steps than naive fine-tuning at the same
  learning rate; ``True`` divides them by their mean over the epoch's samples (off by
  default, as published).
- ``k``: K of Skew@K; ``None`` = half of each concept's pool, rounded up (the audit's
  default, so that training and evaluation measure the same skew).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fairvlm.config import Config
from fairvlm.errors import bad_value

#: The method names, i.e. the variants of the ablation table.
VARIANTS = ("asd", "naive", "asd-loss-only", "asd-sampling-only")
#: What the accumulator does after inserting a copy.
ACCUMULATOR_RULES = ("subtract", "reset")
#: Placeholders a probe template may use.
TEMPLATE_FIELDS = ("{concept}", "{phrase}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class ASDConfig(Config):
    """Anti-stereotype debiasing: skew-rescaled loss (SFLoss) + bias-aware resampling.

    Attributes:
        variant: ``asd`` (SFLoss + resampling), ``naive`` (plain loss, no resampling),
            ``asd-loss-only`` (SFLoss only), ``asd-sampling-only`` (resampling only).
            Set from the method name; it cannot disagree with it.
        attributes: the social attributes whose skew is estimated; ``None`` = every
            attribute with >= 2 known values in the training data (gender, race, age).
        k: K of Skew@K (raised to at least the number of attribute values, capped at the
            pool size, as in ``fairvlm.metrics``); ``None`` = half of each pool.
        tau1: resampling: a sample with ``Skew > 0`` is dropped with probability
            ``Skew / (Skew + tau1)``.
        tau2: resampling: ``|Skew|`` of samples with ``Skew <= 0`` accumulates; when the
            accumulator exceeds ``tau2`` one extra copy of the sample is inserted.
        accumulator: ``subtract`` (default, our choice: subtract ``tau2`` after a copy) or
            ``reset`` (set the accumulator to 0).
        weight_clip: ``[low, high]`` bounds of the SFLoss weights ``exp(-Skew)``;
            ``None`` (default) = no clip, as published.
        normalize_weights: divide the (clipped) weights by their mean over the epoch's
            training samples (after resampling), so that SFLoss only redistributes the
            loss and keeps naive fine-tuning's scale; ``False`` (default) as published.
        probe_template: the yes/no probe whose P(yes) ranks a concept's pool;
            ``{phrase}`` is the concept's phrase (``fairvlm.data.concepts.concept_phrase``:
            "a figure of authority", "a doctor"), ``{concept}`` its bare name.
        probe_options: the positive and the negative answer.
        batch_size: images per scoring forward pass during skew re-estimation (each
            scores both answers).
        track_skew: ``naive`` only: still estimate and log the skew before each epoch
            (costs one scoring pass per epoch; the other variants always do).
        seed: seeds the resampling draws (``None``: the training seed).
        progress: progress bar while scoring the pools.
    """

    variant: str = "asd"
    attributes: list[str] | None = None
    k: int | None = None
    tau1: float = 1.0
    tau2: float = 1.0
    accumulator: str = "subtract"
    weight_clip: list[float] | None = None
    normalize_weights: bool = False
    probe_template: str = "Is this person {phrase}?"
    probe_options: list[str] = field(default_factory=lambda: ["yes", "no"])
    batch_size: int = 32
    track_skew: bool = False
    seed: int | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise bad_value("variant", self.variant, f"use one of {VARIANTS}")
        if self.attributes is not None and (
            not self.attributes or not all(isinstance(a, str) and a for a in self.attributes)
        ):
            raise bad_value(
                "attributes", self.attributes, "name >= 1 attribute, or null for every one"
            )
        if self.k is not None and (
            not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1
        ):
            raise bad_value("k", self.k, "use a positive integer, or null for half of each pool")
        for name in ("tau1", "tau2"):
            value = getattr(self, name)
            if not _is_number(value) or not value > 0:
                raise bad_value(name, value, "use a positive number (published: 1.0)")
            setattr(self, name, float(value))
        if self.accumulator not in ACCUMULATOR_RULES:
            raise bad_value("accumulator", self.accumulator, f"use one of {ACCUMULATOR_RULES}")
        if self.weight_clip is not None:
            clip = list(self.weight_clip)
            if len(clip) != 2 or not all(_is_number(v) for v in clip) or not 0 <= clip[0] < clip[1]:
                raise bad_value(
                    "weight_clip",
                    self.weight_clip,
                    "use [low, high] with 0 <= low < high (e.g. [0.2, 5.0]), or null for no clip",
                )
            self.weight_clip = [float(v) for v in clip]
        if not isinstance(self.normalize_weights, bool):
            raise bad_value("normalize_weights", self.normalize_weights, "use true or false")
        if not any(f in self.probe_template for f in TEMPLATE_FIELDS):
            raise bad_value(
                "probe_template",
                self.probe_template,
                "include {phrase} or {concept}, e.g. 'Is this person {phrase}?'",
            )
        self.probe_options = list(self.probe_options)
        if len(self.probe_options) != 2 or len(set(self.probe_options)) != 2:
            raise bad_value(
                "probe_options", self.probe_options, "give two distinct answers, e.g. [yes, no]"
            )
        if (
            not isinstance(self.batch_size, int)
            or isinstance(self.batch_size, bool)
            or self.batch_size < 1
        ):
            raise bad_value("batch_size", self.batch_size, "use a positive integer")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise bad_value("seed", self.seed, "use a non-negative integer or null")

    # -- what the variant does ------------------------------------------------------------
    @property
    def reweights(self) -> bool:
        """SFLoss weights are on (``asd``, ``asd-loss-only``)."""
        return self.variant in ("asd", "asd-loss-only")

    @property
    def resamples(self) -> bool:
        """Bias-aware resampling is on (``asd``, ``asd-sampling-only``)."""
        return self.variant in ("asd", "asd-sampling-only")

    @property
    def estimates(self) -> bool:
        """Skew is estimated before each epoch (every variant but an untracked ``naive``)."""
        return self.variant != "naive" or self.track_skew

    @classmethod
    def for_variant(cls, data: Mapping[str, Any] | None, variant: str) -> ASDConfig:
        """Build from a mapping (``--set`` / YAML) for the method ``variant``, which wins.

        Raises:
            ConfigError: an unknown key (the message lists the fields), a bad value, or a
                ``variant`` option that contradicts the method name.
        """
        data = dict(data or {})
        if data.get("variant", variant) != variant:
            raise bad_value(
                "method.variant",
                data["variant"],
                f"the method {variant!r} fixes it; choose the variant with --method instead",
            )
        return cls.from_dict({**data, "variant": variant}, prefix="method.")
