"""FairLLaVA: mutual-information regularised LoRA fine-tuning (METHODS.md section 1).

The representation it regularises, its CLUB heads and the probe live in
:mod:`fairvlm.representation`, shared with the other methods.
"""

from fairvlm.mitigation.fairllava.config import PRESETS, FairLLaVAConfig
from fairvlm.mitigation.fairllava.loss import FairLLaVATerm, detached_call, smooth_abs

__all__ = [
    "PRESETS",
    "FairLLaVAConfig",
    "FairLLaVATerm",
    "detached_call",
    "smooth_abs",
]
