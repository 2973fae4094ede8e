"""The layer-by-layer probe sweep: at which layer and positions the group is decodable.

The post-training diagnostic probes one layer, the one a method regularises. A fresh
probe at chance there does not say the group is gone: the shortcut may run through other
layers or positions, or stay decodable non-linearly. The sweep fits every probe of
``probes`` (default: the linear one and the MLP) at every ``hidden_states`` entry (0 = the
embeddings, k = the output of decoder layer k - 1) and for each position set of
``tokens``, all read in one forward pass per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from fairvlm.data.schema import Sample
from fairvlm.representation.probe import ProbeSettings, collect_many, fit_probe
from fairvlm.representation.reader import LayerReader
from fairvlm.representation.settings import RepresentationSettings, check_pooling, check_tokens

#: The probes a sweep fits unless told otherwise: a hyperplane, and one that needs none.
DEFAULT_PROBES = (ProbeSettings(kind="linear"), ProbeSettings(kind="mlp"))


@dataclass
class SweepRow:
    """One probe at one layer and position set, for one attribute."""

    entry: int
    tokens: str
    probe: str
    attribute: str
    balanced_accuracy: float
    accuracy: float
    chance_balanced: float
    n_fit: int
    n_score: int


def _entry_depth(entry: int, num_layers: int) -> float:
    """A relative depth that :func:`~fairvlm.representation.layer_entry` maps to ``entry``."""
    return (entry + 0.5) / (num_layers + 1)


def probe_sweep(
    adapter: Any,
    samples: Sequence[Sample],
    space: Any,
    attributes: Sequence[str],
    *,
    tokens: Sequence[str] = ("image", "text"),
    probes: Sequence[ProbeSettings] = DEFAULT_PROBES,
    pooling: str = "mean",
    seed: int = 0,
    batch_size: int = 16,
) -> list[SweepRow]:
    """Fresh probes of ``attributes`` at every layer of ``adapter`` and every ``tokens`` mode.

    ``space`` holds the attribute vocabularies (a ``fairvlm.training.AttributeSpace``).
    Each probe is fitted on a stratified half of ``samples`` and scored on the other half
    (:func:`~fairvlm.representation.fit_probe`); z is pooled with ``pooling`` and
    L2-normalised, as the regularised z is. Attributes with fewer than 2 known values
    among the samples are skipped.
    """
    for mode in tokens:
        check_tokens(mode)
    check_pooling(pooling)
    num_layers = len(adapter.decoder_layers)
    entries = [entry for entry in range(num_layers + 1) for _ in tokens]
    readers = [
        LayerReader(RepresentationSettings(_entry_depth(entry, num_layers), mode, pooling, True))
        for entry in range(num_layers + 1)
        for mode in tokens
    ]
    for reader in readers:
        reader.attach(adapter)
    try:
        features = collect_many(adapter, readers, list(samples), batch_size, seed)
    finally:
        for reader in readers:
            reader.remove()
    narrowed = replace(space, values={a: space.values[a] for a in attributes}, labels=[])
    attrs, _ = narrowed.encode(list(samples))
    rows = []
    for entry, reader, (z, valid) in zip(entries, readers, features, strict=True):
        for j, name in enumerate(attributes):
            keep = valid & (attrs[:, j] >= 0)
            y = attrs[keep, j]
            if len(np.unique(y)) < 2 or keep.sum() < 4:
                continue
            for settings in probes:
                acc, bal, _, n_fit, n_score = fit_probe(z[keep], y, seed, settings)
                rows.append(
                    SweepRow(
                        entry,
                        reader.settings.tokens,
                        settings.kind,
                        name,
                        bal,
                        acc,
                        1.0 / len(space.values[name]),
                        n_fit,
                        n_score,
                    )  # fmt: skip
                )
    return rows


def sweep_to_dicts(rows: Sequence[SweepRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts (what a ``probe_sweep.json`` holds)."""
    return [asdict(r) for r in rows]


__all__ = ["DEFAULT_PROBES", "SweepRow", "probe_sweep", "sweep_to_dicts"]
