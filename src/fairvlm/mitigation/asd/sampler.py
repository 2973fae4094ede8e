"""Bias-aware resampling of ASD (METHODS.md section 2), rebuilt before every epoch.

Walking the training samples in dataset order with their ``Skew(P_i)``:

- ``Skew > 0``: the sample is dropped with probability ``Skew / (Skew + tau1)``;
- ``Skew <= 0``: it is kept and ``|Skew|`` is added to an accumulator; when the
  accumulator exceeds ``tau2`` one extra copy of the sample is inserted and the
  accumulator is reduced by ``tau2`` (``accumulator="subtract"``, our choice: the rule
  is unpublished) or set to 0 (``"reset"``).

The result is a multiset of dataset indices, not a copy of the dataset. The
:class:`BiasAwareSampler` draws one epoch from it: a seeded shuffle, cycled or cut to
the dataset's length. The epoch keeps the dataset's length because the Trainer fixes
the number of steps per epoch from the sampler's length before training; so every
variant trains for the same number of steps, and re-estimation happens every
``len(dataset)`` samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from fairvlm.errors import bad_value


def drop_probability(skews: Sequence[float] | np.ndarray, tau1: float = 1.0) -> np.ndarray:
    """``Skew / (Skew + tau1)`` where ``Skew > 0``, else 0."""
    s = np.asarray(skews, dtype=np.float64)
    return np.where(s > 0, s / (np.maximum(s, 0.0) + tau1), 0.0)


@dataclass
class Resampling:
    """One epoch's resampling decision.

    Attributes:
        indices: the kept dataset indices in dataset order, each inserted copy right
            after its original.
        dropped: ``[N]`` True where the sample was dropped.
        copies: ``[N]`` extra copies inserted per sample (0 or 1).
    """

    indices: np.ndarray
    dropped: np.ndarray
    copies: np.ndarray

    def stats(self) -> dict[str, float]:
        """Counts for the training log."""
        return {
            "asd/n_dropped": float(self.dropped.sum()),
            "asd/n_copies": float(self.copies.sum()),
            "asd/n_resampled": float(len(self.indices)),
        }


def resample(
    skews: Sequence[float] | np.ndarray,
    tau1: float = 1.0,
    tau2: float = 1.0,
    rng: np.random.Generator | int | None = None,
    accumulator: str = "subtract",
) -> Resampling:
    """Drop over-represented samples and add copies of under-represented ones (see module doc).

    One uniform draw per sample (in dataset order) decides the drops, so a seed fixes
    the outcome; the accumulator pass is deterministic.
    """
    if accumulator not in ("subtract", "reset"):
        raise bad_value("accumulator", accumulator, "use 'subtract' or 'reset'")
    s = np.asarray(skews, dtype=np.float64)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    dropped = rng.random(len(s)) < drop_probability(s, tau1)
    copies = np.zeros(len(s), dtype=np.int64)
    acc = 0.0
    for i in np.flatnonzero(s <= 0):
        acc += -s[i]
        if acc > tau2:
            copies[i] = 1
            acc = acc - tau2 if accumulator == "subtract" else 0.0
    kept = np.flatnonzero(~dropped)
    indices = np.repeat(kept, 1 + copies[kept])
    return Resampling(indices=indices, dropped=dropped, copies=copies)


def epoch_order(multiset: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices: shuffled passes over ``multiset``, concatenated and cut to ``n``."""
    multiset = np.asarray(multiset, dtype=np.int64)
    if len(multiset) == 0:
        return rng.permutation(n)
    passes = [rng.permutation(multiset) for _ in range(math.ceil(n / len(multiset)))]
    return np.concatenate(passes)[:n]


class BiasAwareSampler(Sampler[int]):
    """A seeded sampler whose epoch is drawn from a multiset rebuilt before each epoch.

    Args:
        n: the dataset length (also the epoch length).
        indices_for_epoch: ``epoch -> multiset of indices`` (e.g. ``Resampling.indices``),
            or ``None`` for a plain permutation of the dataset; called when the epoch's
            iteration starts, after the Trainer's ``on_epoch_begin`` callbacks.
        seed: seeds the shuffles (with the epoch).
        state: what the multiset comes from (an ``ASDState``), kept so that a callback
            holding only the DataLoader can find it.
    """

    def __init__(
        self,
        n: int,
        indices_for_epoch: Callable[[int], np.ndarray | None] | None = None,
        seed: int = 0,
        state: Any = None,
    ) -> None:
        if n < 1:
            raise bad_value("n", n, "the dataset must hold at least one sample")
        self.n = n
        self.indices_for_epoch = indices_for_epoch
        self.seed = seed
        self.state = state
        self.epoch = 0
        self.last_order: np.ndarray | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (through Accelerate) before each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1  # counts epochs when nobody calls set_epoch
        multiset = self.indices_for_epoch(epoch) if self.indices_for_epoch else None
        if multiset is None:
            multiset = np.arange(self.n)
        elif len(multiset) == 0:
            warnings.warn(
                f"ASD resampling dropped every sample in epoch {epoch}: this epoch uses the "
                "whole dataset (raise tau1 to drop less)",
                stacklevel=2,
            )
            multiset = np.arange(self.n)
        order = epoch_order(multiset, self.n, np.random.default_rng([self.seed, epoch, 1]))
        self.last_order = order
        return iter(order.tolist())


__all__ = ["BiasAwareSampler", "Resampling", "drop_probability", "epoch_order", "resample"]
