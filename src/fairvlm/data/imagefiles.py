"""Writing sample images to an image folder (for JSONL and LLaVA JSON exports).

Images keep their encoded bytes (a JPEG stays the same JPEG) and, when a reader
recorded it in ``meta["source_image"]``, their original relative path; otherwise they
are named after the sample id. The same path is never written with two different
images: a clash gets a content-hash suffix instead.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path, PurePosixPath

from PIL import Image

from fairvlm.data.schema import Sample
from fairvlm.data.storage import encode_image

#: The meta key readers use for an image's path relative to the source folder.
SOURCE_IMAGE = "source_image"
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}


def image_bytes(sample: Sample) -> tuple[bytes, str] | None:
    """The encoded bytes of a sample's image and a file extension (None: no image)."""
    encoded = encode_image(sample.image, sample.id)
    if encoded is None:
        return None
    data = encoded["bytes"]
    with Image.open(io.BytesIO(data)) as img:
        fmt = img.format or ""
    ext = _EXTENSIONS.get(fmt) or (Path(encoded.get("path") or "").suffix or ".png")
    return data, ext


def _safe_relative(path: object) -> str | None:
    if not isinstance(path, str) or not path or "\\" in path:
        return None
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or ".." in parts or not parts:
        return None
    return PurePosixPath(path).as_posix()


class ImageFolderWriter:
    """Writes images under ``root`` and returns their paths relative to it."""

    def __init__(self, root: Path, folder: str = "images") -> None:
        self.root = root
        self.folder = folder
        self.written: dict[str, str] = {}  # relative path -> sha256 of its bytes

    def write(self, sample: Sample) -> str | None:
        """Write the sample's image (once per distinct path + content); its relative path."""
        payload = image_bytes(sample)
        if payload is None:
            return None
        data, ext = payload
        digest = hashlib.sha256(data).hexdigest()
        rel = _safe_relative(sample.meta.get(SOURCE_IMAGE))
        if rel is None:
            rel = f"{self.folder}/{re.sub(r'[^A-Za-z0-9._-]', '_', sample.id)}{ext}"
        if rel in self.written and self.written[rel] != digest:
            stem = PurePosixPath(rel)
            rel = str(stem.with_name(f"{stem.stem}-{digest[:10]}{stem.suffix or ext}"))
        if rel not in self.written:
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            self.written[rel] = digest
        return rel
