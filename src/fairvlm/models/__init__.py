"""The VLM adapter: one interface over LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL, Idefics3,
SmolVLM and PaliGemma, plus an offline tiny-model builder."""

from fairvlm.models.adapter import VLMAdapter
from fairvlm.models.families import FamilySpec, detect_family, get_family, supported_families
from fairvlm.models.loading import load_vlm
from fairvlm.models.scoring import OptionScores
from fairvlm.models.tiny import build_tiny_vlm
from fairvlm.models.tiny_configs import DEFAULT_CORPUS, TinyConfig, train_tokenizer

__all__ = [
    "DEFAULT_CORPUS",
    "FamilySpec",
    "OptionScores",
    "TinyConfig",
    "VLMAdapter",
    "build_tiny_vlm",
    "detect_family",
    "get_family",
    "load_vlm",
    "supported_families",
    "train_tokenizer",
]
