"""The embedded benchmarks: procedurally generated, seeded datasets whose bias is known by
construction and set by knobs (``clinical``: dermoscopy-like VQA + reports; ``social``:
counterfactual person figures with concept probes).

``synthesize("clinical", OUT, ["mechanism=spurious"])`` writes a dataset folder (splits
train / finetune / test) with the generator config and a content fingerprint in its
metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairvlm.data import save_dataset
from fairvlm.data.schema import Sample
from fairvlm.synth import clinical, social
from fairvlm.synth.clinical import generate_clinical
from fairvlm.synth.common import GENERATOR_VERSION, SPLITS, fingerprint
from fairvlm.synth.config import (
    BENCH_CONFIGS,
    ClinicalConfig,
    SocialConfig,
    bench_config,
    parse_overrides,
)
from fairvlm.synth.social import generate_social

#: The benchmark names.
BENCHES: tuple[str, ...] = tuple(BENCH_CONFIGS)
#: The sample tasks of every split of each benchmark (what an experiment can check before
#: the data is generated).
BENCH_TASKS: dict[str, tuple[str, ...]] = {
    "clinical": ("vqa", "report"),
    "social": ("probe", "concept", "describe"),
}


def generate(bench: str, config: Any) -> dict[str, list[Sample]]:
    """The samples of each split of ``bench`` for a validated ``config`` (nothing written)."""
    if bench == "clinical":
        return generate_clinical(config)
    return generate_social(config)


def benchmark_metadata(bench: str, config: Any, splits: Mapping[str, Sequence[Sample]]) -> dict:
    """The metadata stored with a generated dataset: generator, config, fingerprint, vocabularies."""
    if bench == "clinical":
        module = clinical
        extra: dict[str, Any] = {"group_attribute": "skin_tone"}
    else:
        module = social
        extra = {"stereotypes": module.stereotypes(config.concepts)}
    return {
        "generator": {
            "bench": bench,
            "version": GENERATOR_VERSION,
            "config": dataclasses.asdict(config),
        },
        "fingerprint": fingerprint(splits, config),
        "attributes": module.vocabularies(config),
        **extra,
    }


def synthesize(
    bench: str,
    out: str | Path,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> Path:
    """Generate benchmark ``bench`` into the dataset folder ``out`` (replaced atomically).

    Args:
        bench: ``clinical`` or ``social``.
        out: the dataset folder (``fairvlm.data.load_dataset`` reads it).
        overrides: ``key=value`` strings (``--set``) or a mapping of config fields.

    Returns:
        ``out`` as a Path.

    Raises:
        ConfigError: an unknown benchmark, key or invalid value (before any work).
    """
    config = bench_config(bench, overrides)
    splits = generate(bench, config)
    metadata = benchmark_metadata(bench, config, splits)
    attributes = sorted(metadata["attributes"])
    return save_dataset(
        {s: splits[s] for s in SPLITS}, out, metadata=metadata, attributes=attributes
    )


__all__ = [
    "BENCHES",
    "BENCH_TASKS",
    "BENCH_CONFIGS",
    "ClinicalConfig",
    "SocialConfig",
    "bench_config",
    "benchmark_metadata",
    "generate",
    "parse_overrides",
    "synthesize",
]
