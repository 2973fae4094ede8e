"""Readers of public dataset formats: each takes the dataset's files as distributed.

Every reader is ``read(src, *, skip_bad=False, **options) -> ReadResult``.
:data:`READERS` names them lazily (``"module:function"``) so that the command line
imports only the reader it uses; :func:`get_reader` resolves a name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fairvlm.data.readers.base import ReadResult
from fairvlm.data.storage import save_dataset
from fairvlm.errors import bad_value

#: format name -> "module:function" of its reader.
READERS: dict[str, str] = {
    "jsonl": "fairvlm.data.jsonl:read_jsonl",
    "llava": "fairvlm.data.llava_json:read_llava_json",
    "ham10000": "fairvlm.data.readers.ham10000:read_ham10000",
    "fitzpatrick17k": "fairvlm.data.readers.fitzpatrick17k:read_fitzpatrick17k",
    "mimic_cxr": "fairvlm.data.readers.mimic_cxr:read_mimic_cxr",
    "social_counterfactuals": "fairvlm.data.readers.social_counterfactuals:read_social_counterfactuals",
    "fairface": "fairvlm.data.readers.fairface:read_fairface",
}


def get_reader(name: str) -> Callable[..., ReadResult]:
    """The reader function of format ``name`` (one of :data:`READERS`)."""
    if name not in READERS:
        raise bad_value("format", name, f"use one of {sorted(READERS)}")
    module, function = READERS[name].split(":")
    return getattr(importlib.import_module(module), function)


def import_dataset(
    fmt: str, src: str | Path, out: str | Path, *, skip_bad: bool = False, **options: Any
) -> ReadResult:
    """Read ``src`` with the reader of ``fmt`` and store it at ``out`` (atomically).

    Returns the ReadResult, whose ``metadata["skipped"]`` counts the skipped rows.
    """
    result = get_reader(fmt)(src, skip_bad=skip_bad, **options)
    save_dataset(result.splits, out, metadata=result.metadata, attributes=result.attributes)
    return result


__all__ = ["READERS", "ReadResult", "get_reader", "import_dataset"]
