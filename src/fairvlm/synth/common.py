"""What both generators share: seeded random streams, exact allocation of counts,
samples with PNG images, and the content fingerprint of a generated dataset."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairvlm.data import open_image_bytes
from fairvlm.data.schema import Sample
from fairvlm.fingerprint import hash_samples

#: The splits every benchmark writes, in order.
SPLITS = ("train", "finetune", "test")
#: Bumped when a generator's output changes for the same config (part of the fingerprint).
GENERATOR_VERSION = 1


def split_rng(seed: int, bench: str, split: str) -> np.random.Generator:
    """An independent stream per (seed, bench, split): resizing one split leaves the others."""
    tag = int.from_bytes(hashlib.sha256(f"{bench}/{split}".encode()).digest()[:4], "little")
    return np.random.default_rng([seed, tag])


def allocate(n: int, probs: Sequence[float]) -> list[int]:
    """Split ``n`` into counts proportional to ``probs`` (largest remainder, exact total).

    Exact counts instead of sampling keep the bias knobs' effect free of sampling noise.
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    raw = n * p
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return counts.tolist()


def make_sample(image: Any, **fields: Any) -> Sample:
    """A Sample whose image is a lazily opened PNG that storage keeps byte for byte."""
    return Sample(image=open_image_bytes(image), **fields)


def fingerprint(splits: Mapping[str, Sequence[Sample]], config: Any) -> str:
    """SHA-256 over the config, the generator version and every sample (image bytes too).

    Equal fingerprints mean byte-identical datasets: this is how determinism is checked.
    """
    h = hashlib.sha256()
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    h.update(json.dumps({"config": cfg, "version": GENERATOR_VERSION}, sort_keys=True).encode())
    for split, samples in splits.items():
        h.update(split.encode())
        hash_samples(h, samples, pixels=True)
    return h.hexdigest()


__all__ = ["GENERATOR_VERSION", "SPLITS", "allocate", "fingerprint", "make_sample", "split_rng"]
