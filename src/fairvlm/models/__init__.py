"""The VLM adapter: one interface over LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL, Idefics3,
SmolVLM and PaliGemma, plus an offline tiny-model builder."""

from fairvlm.models.adapter import VLMAdapter
from fairvlm.models.families import FAMILIES, SUPPORTED_FAMILIES, FamilySpec, detect_family
from fairvlm.models.loading import load_vlm
from fairvlm.models.scoring import OptionScores
from fairvlm.models.tiny import DEFAULT_CORPUS, TinyConfig, build_tiny_vlm, train_tokenizer

__all__ = [
    "DEFAULT_CORPUS",
    "FAMILIES",
    "SUPPORTED_FAMILIES",
    "FamilySpec",
    "OptionScores",
    "TinyConfig",
    "VLMAdapter",
    "build_tiny_vlm",
    "detect_family",
    "load_vlm",
    "train_tokenizer",
]
