"""Group reweighting and group-balanced resampling (the FairLLaVA paper's baselines).

A group is the tuple of a sample's values of the chosen attributes (their intersection),
optionally crossed with the sample's target (``by_label``: group x label cells, which
balances the spurious group-label correlation as well as group sizes). Samples with an
unknown value are in no group: weight 1, and the mean sampling probability.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from fairvlm.config import Config
from fairvlm.errors import bad_value


@dataclass
class GroupConfig(Config):
    """Options of ``reweight`` and ``resample``.

    Attributes:
        attributes: the attributes whose (joint) values define the groups.
        by_label: cross the groups with the target (group x label cells).
        max_weight: clip weights at this multiple of the mean (``None``: no clipping).
    """

    attributes: list[str] = field(default_factory=list)
    by_label: bool = False
    max_weight: float | None = None

    def validate(self) -> None:
        if not self.attributes:
            raise bad_value(
                "attributes",
                self.attributes,
                "name the group attribute(s), e.g. attributes=skin_tone",
            )
        if self.max_weight is not None and not self.max_weight >= 1.0:
            raise bad_value(
                "max_weight",
                self.max_weight,
                "use a clip >= 1 (a multiple of the mean weight) or null",
            )


def group_keys(
    samples: Sequence[Any], attributes: Sequence[str], by_label: bool = False
) -> list[tuple | None]:
    """Each sample's group (``None`` when one of its attributes is unknown)."""
    keys: list[tuple | None] = []
    for s in samples:
        values = tuple(s.attributes.get(a) for a in attributes)
        if any(v is None for v in values):
            keys.append(None)
        else:
            keys.append((*values, s.target) if by_label else values)
    return keys


def group_weights(
    samples: Sequence[Any],
    attributes: Sequence[str],
    by_label: bool = False,
    max_weight: float | None = None,
) -> np.ndarray:
    """Inverse group frequency weights ``n_known / (G * n_g)`` (mean 1 over known samples).

    Every group then carries the same total weight. Unknown-group samples get 1.
    """
    keys = group_keys(samples, attributes, by_label)
    counts = Counter(k for k in keys if k is not None)
    n_known, n_groups = sum(counts.values()), len(counts)
    weights = np.ones(len(samples), dtype=np.float64)
    if n_groups == 0:
        return weights.astype(np.float32)
    known = np.array([k is not None for k in keys])
    weights[known] = [n_known / (n_groups * counts[k]) for k in keys if k is not None]
    if max_weight is not None:
        weights[known] = np.minimum(weights[known], max_weight)
        weights[known] *= known.sum() / weights[known].sum()  # back to mean 1
    return weights.astype(np.float32)


class GroupBalancedSampler(Sampler[int]):
    """Draws ``num_samples`` indices with replacement, each group equally likely.

    Deterministic given ``seed`` and the epoch (``set_epoch``), so that every process of
    a distributed run draws the same sequence (Accelerate shards it) and a resumed run
    draws what the interrupted one would have.
    """

    def __init__(
        self, probabilities: np.ndarray, seed: int = 0, num_samples: int | None = None
    ) -> None:
        p = np.asarray(probabilities, dtype=np.float64)
        self.probabilities = torch.as_tensor(p / p.sum())
        self.seed, self.epoch = int(seed), 0
        self.num_samples = int(num_samples or len(p))

    @classmethod
    def for_groups(cls, keys: Sequence[tuple | None], seed: int = 0) -> GroupBalancedSampler:
        counts = Counter(k for k in keys if k is not None)
        n_groups = max(len(counts), 1)
        p = np.array([1.0 / (n_groups * counts[k]) if k is not None else np.nan for k in keys])
        known = ~np.isnan(p)
        p[~known] = p[known].mean() if known.any() else 1.0
        return cls(p, seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.multinomial(
            self.probabilities, self.num_samples, replacement=True, generator=gen
        ).tolist()
