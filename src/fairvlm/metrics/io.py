"""Reading audit records and writing ``metrics.json`` (atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from fairvlm.errors import DataError, bad_value
from fairvlm.metrics.results import clean_json


def read_records(path: str | Path) -> pd.DataFrame:
    """Records from ``records.parquet``, a ``.jsonl`` file, or a directory holding either."""
    p = Path(path)
    if p.is_dir():
        for name in ("records.parquet", "records.jsonl"):
            if (p / name).exists():
                p = p / name
                break
    if not p.is_file():
        raise bad_value(
            "RECORDS",
            str(path),
            "give records.parquet, a .jsonl file or an audit directory",
            DataError,
        )
    if p.suffix == ".jsonl":
        return pd.read_json(p, lines=True)
    return pd.read_parquet(p)


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write ``metrics.json`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(clean_json(metrics), fh, indent=2, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
