"""Content fingerprints: what identifies a run's inputs, whatever their paths.

A dataset regenerated at the same path, or an adapter retrained there, must not pass
for the old one when a run resumes. A fingerprint is a SHA-256 over the content:

- samples: every field (id, task, prompt, target, options, attributes, concept, ...)
  and the image bytes;
- a model or adapter folder: every weight and config file. Files up to
  :data:`FULL_HASH_BYTES` are hashed whole; larger ones (a 7B model's shards) by their
  size, their safetensors header (names, dtypes, shapes, offsets) and a sample of
  :data:`SAMPLED_BLOCKS` blocks spread over the data, so a check costs milliseconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fairvlm.data.storage import encode_image

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


def folder_fingerprint(folder: str | Path, patterns: Iterable[str] = _MODEL_FILES) -> str | None:
    """The fingerprint of the files of ``folder`` that match ``patterns`` (default: a model
    or adapter's weights and configs; ``("**/*",)``: every file, e.g. a dataset's); hidden
    files (locks, temporaries) never count. ``None`` for a hub id or no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    files = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
    for path in sorted(files):
        name = path.relative_to(folder).as_posix()
        if not any(part.startswith(".") for part in Path(name).parts):
            h.update(f"{name}\0{file_digest(path)}\0".encode())
    return h.hexdigest()


def hash_samples(h: Any, samples: Iterable[Any], *, pixels: bool = False) -> None:
    """Feed each sample into ``h``: every field but the image, then the image, as its
    decoded pixels (``pixels``: equal digests mean identical images, however encoded)
    or, cheaper, its stored bytes."""
    for s in samples:
        record = {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name != "image"}
        h.update(json.dumps(record, sort_keys=True, default=str).encode())
        if s.image is None:
            continue
        if pixels:
            h.update(s.load_image().tobytes())
        else:
            h.update(hashlib.sha256(encode_image(s.image, s.id)["bytes"]).digest())


def samples_fingerprint(samples: Iterable[Any]) -> str:
    """The fingerprint of samples, in order: their fields and stored image bytes."""
    h = hashlib.sha256()
    hash_samples(h, samples)
    return h.hexdigest()


__all__ = ["file_digest", "folder_fingerprint", "hash_samples", "samples_fingerprint"]
