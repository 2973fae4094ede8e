"""Registers the baselines: ``lora``, ``reweight``, ``resample``, ``adversarial``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairvlm.errors import bad_value
from fairvlm.mitigation.baselines.adversarial import AdversarialConfig, AdversarialTerm
from fairvlm.mitigation.baselines.groups import (
    GroupBalancedSampler,
    GroupConfig,
    group_keys,
    group_weights,
)
from fairvlm.representation import check_attributes, nest_settings
from fairvlm.training.config import from_mapping
from fairvlm.training.methods import Method, MethodContext, MethodSetup, ProbeSpec, register_method


def _parse_none(options: Mapping[str, Any]) -> None:
    if options:
        key = sorted(options)[0]
        raise bad_value(f"method.{key}", options[key], "plain LoRA takes no method options")
    return None


def _build_lora(ctx: MethodContext) -> MethodSetup:
    return MethodSetup()


def _parse_groups(options: Mapping[str, Any]) -> GroupConfig:
    return from_mapping(GroupConfig, options, "method")


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


def _parse_adversarial(options: Mapping[str, Any]) -> AdversarialConfig:
    return from_mapping(AdversarialConfig, nest_settings(options), "method")


def _build_adversarial(ctx: MethodContext) -> MethodSetup:
    cfg: AdversarialConfig = ctx.config
    term = AdversarialTerm(cfg, ctx.space, ctx.adapter.hidden_size)
    probe = ProbeSpec(cfg.representation, cfg.attributes)
    return MethodSetup(terms=[term], probe=probe)


LORA = register_method(
    Method("lora", "plain LoRA fine-tuning (no fairness term)", _parse_none, _build_lora)
)
REWEIGHT = register_method(
    Method(
        "reweight",
        "LoRA with inverse group frequency loss weights",
        _parse_groups,
        _build_reweight,
        _check_groups,
        lambda c: list(c.attributes),
    )
)
RESAMPLE = register_method(
    Method(
        "resample",
        "LoRA with a group-balanced sampler",
        _parse_groups,
        _build_resample,
        _check_groups,
        lambda c: list(c.attributes),
    )
)
ADVERSARIAL = register_method(
    Method(
        "adversarial",
        "LoRA with an attribute adversary behind gradient reversal",
        _parse_adversarial,
        _build_adversarial,
        lambda c, s: check_attributes(c.attributes, s, "lambdas"),
        lambda c: list(c.attributes),
    )
)
