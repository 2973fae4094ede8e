"""Applying a steering vector: forward hooks on decoder layers that edit the residual stream.

Hand-written on plain ``torch`` hooks: the steering libraries take text-only models or
clear every hook of a module on exit, which would also remove PEFT's, Accelerate's or the
user's own hooks.

Operators, with ``v`` the layer's direction, ``u = v / |v|`` and ``alpha`` the scale:

- ``add``:             ``h <- h + alpha * v``
- ``ablate``:          ``h <- h - alpha * (h . u) u``   (alpha = 1 removes the component)
- ``ablate_then_add``: ``h <- h - (h . u) u + alpha * v`` (the component is *set* to alpha |v|)

``add`` and ``ablate`` with ``alpha = 0`` leave the model exactly unchanged.

Positions: ``all``; ``prompt`` (the tokens of the first forward pass, the prefill); or
``generated`` (the tokens decoded after it). transformers 5 no longer passes
``cache_position`` to decoder layers, so a pre-hook on the first decoder layer rebuilds it
the way ``generate`` does: ``past_key_values.get_seq_length()`` (tokens already cached)
plus the step's length; a step starting at cache position 0 is a prefill and fixes the
prompt length. A ``cache_position`` keyword, where a model still passes one, wins.
``prompt`` / ``generated`` therefore need the KV cache (``generate``'s default): without
it every step re-reads the whole sequence and counts as a prefill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from fairvlm.mitigation.steering.vector import check_operator, check_positions, check_scale

if TYPE_CHECKING:
    from torch.utils.hooks import RemovableHandle

    from fairvlm.mitigation.steering.vector import SteeringVector

Edit = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass
class StepTracker:
    """Which tokens of the current forward step are prompt tokens.

    ``kind`` is ``prompt``, ``generated`` or ``mixed`` (a step spanning both, e.g. a
    chunked prefill); for ``mixed``, ``prompt_mask`` is ``[T]`` float, 1 at prompt tokens.
    """

    prompt_len: int = 0
    kind: str = "prompt"
    prompt_mask: torch.Tensor | None = None

    def pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        length = int(hidden.shape[1])
        cache_position = kwargs.get("cache_position")
        if cache_position is not None:
            start = int(cache_position.reshape(-1)[0])
        else:
            past = kwargs.get("past_key_values")
            start = int(past.get_seq_length()) if past is not None else 0
        if start == 0:
            self.prompt_len = length
        end = start + length
        self.prompt_mask = None
        if end <= self.prompt_len:
            self.kind = "prompt"
        elif start >= self.prompt_len:
            self.kind = "generated"
        else:
            self.kind = "mixed"
            pos = torch.arange(start, end, device=hidden.device)
            self.prompt_mask = (pos < self.prompt_len).to(hidden.dtype)


@dataclass
class SteeringHandle:
    """What ``with vector.apply(...) as handle`` gives: the installed hooks (for checks)."""

    layers: list[int]
    scale: float
    operator: str
    positions: str
    handles: list[RemovableHandle] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """True while the hooks are installed."""
        return bool(self.handles)


def _make_edit(operator: str, vec: torch.Tensor, scale: float) -> Edit:
    """The residual-stream edit of one layer; tensors precomputed once, on device."""
    unit = vec / vec.norm().clamp_min(torch.finfo(vec.dtype).tiny)
    shift = scale * vec

    if operator == "add":

        def edit(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            return h + (shift if mask is None else mask[:, None] * shift)

    elif operator == "ablate":

        def edit(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            coef = (h @ unit) * scale
            if mask is not None:
                coef = coef * mask
            return h - coef.unsqueeze(-1) * unit

    else:  # ablate_then_add

        def edit(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            delta = shift - (h @ unit).unsqueeze(-1) * unit
            if mask is not None:
                delta = delta * mask[:, None]
            return h + delta

    return edit


def _make_hook(edit: Edit, tracker: StepTracker | None, positions: str) -> Callable:
    def hook(module: Any, args: tuple, output: Any) -> Any:
        mask = None
        if tracker is not None:
            kind = tracker.kind
            if kind == "mixed":
                mask = tracker.prompt_mask if positions == "prompt" else 1 - tracker.prompt_mask
            elif kind != positions:
                return None  # not a step to steer: output unchanged
        if isinstance(output, tuple):  # older layers return (hidden, ...)
            return (edit(output[0], mask), *output[1:])
        return edit(output, mask)

    return hook


def _param_device_dtype(module: torch.nn.Module, adapter: Any) -> tuple[torch.device, torch.dtype]:
    for p in module.parameters():
        return p.device, (p.dtype if p.is_floating_point() else adapter.dtype)
    return adapter.device, adapter.dtype


@contextmanager
def steer(
    adapter: Any,
    vector: SteeringVector,
    *,
    scale: float = 1.0,
    operator: str = "add",
    positions: str = "all",
    layers: Sequence[int] | None = None,
) -> Iterator[SteeringHandle]:
    """Steer ``adapter``'s decoder with ``vector`` inside the ``with`` block.

    Every check (operator, positions, scale, the vector fitting the model, the layers)
    runs before any hook is installed. Only the hooks installed here are removed on
    exit, also when the block raises. Works on a PEFT-wrapped model (the hooks sit on
    the decoder blocks, around the LoRA layers inside them) and with left-padded batches
    (the edit is per token; padded positions are masked out of attention anyway).

    Args:
        adapter: a :class:`fairvlm.models.VLMAdapter` (anything with ``decoder_layers``,
            ``hidden_size``, ``num_layers``, ``device`` and ``dtype``).
        vector: the steering vector.
        scale: alpha of the operator (see the module docstring).
        operator: ``add``, ``ablate`` or ``ablate_then_add``.
        positions: ``all``, ``prompt`` or ``generated``.
        layers: apply only these of the vector's layers (``None``: all of them).

    Raises:
        ConfigError: a bad operator, positions, scale or layer selection.
        ModelError: the vector does not fit the model (hidden size, layer count, layer range).
    """
    check_operator(operator)
    check_positions(positions)
    scale = check_scale(scale)
    chosen = vector.select(layers)
    vector.check_fits(adapter, chosen)
    blocks = adapter.decoder_layers
    edits = {}
    for layer in chosen:
        device, dtype = _param_device_dtype(blocks[layer], adapter)
        vec = vector.vectors[layer].to(device=device, dtype=dtype)
        edits[layer] = _make_edit(operator, vec, scale)
    tracker = StepTracker() if positions != "all" else None
    handle = SteeringHandle(chosen, scale, operator, positions)
    try:
        if tracker is not None:
            handle.handles.append(
                blocks[0].register_forward_pre_hook(tracker.pre_hook, with_kwargs=True)
            )
        for layer in chosen:
            hook = _make_hook(edits[layer], tracker, positions)
            handle.handles.append(blocks[layer].register_forward_hook(hook))
        yield handle
    finally:
        for h in handle.handles:
            h.remove()
        handle.handles.clear()


__all__ = ["SteeringHandle", "StepTracker", "steer"]
