"""FairLLaVA: mutual-information regularised LoRA fine-tuning (METHODS.md section 1)."""

from fairvlm.mitigation.fairllava.club import CLUBHead, club_matrix, club_mi, head_accuracy, head_ce
from fairvlm.mitigation.fairllava.config import PRESETS, FairLLaVAConfig, check_attributes
from fairvlm.mitigation.fairllava.loss import FairLLaVATerm, detached_call, smooth_abs
from fairvlm.mitigation.fairllava.probe import FOOLED, ProbeResult, fit_probe, run_probe
from fairvlm.mitigation.fairllava.representation import LayerReader, layer_entry, pool, token_mask

__all__ = [
    "FOOLED",
    "PRESETS",
    "CLUBHead",
    "FairLLaVAConfig",
    "FairLLaVATerm",
    "LayerReader",
    "ProbeResult",
    "check_attributes",
    "club_matrix",
    "club_mi",
    "detached_call",
    "fit_probe",
    "head_accuracy",
    "head_ce",
    "layer_entry",
    "pool",
    "run_probe",
    "smooth_abs",
    "token_mask",
]
