"""Test-time steering (METHODS.md section 3): steering vectors built from contrasting
activations or from one FGSM step, applied with forward hooks on the decoder layers
during (batched) generation."""

from fairvlm.mitigation.steering.activations import (
    READ_POSITIONS,
    pool_positions,
    position_mask,
    record_layers,
    resolve_layers,
)
from fairvlm.mitigation.steering.apply import SteeringHandle, StepTracker, steer
from fairvlm.mitigation.steering.contrastive import (
    AGGREGATORS,
    FILTERS,
    ContrastiveConfig,
    aggregate,
    build_contrastive,
    read_activations,
    select_sets,
)
from fairvlm.mitigation.steering.gradient import (
    DEFAULT_WORDS,
    GRADIENT_POSITIONS,
    TARGETS,
    GradientConfig,
    build_gradient,
)
from fairvlm.mitigation.steering.vector import OPERATORS, POSITIONS, SteeringVector, is_vector_file

__all__ = [
    "AGGREGATORS",
    "DEFAULT_WORDS",
    "FILTERS",
    "GRADIENT_POSITIONS",
    "OPERATORS",
    "POSITIONS",
    "READ_POSITIONS",
    "TARGETS",
    "ContrastiveConfig",
    "GradientConfig",
    "SteeringHandle",
    "SteeringVector",
    "StepTracker",
    "aggregate",
    "build_contrastive",
    "build_gradient",
    "is_vector_file",
    "pool_positions",
    "position_mask",
    "read_activations",
    "record_layers",
    "resolve_layers",
    "select_sets",
    "steer",
]
