"""Tiny models' sizes (:class:`TinyConfig`), tokenizer, and per-family configs and processors
(used by :func:`fairvlm.models.build_tiny_vlm`; each family's ``FamilySpec.tiny``).

Each builder takes the sizes and the tokenizer corpus and returns ``(config, processor)``
with the family's own processor class (PIL image backend) and a chat template in the
format of the released checkpoints (:mod:`fairvlm.models.templates`). The input geometry
is the tiny one derived from the sizes, or a given :class:`~fairvlm.models.published.Geometry`
(the reference checkpoint's, ``--geometry published``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fairvlm.config import Config, is_int
from fairvlm.errors import bad_value
from fairvlm.models import templates
from fairvlm.models.families import get_family, processor_class, transformers_class
from fairvlm.models.published import Geometry

#: Text the tokenizer is trained on when no corpus is given: short VQA-style English.
DEFAULT_CORPUS: tuple[str, ...] = (
    "What is shown in the image? Describe the image.",
    "Is this person a doctor? Is this person a nurse? Is this person a teacher?",
    "yes no maybe unknown. The answer is yes. The answer is no.",
    "What is the diagnosis? The lesion is benign. The lesion is malignant.",
    "A photo of a person with light skin. A photo of a person with dark skin.",
    "a man a woman a child an old person a young person standing in a room",
    "The skin shows a round lesion with a dark border and an irregular shape.",
    "red green blue yellow brown black white gray pink orange purple",
    "one two three four five six seven eight nine ten",
    "kind friendly smart honest lazy rude careful reliable educated",
)


@dataclass
class TinyConfig(Config):
    """Sizes of a tiny model (validated; hidden sizes must divide by the head count).

    ``image_size`` ``None``: set by the caller before building (pretraining uses the
    dataset's image size).
    """

    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 4
    vision_hidden_size: int = 32
    vision_layers: int = 2
    image_size: int | None = 32
    patch_size: int = 8
    vocab_size: int = 512
    seed: int = 0

    def validate(self) -> None:
        for name in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "vision_hidden_size",
            "vision_layers",
            "patch_size",
        ):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise bad_value(name, value, "use a positive integer")
        for name in ("hidden_size", "vision_hidden_size"):
            if getattr(self, name) % self.num_heads:
                raise bad_value(
                    name, getattr(self, name), f"use a multiple of num_heads={self.num_heads}"
                )
        if self.image_size is not None and (not is_int(self.image_size) or self.image_size < 1):
            raise bad_value("image_size", self.image_size, "use a positive integer or null")
        if self.image_size is not None and self.image_size % self.patch_size:
            raise bad_value(
                "image_size", self.image_size, f"use a multiple of patch_size={self.patch_size}"
            )
        if self.vocab_size < 300:
            raise bad_value(
                "vocab_size", self.vocab_size, "use >= 300 (256 byte symbols + specials)"
            )

    @property
    def intermediate_size(self) -> int:
        return 2 * self.hidden_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def train_tokenizer(
    corpus: Iterable[str],
    special_tokens: list[str],
    *,
    vocab_size: int = 512,
    bos: str | None = None,
    eos: str | None = None,
    pad: str | None = None,
    unk: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus`` with the ``tokenizers`` library.

    Byte-level BPE encodes any text without unknown tokens, whatever the corpus was.
    Returns a ``transformers`` fast tokenizer (saved as ``tokenizer.json``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    named = {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk}
    kwargs = {k: v for k, v in named.items() if v is not None}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs, **(extra or {}))


#: Weight init std of tiny models. Why: with the usual 0.02 a random tiny model gives
#: near-uniform logits and the same answer for every input; 0.2 (~1/sqrt(hidden))
#: makes outputs depend on the input, which the tests of batching and scoring need.
TINY_INIT = 0.2

_LLAMA_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Idefics3 / SmolVLM image splitting writes a "<row_i_col_j>" tag before each tile.
_ROW_COL = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
_IDEFICS_SPECIALS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]


def _cls(name: str) -> Any:
    return transformers_class(name)


def _tiny_geometry(cfg: TinyConfig, **extra: Any) -> Geometry:
    """The tiny geometry: the sizes' image and patch, short text positions."""
    return Geometry("tiny", cfg.image_size, cfg.patch_size, text_positions=2048, **extra)


def _text_kwargs(cfg: TinyConfig, tok: Any, geo: Geometry) -> dict[str, Any]:
    """Decoder sizes shared by the Llama-like text configs."""
    return {
        "vocab_size": len(tok),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "max_position_embeddings": geo.text_positions,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "tie_word_embeddings": False,
        "initializer_range": TINY_INIT,
    }


def _vision_kwargs(cfg: TinyConfig, geo: Geometry) -> dict[str, Any]:
    """ViT sizes shared by the CLIP / SigLIP / Idefics3 vision configs."""
    return {
        "hidden_size": cfg.vision_hidden_size,
        "intermediate_size": 2 * cfg.vision_hidden_size,
        "num_hidden_layers": cfg.vision_layers,
        "num_attention_heads": cfg.num_heads,
        "image_size": geo.image_size,
        "patch_size": geo.patch_size,
        "initializer_range": TINY_INIT,
    }


def _llama_tokenizer(cfg: TinyConfig, corpus: list[str]) -> Any:
    return train_tokenizer(
        corpus,
        _LLAMA_SPECIALS,
        vocab_size=cfg.vocab_size,
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        unk="<unk>",
    )


def _llava_common(cfg: TinyConfig, tok: Any, geo: Geometry) -> dict[str, Any]:
    return {
        "vision_config": _cls("CLIPVisionConfig")(
            **_vision_kwargs(cfg, geo), projection_dim=cfg.hidden_size
        ),
        "text_config": _cls("LlamaConfig")(**_text_kwargs(cfg, tok, geo)),
        "image_token_index": tok.convert_tokens_to_ids("<image>"),
        "vision_feature_layer": -1,  # the last layer, so that every vision layer is used
        "vision_feature_select_strategy": "default",
    }


def _llava_processor_kwargs(geo: Geometry) -> dict[str, Any]:
    return {
        "patch_size": geo.patch_size,
        "vision_feature_select_strategy": "default",
        "num_additional_image_tokens": 1,  # CLIP's CLS token, dropped by "default"
    }


def llava(cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None) -> tuple[Any, Any]:
    """LLaVA-1.5: CLIP ViT + 2-layer MLP projector + Llama."""
    geo = geometry or _tiny_geometry(cfg)
    tok = _llama_tokenizer(cfg, corpus)
    side = geo.image_size
    image_proc = _cls("CLIPImageProcessorPil")(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    processor = processor_class(get_family("llava"))(
        image_processor=image_proc,
        tokenizer=tok,
        chat_template=templates.LLAVA,
        **_llava_processor_kwargs(geo),
    )
    return _cls("LlavaConfig")(**_llava_common(cfg, tok, geo)), processor


def llava_next(
    cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None
) -> tuple[Any, Any]:
    """LLaVA-NeXT: LLaVA with "anyres" tiles chosen from a grid of pinpoints."""
    t = cfg.image_size
    geo = geometry or _tiny_geometry(cfg, pinpoints=((t, 2 * t), (2 * t, t), (2 * t, 2 * t)))
    tok = _llama_tokenizer(cfg, corpus)
    s = geo.image_size
    pinpoints = [list(p) for p in geo.pinpoints]
    image_proc = _cls("LlavaNextImageProcessorPil")(
        size={"shortest_edge": s},
        crop_size={"height": s, "width": s},
        image_grid_pinpoints=pinpoints,
    )
    processor = processor_class(get_family("llava_next"))(
        image_processor=image_proc,
        tokenizer=tok,
        chat_template=templates.LLAVA_NEXT,
        **_llava_processor_kwargs(geo),
    )
    config = _cls("LlavaNextConfig")(**_llava_common(cfg, tok, geo), image_grid_pinpoints=pinpoints)
    return config, processor


def _qwen(
    cfg: TinyConfig, corpus: list[str], family: str, geometry: Geometry | None
) -> tuple[Any, Any]:
    """Qwen2-VL / Qwen2.5-VL: native-resolution ViT with 2x2 patch merging + Qwen2 + M-RoPE."""
    factor = cfg.patch_size * 2
    geo = geometry or _tiny_geometry(
        cfg,
        merge=2,
        min_pixels=factor * factor,
        max_pixels=4 * cfg.image_size**2,
        window_size=2 * factor,  # windows of 2x2 merged patches
    )
    tok = train_tokenizer(
        corpus, _QWEN_SPECIALS, vocab_size=cfg.vocab_size, eos="<|im_end|>", pad="<|endoftext|>"
    )
    merge = geo.merge
    image_proc = _cls("Qwen2VLImageProcessorPil")(
        patch_size=geo.patch_size,
        merge_size=merge,
        temporal_patch_size=2,
        size={"shortest_edge": geo.min_pixels, "longest_edge": geo.max_pixels},
    )
    processor = processor_class(get_family(family))(
        image_processor=image_proc, tokenizer=tok, chat_template=templates.QWEN2_VL
    )
    half = cfg.head_dim // 2  # M-RoPE splits the rotary half-dim into (t, h, w) sections
    section = [half - 2 * (half // 4), half // 4, half // 4]
    text = {
        **_text_kwargs(cfg, tok, geo),
        "bos_token_id": None,
        "rope_parameters": {"rope_type": "default", "mrope_section": section, "rope_theta": 1e4},
    }
    vision = {
        "depth": cfg.vision_layers,
        "num_heads": cfg.num_heads,
        "patch_size": geo.patch_size,
        "spatial_merge_size": merge,
        "temporal_patch_size": 2,
        "initializer_range": TINY_INIT,
    }
    if family == "qwen2_vl":
        vision.update(embed_dim=cfg.vision_hidden_size, hidden_size=cfg.hidden_size, mlp_ratio=2)
        config_cls = _cls("Qwen2VLConfig")
    else:
        vision.update(
            hidden_size=cfg.vision_hidden_size,
            intermediate_size=2 * cfg.vision_hidden_size,
            out_hidden_size=cfg.hidden_size,
            window_size=geo.window_size,
            fullatt_block_indexes=[cfg.vision_layers - 1],
        )
        config_cls = _cls("Qwen2_5_VLConfig")
    ids = {t: tok.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return config, processor


def qwen2_vl(
    cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None
) -> tuple[Any, Any]:
    """Qwen2-VL."""
    return _qwen(cfg, corpus, "qwen2_vl", geometry)


def qwen2_5_vl(
    cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None
) -> tuple[Any, Any]:
    """Qwen2.5-VL (windowed vision attention, SwiGLU vision MLP)."""
    return _qwen(cfg, corpus, "qwen2_5_vl", geometry)


def _idefics(
    cfg: TinyConfig, corpus: list[str], family: str, geometry: Geometry | None
) -> tuple[Any, Any]:
    """Idefics3 / SmolVLM: SigLIP-like ViT, pixel-shuffle connector, Llama; image tiles."""
    # tiny: up to 2x2 tiles + the global image
    geo = geometry or _tiny_geometry(cfg, merge=2, longest_edge=2 * cfg.image_size)
    bos = "<|begin_of_text|>" if family == "idefics3" else "<|im_start|>"
    tok = train_tokenizer(
        corpus,
        ["<pad>", bos, "<|end_of_text|>", "<unk>", *_IDEFICS_SPECIALS, *_ROW_COL],
        vocab_size=cfg.vocab_size + len(_ROW_COL),
        bos=bos,
        eos="<end_of_utterance>",
        pad="<pad>",
        unk="<unk>",
    )
    scale = geo.merge  # pixel shuffle: (image_size / patch)^2 / scale^2 tokens per tile
    seq_len = (geo.image_size // geo.patch_size) ** 2 // scale**2
    prefix = "Idefics3" if family == "idefics3" else "SmolVLM"
    image_proc = _cls(f"{prefix}ImageProcessorPil")(
        size={"longest_edge": geo.longest_edge},
        max_image_size={"longest_edge": geo.image_size},
        do_image_splitting=True,
    )
    template = templates.IDEFICS3 if family == "idefics3" else templates.SMOLVLM
    processor = processor_class(get_family(family))(
        image_processor=image_proc, tokenizer=tok, image_seq_len=seq_len, chat_template=template
    )
    config = _cls(f"{prefix}Config")(
        vision_config=_cls(f"{prefix}VisionConfig")(**_vision_kwargs(cfg, geo)),
        text_config=_cls("LlamaConfig")(**_text_kwargs(cfg, tok, geo)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
    )
    return config, processor


def idefics3(
    cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None
) -> tuple[Any, Any]:
    """Idefics3."""
    return _idefics(cfg, corpus, "idefics3", geometry)


def smolvlm(
    cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None
) -> tuple[Any, Any]:
    """SmolVLM."""
    return _idefics(cfg, corpus, "smolvlm", geometry)


def paligemma(
    cfg: TinyConfig, corpus: list[str], geometry: Geometry | None = None
) -> tuple[Any, Any]:
    """PaliGemma: SigLIP + linear projector + Gemma, prefix-LM over "<image>...<bos>prompt\\n"."""
    tok = train_tokenizer(
        corpus,
        ["<pad>", "<eos>", "<bos>", "<unk>"],
        vocab_size=cfg.vocab_size,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
    )
    geo = geometry or _tiny_geometry(cfg)
    side = geo.image_size
    image_proc = _cls("SiglipImageProcessorPil")(size={"height": side, "width": side})
    image_proc.image_seq_length = (side // geo.patch_size) ** 2
    # The processor adds <image> and ~1,150 <locNNNN>/<segNNN> tokens to the tokenizer:
    # the text vocabulary is sized after it is built.
    processor = processor_class(get_family("paligemma"))(image_processor=image_proc, tokenizer=tok)
    text = {**_text_kwargs(cfg, tok, geo), "head_dim": cfg.head_dim, "tie_word_embeddings": True}
    config = _cls("PaliGemmaConfig")(
        vision_config=_cls("SiglipVisionConfig")(**_vision_kwargs(cfg, geo)),
        text_config=_cls("GemmaConfig")(**text),
        image_token_index=processor.image_token_id,
        projection_dim=cfg.hidden_size,
        hidden_size=cfg.hidden_size,
        vocab_size=len(tok),
        tie_word_embeddings=True,
    )
    return config, processor
