"""The layer reader: one decoder layer's hidden states, read by a forward hook.

``hidden_states[int(n_entries * depth)]`` of the original, where ``hidden_states`` has
``n_layers + 1`` entries (the embeddings, then each layer's output), is read with a
forward hook on that one layer (entry ``k >= 1`` is the output of decoder layer
``k - 1``; entry 0, the embeddings, is the input of layer 0), never with
``output_hidden_states=True`` for every layer. The last entry is the raw output of the
last layer (``transformers`` applies the final norm to its last entry; the hook does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from fairvlm.representation.pooling import pool
from fairvlm.representation.settings import RepresentationSettings, check_depth, check_tokens


def layer_entry(num_layers: int, depth: float) -> int:
    """The ``hidden_states`` entry read at ``depth``: ``int((num_layers + 1) * depth)``,
    at most ``num_layers``."""
    check_depth(depth)
    return min(int((num_layers + 1) * depth), num_layers)


def token_mask(
    batch: Mapping[str, torch.Tensor], image_mask: torch.Tensor, mode: str
) -> torch.Tensor:
    """``[B, T]`` bool: the positions z may come from under token ``mode`` (padding never)."""
    check_tokens(mode)
    attention = batch.get("attention_mask")
    valid = (
        attention.bool() if attention is not None else torch.ones_like(image_mask, dtype=torch.bool)
    )
    if mode == "image":
        return image_mask & valid
    if mode == "text":
        return ~image_mask & valid
    return valid


class LayerReader:
    """Reads z, as ``settings`` define it, from one decoder layer through a forward hook.

    Use: ``attach(adapter)``, then for each batch ``prepare(batch)`` before the forward
    pass and ``read()`` after it; ``remove()`` when done.
    """

    def __init__(self, settings: RepresentationSettings) -> None:
        self.settings = settings
        self.entry: int | None = None
        self._handle: Any = None
        self._adapter: Any = None
        self._hidden: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None

    def attach(self, adapter: Any) -> None:
        """Hook the layer at ``depth`` of ``adapter.decoder_layers``."""
        self.remove()
        layers = adapter.decoder_layers
        self.entry = layer_entry(len(layers), self.settings.depth)
        self._adapter = adapter
        if self.entry == 0:
            self._handle = layers[0].register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        else:
            self._handle = layers[self.entry - 1].register_forward_hook(self._hook)

    def remove(self) -> None:
        """Take the hook off (safe to call when none is on)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._hidden = None

    @property
    def attached(self) -> bool:
        """Whether the hook is on a layer."""
        return self._handle is not None

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        self._hidden = output[0] if isinstance(output, tuple) else output

    def _pre_hook(self, module: Any, args: Any, kwargs: Any) -> None:
        self._hidden = args[0] if args else kwargs["hidden_states"]

    def prepare(self, batch: Mapping[str, torch.Tensor]) -> None:
        """Compute the token mask of the coming forward pass."""
        self._hidden = None
        image = self._adapter.image_token_mask(batch)
        self._mask = token_mask(batch, image, self.settings.tokens)

    def read(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z [B, H], valid [B])`` of the last forward pass."""
        if self._hidden is None or self._mask is None:
            raise RuntimeError(
                "LayerReader.read() before a forward pass: call prepare(), run the model, then read()"
            )
        hidden, mask = self._hidden, self._mask
        if hidden.shape[:2] != mask.shape:
            raise RuntimeError(
                f"the hooked layer saw a sequence of shape {tuple(hidden.shape[:2])} but the "
                f"batch has {tuple(mask.shape)}: this family changes the sequence inside the model"
            )
        self._hidden = None  # do not keep activations alive between steps
        return pool(hidden, mask, self.settings.pooling, self.settings.normalise)


__all__ = ["LayerReader", "layer_entry", "token_mask"]
