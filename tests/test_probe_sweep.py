"""The layer-by-layer probe sweep on a tiny LLaVA: every layer and position set, each probe,
and readings that match the single-reader diagnostic."""

from __future__ import annotations

import numpy as np
import pytest
from training_support import group_samples

from fairvlm.errors import ConfigError
from fairvlm.models import load_vlm
from fairvlm.representation import (
    LayerReader,
    ProbeSettings,
    RepresentationSettings,
    collect,
    collect_many,
    probe_sweep,
    sweep_to_dicts,
)
from fairvlm.training import AttributeSpace


def test_the_sweep_probes_every_layer_position_set_and_probe(tiny_llava):
    vlm = load_vlm(tiny_llava)
    samples = group_samples(48)
    space = AttributeSpace.from_samples(samples)
    rows = probe_sweep(vlm, samples, space, ["skin_tone"], seed=0)
    n_entries = len(vlm.decoder_layers) + 1
    keys = {(r.entry, r.tokens, r.probe) for r in rows}
    assert keys == {
        (e, t, p) for e in range(n_entries) for t in ("image", "text") for p in ("linear", "mlp")
    }
    by_key = {(r.entry, r.tokens, r.probe): r for r in rows}
    for probe in ("linear", "mlp"):
        # the projected image tokens carry the background colour that encodes the group
        assert by_key[(0, "image", probe)].balanced_accuracy >= 0.9
        # every sample has the same prompt: its embeddings cannot tell the groups apart
        assert by_key[(0, "text", probe)].balanced_accuracy == pytest.approx(0.5)
    assert all(r.chance_balanced == 0.5 and r.n_fit + r.n_score == 48 for r in rows)
    assert sweep_to_dicts(rows)[0]["attribute"] == "skin_tone"


def test_one_pass_with_many_readers_reads_what_each_reader_reads_alone(tiny_llava):
    vlm = load_vlm(tiny_llava)
    samples = group_samples(10)
    readers = [
        LayerReader(RepresentationSettings(depth, tokens, "mean", True))
        for depth in (0.2, 0.5, 1.0)
        for tokens in ("image", "text")
    ]
    for reader in readers:
        reader.attach(vlm)
    together = collect_many(vlm, readers, samples, batch_size=4)
    for reader in readers:
        reader.remove()
    assert [r.entry for r in readers] == [0, 0, 1, 1, 2, 2]
    for reader, (z, valid) in zip(readers, together, strict=True):
        reader.attach(vlm)
        alone, alone_valid = collect(vlm, reader, samples, batch_size=4)
        reader.remove()
        np.testing.assert_allclose(z, alone, atol=1e-6)
        assert (valid == alone_valid).all()


def test_the_sweep_refuses_unknown_positions_and_poolings(tiny_llava):
    vlm = load_vlm(tiny_llava)
    samples = group_samples(8)
    space = AttributeSpace.from_samples(samples)
    with pytest.raises(ConfigError, match="tokens"):
        probe_sweep(vlm, samples, space, ["skin_tone"], tokens=("pixels",))
    with pytest.raises(ConfigError, match="pooling"):
        probe_sweep(vlm, samples, space, ["skin_tone"], pooling="max")
    with pytest.raises(ConfigError, match="kind"):
        probe_sweep(vlm, samples, space, ["skin_tone"], probes=[ProbeSettings(kind="rbf")])
