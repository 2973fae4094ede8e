"""Content fingerprints: what identifies a run's inputs, whatever their paths.

A dataset regenerated at the same path, or an adapter retrained there, must not pass
for the old one when a run resumes. A fingerprint is a SHA-256 over the content:

- samples: every field the audit reads (id, task, prompt, target, options, attributes,
  concept, counterfactual set) and the image bytes;
- a model or adapter folder: every weight and config file. Files up to
  :data:`FULL_HASH_BYTES` are hashed whole; larger ones (a 7B model's shards) by their
  size, their safetensors header (names, dtypes, shapes, offsets) and a sample of
  :data:`SAMPLED_BLOCKS` blocks spread over the data, so a check costs milliseconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Files up to this size are hashed whole (adapters, tiny models, configs).
FULL_HASH_BYTES = 64 * 2**20
#: Blocks of a large file that its fingerprint reads, evenly spread.
SAMPLED_BLOCKS = 16
_BLOCK = 2**20
#: What in a model or adapter folder decides its outputs.
_MODEL_FILES = ("*.safetensors", "*.json", "*.model", "*.txt", "*.jinja")


def file_digest(path: Path) -> str:
    """SHA-256 of a file, whole or (large files) by size, header and sampled blocks."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                h.update(block)
            return h.hexdigest()
        h.update(str(size).encode())
        if path.suffix == ".safetensors":
            n = int.from_bytes(fh.read(8), "little")
            h.update(fh.read(min(n, size)))
        step = max((size - _BLOCK) // max(SAMPLED_BLOCKS - 1, 1), 1)
        for i in range(SAMPLED_BLOCKS):
            fh.seek(min(i * step, size - _BLOCK))
            h.update(fh.read(_BLOCK))
    return h.hexdigest()


def folder_fingerprint(folder: str | Path) -> str | None:
    """The fingerprint of a model or adapter folder; ``None`` for a hub id or no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    files = sorted({p for pattern in _MODEL_FILES for p in folder.glob(pattern) if p.is_file()})
    for path in files:
        h.update(f"{path.name}\0{file_digest(path)}\0".encode())
    return h.hexdigest()


def samples_fingerprint(samples: Iterable[Any]) -> str:
    """The fingerprint of samples, in order: their fields and image bytes."""
    from fairvlm.data.storage import encode_image

    h = hashlib.sha256()
    for s in samples:
        fields = [
            s.id, s.task, s.prompt, s.target, s.options, s.attributes, s.concept,
            s.counterfactual_set,
        ]  # fmt: skip
        h.update(json.dumps(fields, sort_keys=True, default=str).encode())
        image = encode_image(s.image, s.id)
        h.update(hashlib.sha256(image["bytes"]).digest() if image else b"\0")
    return h.hexdigest()


__all__ = ["file_digest", "folder_fingerprint", "samples_fingerprint"]
