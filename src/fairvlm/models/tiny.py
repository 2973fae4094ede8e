"""Offline tiny models: a locally trained tokenizer, the family's processor, random weights.

``build_tiny_vlm(family, out_dir)`` writes a directory that ``load_vlm`` loads like any
real checkpoint. Used by tests, by the demo and by users who want a first run before
downloading 7B weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fairvlm.atomic import check_output_dir
from fairvlm.errors import bad_value
from fairvlm.models.adapter import VLMAdapter
from fairvlm.models.families import get_family, transformers_class
from fairvlm.models.published import GEOMETRIES, PUBLISHED, Geometry
from fairvlm.models.tiny_configs import DEFAULT_CORPUS, TinyConfig


def build_tiny_vlm(
    family: str,
    out_dir: str | Path | None = None,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    vision_hidden_size: int = 32,
    vision_layers: int = 2,
    image_size: int | None = None,
    patch_size: int | None = None,
    geometry: str = "tiny",
    corpus: Iterable[str] | None = None,
    seed: int = 0,
    vocab_size: int = 512,
    overwrite: bool = False,
) -> VLMAdapter:
    """Build a randomly initialised tiny VLM of ``family``, fully offline.

    The tokenizer is trained on ``corpus`` (default: :data:`DEFAULT_CORPUS`), the
    processor is the family's own (PIL image backend), and the model is built from a
    config of the given sizes with ``seed``. When ``out_dir`` is given the model and
    processor are saved there with ``save_pretrained`` (``load_vlm(out_dir)`` reloads it);
    an existing ``out_dir`` is replaced only when it is a fairvlm model folder or empty,
    unless ``overwrite`` (checked before any work).

    ``geometry`` (one of :data:`~fairvlm.models.published.GEOMETRIES`): ``"tiny"`` takes
    ``image_size`` (default 32) and ``patch_size`` (default 8); ``"published"`` takes the
    reference checkpoint's input geometry (:data:`~fairvlm.models.published.PUBLISHED`:
    image and patch size, tiles, merge factor, processor settings) at these widths.
    """
    import torch

    spec = get_family(family)
    published = _published(spec.name, geometry, image_size, patch_size)
    if published is not None:
        image_size, patch_size = published.image_size, published.patch_size
    if out_dir is not None:
        check_output_dir(Path(out_dir), "model", overwrite)
    cfg = TinyConfig(
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        vision_hidden_size=vision_hidden_size,
        vision_layers=vision_layers,
        image_size=32 if image_size is None and published is None else image_size,
        patch_size=8 if patch_size is None else patch_size,
        vocab_size=vocab_size,
        seed=seed,
    )
    texts = list(corpus) if corpus is not None else list(DEFAULT_CORPUS)
    if not texts:
        raise bad_value("corpus", texts, "give at least one text, or None for the default")
    if spec.tiny is None:
        raise bad_value("family", family, "this family has no tiny builder (FamilySpec.tiny)")
    if published is None:
        config, processor = spec.tiny(cfg, texts)
    else:
        config, processor = spec.tiny(cfg, texts, geometry=published)
    torch.manual_seed(seed)
    model = transformers_class(spec.model_class)(config).eval()
    tok = processor.tokenizer
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    end = tok.convert_tokens_to_ids(spec.end_token) if spec.end_token else tok.eos_token_id
    model.generation_config.eos_token_id = end
    model.generation_config.do_sample = False
    adapter = VLMAdapter(model, processor, spec.name, name_or_path=f"tiny-{spec.name}")
    if out_dir is not None:
        adapter.save(out_dir, overwrite=overwrite)
        adapter.name_or_path = str(out_dir)
    return adapter


def _published(
    family: str, geometry: str, image_size: int | None, patch_size: int | None
) -> Geometry | None:
    """The published geometry of ``family`` when ``geometry`` asks for it, else ``None``."""
    if geometry not in GEOMETRIES:
        raise bad_value("geometry", geometry, f"use one of {', '.join(GEOMETRIES)}")
    if geometry == "tiny":
        return None
    if family not in PUBLISHED:
        raise bad_value("geometry", geometry, f"{family} has no published geometry; use tiny")
    for name, value in (("image_size", image_size), ("patch_size", patch_size)):
        if value is not None:
            raise bad_value(
                name, value, "drop it: geometry=published takes the reference checkpoint's"
            )
    return PUBLISHED[family]
