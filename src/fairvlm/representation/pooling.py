"""Pooling a sequence of hidden states into one vector per sample, over a position mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fairvlm.representation.settings import check_pooling


def pool(
    hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalise: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z [B, H] float32, valid [B])`` from ``hidden [B, T, H]`` and ``mask [B, T]``.

    ``random``: one position per sample drawn uniformly from its mask (torch's global
    RNG, so the Trainer's seeding and checkpointed RNG state make it reproducible);
    ``mean``: the mean over the mask, in ``hidden``'s dtype; ``last``: the mask's last
    position. Samples with an empty mask are not ``valid`` (their z is meaningless).
    """
    check_pooling(pooling)
    mask = mask.to(hidden.device)
    valid = mask.any(dim=1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if pooling == "random":
        scores = torch.rand(mask.shape, device=hidden.device).masked_fill(~mask, -1.0)
        z = hidden[rows, scores.argmax(dim=1)]
    elif pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        z = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    else:
        positions = torch.arange(mask.shape[1], device=hidden.device)
        z = hidden[rows, (positions * mask).argmax(dim=1)]
    z = z.float()
    if normalise:
        z = F.normalize(z, dim=-1)
    return z, valid


__all__ = ["pool"]
