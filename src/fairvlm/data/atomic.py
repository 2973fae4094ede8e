"""Atomic output folders: build in a hidden temporary folder, then rename into place.

An interrupted write leaves only the hidden temporary folder (removed on any Python
exception), never a half-written output that looks complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fairvlm.errors import DataError


def check_replaceable(out: Path, marker: str) -> None:
    """Raise unless ``out`` is absent, an empty folder, or a folder holding ``marker``."""
    if not out.exists():
        return
    if out.is_dir() and ((out / marker).is_file() or not any(out.iterdir())):
        return
    raise DataError(
        f"out={str(out)!r} exists and is not a fairvlm output (no {marker}); "
        "choose another output path or remove it first"
    )


@contextmanager
def atomic_dir(out: str | Path, marker: str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``out`` when the block succeeds.

    ``marker`` is the file that identifies a complete output of this kind: an existing
    ``out`` is replaced only when it holds it (or is empty), so a user's unrelated folder
    is never deleted. The caller writes ``marker`` last.
    """
    out = Path(out)
    check_replaceable(out, marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        check_replaceable(out, marker)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
