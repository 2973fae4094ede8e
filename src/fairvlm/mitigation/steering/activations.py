"""Reading decoder-layer activations with forward hooks, and pooling them over positions.

Shared by the builders (contrastive, gradient) and by checks on steered models. One hook
per layer instead of ``output_hidden_states=True``, which would keep every layer. The
pooling is :func:`fairvlm.representation.pool`; this module says which positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from fairvlm.errors import DataError, ModelError, bad_value
from fairvlm.representation import pool

#: Where a sequence of hidden states is read, one vector per sample.
READ_POSITIONS = ("last_prompt", "image_mean", "prompt_mean", "answer_mean")
#: What each position reads, for the message of a row that has none.
_KINDS = dict(zip(READ_POSITIONS, ("prompt", "image", "prompt", "answer"), strict=True))


def resolve_layers(
    layers: Sequence[int] | None, num_layers: int, name: str = "layers"
) -> list[int]:
    """Absolute, sorted, unique layer indices; negative indices count from the end;
    ``None`` = the middle layer.

    Raises:
        ModelError: an index outside ``[-num_layers, num_layers)``.
    """
    if layers is None:
        return [num_layers // 2]
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise bad_value(name, list(layers), "give integer layer indices")
        if not -num_layers <= layer < num_layers:
            raise ModelError(
                f"{name}: layer {layer} is out of range: the model has decoder layers "
                f"0..{num_layers - 1} (negative indices count from the end)"
            )
        out.append(layer % num_layers)
    if not out:
        raise bad_value(name, list(layers), "give at least one layer index")
    return sorted(set(out))


@contextmanager
def record_layers(adapter: Any, layers: Sequence[int]) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Record the output of decoder ``layers`` (after any steering hook already installed)
    at every forward call: ``{layer: [tensor per call]}``. Kept attached to the graph, so
    a caller may differentiate through them; detach when only reading."""
    blocks = adapter.decoder_layers
    store: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    handles = []

    def make(layer: int):
        def hook(module: Any, args: tuple, output: Any) -> None:
            store[layer].append(output[0] if isinstance(output, tuple) else output)

        return hook

    try:
        for layer in layers:
            handles.append(blocks[layer].register_forward_hook(make(layer)))
        yield store
    finally:
        for h in handles:
            h.remove()


def position_mask(
    batch: Any, how: str, adapter: Any, answer_tokens: int | None = None
) -> torch.Tensor:
    """``[B, T]`` bool: the positions ``how`` names (see :func:`pool_positions`)."""
    if how not in READ_POSITIONS:
        raise bad_value("position", how, f"use one of {list(READ_POSITIONS)}")
    if how == "image_mean":
        return adapter.image_token_mask(batch)
    labels = batch.get("labels") if hasattr(batch, "get") else None
    attention = batch["attention_mask"].bool()
    width = attention.shape[1]
    if labels is not None:
        answer = labels != -100
        first = torch.where(
            answer.any(1),
            answer.int().argmax(1),
            torch.full_like(answer[:, 0], width, dtype=torch.long),
        )
    else:
        answer = torch.zeros_like(attention)
        first = torch.full((attention.shape[0],), width, dtype=torch.long, device=attention.device)
    positions = torch.arange(width, device=attention.device)[None, :]
    if how in ("last_prompt", "prompt_mean"):
        # left-padded: the prompt's last position is the one before the answer's first
        return attention & (positions < first[:, None])
    if labels is None:
        raise bad_value(
            "position", how, "needs samples with targets (the answer is read)", DataError
        )
    mask = torch.zeros_like(answer)
    mask[:, :-1] = answer[:, 1:]  # the state at p predicts the token at p + 1
    if answer_tokens is not None:
        mask &= positions < (first[:, None] - 1 + answer_tokens)
    return mask


def pool_positions(
    hidden: torch.Tensor, batch: Any, how: str, adapter: Any, answer_tokens: int | None = None
) -> torch.Tensor:
    """``[B, T, H]`` -> ``[B, H]`` (float32) over the positions ``how`` names.

    - ``last_prompt``: the last token before the answer (the one predicting its first token);
    - ``image_mean``: the mean over image-token positions;
    - ``prompt_mean``: the mean over the non-padding prompt tokens;
    - ``answer_mean``: the mean over the positions that predict the answer tokens
      (needs a batch collated ``with_target``); only the first ``answer_tokens`` of
      them when given.

    Raises:
        DataError: a row has no position of the kind (no image token, no answer).
    """
    mask = position_mask(batch, how, adapter, answer_tokens)
    # float32 before pooling: steering vectors are means of float32 activations
    z, valid = pool(hidden.float(), mask, "last" if how == "last_prompt" else "mean")
    if not bool(valid.all()):
        row = int((~valid).nonzero()[0])
        raise DataError(
            f"row {row} of the batch has no {_KINDS[how]} token to pool over (position={how!r})"
        )
    return z


__all__ = ["READ_POSITIONS", "pool_positions", "position_mask", "record_layers", "resolve_layers"]
