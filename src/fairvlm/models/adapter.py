"""One small interface over the supported VLM families (see :mod:`fairvlm.models.families`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from fairvlm.atomic import OUTPUT_MARKER, atomic_dir, check_output_dir, write_marker
from fairvlm.config import is_int
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError, bad_value
from fairvlm.models import shared_scoring
from fairvlm.models.families import detect_family, get_family, largest_input_pixels, resolve_attr
from fairvlm.models.scoring import (
    SCORING,
    OptionScores,
    chunks,
    empty_scores,
    normalise_options,
    score_independent,
)

# Fill values of sequence-aligned tensors: for appended answer tokens and for padding.
# PaliGemma's token_type_ids mark the suffix (answer) with 1, the prefix with 0.
_ANSWER_FILL = {"attention_mask": 1, "token_type_ids": 1}
_PAD_FILL = {"labels": -100}
MODEL_KIND = "model"
#: How many times the processor's largest input an image may have before it is reduced.
IMAGE_PIXELS_MARGIN = 4


#: ``generate`` options that make more than one sequence per prompt.
_MANY_SEQUENCES = ("num_beams", "num_return_sequences")

#: Families whose prompt cache is not reused by ``scoring="shared"`` (scored independently).
SHARED_SCORING_FALLBACK: frozenset[str] = frozenset()


class CallListener(Protocol):
    """Told of each model call the adapter makes (e.g. a steering step tracker).

    ``begin(input_length, answer_length, start)``: the prompt is the first
    ``input_length`` positions; up to ``answer_length`` scored answer tokens follow it
    (they count as generated tokens); the call's input starts at position ``start``
    (after a cached prompt, ``start = input_length``).
    """

    def begin(self, input_length: int, answer_length: int = 0, start: int = 0) -> None: ...

    def end(self) -> None: ...


class VLMAdapter:
    """A VLM (model + processor) of a supported family behind one interface.

    Attributes:
        model: the ``transformers`` model (a ``peft.PeftModel`` when an adapter is loaded).
        processor: the family's processor; its tokenizer pads on the left.
        family: the fairvlm family name; ``name_or_path``: where it was loaded from.
        call_listeners: told the input length before, and the end after, each model
            call of ``generate``, ``score_options`` and ``forward_batch``: what lets
            steering tell prompt from generated tokens without reading upstream internals.
    """

    def __init__(self, model: Any, processor: Any, family: str, name_or_path: str = "") -> None:
        self.model = model
        self.processor = processor
        self.spec = get_family(family)
        self.family = self.spec.name
        self.name_or_path = name_or_path
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        end = self.spec.end_token or self.tokenizer.eos_token
        self.end_token = end
        self.end_token_ids = sorted({self.tokenizer.convert_tokens_to_ids(end)})
        self.call_listeners: list[CallListener] = []

    @classmethod
    def from_model(cls, model: Any, processor: Any, name_or_path: str | None = None) -> VLMAdapter:
        """Wrap a model and processor loaded elsewhere (your own ``from_pretrained``
        options, a quantized model, a ``peft.PeftModel``); the family comes from
        ``model.config.model_type``, ``name_or_path`` defaults to the model's own.

        Raises:
            ModelError: the model is not of a supported family.
        """
        spec = detect_family(getattr(model, "config", None))
        if name_or_path is None:
            name_or_path = str(getattr(model, "name_or_path", "") or "")
        return cls(model, processor, spec.name, name_or_path=name_or_path)

    # -- structure -----------------------------------------------------------------
    @property
    def base_model(self) -> Any:
        """The underlying ``transformers`` model (through a PEFT wrapper if any)."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if callable(get_base) else self.model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.base_model.dtype

    @property
    def decoder_layers(self) -> nn.ModuleList:
        """The text decoder's transformer blocks (forward hooks there see a Tensor)."""
        return self.base_model.get_decoder().layers

    @property
    def vision_module(self) -> nn.Module:
        return self.base_model.get_encoder(modality="image")

    @property
    def projector(self) -> nn.Module:
        return resolve_attr(self.base_model.model, self.spec.projector_attr)

    @property
    def hidden_size(self) -> int:
        return int(self.base_model.config.get_text_config().hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    def max_length(self) -> int | None:
        """The longest sequence the language model takes (``max_position_embeddings``)."""
        value = getattr(self.base_model.config.get_text_config(), "max_position_embeddings", None)
        return int(value) if value else None

    @property
    def max_image_pixels(self) -> int | None:
        """Images are reduced to at most this many pixels on load, before the processor:
        :data:`IMAGE_PIXELS_MARGIN` times the most it passes on to the model, so that it
        still resizes them itself and memory does not grow with the source resolution."""
        largest = largest_input_pixels(self.processor.image_processor)
        return None if largest is None else IMAGE_PIXELS_MARGIN * largest

    @property
    def image_token_id(self) -> int:
        """The id of the placeholder token that image features replace."""
        token_id = getattr(self.processor, "image_token_id", None)
        if token_id is None:
            token_id = self.tokenizer.convert_tokens_to_ids(self.processor.image_token)
        return int(token_id)

    # -- prompts -------------------------------------------------------------------
    def _messages(self, prompt: str, target: str | None = None) -> list[dict[str, Any]]:
        content = [{"type": "image"}, {"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        if target is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": target}]})
        return messages

    def build_prompt(self, sample: Sample, with_target: bool = False) -> str:
        """The prompt text in the model's own format: one image, one user turn.

        With ``with_target`` the assistant answer (``sample.target``) follows. PaliGemma
        has no chat template: its processor adds the image tokens, bos and newline
        around the prompt itself, and the answer is the suffix.
        """
        target = self._target(sample) if with_target else None
        if not self.spec.chat:
            prefix = f"{self.processor.image_token}{sample.prompt}"
            return prefix if target is None else f"{prefix}\n{target}"
        return self.processor.apply_chat_template(
            self._messages(sample.prompt, target),
            add_generation_prompt=target is None,
            tokenize=False,
        )

    @staticmethod
    def _target(sample: Sample) -> str:
        if sample.target is None:
            raise DataError(f"sample {sample.id!r} has no target; training needs one")
        return sample.target

    def _answer_text(self, sample: Sample, prompt: str, answer: str, with_end: bool) -> str:
        """The text the template puts after the generation prompt for ``answer``."""
        tail = answer
        if self.spec.chat:
            full = self.processor.apply_chat_template(
                self._messages(sample.prompt, answer), add_generation_prompt=False, tokenize=False
            )
            if full.startswith(prompt):
                tail = full[len(prompt) :]
        cut = tail.find(answer)
        if not with_end:
            return tail[: cut + len(answer)] if cut >= 0 else answer
        if self.end_token not in tail[max(cut, 0) + len(answer) :]:
            tail += self.end_token  # templates without an end token: the model must learn to stop
        return tail

    def _answer_ids(self, prompt: str, answer_text: str) -> list[int]:
        """Token ids of ``answer_text`` as tokenized in context after ``prompt``."""
        tok = self.tokenizer
        if not self.spec.chat:
            prompt = prompt + "\n"  # PaliGemma's processor ends the prefix with a newline
        head = tok(prompt, add_special_tokens=False)["input_ids"]
        full = tok(prompt + answer_text, add_special_tokens=False)["input_ids"]
        if full[: len(head)] == head and len(full) > len(head):
            return full[len(head) :]
        return tok(answer_text, add_special_tokens=False)["input_ids"]

    # -- batches -------------------------------------------------------------------
    def _images(self, samples: Sequence[Sample]) -> list[Any]:
        images = []
        for s in samples:
            if s.image is None:
                raise DataError(
                    f"sample {s.id!r} has no image; every fairvlm prompt is an image prompt: "
                    "give the sample an image or drop it"
                )
            images.append(s.load_image(max_pixels=self.max_image_pixels))
        return [[im] for im in images] if self.spec.nested_images else images

    def collate(self, samples: Sequence[Sample], with_target: bool = False) -> Any:
        """A left-padded batch on the model device.

        With ``with_target``, the answer (``sample.target``) and the end-of-turn token
        follow each prompt and ``labels`` is ``-100`` everywhere but those tokens.

        Raises:
            DataError: a sample has no image, an unreadable image or (for training) no target.
        """
        answers = [self._target(s) for s in samples] if with_target else None
        return self._encode(samples, answers, with_end=True)

    def _encode(
        self,
        samples: Sequence[Sample],
        answers: Sequence[str] | None,
        with_end: bool,
        right: bool = False,
    ) -> Any:
        if not samples:
            raise bad_value("samples", [], "give at least one sample")
        images = self._images(samples)
        prompts = [self.build_prompt(s) for s in samples]
        batch = self.processor(text=prompts, images=images, padding=True, return_tensors="pt")
        batch.pop("labels", None)  # PaliGemma's processor labels the whole prompt: not ours
        if answers is not None:
            answer_ids = [
                self._answer_ids(p, self._answer_text(s, p, a, with_end))
                for s, p, a in zip(samples, prompts, answers, strict=True)
            ]
            self._append_answers(batch, answer_ids, right=right)
        self._check_lengths(samples, batch)
        return batch.to(self.device).to(self.dtype)

    def _check_lengths(
        self, samples: Sequence[Sample], batch: Any, extra: Sequence[int] | None = None
    ) -> None:
        """Refuse a sequence longer than the model's context before any forward pass: past
        it the positions are out of range, and the attention's memory grows with it."""
        limit = self.max_length
        if limit is None:
            return
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        extra = extra or [0] * len(samples)
        for sample, n, more in zip(samples, lengths, extra, strict=True):
            n += more
            if n > limit:
                raise DataError(
                    f"sample {sample.id!r}: its prompt, image tokens and answer are {int(n)} "
                    f"tokens, more than the model's context of {limit}: shorten the prompt or "
                    "answer, or drop the sample"
                )

    def _append_answers(self, batch: Any, answer_ids: list[list[int]], right: bool = False) -> None:
        """Append answer tokens to each (left-padded) prompt, add labels, re-pad left.

        With ``right`` the prompts keep their left padding and the answers are padded on
        the right instead, so that every answer starts at the same column (the prompt
        width): what lets the steering tracker tell prompt from answer by column.
        """
        ids = batch["input_ids"]
        keys = [k for k, v in batch.items() if isinstance(v, torch.Tensor) and v.shape == ids.shape]
        keep = batch["attention_mask"].bool()
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in [*keys, "labels"]}
        if right:
            keep = torch.ones_like(keep)
        for i, ans in enumerate(answer_ids):
            n_prompt = int(keep[i].sum())
            ans_t = torch.tensor(ans, dtype=ids.dtype)
            for k in keys:
                fill = ans_t if k == "input_ids" else torch.full_like(ans_t, _ANSWER_FILL.get(k, 0))
                rows[k].append(torch.cat([batch[k][i][keep[i]], fill.to(batch[k].dtype)]))
            rows["labels"].append(
                torch.cat([torch.full((n_prompt,), -100, dtype=ids.dtype), ans_t])
            )
        width = max(len(r) for r in rows["labels"])
        pad_id = self.tokenizer.pad_token_id
        for k, seqs in rows.items():
            value = pad_id if k == "input_ids" else _PAD_FILL.get(k, 0)
            out = torch.full((len(seqs), width), value, dtype=seqs[0].dtype)
            for i, s in enumerate(seqs):
                if right:
                    out[i, : len(s)] = s
                else:
                    out[i, width - len(s) :] = s
            batch[k] = out

    def image_token_mask(self, batch: Any) -> torch.Tensor:
        """``[B, T]`` bool, True where the image features enter the sequence."""
        return batch["input_ids"] == self.image_token_id

    def image_tokens_per_image(self, width: int = 64, height: int = 64) -> int:
        """How many image tokens the processor inserts for one image of this size."""
        from PIL import Image

        probe = Sample(id="probe", image=Image.new("RGB", (width, height), "gray"), prompt="?")
        enc = self.processor(
            text=[self.build_prompt(probe)], images=self._images([probe]), return_tensors="pt"
        )
        return int((enc["input_ids"] == self.image_token_id).sum())

    # -- inference -----------------------------------------------------------------
    @contextmanager
    def _model_call(
        self, batch: Mapping[str, torch.Tensor], answer_length: int = 0, start: int = 0
    ) -> Iterator[None]:
        """Announce one model call on ``batch`` to ``call_listeners``: its prompt length
        (the input's, less ``answer_length`` answer tokens at its end; see
        :class:`CallListener`)."""
        length = start + int(batch["input_ids"].shape[1]) - answer_length
        listeners = list(self.call_listeners)
        for listener in listeners:
            listener.begin(length, answer_length, start)
        try:
            yield
        finally:
            for listener in listeners:
                listener.end()

    def forward_batch(self, batch: Any) -> Any:
        """``model(**batch)`` without ``labels`` (no loss computed)."""
        with self._model_call(batch):
            return self.model(**{k: v for k, v in batch.items() if k != "labels"})

    def _generate_kwargs(self, max_new_tokens: int, overrides: Mapping[str, Any]) -> dict:
        kwargs = {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.end_token_ids,
        }
        kwargs.update(overrides)
        return kwargs

    def _decode(self, new_ids: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(new_ids, skip_special_tokens=True)]

    def generate(
        self,
        samples: Sequence[Sample],
        *,
        max_new_tokens: int = 32,
        batch_size: int = 8,
        progress: bool = False,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Answer each sample (greedy unless ``generate_kwargs`` say otherwise)."""
        from tqdm.auto import tqdm

        kwargs = self._generate_kwargs(max_new_tokens, generate_kwargs)
        texts: list[str] = []
        batches = list(chunks(list(samples), batch_size))
        for chunk in tqdm(batches, desc="generate", disable=not progress):
            batch = self.collate(chunk)
            with torch.inference_mode(), self._model_call(batch):
                out = self.model.generate(**batch, **kwargs)
            texts.extend(self._decode(out[:, batch["input_ids"].shape[1] :]))
        return texts

    def generate_and_score(
        self,
        samples: Sequence[Sample],
        options: Sequence[str] | Sequence[Sequence[str]],
        *,
        max_new_tokens: int = 32,
        batch_size: int = 8,
        option_batch_size: int | None = None,
        scoring: str = "shared",
        token_budget: int | None = None,
        **generate_kwargs: Any,
    ) -> tuple[list[str], OptionScores]:
        """``generate`` and ``score_options`` of the same samples, sharing one prefill.

        With ``shared`` scoring, the prefill of ``generate`` also gives each option's
        first-token log-probability (its first step's logits) and the KV cache the
        options continue from (cropped back to the prompt), so image and prompt are
        encoded once per sample. The texts equal ``generate``'s and the scores
        ``score_options``'s. ``batch_size`` samples per call; ``option_batch_size``
        (default ``batch_size``) and ``token_budget`` bound the continuation passes.
        ``independent`` scoring, a family in :data:`SHARED_SCORING_FALLBACK`, or beam
        search / several sequences per prompt run the two apart.
        """
        rows_cap = option_batch_size or batch_size
        # beams or several sequences per prompt reorder the cache along the batch
        one_sequence = all(generate_kwargs.get(k, 1) == 1 for k in _MANY_SEQUENCES)
        if scoring != "shared" or self.family in SHARED_SCORING_FALLBACK or not one_sequence:
            texts = self.generate(
                samples, max_new_tokens=max_new_tokens, batch_size=batch_size, **generate_kwargs
            )
            scores = self.score_options(
                samples, options, batch_size=rows_cap, scoring=scoring, token_budget=token_budget
            )
            return texts, scores
        samples = list(samples)
        per_sample = normalise_options(options, len(samples))
        sums, counts = empty_scores(per_sample, options)
        kwargs = self._generate_kwargs(max_new_tokens, generate_kwargs)
        texts = shared_scoring.score_samples(
            self, samples, per_sample, batch_size, token_budget, sums, counts, rows_cap, kwargs
        )
        return texts, OptionScores.from_sums(sums, counts)

    def score_options(
        self,
        samples: Sequence[Sample],
        options: Sequence[str] | Sequence[Sequence[str]],
        *,
        batch_size: int = 8,
        scoring: str = "shared",
        token_budget: int | None = None,
    ) -> OptionScores:
        """log P(option | prompt) of each candidate answer, as the assistant's answer.

        Only the option's tokens are scored (not the end-of-turn token), so that an
        option that is a prefix of another is not penalised for what follows.
        ``options`` is one list shared by all samples or one list per sample (ragged
        lists leave NaN / 0 in the unused cells). ``batch_size`` bounds the sequences
        of each forward pass: (sample, option) pairs (independent), or prefixes and
        then (sample, option) continuations (shared). With ``shared``,
        ``token_budget`` also bounds the tokens of a continuation pass: each row holds
        its cached prefix and its option tokens, so a pass takes at most
        ``token_budget // (prefix width + option tokens)`` rows (at least one) and
        memory stays flat as the number of options grows.

        ``scoring``: ``shared`` (default) runs each sample's image and prompt once and
        scores all its options from that prefix's KV cache; ``independent`` runs image,
        prompt and option once per (sample, option) pair. Both score the same tokens
        and agree to float precision. A family in :data:`SHARED_SCORING_FALLBACK` is
        always scored independently. With either, option tokens count as generated
        tokens for steering (``positions``), as they would in ``generate``.
        """
        if scoring not in SCORING:
            raise bad_value("scoring", scoring, f"use one of {list(SCORING)}")
        if token_budget is not None and (not is_int(token_budget) or token_budget < 1):
            raise bad_value("token_budget", token_budget, "use a positive integer or None")
        samples = list(samples)
        per_sample = normalise_options(options, len(samples))
        sums, counts = empty_scores(per_sample, options)
        if scoring == "shared" and self.family not in SHARED_SCORING_FALLBACK:
            shared_scoring.score_samples(
                self, samples, per_sample, batch_size, token_budget, sums, counts
            )
        else:
            score_independent(self, samples, per_sample, batch_size, sums, counts)
        return OptionScores.from_sums(sums, counts)

    def _add_positions(self, batch: Any) -> None:
        """Position ids that count real tokens only, as ``generate`` gives a left-padded
        batch: a sample's scores do not depend on how much padding its batch needs
        (rotary positions are relative, but float32 rounding at shifted positions
        moved a log-prob by up to ~3e-3 on a 600-token prompt). Qwen2-VL / 2.5-VL place
        their multimodal positions from the attention mask themselves."""
        if "image_grid_thw" in batch or "position_ids" in batch:
            return
        mask = batch["attention_mask"]
        pos = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        batch["position_ids"] = pos + self._first_position

    @property
    def _first_position(self) -> int:
        """PaliGemma counts positions from 1."""
        return 0 if self.spec.chat else 1

    # -- persistence ---------------------------------------------------------------
    def save(self, out_dir: str | Path, overwrite: bool = False) -> None:
        """``save_pretrained`` the model and the processor into ``out_dir``, atomically.

        An existing ``out_dir`` is replaced only when it is a model folder fairvlm wrote
        (its ``fairvlm_output.json`` says ``model``) or empty, unless ``overwrite``.
        For a ``PeftModel`` PEFT saves the adapter only (reload it with
        ``load_vlm(base, adapter=out_dir)``); the processor is saved alongside.

        Raises:
            DataError: ``out_dir`` holds something else (a user's folder, a dataset).
        """
        out = Path(out_dir)
        if out.exists() and not overwrite:
            check_output_dir(out, MODEL_KIND)
        with atomic_dir(out, OUTPUT_MARKER, overwrite=True) as tmp:
            self.model.save_pretrained(tmp)
            self.processor.save_pretrained(tmp)
            write_marker(tmp, MODEL_KIND)

    def __repr__(self) -> str:
        return (
            f"VLMAdapter(family={self.family!r}, name_or_path={self.name_or_path!r}, "
            f"layers={self.num_layers}, hidden={self.hidden_size}, dtype={self.dtype})"
        )
