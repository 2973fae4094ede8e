"""SFLoss: the skew-rescaled autoregressive loss of ASD (METHODS.md section 2).

``E_fair = (1/N) sum_i exp(-Skew(P_i)) * L_AR(y_i | x_i)``: the shared trainer already
computes the mean of per-sample weights times each sample's answer loss, so ASD only
supplies the weights. Over-represented (attribute, concept) pairs (Skew > 0) get a
weight < 1, under-represented ones (Skew < 0) a weight > 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sfloss_weights(
    skews: Sequence[float] | np.ndarray,
    clip: Sequence[float] | None = None,
    normalize_over: np.ndarray | None = None,
) -> np.ndarray:
    """``exp(-Skew(P_i))`` per sample, optionally clipped to ``clip = [low, high]``.

    The paper does not clip (``clip=None``, the default); a clip bounds the weight of a
    sample whose skew is extreme on a small pool. ``normalize_over`` (the indices of
    the samples an epoch trains on, repeats included) divides the weights by their mean
    over those samples, so the epoch's average weight is 1 (not published; off).
    """
    weights = np.exp(-np.asarray(skews, dtype=np.float64))
    if clip is not None:
        weights = np.clip(weights, float(clip[0]), float(clip[1]))
    if normalize_over is not None:
        weights = weights / weights[np.asarray(normalize_over, dtype=np.int64)].mean()
    return weights.astype(np.float32)


__all__ = ["sfloss_weights"]
