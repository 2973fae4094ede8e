"""The published input geometry of each built-in family's reference checkpoint.

``fairvlm tiny FAMILY OUT --geometry published`` builds a tiny-width model with these
values, so that an image becomes as many tokens, in the same layout, as in the released
model. Every value names its source: the checkpoint's ``config.json`` (model) or
``preprocessor_config.json`` / ``processor_config.json`` (processor) on the Hugging Face
Hub. Processor settings not listed here (mean, std, resample) are the ``transformers``
class defaults, which equal the reference checkpoints'.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The choices of ``fairvlm tiny --geometry`` (``build_tiny_vlm(geometry=...)``):
#: ``tiny`` (small images, the default) or ``published`` (the reference checkpoint's).
GEOMETRIES: tuple[str, ...] = ("tiny", "published")


@dataclass(frozen=True)
class Geometry:
    """What decides how many tokens an image becomes, and where they go.

    ``image_size``: the vision tower's input side in pixels (its position table covers
    it; ``None`` for Qwen2-VL's native resolution). ``merge``: Qwen2-VL's
    ``spatial_merge_size`` or Idefics3 / SmolVLM's pixel-shuffle ``scale_factor``.
    ``pinpoints``: LLaVA-NeXT's any-resolution grid, ``(height, width)``.
    ``longest_edge``: Idefics3 / SmolVLM resize an image to this longest edge before
    splitting it into ``image_size`` tiles. ``min_pixels`` / ``max_pixels``: Qwen2-VL's
    resize bounds. ``window_size``: Qwen2.5-VL's vision attention window in pixels.
    ``text_positions``: the text model's ``max_position_embeddings``; fairvlm's choice,
    not the checkpoint's: room for the longest published image (Idefics3's 4x4 tiles and
    global image, 2,873 tokens) and its prompt.
    """

    checkpoint: str
    image_size: int | None
    patch_size: int
    merge: int = 1
    pinpoints: tuple[tuple[int, int], ...] = ()
    longest_edge: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    window_size: int | None = None
    text_positions: int = 8192


_QWEN_MIN_PIXELS = 3136  # preprocessor_config.json "min_pixels" (56 * 56), Qwen2-VL and 2.5-VL
_QWEN_MAX_PIXELS = 12845056  # preprocessor_config.json "max_pixels" (28 * 28 * 16384), both

PUBLISHED: dict[str, Geometry] = {
    "llava": Geometry(
        checkpoint="llava-hf/llava-1.5-7b-hf",
        image_size=336,  # config.json vision_config.image_size; preprocessor crop_size 336
        patch_size=14,  # config.json vision_config.patch_size; processor_config patch_size
    ),
    "llava_next": Geometry(
        checkpoint="llava-hf/llava-v1.6-mistral-7b-hf",
        image_size=336,  # config.json vision_config.image_size; preprocessor crop_size 336
        patch_size=14,  # config.json vision_config.patch_size; processor_config patch_size
        # config.json and preprocessor_config.json "image_grid_pinpoints"
        pinpoints=((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)),
    ),
    "qwen2_vl": Geometry(
        checkpoint="Qwen/Qwen2-VL-2B-Instruct",
        image_size=None,  # native resolution: no fixed input size
        patch_size=14,  # config.json vision_config.patch_size; preprocessor "patch_size"
        merge=2,  # config.json vision_config.spatial_merge_size; preprocessor "merge_size"
        min_pixels=_QWEN_MIN_PIXELS,
        max_pixels=_QWEN_MAX_PIXELS,
    ),
    "qwen2_5_vl": Geometry(
        checkpoint="Qwen/Qwen2.5-VL-3B-Instruct",
        image_size=None,  # native resolution: no fixed input size
        patch_size=14,  # config.json vision_config.patch_size; preprocessor "patch_size"
        merge=2,  # config.json vision_config.spatial_merge_size; preprocessor "merge_size"
        min_pixels=_QWEN_MIN_PIXELS,
        max_pixels=_QWEN_MAX_PIXELS,
        window_size=112,  # config.json vision_config.window_size
    ),
    "idefics3": Geometry(
        checkpoint="HuggingFaceM4/Idefics3-8B-Llama3",
        image_size=364,  # config.json vision_config.image_size; preprocessor max_image_size
        patch_size=14,  # config.json vision_config.patch_size
        merge=2,  # config.json scale_factor
        longest_edge=1456,  # preprocessor_config.json size.longest_edge (4 * 364)
    ),
    "smolvlm": Geometry(
        checkpoint="HuggingFaceTB/SmolVLM-256M-Instruct",
        image_size=512,  # config.json vision_config.image_size; preprocessor max_image_size
        patch_size=16,  # config.json vision_config.patch_size
        merge=4,  # config.json scale_factor
        longest_edge=2048,  # preprocessor_config.json size.longest_edge (4 * 512)
    ),
    "paligemma": Geometry(
        checkpoint="google/paligemma-3b-pt-224",
        image_size=224,  # config.json vision_config.image_size; preprocessor size 224x224
        patch_size=14,  # config.json vision_config.patch_size
    ),
}

__all__ = ["GEOMETRIES", "PUBLISHED", "Geometry"]
