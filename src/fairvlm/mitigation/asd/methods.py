"""Registers ``asd``, ``naive``, ``asd-loss-only`` and ``asd-sampling-only`` (the ablation
table's rows) with the training method registry.

Every variant trains through the same :class:`~fairvlm.mitigation.asd.callback.ASDSamplerFactory`
(one seeded sampler, the same steps), so two variants differ only in what the variant
switches on: SFLoss weights (``asd``, ``asd-loss-only``) and bias-aware resampling
(``asd``, ``asd-sampling-only``). ``naive`` is the plain loss on the same data in the
same order (with ``track_skew`` its skew is still estimated and logged each epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fairvlm.mitigation.asd.callback import ASDCallback, ASDSamplerFactory, ASDState
from fairvlm.mitigation.asd.config import ASDConfig
from fairvlm.mitigation.asd.skew import SkewEstimator, check_asd_data
from fairvlm.registry import register_method
from fairvlm.training.methods import Method, MethodContext, MethodSetup

#: One line per variant for ``fairvlm train --help``.
HELP = {
    "asd": "ASD: skew-rescaled loss (SFLoss) + bias-aware resampling, skew re-estimated each epoch",
    "naive": "naive fine-tuning on the same counterfactual data (plain loss, no resampling)",
    "asd-loss-only": "ASD ablation: SFLoss weights only",
    "asd-sampling-only": "ASD ablation: bias-aware resampling only",
}


def _parse(variant: str) -> Callable[[Mapping[str, Any]], ASDConfig]:
    def parse(options: Mapping[str, Any]) -> ASDConfig:
        return ASDConfig.for_variant(options, variant)

    return parse


def _check(config: ASDConfig, samples: list[Any]) -> None:
    if config.estimates:
        check_asd_data(samples, config.attributes)


def setup_callbacks(setup: MethodSetup) -> list[Any]:
    """The callbacks an ASD setup needs (``[ASDCallback]``), for whoever builds the Trainer."""
    factory = setup.sampler
    if isinstance(factory, ASDSamplerFactory) and factory.asd.estimator is not None:
        return [ASDCallback(factory.asd)]
    return []


def build_asd(ctx: MethodContext) -> MethodSetup:
    """The ASD setup: a sampler factory sharing one :class:`ASDState` with its callback."""
    cfg: ASDConfig = ctx.config
    seed = cfg.seed if cfg.seed is not None else int(ctx.train_config.seed)
    estimator = None
    attributes: list[str] = []
    if cfg.estimates:
        attributes = check_asd_data(ctx.samples, cfg.attributes)
        estimator = SkewEstimator(ctx.adapter, ctx.samples, attributes, cfg)
    factory = ASDSamplerFactory(ASDState(cfg, estimator, seed))
    extra = {
        "variant": cfg.variant,
        "attributes": attributes,
        "pool_images": len(estimator.pools) if estimator else 0,
        "missing_pool_values": estimator.missing if estimator else [],
    }
    setup = MethodSetup(sampler=factory, extra=extra)
    setup.callbacks = setup_callbacks(setup)  # logs each epoch's skew estimate
    return setup


#: What the ASD paper measures its methods by (MaxSkew / MinSkew of the concept probe).
METRICS = ("probe.max_skew", "probe.min_skew")
METHODS = [
    register_method(
        Method(
            name,
            HELP[name],
            build_asd,
            config_class=ASDConfig,
            check=_check,
            attributes=lambda c: c.attributes,
            metrics=METRICS,
            parse=_parse(name),
        )
    )
    for name in ("asd", "naive", "asd-loss-only", "asd-sampling-only")
]

__all__ = ["HELP", "METHODS", "build_asd", "setup_callbacks"]
