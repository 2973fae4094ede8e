"""Samples as a torch ``Dataset`` and the collator that carries attributes and weights.

The collator returns the model inputs of ``adapter.collate(samples, with_target=True)``
plus a few ``fairvlm_*`` tensors that the trainer pops before the forward pass:

- ``fairvlm_attributes``: ``[B, A]`` long, the value index of each attribute, ``-1`` unknown;
- ``fairvlm_labels``: ``[B]`` long, the index of the sample's target in the label
  vocabulary (``-1`` when the target is not in it);
- ``fairvlm_weights``: ``[B]`` float, the per-sample loss weight (1 by default);
- ``fairvlm_index``: ``[B]`` long, the position of each sample in the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fairvlm.data.schema import Sample
from fairvlm.errors import DataError

#: Keys the collator adds; the trainer removes them before calling the model.
EXTRA_KEYS = ("fairvlm_attributes", "fairvlm_labels", "fairvlm_weights", "fairvlm_index")
#: The index of an unknown attribute value or label.
UNKNOWN_INDEX = -1


@dataclass
class AttributeSpace:
    """The categorical vocabularies the trainer works with.

    Attributes:
        values: attribute name -> its known values, sorted (index = class id).
        labels: the target vocabulary, sorted (for label-conditional heads and
            group x label cells); empty when targets are free text.
    """

    values: dict[str, list[str]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.values)

    def size(self, name: str) -> int:
        return len(self.values[name])

    @classmethod
    def from_samples(
        cls,
        samples: Sequence[Sample],
        attributes: Sequence[str] | None = None,
        max_labels: int = 64,
    ) -> AttributeSpace:
        """Vocabularies from the (training) samples; ``None`` values are unknown, not a class.

        ``attributes`` defaults to every attribute any sample has. The label vocabulary
        holds the targets of closed questions (samples with ``options``); free-text
        targets (reports) get label ``-1``. Without closed questions, the targets become
        the vocabulary when there are at most ``max_labels`` distinct ones.
        """
        names = (
            list(attributes)
            if attributes is not None
            else sorted({k for s in samples for k in s.attributes})
        )
        values = {n: sorted({s.attributes.get(n) for s in samples} - {None}) for n in names}
        closed = sorted({s.target for s in samples if s.options and s.target is not None})
        if closed:
            return cls(values=values, labels=closed)
        targets = sorted({s.target for s in samples if s.target is not None})
        return cls(values=values, labels=targets if len(targets) <= max_labels else [])

    def encode(self, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
        """``(attributes [N, A], labels [N])`` as class indices, ``-1`` for unknown."""
        index = {n: {v: i for i, v in enumerate(vals)} for n, vals in self.values.items()}
        label_index = {v: i for i, v in enumerate(self.labels)}
        attrs = np.full((len(samples), len(self.values)), UNKNOWN_INDEX, dtype=np.int64)
        labels = np.full(len(samples), UNKNOWN_INDEX, dtype=np.int64)
        for i, s in enumerate(samples):
            for j, name in enumerate(self.values):
                attrs[i, j] = index[name].get(s.attributes.get(name), UNKNOWN_INDEX)
            labels[i] = label_index.get(s.target, UNKNOWN_INDEX)
        return attrs, labels

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "labels": self.labels}


class SampleDataset(Dataset):
    """Samples with their encoded attributes, labels and loss weights.

    Items are ``{"index", "sample", "attributes", "label", "weight"}`` dicts: the
    collator turns a list of them into a model batch.
    """

    def __init__(
        self, samples: Sequence[Sample], space: AttributeSpace, weights: np.ndarray | None = None
    ) -> None:
        if not samples:
            raise DataError("samples=[] is empty: training needs at least one sample")
        missing = [s.id for s in samples if s.target is None]
        if missing:
            raise DataError(
                f"sample {missing[0]!r} has no target ({len(missing)} in all): training needs one"
            )
        self.samples = list(samples)
        self.space = space
        self.attributes, self.labels = space.encode(self.samples)
        self.weights = np.ones(len(samples), dtype=np.float32)
        if weights is not None:
            self.set_weights(weights)

    def set_weights(self, weights: np.ndarray) -> None:
        """Per-sample loss weights (e.g. inverse group frequency), one per sample."""
        weights = np.asarray(weights, dtype=np.float32)
        if (
            weights.shape != (len(self.samples),)
            or not np.all(np.isfinite(weights))
            or (weights < 0).any()
        ):
            raise DataError(
                f"weights of shape {weights.shape} are not valid: give one finite non-negative "
                f"weight per sample ({len(self.samples)})"
            )
        self.weights = weights

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "index": i,
            "sample": self.samples[i],
            "attributes": self.attributes[i],
            "label": self.labels[i],
            "weight": self.weights[i],
        }


class TrainCollator:
    """Items of :class:`SampleDataset` -> ``adapter.collate(with_target=True)`` + ``fairvlm_*``."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        batch = dict(self.adapter.collate([it["sample"] for it in items], with_target=True))
        batch["fairvlm_attributes"] = torch.as_tensor(
            np.stack([it["attributes"] for it in items]), dtype=torch.long
        )
        batch["fairvlm_labels"] = torch.as_tensor(
            [int(it["label"]) for it in items], dtype=torch.long
        )
        batch["fairvlm_weights"] = torch.as_tensor(
            [float(it["weight"]) for it in items], dtype=torch.float32
        )
        batch["fairvlm_index"] = torch.as_tensor(
            [int(it["index"]) for it in items], dtype=torch.long
        )
        return batch
