"""What every reader shares: the result type, bad-row handling, CSV and image checks.

A reader turns a public dataset's own files into samples. A malformed row (a missing
value, an unreadable image, an unknown category) raises a DataError naming the file,
the row and the column; with ``skip_bad=True`` the row is skipped and counted, with
its reason, in the result and in the dataset metadata, never silently.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fairvlm.data.normalize import Normalizer, UnknownCategory
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError

#: At most this many skipped rows are listed one by one in the metadata (all are counted).
MAX_LISTED_SKIPS = 1000


class RowError(ValueError):
    """A problem with one column of one row; the collector adds file and row."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


@dataclass
class ReadResult:
    """Samples per split, the attribute names and the metadata of one import.

    ``metadata`` holds ``source``, ``normalization`` (per attribute, raw -> normalised)
    and ``skipped`` (count, by reason, listed rows). For streaming readers the split
    values are iterators and the counts are complete once they are consumed.
    """

    splits: dict[str, Iterable[Sample]]
    attributes: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Rows skipped so far."""
        return int(self.metadata.get("skipped", {}).get("count", 0))

    def materialize(self) -> dict[str, list[Sample]]:
        """Consume every split into a list (completing the counts), and keep the lists."""
        self.splits = {name: list(samples) for name, samples in self.splits.items()}
        return self.splits  # type: ignore[return-value]


class RowCollector:
    """Turns row problems into DataErrors, or counts them when ``skip_bad`` is set."""

    def __init__(self, metadata: dict[str, Any], skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped = metadata.setdefault("skipped", {"count": 0, "by_reason": {}, "rows": []})
        self._reasons: Counter[str] = Counter(self.skipped["by_reason"])

    def bad(self, file: str | Path, row: int | str, column: str, reason: str) -> None:
        """Raise the DataError for this row, or record it as skipped."""
        where = f"{file}, row {row}, column {column!r}"
        if not self.skip_bad:
            raise DataError(f"{where}: {reason}; fix the row or import with --skip-bad")
        kind = reason.split(";")[0].split("(")[0].strip()
        self._reasons[f"{column}: {kind}"] += 1
        self.skipped["count"] += 1
        self.skipped["by_reason"] = dict(sorted(self._reasons.items()))
        if len(self.skipped["rows"]) < MAX_LISTED_SKIPS:
            self.skipped["rows"].append(
                {"file": str(file), "row": row, "column": column, "reason": reason}
            )


def new_metadata(fmt: str, src: Path, **options: Any) -> dict[str, Any]:
    """The metadata skeleton of an import."""
    return {
        "source": {"format": fmt, "path": str(src), "options": options},
        "normalization": {},
        "skipped": {"count": 0, "by_reason": {}, "rows": []},
    }


def record_normalizers(metadata: dict[str, Any], normalizers: Iterable[Normalizer]) -> None:
    """Store each normaliser's raw -> normalised record under ``metadata["normalization"]``."""
    for norm in normalizers:
        metadata["normalization"][norm.name] = norm.record()


def normalize(norm: Normalizer, row: Mapping[str, Any], column: str) -> str | None:
    """``norm(row[column])``, with unknown categories raised as :class:`RowError`."""
    try:
        return norm(row[column])
    except UnknownCategory as exc:
        raise RowError(column, str(exc)) from None


def read_csv(path: Path, required: Iterable[str]):
    """A CSV (or .csv.gz) as a DataFrame of strings; raises DataError on a missing column."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}, row 0 (header), column {missing[0]!r}: missing column(s) {missing}; "
            f"the file has {list(df.columns)}"
        )
    return df


def find_file(src: Path, names: Iterable[str], what: str) -> Path:
    """``src`` itself when it is a file, else the first of ``names`` found under it."""
    if src.is_file():
        return src
    names = list(names)
    for name in names:
        for candidate in (src / name, *sorted(src.rglob(name))):
            if candidate.is_file():
                return candidate
    raise DataError(f"src={str(src)!r} has no {what} (looked for {names}); point SRC at it")


def index_images(
    root: Path, suffixes: Iterable[str] = (".jpg", ".jpeg", ".png")
) -> dict[str, Path]:
    """Every image under ``root`` by file stem (the first found wins, sorted order)."""
    suffixes = {s.lower() for s in suffixes}
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in suffixes and path.is_file():
            found.setdefault(path.stem, path)
    return found


def check_image(
    path: Path | None, column: str, root: Path | None = None, allow_outside: bool = False
) -> Path:
    """``path`` if it holds a readable image, else a RowError on ``column``.

    With ``root`` (the source folder a path in the user's file is relative to), a path
    that leaves it (``../x.png``, an absolute path, a symlink out) is refused unless
    ``allow_outside``: an import never reads files the dataset does not own by accident.
    """
    outside = root is not None and not allow_outside and path is not None
    if outside and not path.resolve().is_relative_to(root.resolve()):
        raise RowError(
            column,
            f"image path {str(path)!r} leaves the source folder {str(root)!r}; move the "
            "image under it, or pass --allow-outside-paths if that is intended",
        )
    if path is None or not path.is_file():
        raise RowError(column, f"image file {str(path)!r} not found")
    try:
        with Image.open(path) as img:
            img.verify()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RowError(column, f"image file {str(path)!r} is unreadable ({exc})") from None
    return path


def check_image_bytes(data: bytes | None, column: str) -> bytes:
    """``data`` if it decodes as an image, else a RowError on ``column``."""
    if not data:
        raise RowError(column, "no image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RowError(column, f"image bytes are unreadable ({exc})") from None
    return data


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX), or its name when it is not under root."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def rows(df) -> Iterable[tuple[int, dict[str, str]]]:
    """(1-based data row number, row dict) pairs; row 1 is the line after the header."""
    yield from enumerate(df.to_dict("records"), start=1)


def convert_rows(df, file: Path, collector: RowCollector, make) -> list[Sample]:
    """``make(row_number, row)`` for every row; RowErrors go to ``collector``."""
    from tqdm.auto import tqdm

    samples = []
    for i, row in tqdm(rows(df), total=len(df), desc=f"reading {file.name}", disable=None):
        try:
            samples.append(make(i, row))
        except RowError as exc:
            collector.bad(file, i, exc.column, exc.reason)
    return samples
