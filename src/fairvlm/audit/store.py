"""Audit records on disk: one Parquet part per finished batch, compacted into
``records.parquet`` at the end.

Every part is written to a temporary name and renamed into place, so an audit killed
at any moment leaves only whole batches behind; a rerun reads them (and a previous
``records.parquet``) to skip the (sample, task) pairs already done. Several processes
of a sharded audit write their own parts into the same folder; the main process merges.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fairvlm.atomic import atomic_file
from fairvlm.errors import DataError

#: The columns of ``records.parquet`` before the ``attr.<name>`` ones (records contract).
RECORD_COLUMNS = (
    "sample_id",
    "task",
    "split",
    "prompt",
    "output",
    "target",
    "options",
    "option_logprob",
    "option_mean_logprob",
    "pred",
    "p_yes",
    "concept",
    "counterfactual_set",
    "latency_s",
    "batch_index",
    "error",
)
ATTR_PREFIX = "attr."
RECORDS_FILE = "records.parquet"
PARTS_DIR = "records.parts"

_TYPES = {
    "options": pa.list_(pa.string()),
    "option_logprob": pa.list_(pa.float64()),
    "option_mean_logprob": pa.list_(pa.float64()),
    "p_yes": pa.float64(),
    "latency_s": pa.float64(),
    "batch_index": pa.int64(),
}


def record_schema(attributes: Sequence[str]) -> pa.Schema:
    """The Arrow schema of the records of an audit over ``attributes``."""
    fields = [pa.field(c, _TYPES.get(c, pa.string())) for c in RECORD_COLUMNS]
    fields += [pa.field(ATTR_PREFIX + a, pa.string()) for a in attributes]
    return pa.schema(fields)


Key = tuple[str, str]  # (task, sample_id)


def _pairs(table: pa.Table) -> list[Key]:
    return list(zip(table["task"].to_pylist(), table["sample_id"].to_pylist(), strict=True))


class RecordStore:
    """The records of one audit folder: finished parts, the compacted file, the merge."""

    def __init__(self, out_dir: str | Path, attributes: Sequence[str]) -> None:
        self.out_dir = Path(out_dir)
        self.parts_dir = self.out_dir / PARTS_DIR
        self.final = self.out_dir / RECORDS_FILE
        self.schema = record_schema(attributes)

    def _read(self, path: Path) -> pa.Table:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{path}: unreadable records ({exc}); delete it and rerun to recompute them"
            ) from exc
        if "error" not in table.column_names:  # records written before skip_bad existed
            table = table.append_column("error", pa.nulls(len(table), pa.string()))
        missing = [n for n in self.schema.names if n not in table.column_names]
        if missing:
            raise DataError(
                f"{path}: records lack columns {missing} (written by another audit config?); "
                "rerun with --overwrite or audit into another folder"
            )
        return table.select(self.schema.names).cast(self.schema)

    def load(self) -> pa.Table:
        """Every record already written (compacted file first, then parts); first wins."""
        paths = [self.final] if self.final.is_file() else []
        if self.parts_dir.is_dir():
            paths += sorted(
                p for p in self.parts_dir.glob("*.parquet") if not p.name.startswith(".")
            )
        tables = [self._read(p) for p in paths]
        if not tables:
            return self.schema.empty_table()
        table = pa.concat_tables(tables)
        seen: set[Key] = set()
        keep = []
        for i, key in enumerate(_pairs(table)):
            if key not in seen:
                seen.add(key)
                keep.append(i)
        return table.take(keep) if len(keep) < len(table) else table

    @staticmethod
    def keys(table: pa.Table) -> set[Key]:
        """The (task, sample_id) pairs of ``table``."""
        return set(_pairs(table))

    def write_part(self, rows: list[dict[str, Any]], task: str, batch_index: int) -> Path:
        """Write one finished batch atomically (temp name, then rename)."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=self.schema)
        path = self.parts_dir / f"{task}-{batch_index:06d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_file(path) as tmp:
            pq.write_table(table, tmp)
        return path

    def compact(self, order: Sequence[Key]) -> pa.Table:
        """Write ``records.parquet`` with exactly the records of ``order``, in that order,
        atomically; then remove the parts.

        Raises:
            DataError: a record of ``order`` was never written (an unfinished audit).
        """
        table = self.load()
        index = {k: i for i, k in enumerate(_pairs(table))}
        missing = [k for k in order if k not in index]
        if missing:
            raise DataError(
                f"{len(missing)} records were never written (e.g. {missing[:3]}); "
                "rerun the audit to finish it"
            )
        if len(index) > len(order):
            warnings.warn(
                f"{self.out_dir}: {len(index) - len(order)} earlier records of tasks or samples "
                "outside this audit are not kept in records.parquet",
                stacklevel=3,
            )
        table = table.take([index[k] for k in order])
        with atomic_file(self.final) as tmp:
            pq.write_table(table, tmp)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return table

    def clear(self) -> None:
        """Forget every record of this folder (``--overwrite``)."""
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        self.final.unlink(missing_ok=True)


__all__ = [
    "ATTR_PREFIX",
    "PARTS_DIR",
    "RECORDS_FILE",
    "RECORD_COLUMNS",
    "RecordStore",
    "record_schema",
]
