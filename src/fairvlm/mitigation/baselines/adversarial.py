"""Adversarial debiasing baseline: an attribute classifier behind a gradient reversal layer.

The classifier reads the same representation as FairLLaVA (one decoder layer through a
hook, the same :class:`~fairvlm.representation.RepresentationSettings`). It minimises its cross-entropy; the reversal layer
flips the gradient that reaches the backbone, which therefore maximises it (Ganin &
Lempitsky 2015). ``L = CE_LM + weight * sum_a lambda_a * CE(head_a(GRL(z)), a)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fairvlm.config import Config
from fairvlm.errors import bad_value
from fairvlm.representation import (
    CLUBHead,
    LayerReader,
    RepresentationSettings,
    attribute_targets,
    head_accuracy,
    head_ce,
    nest_settings,
)
from fairvlm.training.dataset import AttributeSpace
from fairvlm.training.trainer import LossTerm, TermInputs, TermOutput


class GradientReversal(torch.autograd.Function):
    """Identity forward, ``-scale * grad`` backward (no library in our stack provides it)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``x`` forward; its gradient times ``-scale`` backward."""
    return GradientReversal.apply(x, scale)


@dataclass
class AdversarialConfig(Config):
    """Options of the ``adversarial`` baseline.

    Attributes:
        lambdas: attribute -> weight of its adversary's CE (every one must be in the data).
        weight: overall weight of the adversarial term.
        grl_scale: the reversal layer's gradient multiplier on the backbone side.
        representation: the z the adversaries read, as in ``FairLLaVAConfig`` (the
            options take its fields flat too: ``depth: 0.8``).
        head_width: 0 = linear adversary, > 0 = MLP width; head_scale: logit scale.
    """

    lambdas: dict[str, float] = field(default_factory=dict)
    weight: float = 1.0
    grl_scale: float = 1.0
    representation: RepresentationSettings = field(default_factory=RepresentationSettings)
    head_width: int = 0
    head_scale: float = 1.0

    def validate(self) -> None:
        if not isinstance(self.lambdas, Mapping) or not self.lambdas:
            raise bad_value(
                "lambdas",
                self.lambdas,
                "name at least one attribute and its weight, e.g. {skin_tone: 1.0}",
            )
        self.lambdas = {str(k): float(v) for k, v in self.lambdas.items()}
        for name, value in self.lambdas.items():
            if not value >= 0:
                raise bad_value(f"lambdas.{name}", value, "use a weight >= 0")
        if not self.weight >= 0:
            raise bad_value("weight", self.weight, "use a value >= 0")
        if not self.grl_scale >= 0:
            raise bad_value("grl_scale", self.grl_scale, "use a value >= 0")
        if not isinstance(self.head_width, int) or self.head_width < 0:
            raise bad_value("head_width", self.head_width, "use 0 (linear) or a positive width")
        if not self.head_scale > 0:
            raise bad_value("head_scale", self.head_scale, "use a positive logit scale")

    @property
    def attributes(self) -> list[str]:
        """The attributes named in ``lambdas``."""
        return list(self.lambdas)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, **kwargs: Any) -> AdversarialConfig:
        """From YAML/CLI options, the representation settings flat or nested
        (:func:`fairvlm.representation.nest_settings`); ``kwargs`` as ``Config.from_dict``."""
        return super().from_dict(nest_settings(data), **kwargs)


class AdversarialTerm(LossTerm):
    """Attribute adversaries on the hooked layer, trained through gradient reversal."""

    name = "adversarial"

    def __init__(self, config: AdversarialConfig, space: AttributeSpace, hidden_size: int) -> None:
        super().__init__()
        self.config, self.space = config, space
        self.reader = LayerReader(config.representation)
        self.heads = nn.ModuleDict(
            {
                a: CLUBHead(hidden_size, space.size(a), config.head_width, config.head_scale)
                for a in config.attributes
            }
        )

    def attach(self, adapter: Any) -> None:
        self.reader.attach(adapter)

    def remove(self) -> None:
        self.reader.remove()

    def prepare(self, batch: Any) -> None:
        self.reader.prepare(batch)

    def forward(self, inputs: TermInputs) -> TermOutput:
        z, valid = self.reader.read()
        reversed_z = reverse_gradient(z, self.config.grl_scale)
        total = z.sum() * 0.0
        logs: dict[str, Any] = {}
        for name, head in self.heads.items():
            targets = attribute_targets(inputs.attributes, self.space.names, name, valid)
            logits = head(reversed_z)
            ce = head_ce(logits, targets)
            total = total + self.config.lambdas[name] * ce
            logs[f"adv_ce/{name}"] = ce.detach()
            acc = head_accuracy(logits.detach(), targets)
            if acc == acc:
                logs[f"adv_acc/{name}"] = acc
        return TermOutput(loss=self.config.weight * total, logs=logs)
