"""CMSC + ASD: anti-stereotype debiasing on counterfactual data (METHODS.md section 2).

Skew@K is re-estimated with the model before every epoch (:class:`SkewEstimator`,
:class:`ASDCallback`); it sets the SFLoss weights ``exp(-Skew)`` (:func:`sfloss_weights`)
and the bias-aware resampling (:func:`resample`, :class:`BiasAwareSampler`). The methods
``asd``, ``naive``, ``asd-loss-only`` and ``asd-sampling-only`` are registered with
``fairvlm train`` by :mod:`fairvlm.mitigation.asd.methods`; :func:`build_cmsc` writes a
CMSC-style counterfactual fine-tuning set.
"""

from fairvlm.mitigation.asd.callback import ASDCallback, ASDSamplerFactory, ASDState, find_state
from fairvlm.mitigation.asd.config import ACCUMULATOR_RULES, VARIANTS, ASDConfig
from fairvlm.mitigation.asd.sampler import (
    BiasAwareSampler,
    Resampling,
    drop_probability,
    epoch_order,
    resample,
)
from fairvlm.mitigation.asd.skew import (
    REQUIRED_COLUMNS,
    ConceptPools,
    EpochSkew,
    SkewEstimator,
    SkewTable,
    build_pools,
    check_asd_data,
    missing_values,
    sample_skews,
    skew_table,
)
from fairvlm.mitigation.asd.weights import sfloss_weights

__all__ = [
    "ACCUMULATOR_RULES",
    "REQUIRED_COLUMNS",
    "VARIANTS",
    "ASDCallback",
    "ASDConfig",
    "ASDSamplerFactory",
    "ASDState",
    "BiasAwareSampler",
    "ConceptPools",
    "EpochSkew",
    "Resampling",
    "SkewEstimator",
    "SkewTable",
    "build_pools",
    "check_asd_data",
    "drop_probability",
    "epoch_order",
    "find_state",
    "missing_values",
    "resample",
    "sample_skews",
    "sfloss_weights",
    "skew_table",
]
