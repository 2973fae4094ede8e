"""The seven built-in VLM families (registered on first read of ``fairvlm.registry.FAMILIES``).

Classes and attribute names follow the released checkpoints' ``transformers`` classes.
"""

from __future__ import annotations

from fairvlm.models import tiny_configs
from fairvlm.models.families import FamilySpec
from fairvlm.registry import register_family

BUILTIN = [
    register_family(spec)
    for spec in (
        FamilySpec(
            "llava",
            "llava",
            "LlavaForConditionalGeneration",
            "LlavaProcessor",
            "CLIPImageProcessorPil",
            "multi_modal_projector",
            tiny=tiny_configs.llava,
        ),
        FamilySpec(
            "llava_next",
            "llava_next",
            "LlavaNextForConditionalGeneration",
            "LlavaNextProcessor",
            "LlavaNextImageProcessorPil",
            "multi_modal_projector",
            tiny=tiny_configs.llava_next,
        ),
        FamilySpec(
            "qwen2_vl",
            "qwen2_vl",
            "Qwen2VLForConditionalGeneration",
            "Qwen2VLProcessor",
            "Qwen2VLImageProcessorPil",
            "visual.merger",
            end_token="<|im_end|>",
            video_workaround=True,
            tiny=tiny_configs.qwen2_vl,
        ),
        FamilySpec(
            "qwen2_5_vl",
            "qwen2_5_vl",
            "Qwen2_5_VLForConditionalGeneration",
            "Qwen2_5_VLProcessor",
            "Qwen2VLImageProcessorPil",
            "visual.merger",
            end_token="<|im_end|>",
            video_workaround=True,
            tiny=tiny_configs.qwen2_5_vl,
        ),
        FamilySpec(
            "idefics3",
            "idefics3",
            "Idefics3ForConditionalGeneration",
            "Idefics3Processor",
            "Idefics3ImageProcessorPil",
            "connector",
            end_token="<end_of_utterance>",
            nested_images=True,
            tiny=tiny_configs.idefics3,
        ),
        FamilySpec(
            "smolvlm",
            "smolvlm",
            "SmolVLMForConditionalGeneration",
            "SmolVLMProcessor",
            "SmolVLMImageProcessorPil",
            "connector",
            end_token="<end_of_utterance>",
            nested_images=True,
            video_workaround=True,
            tiny=tiny_configs.smolvlm,
        ),
        FamilySpec(
            "paligemma",
            "paligemma",
            "PaliGemmaForConditionalGeneration",
            "PaliGemmaProcessor",
            "SiglipImageProcessorPil",
            "multi_modal_projector",
            chat=False,
            tiny=tiny_configs.paligemma,
        ),
    )
]

__all__ = ["BUILTIN"]
