"""Per-family specifics: detection, classes, prompt format and where the parts live.

Everything that differs between the supported VLM families is data in one
:class:`FamilySpec`, registered in :data:`fairvlm.registry.FAMILIES` (the built-in seven
in :mod:`fairvlm.models.builtin_families`); the adapter reads it and stays family-agnostic.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairvlm.errors import ModelError
from fairvlm.registry import FAMILIES, did_you_mean


@dataclass(frozen=True)
class FamilySpec:
    """What fairvlm needs to know about one VLM family.

    Attributes:
        name: the fairvlm family name (``fairvlm models`` lists them).
        model_type: ``config.model_type`` of its checkpoints.
        model_class: the ``transformers`` class with the LM head (its name, or the class
            itself for a model class outside ``transformers``, e.g. a plugin's).
        processor_class: the ``transformers`` processor class.
        image_processor_class: the PIL-backend image processor (no torchvision needed).
        projector_attr: attribute of the inner model holding the vision->text projector.
        end_token: end-of-turn token of the chat template (``None``: the tokenizer's eos).
        nested_images: the processor wants one list of images per text (``[[img], ...]``).
        chat: ``False`` for prefix/suffix models without a chat template (PaliGemma).
        video_workaround: the processor class requires a video processor, which needs
            torchvision; fairvlm builds it without one (see :func:`processor_class`).
        tiny: ``(TinyConfig, corpus) -> (config, processor)`` of a tiny random model of
            the family (``fairvlm tiny``); ``None``: the family has none. The built-in
            families' builders also take ``geometry=`` a
            :class:`~fairvlm.models.published.Geometry` (``--geometry published``).
    """

    name: str
    model_type: str
    model_class: str | type
    processor_class: str
    image_processor_class: str
    projector_attr: str
    end_token: str | None = None
    nested_images: bool = False
    chat: bool = True
    video_workaround: bool = False
    tiny: Callable[..., tuple[Any, Any]] | None = None


def supported_families() -> list[str]:
    """The registered families, in the order ``fairvlm models`` prints them."""
    return FAMILIES.names()


def get_family(name: str) -> FamilySpec:
    """The spec of a family by its fairvlm name.

    Raises:
        ModelError: the name is not a registered family (the message lists them).
    """
    if name not in FAMILIES:
        names = FAMILIES.names()
        raise ModelError(
            f"family={name!r} is not supported{did_you_mean(name, names)}: use one of "
            f"{', '.join(names)}, or register it (register_family, see docs/extending.md)"
        )
    return FAMILIES.get(name)


def detect_family(config: Any) -> FamilySpec:
    """The family of a checkpoint from its ``config.model_type``.

    Raises:
        ModelError: the architecture is not one of the registered families.
    """
    model_type = getattr(config, "model_type", None)
    for spec in FAMILIES:
        if spec.model_type == model_type:
            return spec
    arch = ", ".join(getattr(config, "architectures", None) or []) or "unknown"
    raise ModelError(
        f"model_type={model_type!r} (architectures: {arch}) is not a supported VLM family: "
        f"fairvlm supports {', '.join(FAMILIES.names())}"
    )


def transformers_class(name: str | type) -> type:
    """A class exported by ``transformers`` by name (a class, e.g. a plugin's own, as it is)."""
    if isinstance(name, type):
        return name
    return getattr(importlib.import_module("transformers"), name)


def _image_only(cls: type) -> type:
    """A subclass of a processor that takes no video processor.

    Why: the Qwen2-VL, Qwen2.5-VL and SmolVLM processors require a video processor, whose
    only implementation needs torchvision; fairvlm processes images only. The subclass
    drops ``video_processor`` from ``__init__`` (``ProcessorMixin`` derives the
    sub-processor list and the settings it saves and reloads from that signature, hence
    explicit parameters), so the processor is built, saved and loaded with an image
    processor and a tokenizer alone. It keeps the class name, so a saved
    ``processor_config.json`` names the real class; video input is unsupported.
    """
    from transformers import ProcessorMixin

    if "image_seq_len" in inspect.signature(cls.__init__).parameters:  # SmolVLM

        def __init__(
            self, image_processor, tokenizer, image_seq_len=169, chat_template=None, **kwargs
        ):
            cls.__init__(
                self,
                image_processor,
                tokenizer,
                None,
                image_seq_len=image_seq_len,
                chat_template=chat_template,
                **kwargs,
            )
    else:

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            cls.__init__(self, image_processor, tokenizer, None, chat_template, **kwargs)

    # SmolVLM's apply_chat_template reads video defaults (num_frames, fps) from the video
    # processor; the generic one renders the same text for image-only conversations.
    attrs = {
        "__init__": __init__,
        "__module__": __name__,
        "apply_chat_template": ProcessorMixin.apply_chat_template,
    }
    return type(cls.__name__, (cls,), attrs)


_IMAGE_ONLY: dict[str, type] = {}


def processor_class(spec: FamilySpec) -> type:
    """The processor class fairvlm uses for a family (image-only where needed)."""
    cls = transformers_class(spec.processor_class)
    if not spec.video_workaround:
        return cls
    if spec.name not in _IMAGE_ONLY:
        _IMAGE_ONLY[spec.name] = _image_only(cls)
    return _IMAGE_ONLY[spec.name]


def load_processor(spec: FamilySpec, path: str | Path, **kwargs: Any) -> Any:
    """Load a family's processor from a directory or hub id, PIL image backend."""
    image_proc = transformers_class(spec.image_processor_class).from_pretrained(path, **kwargs)
    tokenizer = transformers_class("AutoTokenizer").from_pretrained(path, **kwargs)
    return processor_class(spec).from_pretrained(
        path, image_processor=image_proc, tokenizer=tokenizer, **kwargs
    )


def _size_field(size: Any, key: str) -> int | None:
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if value else None


def largest_input_pixels(image_processor: Any) -> int | None:
    """The most pixels of one image that the image processor passes on to the model.

    Qwen2-VL's ``size`` holds pixel counts (``longest_edge`` is its ``max_pixels``);
    LLaVA-NeXT's largest any-resolution canvas is its biggest grid pinpoint; the other
    processors resize to a side (CLIP's shortest edge and crop, SigLIP's height and
    width, Idefics3 / SmolVLM's longest edge). ``None`` when the processor says none.
    """
    size = getattr(image_processor, "size", None) or {}
    if hasattr(image_processor, "merge_size"):  # Qwen2-VL / Qwen2.5-VL
        return _size_field(size, "longest_edge") or getattr(image_processor, "max_pixels", None)
    pinpoints = getattr(image_processor, "image_grid_pinpoints", None)
    if pinpoints:
        return max(int(h) * int(w) for h, w in pinpoints)
    crop = getattr(image_processor, "crop_size", None) or {}
    sides = [
        _size_field(d, k)
        for d in (size, crop)
        for k in ("height", "width", "shortest_edge", "longest_edge")
    ]
    sides = [s for s in sides if s]
    return max(sides) ** 2 if sides else None


def resolve_attr(module: Any, dotted: str) -> Any:
    """``module.a.b`` for ``dotted="a.b"``."""
    for part in dotted.split("."):
        module = getattr(module, part)
    return module
