"""The representation z that fairness methods read and probe: one decoder layer's hidden
states at chosen positions, pooled; the attribute heads on it; the fresh probe.

It sits below ``fairvlm.training`` and ``fairvlm.mitigation`` (FairLLaVA, the adversarial
baseline, the post-training probe and steering all use it) and imports neither.
"""

from fairvlm.representation.attributes import attribute_targets, check_attributes
from fairvlm.representation.heads import CLUBHead, club_matrix, club_mi, head_accuracy, head_ce
from fairvlm.representation.pooling import pool
from fairvlm.representation.probe import (
    FOOLED,
    PROBE_KINDS,
    ProbeResult,
    ProbeSettings,
    collect,
    collect_many,
    fit_probe,
    results_to_dict,
    run_probe,
)
from fairvlm.representation.reader import LayerReader, layer_entry, token_mask
from fairvlm.representation.settings import (
    POOLINGS,
    SETTING_FIELDS,
    TOKEN_MODES,
    RepresentationSettings,
    nest_settings,
)
from fairvlm.representation.sweep import DEFAULT_PROBES, SweepRow, probe_sweep, sweep_to_dicts

__all__ = [
    "DEFAULT_PROBES",
    "FOOLED",
    "POOLINGS",
    "PROBE_KINDS",
    "SETTING_FIELDS",
    "TOKEN_MODES",
    "CLUBHead",
    "LayerReader",
    "ProbeResult",
    "ProbeSettings",
    "RepresentationSettings",
    "SweepRow",
    "attribute_targets",
    "check_attributes",
    "club_matrix",
    "club_mi",
    "collect",
    "collect_many",
    "fit_probe",
    "head_accuracy",
    "head_ce",
    "layer_entry",
    "nest_settings",
    "pool",
    "probe_sweep",
    "results_to_dict",
    "run_probe",
    "sweep_to_dicts",
    "token_mask",
]
