"""``FairLLaVAConfig``: every knob of METHODS.md section 1, the published presets and
the variants studied in issue 6, validated before any model work."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairvlm.config import Config
from fairvlm.errors import ConfigError, bad_value
from fairvlm.representation import (
    RepresentationSettings,
    check_attributes,
    nest_settings,
)

#: Published settings (METHODS.md section 1), attribute names as in the papers' data;
#: the representation settings flat, as users write them.
PRESETS: dict[str, dict[str, Any]] = {
    "mimic_cxr": {
        "lambdas": {"age": 0.6, "sex": 0.1, "race": 0.2},
        "w_club": 1.0,
        "fairness_lambda": 1.0,
        "depth": 0.5,
        "tokens": "image",
    },
    "ham10000": {
        "lambdas": {"age": 0.4, "sex": 0.15},
        "w_club": 0.2,
        "fairness_lambda": 0.5,
        "depth": 0.8,
        "tokens": "image",
    },
}


@dataclass
class FairLLaVAConfig(Config):
    """FairLLaVA: ``L = w_ce * CE_LM + fairness_lambda * (sum_a lambda_a * sqrt(MI_a^2 + 1e-6)
    + w_club * sum_a CE(q_a(z.detach()), a))``.

    Attributes:
        lambdas: attribute -> lambda_a (its MI penalty weight; 0 = monitor only: the head
            trains and MI is logged, no penalty). Every attribute named must be in the data.
        fairness_lambda, w_club, w_ce: the weights of the total loss (published: 1, 1, 1).
        representation: the regularised z (layer depth, tokens, pooling, normalise);
            :meth:`from_dict` also takes its fields flat (``depth: 0.8``).
        head_scale: multiplies the head's logits (variant; 1 = published). On normalised
            z a plain Linear has tiny logits and learns slowly; a scale lets it learn.
        head_updates: head updates per training step (variant; 1 = published, the update
            of the shared optimiser). Extra updates are plain SGD steps at ``head_lr`` on
            the head's CE of the same ``z.detach()``, before the penalty is computed.
        head_lr: learning rate of the extra head updates.
        head_width: 0 = the published Linear head; > 0 = an MLP with this hidden width.
        conditional: label-conditional heads, q(a | z, y), estimating I(z; a | y) (variant);
            y is the answer of a closed question, so free-text samples (reports) are
            left out of the FairLLaVA terms in this mode.
        preset: the published preset this config started from (``mimic_cxr``, ``ham10000``).
    """

    lambdas: dict[str, float] = field(default_factory=dict)
    fairness_lambda: float = 1.0
    w_club: float = 1.0
    w_ce: float = 1.0
    representation: RepresentationSettings = field(default_factory=RepresentationSettings)
    head_scale: float = 1.0
    head_updates: int = 1
    head_lr: float = 0.1
    head_width: int = 0
    conditional: bool = False
    preset: str | None = None

    def validate(self) -> None:
        if not isinstance(self.lambdas, Mapping) or not self.lambdas:
            raise bad_value(
                "lambdas",
                self.lambdas,
                "name at least one attribute and its weight, e.g. {skin_tone: 0.2}",
            )
        self.lambdas = {str(k): float(v) for k, v in self.lambdas.items()}
        for name, value in self.lambdas.items():
            if not value >= 0:
                raise bad_value(f"lambdas.{name}", value, "use a weight >= 0")
        for name in ("fairness_lambda", "w_club", "w_ce", "head_lr"):
            if not float(getattr(self, name)) >= 0:
                raise bad_value(name, getattr(self, name), "use a value >= 0")
        if not self.head_scale > 0:
            raise bad_value(
                "head_scale", self.head_scale, "use a positive logit scale (1 = published)"
            )
        if not isinstance(self.head_updates, int) or self.head_updates < 1:
            raise bad_value(
                "head_updates", self.head_updates, "use a positive integer (1 = published)"
            )
        if not isinstance(self.head_width, int) or self.head_width < 0:
            raise bad_value(
                "head_width", self.head_width, "use 0 (linear head) or a positive MLP width"
            )
        if self.preset is not None and self.preset not in PRESETS:
            raise bad_value("preset", self.preset, f"use one of {sorted(PRESETS)}")

    @property
    def attributes(self) -> list[str]:
        """The attributes named in ``lambdas``."""
        return list(self.lambdas)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, **kwargs: Any) -> FairLLaVAConfig:
        """From YAML/CLI options; ``preset`` (+ ``rename``) first, then the other keys.

        The representation settings may be flat (``depth: 0.8``) or nested
        (``representation: {depth: 0.8}``, as a run's ``config.yaml`` has them).
        ``rename`` maps the preset's attribute names onto the data's, e.g.
        ``{race: skin_tone, age: age_group}``; ``lambdas`` given with a preset update
        (not replace) the preset's. ``kwargs`` as :meth:`fairvlm.config.Config.from_dict`.
        """
        data = dict(data or {})
        preset = data.get("preset")
        rename = data.pop("rename", None) or {}
        if not isinstance(rename, Mapping):
            raise bad_value("rename", rename, "use a mapping such as {race: skin_tone}")
        if preset is None:
            if rename:
                raise bad_value(
                    "rename",
                    rename,
                    "rename applies to a preset: also set preset=mimic_cxr or ham10000",
                )
            return super().from_dict(nest_settings(data), **kwargs)
        if preset not in PRESETS:
            raise bad_value("preset", preset, f"use one of {sorted(PRESETS)}")
        merged = nest_settings(copy.deepcopy(PRESETS[preset]))
        unknown = sorted(set(rename) - set(merged["lambdas"]))
        if unknown:
            raise bad_value(
                f"rename.{unknown[0]}",
                rename[unknown[0]],
                f"the preset names {sorted(merged['lambdas'])}",
            )
        merged["lambdas"] = {rename.get(k, k): v for k, v in merged["lambdas"].items()}
        merged["lambdas"].update(data.pop("lambdas", None) or {})
        data = nest_settings(data)
        given = data.get("representation")
        if isinstance(given, Mapping):  # update (not replace) the preset's settings
            data["representation"] = {**merged["representation"], **given}
        merged.update(data)
        return super().from_dict(merged, **kwargs)

    def check_data(self, samples: Sequence[Any], labels: Sequence[str] = ()) -> None:
        """Fail before training when an attribute is absent or has fewer than two values."""
        check_attributes(self.attributes, samples, "lambdas")
        if self.conditional and len(labels) < 2:
            raise ConfigError(
                f"conditional=True needs a categorical target with >= 2 values; the data has "
                f"{len(labels)} usable target values: set conditional=false"
            )
