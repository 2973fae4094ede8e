"""Applying a steering vector: forward hooks on decoder layers that edit the residual stream.

Hand-written on plain ``torch`` hooks: the steering libraries take text-only models or
clear every hook of a module on exit, which would also remove PEFT's, Accelerate's or the
user's own hooks.

Operators, with ``v`` the layer's direction, ``u = v / |v|`` and ``alpha`` the scale:

- ``add``:             ``h <- h + alpha * v``
- ``ablate``:          ``h <- h - alpha * (h . u) u``   (alpha = 1 removes the component)
- ``ablate_then_add``: ``h <- h - (h . u) u + alpha * v`` (the component is *set* to alpha |v|)

``add`` and ``ablate`` with ``alpha = 0`` leave the model exactly unchanged.

Positions: ``all``; ``prompt`` (the tokens of the input fairvlm built: the prefill); or
``generated`` (the tokens decoded after it). Where the prompt ends is taken from
fairvlm's own side, never from what transformers passes to a decoder layer (a keyword
that was renamed once already: ``past_key_values`` became ``cache`` in 5.24):
:class:`fairvlm.models.VLMAdapter` announces each of its model calls (``generate``,
``score_options``, ``forward_batch``) with the length of the input it built, and each
steered layer counts the positions its own output has covered since then. With the KV
cache (``generate``'s default) the first steps cover the prompt and each later step the
new tokens. Anything else, a call the adapter did not announce, a step that re-reads
the sequence (``use_cache=False``) or a first step longer than the input, raises a
:class:`~fairvlm.errors.ConfigError` naming ``positions``: it never steers other tokens
silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from fairvlm.errors import ConfigError, bad_value

if TYPE_CHECKING:
    from torch.utils.hooks import RemovableHandle

    from fairvlm.mitigation.steering.vector import SteeringVector

#: How the vector edits the residual stream (see the module doc).
OPERATORS = ("add", "ablate", "ablate_then_add")
#: Which token positions are edited.
POSITIONS = ("all", "prompt", "generated")


def check_operator(operator: str) -> str:
    if operator not in OPERATORS:
        raise bad_value("operator", operator, f"use one of {list(OPERATORS)}")
    return operator


def check_positions(positions: str) -> str:
    if positions not in POSITIONS:
        raise bad_value("positions", positions, f"use one of {list(POSITIONS)}")
    return positions


def check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise bad_value("scale", scale, "use a finite number, e.g. 1.0 (0 = no steering)")
    return float(scale)


Edit = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


_FIX = "call the model through VLMAdapter.generate / score_options / forward_batch, or use positions='all'"


@dataclass
class StepTracker:
    """Which tokens of a layer's current step belong to the prompt.

    The adapter calls :meth:`begin` with the length of the input it built before each
    model call and :meth:`end` after it (it is one of ``VLMAdapter.call_listeners``).
    Each steered layer counts the positions it has output since :meth:`begin`, so the
    tracker needs no keyword of the decoder layer's signature.
    """

    positions: str
    prompt_len: int | None = None
    seen: dict[int, int] = field(default_factory=dict)
    answer_len: int = 0
    start: int = 0

    def begin(self, input_length: int, answer_length: int = 0, start: int = 0) -> None:
        """A call whose prompt is ``input_length`` positions, followed by up to
        ``answer_length`` scored answer tokens (generated positions), and whose input
        starts at position ``start`` (after a cached prompt)."""
        self.prompt_len = int(input_length)
        self.answer_len = int(answer_length)
        self.start = int(start)
        self.seen = {}

    def end(self) -> None:
        self.prompt_len = None

    def split(self, layer: int, hidden: torch.Tensor) -> str | torch.Tensor:
        """``"prompt"`` or ``"generated"`` for a whole step, else a ``[T]`` float mask
        that is 1 at the step's prompt tokens (a step across the prompt's end, e.g. a
        chunked prefill).

        Raises:
            ConfigError: the step's positions cannot be known (see the module docstring).
        """
        if self.prompt_len is None:
            raise ConfigError(
                f"positions={self.positions!r} needs to know where the prompt ends, but the "
                f"model was called without fairvlm announcing its input: {_FIX}"
            )
        length = int(hidden.shape[1])
        start = self.seen.get(layer, self.start)
        end = start + length
        if start == 0 and length > self.prompt_len + self.answer_len:
            raise ConfigError(
                f"positions={self.positions!r}: decoder layer {layer} saw {length} tokens in the "
                f"first step of a call whose input has {self.prompt_len + self.answer_len}; the model changes the "
                f"sequence length, so its prompt positions are unknown: {_FIX}"
            )
        if start >= self.prompt_len and length > 1 and end > self.prompt_len + self.answer_len:
            raise ConfigError(
                f"positions={self.positions!r}: decoder layer {layer} saw a step of {length} "
                f"tokens after the {self.prompt_len}-token prompt, so the model re-reads the "
                "sequence (use_cache=False?) and generated positions are unknown: generate "
                "with the KV cache (the default), or use positions='all'"
            )
        self.seen[layer] = end
        if end <= self.prompt_len:
            return "prompt"
        if start >= self.prompt_len:
            return "generated"
        pos = torch.arange(start, end, device=hidden.device)
        return (pos < self.prompt_len).to(hidden.dtype)


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


def _make_hook(edit: Edit, tracker: StepTracker | None, layer: int) -> Callable:
    def hook(module: Any, args: tuple, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output  # older layers: (hidden, ...)
        mask = None
        if tracker is not None:
            part = tracker.split(layer, hidden)
            if isinstance(part, torch.Tensor):
                mask = part if tracker.positions == "prompt" else 1 - part
            elif part != tracker.positions:
                return None  # not a step to steer: output unchanged
        if isinstance(output, tuple):
            return (edit(hidden, mask), *output[1:])
        return edit(hidden, mask)

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
        positions: ``all``, ``prompt`` or ``generated`` (the last two on a
            :class:`~fairvlm.models.VLMAdapter`, through its own model calls).
        layers: apply only these of the vector's layers (``None``: all of them).

    Raises:
        ConfigError: a bad operator, positions, scale or layer selection; inside the
            block, a model call whose prompt positions cannot be known (``positions``
            other than ``all``).
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
    tracker = None
    if positions != "all":
        listeners = getattr(adapter, "call_listeners", None)
        if listeners is None:
            raise bad_value(
                "positions",
                positions,
                f"{type(adapter).__name__} does not announce its model calls, so prompt and "
                "generated tokens cannot be told apart: steer a VLMAdapter, or use positions='all'",
            )
        tracker = StepTracker(positions)
    handle = SteeringHandle(chosen, scale, operator, positions)
    try:
        if tracker is not None:
            listeners.append(tracker)
        for layer in chosen:
            hook = _make_hook(edits[layer], tracker, layer)
            handle.handles.append(blocks[layer].register_forward_hook(hook))
        yield handle
    finally:
        for h in handle.handles:
            h.remove()
        handle.handles.clear()
        if tracker is not None:
            listeners.remove(tracker)


__all__ = ["SteeringHandle", "StepTracker", "steer"]
