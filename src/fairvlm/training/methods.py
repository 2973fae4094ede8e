"""The registry of training methods: name -> :class:`Method`.

Built-in methods (``lora``, ``fairllava``, ``reweight``, ``resample``, ``adversarial``)
register themselves from their own packages; other packages add theirs by calling
:func:`register_method` in a module listed in :data:`PLUGIN_MODULES` (imported, when
installed, the first time the registry is read). E.g. the ASD package registers
``asd``, ``naive``, ``asd-loss-only`` and ``asd-sampling-only`` from
``fairvlm.mitigation.asd.methods``.

A method is two functions around the shared trainer: ``parse(options) -> config``
(validates the options, before anything is loaded), ``check(config, samples)``
(validates against the training data, before the model is loaded) and
``build(context) -> MethodSetup`` (after the model is loaded and LoRA applied).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from fairvlm.errors import ConfigError
from fairvlm.representation import RepresentationSettings

#: Modules that register the built-in methods.
BUILTIN_MODULES: tuple[str, ...] = (
    "fairvlm.mitigation.baselines.methods",
    "fairvlm.mitigation.fairllava.method",
)
#: Modules of other packages that register methods when they are installed.
PLUGIN_MODULES: list[str] = ["fairvlm.mitigation.asd.methods"]


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


@dataclass
class Method:
    """A training method.

    Attributes:
        name: the ``--method`` name; ``help``: one line for ``fairvlm train --help``.
        parse: ``options (dict) -> config`` (raises ConfigError on a bad field).
        build: ``MethodContext -> MethodSetup``.
        check: ``(config, training samples) -> None`` (raises before the model loads).
        attributes: ``config -> attribute names`` the method needs encoded (``None``: all).
    """

    name: str
    help: str
    parse: Callable[[Mapping[str, Any]], Any]
    build: Callable[[MethodContext], MethodSetup]
    check: Callable[[Any, list[Any]], None] = _no_check
    attributes: Callable[[Any], list[str] | None] = lambda config: None


METHODS: dict[str, Method] = {}
_loaded = False


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to the registry (``replace=True`` to override an existing name)."""
    if method.name in METHODS and not replace and METHODS[method.name] is not method:
        raise ConfigError(
            f"method={method.name!r} is already registered: pass replace=True to override it"
        )
    METHODS[method.name] = method
    return method


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for module in PLUGIN_MODULES:
        try:
            present = find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            importlib.import_module(module)


def available_methods() -> list[str]:
    """Names of every registered method (built-in and plugins)."""
    _load_all()
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """The registered method called ``name``.

    Raises:
        ConfigError: unknown name (the message lists the registered ones).
    """
    _load_all()
    if name not in METHODS:
        raise ConfigError(f"method={name!r} is not known: use one of {', '.join(sorted(METHODS))}")
    return METHODS[name]
