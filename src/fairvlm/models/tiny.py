"""Offline tiny models: a locally trained tokenizer, the family's processor, random weights.

``build_tiny_vlm(family, out_dir)`` writes a directory that ``load_vlm`` loads like any
real checkpoint. Used by tests, by the demo and by users who want a first run before
downloading 7B weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairvlm.config import Config, is_int
from fairvlm.errors import bad_value
from fairvlm.models.families import get_family

if TYPE_CHECKING:
    from fairvlm.models.adapter import VLMAdapter

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
    """Sizes of a tiny model (validated; hidden sizes must divide by the head count)."""

    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 4
    vision_hidden_size: int = 32
    vision_layers: int = 2
    image_size: int = 32
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
            "image_size",
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
        if self.image_size % self.patch_size:
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


def build_tiny_vlm(
    family: str,
    out_dir: str | Path | None = None,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    vision_hidden_size: int = 32,
    vision_layers: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
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
    """
    import torch

    from fairvlm.atomic import check_output_dir
    from fairvlm.models.adapter import VLMAdapter
    from fairvlm.models.families import transformers_class
    from fairvlm.models.tiny_configs import BUILDERS

    spec = get_family(family)
    if out_dir is not None:
        check_output_dir(Path(out_dir), "model", overwrite)
    cfg = TinyConfig(
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        vision_hidden_size=vision_hidden_size,
        vision_layers=vision_layers,
        image_size=image_size,
        patch_size=patch_size,
        vocab_size=vocab_size,
        seed=seed,
    )
    texts = list(corpus) if corpus is not None else list(DEFAULT_CORPUS)
    if not texts:
        raise bad_value("corpus", texts, "give at least one text, or None for the default")
    config, processor = BUILDERS[spec.name](cfg, texts)
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
