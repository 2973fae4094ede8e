"""SocialCounterfactuals (Howard et al., CVPR 2024): the parquet shards as distributed.

Columns: ``image`` (the HF struct ``{bytes, path}``), ``caption``, ``counterfactual_set``,
``a1_type``, ``a1``, ``a2_type``, ``a2`` (``a1a2``, ``dataset_segment`` kept in meta).
Each row becomes a ``describe`` sample whose target is the caption, whose attributes are
``{a1_type: a1, a2_type: a2}`` (lower-cased; the other attribute types unknown), whose
counterfactual set is kept, and whose concept is the occupation: the caption text after
the last attribute word ("A photo of a Black female nurse" -> "nurse").

Rows are streamed from the shards, so a full import does not hold every image in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from fairvlm.data.normalize import Normalizer
from fairvlm.data.readers.base import (
    ReadResult,
    RowCollector,
    RowError,
    check_image_bytes,
    new_metadata,
    normalize,
    record_normalizers,
)
from fairvlm.data.schema import Sample
from fairvlm.data.storage import open_image_bytes
from fairvlm.errors import DataError

COLUMNS = ("image", "caption", "counterfactual_set", "a1_type", "a1", "a2_type", "a2")
PROMPT = "Describe the person in this image."
# Connecting words between the attributes and the occupation in a caption.
_LEAD = re.compile(r"^(?:(?:working|employed)\s+as\s+|who\s+is\s+|as\s+)?(?:an?\s+|the\s+)?", re.I)


def concept_from_caption(caption: str, attribute_values: list[str]) -> str:
    """The caption text after the last attribute value, lower-cased (the occupation).

    Raises:
        RowError: no attribute value occurs in the caption, or nothing follows it.
    """
    text = caption.strip()
    folded = text.casefold()
    end = -1
    for value in attribute_values:
        pattern = r"(?<!\w)" + re.escape(value.strip().casefold()) + r"(?!\w)"
        for match in re.finditer(pattern, folded):
            end = max(end, match.end())
    if end < 0:
        raise RowError(
            "caption",
            f"unknown concept: none of the attributes {attribute_values} is in {caption!r}",
        )
    concept = _LEAD.sub("", text[end:].strip(" ,.;:")).strip(" ,.;:").casefold()
    if not concept:
        raise RowError("caption", f"unknown concept: nothing follows the attributes in {caption!r}")
    return concept


def _shards(src: Path) -> list[Path]:
    files = [src] if src.is_file() else sorted(src.rglob("*.parquet"))
    if not files:
        raise DataError(f"src={str(src)!r} has no .parquet files; point SRC at the shards")
    return files


def read_social_counterfactuals(
    src: str | Path, *, skip_bad: bool = False, split: str = "test", batch_size: int = 256
) -> ReadResult:
    """Read SocialCounterfactuals parquet shards (a file, or a folder searched recursively).

    Args:
        src: one ``.parquet`` shard or a folder of them.
        skip_bad: skip (and count) malformed rows instead of raising.
        split: the split the samples go to.
        batch_size: rows read from parquet at a time.
    """
    import pyarrow.parquet as pq

    src = Path(src)
    files = _shards(src)
    types: set[str] = set()
    for file in files:
        names = pq.read_schema(file).names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise DataError(
                f"{file}, row 0 (schema), column {missing[0]!r}: missing column(s) {missing}; "
                f"the file has {names}"
            )
        table = pq.read_table(file, columns=["a1_type", "a2_type"])
        for column in ("a1_type", "a2_type"):
            types.update(str(t).strip().casefold() for t in table[column].to_pylist() if t)
    attributes = sorted(types)
    metadata = new_metadata("social_counterfactuals", src, split=split)
    collector = RowCollector(metadata, skip_bad)
    norms = {name: Normalizer(name, passthrough=True) for name in attributes}
    counts: dict[str, int] = {}

    def make(row: dict) -> Sample:
        values: dict[str, str | None] = dict.fromkeys(attributes)
        raw_values, ordered = [], []
        for key in ("a1", "a2"):
            kind = str(row[f"{key}_type"] or "").strip().casefold()
            if not kind:
                raise RowError(f"{key}_type", "empty attribute type")
            value = normalize(norms[kind], row, key)
            if value is None:
                raise RowError(key, f"unknown {kind} category {row[key]!r} in a counterfactual row")
            values[kind] = value
            raw_values.append(str(row[key]))
            ordered.append(value)
        cf_set = str(row["counterfactual_set"] or "").strip()
        if not cf_set:
            raise RowError("counterfactual_set", "empty counterfactual_set")
        caption = str(row["caption"] or "").strip()
        if not caption:
            raise RowError("caption", "empty caption")
        concept = concept_from_caption(caption, raw_values)
        image = row["image"]
        data = image.get("bytes") if isinstance(image, dict) else image
        check_image_bytes(data, "image")
        base = re.sub(r"\s+", "-", "_".join([cf_set, *ordered]))
        counts[base] = counts.get(base, 0) + 1
        meta = {"caption": caption, "a1a2": row.get("a1a2")}
        if isinstance(image, dict) and image.get("path"):
            meta["source_image"] = image["path"]
        if row.get("dataset_segment") is not None:
            meta["dataset_segment"] = row["dataset_segment"]
        return Sample(
            id=base if counts[base] == 1 else f"{base}_{counts[base]}",
            image=open_image_bytes(data),
            prompt=PROMPT,
            target=caption,
            task="describe",
            attributes=values,
            concept=concept,
            counterfactual_set=cf_set,
            split=split,
            meta=meta,
        )

    def stream() -> Iterator[Sample]:
        for file in files:
            offset = 0
            for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size):
                for i, row in enumerate(batch.to_pylist(), start=offset + 1):
                    try:
                        yield make(row)
                    except RowError as exc:
                        collector.bad(file, i, exc.column, exc.reason)
                offset += batch.num_rows
        record_normalizers(metadata, norms.values())

    return ReadResult({split: stream()}, attributes, metadata)
