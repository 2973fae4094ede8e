"""Prefix-shared option scoring: one prefill per sample, every option continues from it.

An option's first token is scored from the prefill's last logits (single-token options
need nothing more); its other tokens are fed in continuation passes over a copy of the
prefill's KV cache, selected along the batch for each (sample, option) row. The option
tokens are those the independent path appends (the template's answer text tokenized in
context after the prompt), so both paths score the same sequences. The prefill is a
plain forward pass, or the prefill of ``generate`` when the sample is also answered
(``generate_and_score``), whose cache is cropped back to the prompt.

Written here because no library scores a set of continuations from one shared prefix
through the Hugging Face cache (vLLM's prefix cache is a serving engine's).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fairvlm.data.schema import Sample
from fairvlm.models.scoring import chunks, log_probs

#: (sample in its group, option index, the option's token ids)
Row = tuple[int, int, list[int]]


@dataclass
class Prefix:
    """What the options of a group of samples continue from."""

    batch: Any  # the encoded prompts, with the position ids the prefill used
    first: torch.Tensor  # [B, V] log-probs of an answer's first token
    cache: Any  # KV cache of the prompts; None when no option has a second token
    deltas: torch.Tensor | None  # Qwen2-VL's multimodal rotary offsets [B, 1]
    width: int  # the padded prompt length


def option_ids(vlm: Any, chunk: Sequence[Sample], options: Sequence[list[str]]) -> list:
    """Each sample's options as token ids, as the independent path appends them."""
    prompts = [vlm.build_prompt(s) for s in chunk]
    return [
        [vlm._answer_ids(p, vlm._answer_text(s, p, o, False)) for o in opts]
        for s, p, opts in zip(chunk, prompts, options, strict=True)
    ]


def _output_cache(out: Any) -> Any:
    # the output's key: ``cache`` since transformers 5.24 (reading ``past_key_values`` warns)
    cache = out.get("cache")
    return out.get("past_key_values") if cache is None else cache


def _rope_deltas(vlm: Any) -> torch.Tensor | None:
    """Qwen2-VL's multimodal rotary offsets of the last prefill (``[B, 1]``), if any."""
    return getattr(getattr(vlm.base_model, "model", None), "rope_deltas", None)


def prefill(vlm: Any, batch: Any, use_cache: bool) -> Prefix:
    """One forward pass of the prompts (with position ids counting real tokens)."""
    width = int(batch["input_ids"].shape[1])
    vlm._add_positions(batch)
    with vlm._model_call(batch, answer_length=0):
        out = vlm.model(**batch, use_cache=use_cache, logits_to_keep=1)
    cache = _output_cache(out) if use_cache else None
    deltas = _rope_deltas(vlm) if use_cache else None
    return Prefix(batch, log_probs(out.logits[:, -1]), cache, deltas, width)


def prefill_by_generate(
    vlm: Any, batch: Any, use_cache: bool, kwargs: dict[str, Any]
) -> tuple[torch.Tensor, Prefix | None]:
    """``generate`` on the prompts; its first step's logits and its cache, cropped back
    to the prompt, are the prefix. ``(new token ids, prefix)``; the prefix is None
    when the cache cannot be cropped (the caller then runs :func:`prefill`)."""
    width = int(batch["input_ids"].shape[1])
    with vlm._model_call(batch):
        out = vlm.model.generate(
            **batch, **kwargs, return_dict_in_generate=True, output_logits=True
        )
    new = out.sequences[:, width:]
    cache = None
    if use_cache:
        cache = _output_cache(out)
        extra = cache.get_seq_length() - width if cache is not None else 0
        if cache is None or (extra > 0 and not hasattr(cache, "crop")):
            return new, None
        if extra > 0:
            cache.crop(-extra)  # negative: remove the generated tokens (every release)
    deltas = _rope_deltas(vlm) if use_cache else None
    vlm._add_positions(batch)  # what generate used: positions counting real tokens
    return new, Prefix(batch, log_probs(out.logits[0]), cache, deltas, width)


def score_from_prefix(
    vlm: Any, prefix: Prefix, answer_ids: list[list[list[int]]], rows_per_pass: int
) -> dict[tuple[int, int], tuple[float, int]]:
    """``(sample in group, option) -> (summed log-prob, tokens)`` of every option."""
    rows = [(g, k, ids) for g, answers in enumerate(answer_ids) for k, ids in enumerate(answers)]
    scored = [r for r in rows if r[2]]
    heads = prefix.first[[g for g, _, _ in scored], [ids[0] for _, _, ids in scored]].tolist()
    out = {(g, k): (0.0, 0) for g, k, _ in rows}  # an empty option: log 1, no token
    for (g, k, ids), h in zip(scored, heads, strict=True):
        out[(g, k)] = (h, len(ids))
    longer = [r for r in scored if len(r[2]) > 1]
    tail = max((len(ids) for _, _, ids in longer), default=1) - 1
    for part in chunks(longer, rows_per_pass):
        logp = _continue(vlm, prefix, part, tail)
        targets = torch.zeros((len(part), tail), dtype=torch.long)
        for j, (_, _, ids) in enumerate(part):
            targets[j, : len(ids) - 1] = torch.tensor(ids[1:])
        picked = logp.gather(-1, targets.to(logp.device).unsqueeze(-1)).squeeze(-1)
        lengths = torch.tensor([len(ids) - 1 for _, _, ids in part], device=logp.device)
        real = torch.arange(tail, device=logp.device) < lengths.unsqueeze(1)
        for (g, k, ids), t in zip(part, (picked * real).sum(dim=1).tolist(), strict=True):
            out[(g, k)] = (out[(g, k)][0] + t, len(ids))
    return out


def score_samples(
    vlm: Any,
    samples: list[Sample],
    per_sample: list[list[str]],
    batch_size: int,
    token_budget: int | None,
    sums: np.ndarray,
    counts: np.ndarray,
    rows_cap: int | None = None,
    generate_kwargs: dict[str, Any] | None = None,
) -> list[str]:
    """Fill ``sums`` / ``counts``: prefill ``batch_size`` samples at a time, their options
    continue from the prefix's KV cache, at most ``rows_cap`` rows (default
    ``batch_size``) per pass. With ``generate_kwargs`` the prefill is ``generate``'s, and
    its texts are returned."""
    texts: list[str] = []
    for group in chunks(range(len(samples)), batch_size):
        chunk = [samples[i] for i in group]
        answer_ids = option_ids(vlm, chunk, [per_sample[i] for i in group])
        batch = vlm._encode(chunk, None, with_end=False)
        vlm._check_lengths(chunk, batch, [max(map(len, a), default=0) for a in answer_ids])
        tail = longest_tail(answer_ids)
        with torch.inference_mode():
            prefix = None
            if generate_kwargs is not None:
                new, prefix = prefill_by_generate(vlm, batch, tail > 0, generate_kwargs)
                texts.extend(vlm._decode(new))
            if prefix is None:  # scoring alone, or a cache that cannot be cropped
                prefix = prefill(vlm, batch, use_cache=tail > 0)
            rows = rows_per_pass(rows_cap or batch_size, token_budget, prefix.width, tail)
            scores = score_from_prefix(vlm, prefix, answer_ids, rows)
        fill(scores, group, sums, counts)
    return texts


def rows_per_pass(batch_size: int, token_budget: int | None, width: int, tail: int) -> int:
    """Continuation rows per pass: ``batch_size``, fewer when each row's cached prefix
    plus option tokens would exceed ``token_budget``."""
    if token_budget is None:
        return batch_size
    return max(1, min(batch_size, token_budget // (width + tail)))


def longest_tail(answer_ids: list[list[list[int]]]) -> int:
    """Option tokens after the first, at most (what a continuation pass feeds)."""
    return max((len(ids) for answers in answer_ids for ids in answers), default=1) - 1


def fill(
    scores: dict[tuple[int, int], tuple[float, int]],
    group: Sequence[int],
    sums: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Write a group's scores into the ``[samples, options]`` arrays."""
    for (g, k), (total, n) in scores.items():
        sums[group[g], k], counts[group[g], k] = total, n


def _continue(vlm: Any, prefix: Prefix, rows: Sequence[Row], tail: int) -> torch.Tensor:
    """Log-probs ``[n, tail, V]`` of the rows' option tokens after the first, fed
    (right-padded to ``tail``) after a copy of the prefix cache selected by row."""
    batch = prefix.batch
    device = batch["input_ids"].device
    idx = torch.tensor([g for g, _, _ in rows], device=device)
    ids = torch.full((len(rows), tail), vlm.tokenizer.pad_token_id, dtype=batch["input_ids"].dtype)
    mask = torch.zeros((len(rows), tail), dtype=batch["attention_mask"].dtype)
    for j, (_, _, toks) in enumerate(rows):
        ids[j, : len(toks) - 1] = torch.tensor(toks[:-1])
        mask[j, : len(toks) - 1] = 1
    # a copy whose layers get new (selected) tensors; the prefix's cache is kept for
    # the next rows (reorder_cache replaces a layer's tensors, it does not edit them)
    layers = getattr(prefix.cache, "layers", None)
    if layers is None:
        rows_cache = copy.deepcopy(prefix.cache)
    else:
        rows_cache = copy.copy(prefix.cache)
        rows_cache.layers = [copy.copy(layer) for layer in layers]
    rows_cache.reorder_cache(idx)
    inputs: dict[str, Any] = {
        "input_ids": ids.to(device),
        "attention_mask": torch.cat([batch["attention_mask"][idx], mask.to(device)], dim=1),
        _cache_keyword(vlm): rows_cache,
        "use_cache": True,
    }
    if "token_type_ids" in batch:  # PaliGemma: the answer is the (causal) suffix
        inputs["token_type_ids"] = torch.ones_like(inputs["input_ids"])
    real = batch["attention_mask"].sum(dim=1, keepdim=True)[idx]
    step = torch.arange(tail, device=device).view(1, -1)
    if "position_ids" in batch:  # positions continue from the prompt's real length
        inputs["position_ids"] = real + step + vlm._first_position
    if prefix.deltas is not None:
        # text after the prompt continues from its largest position: the prompt's
        # unpadded length plus its offset (get_rope_index's mrope_position_deltas)
        pos = step + (real + prefix.deltas.to(device)[idx].view(-1, 1))
        inputs["position_ids"] = pos.unsqueeze(0).expand(3, -1, -1)
    with vlm._model_call(inputs, answer_length=tail, start=prefix.width):
        # announced as answer tokens after the cached prompt
        logits = vlm.model(**inputs).logits
    return log_probs(logits)


def _cache_keyword(vlm: Any) -> str:
    """The forward keyword of the KV cache (``past_key_values`` became ``cache``)."""
    params = inspect.signature(vlm.base_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
