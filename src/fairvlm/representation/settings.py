"""Which representation z is read: the layer, the positions, the pooling, the norm.

One :class:`RepresentationSettings` is shared by FairLLaVA, the adversarial baseline and
the post-training probe, so that all three read the same z for the same settings.

Users write the four settings flat among a method's options (``method: {lambdas: ...,
depth: 0.8, pooling: mean}``, ``--set depth=0.8``); a method's config holds them nested
(``representation: {depth: 0.8, ...}``), which is also how a run's ``config.yaml``
records them. :func:`nest_settings` maps the first shape onto the second; both load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fairvlm.config import Config
from fairvlm.errors import bad_value

#: The positions z may come from: image tokens, the other non-padding tokens, or both.
TOKEN_MODES = ("image", "text", "all")
#: How the positions of a sample become one vector: one random position, their mean, the last.
POOLINGS = ("random", "mean", "last")
#: The key a method's options hold the settings under.
SETTINGS_KEY = "representation"


def check_depth(depth: Any) -> None:
    """Raise a ConfigError unless ``depth`` is a relative depth in (0, 1]."""
    if isinstance(depth, bool) or not isinstance(depth, int | float) or not 0.0 < depth <= 1.0:
        raise bad_value("depth", depth, "use a relative depth in (0, 1], e.g. 0.5 (middle layer)")


def check_tokens(tokens: Any) -> None:
    """Raise a ConfigError unless ``tokens`` is one of :data:`TOKEN_MODES`."""
    if tokens not in TOKEN_MODES:
        raise bad_value("tokens", tokens, f"use one of {TOKEN_MODES}")


def check_pooling(pooling: Any) -> None:
    """Raise a ConfigError unless ``pooling`` is one of :data:`POOLINGS`."""
    if pooling not in POOLINGS:
        raise bad_value("pooling", pooling, f"use one of {POOLINGS}")


@dataclass
class RepresentationSettings(Config):
    """The representation z: ``hidden_states[int((L + 1) * depth)]`` of an L-layer LM,
    read at the ``tokens`` positions, pooled, optionally L2-normalised.

    Attributes:
        depth: relative depth of the layer in (0, 1] (FairLLaVA published 0.5 / 0.8).
        tokens: positions z comes from: ``image`` (published), ``text``, ``all``.
        pooling: ``random`` (one random position per sample, published), ``mean`` or
            ``last`` (the last position).
        normalise: L2-normalise z (published: yes).
    """

    depth: float = 0.5
    tokens: str = "image"
    pooling: str = "random"
    normalise: bool = True

    def validate(self) -> None:
        check_depth(self.depth)
        check_tokens(self.tokens)
        check_pooling(self.pooling)


#: The settings' field names: the keys accepted flat among a method's options.
SETTING_FIELDS = tuple(f.name for f in fields(RepresentationSettings))


def nest_settings(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A method's ``options`` with the settings written flat moved under ``representation``.

    ``{lambdas: ..., depth: 0.8}`` -> ``{lambdas: ..., representation: {depth: 0.8}}``;
    options already nested (a saved ``config.yaml``) pass through. A flat key overrides
    the nested one, so that ``--set depth=0.8`` overrides a saved run's config.

    Raises:
        ConfigError: flat keys beside a ``representation`` that is not a mapping.
    """
    data = dict(options or {})
    flat = {key: data.pop(key) for key in SETTING_FIELDS if key in data}
    if not flat:
        return data
    nested = data.get(SETTINGS_KEY) or {}
    if not isinstance(nested, Mapping):
        raise bad_value(
            SETTINGS_KEY, nested, f"give {sorted(flat)} inside {SETTINGS_KEY}: or only flat"
        )
    data[SETTINGS_KEY] = {**nested, **flat}
    return data


__all__ = [
    "POOLINGS",
    "SETTINGS_KEY",
    "SETTING_FIELDS",
    "TOKEN_MODES",
    "RepresentationSettings",
    "check_depth",
    "check_pooling",
    "check_tokens",
    "nest_settings",
]
