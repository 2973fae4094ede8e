"""Registers the baselines: ``lora``, ``reweight``, ``resample``, ``adversarial``."""

from __future__ import annotations

from typing import Any

from fairvlm.mitigation.baselines.adversarial import AdversarialConfig, AdversarialTerm
from fairvlm.mitigation.baselines.groups import (
    GroupBalancedSampler,
    GroupConfig,
    group_keys,
    group_weights,
)
from fairvlm.registry import register_method
from fairvlm.representation import check_attributes
from fairvlm.training.methods import Method, MethodContext, MethodSetup, ProbeSpec


def _build_lora(ctx: MethodContext) -> MethodSetup:
    return MethodSetup()


def _check_groups(config: GroupConfig, samples: list[Any]) -> None:
    check_attributes(config.attributes, samples, "attributes")


def _build_reweight(ctx: MethodContext) -> MethodSetup:
    cfg: GroupConfig = ctx.config
    weights = group_weights(ctx.samples, cfg.attributes, cfg.by_label, cfg.max_weight)
    return MethodSetup(
        weights=weights,
        extra={"weight_min": float(weights.min()), "weight_max": float(weights.max())},
    )


def _build_resample(ctx: MethodContext) -> MethodSetup:
    cfg: GroupConfig = ctx.config
    keys = group_keys(ctx.samples, cfg.attributes, cfg.by_label)

    def factory(dataset: Any, seed: int) -> GroupBalancedSampler:
        return GroupBalancedSampler.for_groups(keys, seed)

    return MethodSetup(sampler=factory)


def _build_adversarial(ctx: MethodContext) -> MethodSetup:
    cfg: AdversarialConfig = ctx.config
    term = AdversarialTerm(cfg, ctx.space, ctx.adapter.hidden_size)
    probe = ProbeSpec(cfg.representation, cfg.attributes)
    return MethodSetup(terms=[term], probe=probe)


LORA = register_method(
    Method(
        "lora", "plain LoRA fine-tuning (no fairness term)", _build_lora, metrics=("vqa.accuracy",)
    )
)
REWEIGHT = register_method(
    Method(
        "reweight",
        "LoRA with inverse group frequency loss weights",
        _build_reweight,
        config_class=GroupConfig,
        check=_check_groups,
        attributes=lambda c: list(c.attributes),
    )
)
RESAMPLE = register_method(
    Method(
        "resample",
        "LoRA with a group-balanced sampler",
        _build_resample,
        config_class=GroupConfig,
        check=_check_groups,
        attributes=lambda c: list(c.attributes),
    )
)
ADVERSARIAL = register_method(
    Method(
        "adversarial",
        "LoRA with an attribute adversary behind gradient reversal",
        _build_adversarial,
        config_class=AdversarialConfig,
        check=lambda c, s: check_attributes(c.attributes, s, "lambdas"),
        attributes=lambda c: list(c.attributes),
    )
)
