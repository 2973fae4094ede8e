"""Training methods: what a method is (:class:`Method`) and how the trainer reads it.

The methods live in :data:`fairvlm.registry.TRAINING_METHODS`. The built-in ones
(``lora``, ``reweight``, ``resample``, ``adversarial``, ``fairllava``, and ASD's
``asd``, ``naive``, ``asd-loss-only``, ``asd-sampling-only``) register themselves from
their own packages; a plugin adds one with :func:`fairvlm.registry.register_method`.

A method is functions around the shared trainer: ``parse(options) -> config``
(validates the options, before anything is loaded; by default ``config_class.from_dict``),
``check(config, samples)`` (validates against the training data, before the model is
loaded) and ``build(context) -> MethodSetup`` (after the model is loaded and LoRA applied).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fairvlm.errors import bad_value
from fairvlm.registry import TRAINING_METHODS, register_method
from fairvlm.representation import RepresentationSettings


@dataclass
class ProbeSpec:
    """Which representation the post-training probe reads (and the heads to estimate MI with).

    ``representation``: the z read, as in ``FairLLaVAConfig``; ``attributes`` to probe
    (``None``: every attribute with >= 2 values); ``heads``: attribute -> trained head
    module whose CLUB estimate is reported beside the probe.
    """

    representation: RepresentationSettings = field(default_factory=RepresentationSettings)
    attributes: list[str] | None = None
    heads: Mapping[str, Any] | None = None


@dataclass
class MethodContext:
    """What ``build`` gets: the adapter (LoRA applied), the data and the configs."""

    adapter: Any
    samples: list[Any]
    space: Any  # fairvlm.training.dataset.AttributeSpace
    train_config: Any  # fairvlm.training.config.TrainConfig
    config: Any  # the method's own config (what ``parse`` returned)


@dataclass
class MethodSetup:
    """What a method asks of the shared trainer.

    Attributes:
        terms: extra loss terms (``fairvlm.training.trainer.LossTerm``).
        weights: per-sample loss weights (``None``: all 1).
        sampler: ``factory(dataset, seed) -> Sampler`` (``None``: uniform random).
        lm_weight: weight of the LM loss.
        samples: replaces the training samples (e.g. with counterfactual augmentation);
            ``None`` keeps them.
        probe: the representation to probe after training (``None``: the default layer).
        callbacks: ``transformers.TrainerCallback`` objects added to the trainer (e.g.
            ASD's per-epoch skew logging).
        extra: anything else to save in ``config.yaml`` under ``setup``.
    """

    terms: list[Any] = field(default_factory=list)
    weights: Any = None
    sampler: Callable[[Any, int], Any] | None = None
    lm_weight: float = 1.0
    samples: list[Any] | None = None
    probe: ProbeSpec | None = None
    callbacks: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _no_check(config: Any, samples: list[Any]) -> None:
    return None


def _no_options(options: Mapping[str, Any]) -> None:
    if options:
        key = sorted(options)[0]
        raise bad_value(f"method.{key}", options[key], "this method takes no method options")
    return None


@dataclass
class Method:
    """A training method.

    Attributes:
        name: the ``--method`` name; ``help``: one line for ``fairvlm train --help``.
        build: ``MethodContext -> MethodSetup``.
        config_class: the method's config dataclass (``None``: it takes no options).
        check: ``(config, training samples) -> None`` (raises before the model loads).
        attributes: ``config -> attribute names`` the method needs encoded (``None``: all).
        metrics: ``task.metric`` keys the method sets out to move; the comparison table
            shows them (besides its tasks' defaults) when the audit has them.
        parse: ``options (dict) -> config`` (default: ``config_class.from_dict``).
    """

    name: str
    help: str
    build: Callable[[MethodContext], MethodSetup]
    config_class: type | None = None
    check: Callable[[Any, list[Any]], None] = _no_check
    attributes: Callable[[Any], list[str] | None] = lambda config: None
    metrics: tuple[str, ...] = ()
    parse: Callable[[Mapping[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        if self.parse is None:
            cls = self.config_class
            self.parse = (
                _no_options if cls is None else lambda opts: cls.from_dict(opts, prefix="method.")
            )


def available_methods() -> list[str]:
    """Names of every registered training method (built-in and plugins)."""
    return TRAINING_METHODS.names()


def get_method(name: str) -> Method:
    """The registered training method called ``name``.

    Raises:
        ConfigError: unknown name (the message lists the registered ones).
    """
    return TRAINING_METHODS.get(name)


__all__ = [
    "Method",
    "MethodContext",
    "MethodSetup",
    "ProbeSpec",
    "available_methods",
    "get_method",
    "register_method",
]
