"""Attribute heads on z: CLUB for categorical attributes (Cheng et al. 2020), as
FairLLaVA uses it, and the heads' cross-entropy and accuracy (the adversary's too).

With a variational head ``q(a | z)`` giving ``logits_i = head(z_i)`` and
``L[i, j] = log q(a_j | z_i) = -CE(logits_i, a_j)``::

    MI_hat = mean_i L[i, i]  -  sum_{i != j} L[i, j] / (B (B - 1))

Samples whose attribute is unknown (index ``-1``) are left out before the matrix is
built (B counts known samples only). Written by hand: no library implements CLUB.
With ``groups`` (label-conditional CLUB, an estimate of I(z; a | y)), the negative pairs
are restricted to samples of the same group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def club_matrix(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``L[i, j] = log q(a_j | z_i)``: ``log_softmax(logits)[i, targets[j]]`` (``[B, B]``)."""
    return F.log_softmax(logits.float(), dim=-1)[:, targets]


def club_mi(
    logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """The CLUB estimate of ``I(z; a)`` from head logits ``[B, K]`` and targets ``[B]``.

    Unknown targets (``< 0``) are masked out. With fewer than two known samples (or no
    same-group negative pair when ``groups`` is given) there is nothing to estimate and
    the result is ``0 * logits.sum()`` (zero, still attached to the graph).
    """
    known = targets >= 0
    if groups is not None:
        known = known & (groups >= 0)
    zero = logits.sum() * 0.0
    if int(known.sum()) < 2:
        return zero
    logits, targets = logits[known], targets[known]
    mat = club_matrix(logits, targets)
    n = mat.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=mat.device)
    if groups is not None:
        g = groups[known]
        off = off & (g[:, None] == g[None, :])
    n_off = int(off.sum())
    if n_off == 0:
        return zero
    positive = mat.diagonal().mean()
    negative = mat[off].sum() / n_off  # = sum_{i != j} L[i, j] / (B (B - 1)) without groups
    return positive - negative


def head_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the head over samples with a known target (0 if none)."""
    known = targets >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known].float(), targets[known])


def head_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Accuracy of the head's argmax over samples with a known target (nan if none)."""
    known = targets >= 0
    if not bool(known.any()):
        return float("nan")
    return float((logits[known].argmax(dim=-1) == targets[known]).float().mean())


class CLUBHead(nn.Module):
    """``q_phi(a | z)``: a Linear (``width=0``, the published head) or a one-hidden-layer MLP.

    ``scale`` multiplies the logits (1 = published); ``n_labels > 1`` makes the head
    label-conditional: it outputs ``K`` logits per label and :meth:`forward` picks the
    sample's label row.
    """

    def __init__(
        self, hidden: int, n_values: int, width: int = 0, scale: float = 1.0, n_labels: int = 1
    ) -> None:
        super().__init__()
        self.n_values, self.n_labels, self.scale = n_values, max(1, n_labels), float(scale)
        out = n_values * self.n_labels
        if width > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, out)
            )
        else:
            self.net = nn.Linear(hidden, out)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, K]`` logits of ``z [B, H]`` (of each sample's label row when conditional)."""
        logits = self.net(z) * self.scale
        if self.n_labels == 1:
            return logits
        logits = logits.view(z.shape[0], self.n_labels, self.n_values)
        rows = (
            labels.clamp(min=0) if labels is not None else torch.zeros(z.shape[0], dtype=torch.long)
        )
        return logits[torch.arange(z.shape[0], device=z.device), rows.to(z.device)]


__all__ = ["CLUBHead", "club_matrix", "club_mi", "head_accuracy", "head_ce"]
