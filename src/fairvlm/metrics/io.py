"""Reading audit records and writing ``metrics.json`` (atomically)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fairvlm.atomic import atomic_write_text
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
    import pyarrow as pa

    try:
        if p.suffix == ".jsonl":
            return pd.read_json(p, lines=True)
        return pd.read_parquet(p)
    except (ValueError, OSError, pa.ArrowException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"RECORDS={str(path)!r} cannot be read as audit records ({reason}): give the "
            "records.parquet or records.jsonl an audit wrote"
        ) from None


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write ``metrics.json`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(clean_json(metrics), indent=2, allow_nan=False))
    return path
