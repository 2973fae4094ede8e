"""Registers ``fairllava`` with the training method registry."""

from __future__ import annotations

from typing import Any

from fairvlm.mitigation.fairllava.config import FairLLaVAConfig
from fairvlm.mitigation.fairllava.loss import FairLLaVATerm
from fairvlm.registry import register_method
from fairvlm.training.dataset import AttributeSpace
from fairvlm.training.methods import Method, MethodContext, MethodSetup, ProbeSpec


def _check(config: FairLLaVAConfig, samples: list[Any]) -> None:
    config.check_data(samples, AttributeSpace.from_samples(samples, []).labels)


def _build(ctx: MethodContext) -> MethodSetup:
    cfg: FairLLaVAConfig = ctx.config
    term = FairLLaVATerm(cfg, ctx.space, ctx.adapter.hidden_size)
    probe = ProbeSpec(cfg.representation, cfg.attributes, heads=term.heads)
    return MethodSetup(terms=[term], lm_weight=cfg.w_ce, probe=probe)


FAIRLLAVA = register_method(
    Method(
        "fairllava",
        "FairLLaVA: LoRA + CLUB mutual-information penalty on one layer",
        _build,
        config_class=FairLLaVAConfig,
        check=_check,
        attributes=lambda c: c.attributes,
        metrics=("vqa.accuracy",),
    )
)
