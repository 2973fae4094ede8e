"""Fairness baselines under the shared trainer: plain LoRA, group reweighting,
group-balanced resampling, adversarial debiasing with gradient reversal."""

from fairvlm.mitigation.baselines.adversarial import (
    AdversarialConfig,
    AdversarialTerm,
    GradientReversal,
    reverse_gradient,
)
from fairvlm.mitigation.baselines.groups import (
    GroupBalancedSampler,
    GroupConfig,
    group_keys,
    group_weights,
)

__all__ = [
    "AdversarialConfig",
    "AdversarialTerm",
    "GradientReversal",
    "GroupBalancedSampler",
    "GroupConfig",
    "group_keys",
    "group_weights",
    "reverse_gradient",
]
