"""Steering builders: what a builder is (:class:`Builder`), and the two built-in ones.

The builders live in :data:`fairvlm.registry.STEERING_BUILDERS`; ``fairvlm steer build
--method NAME`` and an experiment's ``steering-NAME`` method read them from there. A
plugin adds one with :func:`fairvlm.registry.register_builder`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fairvlm.mitigation.steering.contrastive import ContrastiveConfig, build_contrastive
from fairvlm.mitigation.steering.gradient import GradientConfig, build_gradient
from fairvlm.registry import STEERING_BUILDERS, register_builder

#: An experiment names a builder ``steering-NAME``.
EXPERIMENT_PREFIX = "steering-"


@dataclass(frozen=True)
class Builder:
    """A steering-vector builder.

    Attributes:
        name: the ``--method`` of ``fairvlm steer build``; ``help``: one line for --help.
        config_class: its config dataclass (a ``fairvlm.config.Config``).
        build: ``(vlm, data, config, progress=...) -> SteeringVector``.
        metrics: ``task.metric`` keys the vector sets out to move (table columns).
    """

    name: str
    help: str
    config_class: type
    build: Callable[..., Any]
    metrics: tuple[str, ...] = ()

    def parse(self, options: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        """The builder's config from ``options`` (``kwargs``: as ``Config.from_dict``)."""
        return self.config_class.from_dict(options, **kwargs)

    def reads(self, config: Any) -> tuple[str, str | None]:
        """``(split, task)`` of the samples it is built from (``task`` ``None``: any)."""
        return config.split, config.task


def get_builder(name: str) -> Builder:
    """The registered builder ``name`` (a ConfigError listing them otherwise)."""
    return STEERING_BUILDERS.get(name)


def builder_of_method(method: str) -> Builder | None:
    """The builder an experiment method ``steering-NAME`` names, or ``None``."""
    if not method.startswith(EXPERIMENT_PREFIX):
        return None
    name = method[len(EXPERIMENT_PREFIX) :]
    return STEERING_BUILDERS.get(name) if name in STEERING_BUILDERS else None


CONTRASTIVE = register_builder(
    Builder(
        "contrastive",
        "mean difference (or PCA) of activations on biased vs neutral samples",
        ContrastiveConfig,
        build_contrastive,
        metrics=("describe.mention_rate",),
    )
)
GRADIENT = register_builder(
    Builder(
        "gradient",
        "one FGSM step: the gradient of attribute words' log-probability",
        GradientConfig,
        build_gradient,
        metrics=("describe.mention_rate",),
    )
)

__all__ = ["EXPERIMENT_PREFIX", "Builder", "builder_of_method", "get_builder"]
