"""Fitzpatrick17k: ``fitzpatrick17k.csv`` + ``{md5hash}.jpg`` images.

Closed VQA on one label column (``three_partition_label`` by default: benign /
malignant / non-neoplastic), attribute ``skin_type``: the Fitzpatrick scale 1-6
(-1 = unknown), or grouped as 1-2 / 3-4 / 5-6 with ``group_skin_types=True``.
"""

from __future__ import annotations

from pathlib import Path

from fairvlm.data.normalize import Normalizer
from fairvlm.data.readers.base import (
    ReadResult,
    RowCollector,
    RowError,
    check_image,
    convert_rows,
    find_file,
    index_images,
    new_metadata,
    normalize,
    read_csv,
    record_normalizers,
    relative,
)
from fairvlm.data.schema import Sample
from fairvlm.errors import bad_value

COLUMNS = ("md5hash", "fitzpatrick_scale", "label", "three_partition_label", "nine_partition_label")
LABEL_COLUMNS = ("three_partition_label", "nine_partition_label", "label")
THREE_PARTITION = ("benign", "malignant", "non-neoplastic")
PROMPTS = {
    "three_partition_label": "Is this skin condition benign, malignant or non-neoplastic?",
    "nine_partition_label": "Which category of skin condition is shown in this image?",
    "label": "What is the skin condition in this image?",
}
SKIN_TYPE_GROUPS = {"1": "1-2", "2": "1-2", "3": "3-4", "4": "3-4", "5": "5-6", "6": "5-6"}


def skin_type_normalizer(group: bool) -> Normalizer:
    """Fitzpatrick 1-6 as themselves (or their 1-2/3-4/5-6 group); -1 / empty -> None."""
    mapping = SKIN_TYPE_GROUPS if group else {str(k): str(k) for k in range(1, 7)}
    mapping = {**mapping, **{f"{k}.0": v for k, v in mapping.items()}}
    return Normalizer("skin_type", mapping, unknown={"", "-1", "-1.0", "unknown", "nan"})


def read_fitzpatrick17k(
    src: str | Path,
    *,
    skip_bad: bool = False,
    split: str = "test",
    label_column: str = "three_partition_label",
    group_skin_types: bool = False,
) -> ReadResult:
    """Read Fitzpatrick17k from its folder (or its CSV).

    Args:
        src: folder with ``fitzpatrick17k.csv`` and the images (any sub-folder), or the CSV.
        skip_bad: skip (and count) malformed rows instead of raising.
        split: the split the samples go to.
        label_column: the VQA target: one of :data:`LABEL_COLUMNS`.
        group_skin_types: store 1-2 / 3-4 / 5-6 instead of 1..6.
    """
    if label_column not in LABEL_COLUMNS:
        raise bad_value("label_column", label_column, f"use one of {LABEL_COLUMNS}")
    src = Path(src)
    csv = find_file(src, ["fitzpatrick17k.csv"], "fitzpatrick17k.csv")
    root = src if src.is_dir() else csv.parent
    df = read_csv(csv, COLUMNS)
    images = index_images(root)
    metadata = new_metadata(
        "fitzpatrick17k",
        src,
        split=split,
        label_column=label_column,
        group_skin_types=group_skin_types,
    )
    collector = RowCollector(metadata, skip_bad)
    skin = skin_type_normalizer(group_skin_types)
    if label_column == "three_partition_label":
        options = list(THREE_PARTITION)
    else:
        options = sorted({v.strip() for v in df[label_column] if v.strip()})

    def make(i: int, row: dict[str, str]) -> Sample:
        md5 = row["md5hash"].strip()
        if not md5:
            raise RowError("md5hash", "empty md5hash")
        label = row[label_column].strip()
        if label not in options:
            raise RowError(
                label_column, f"unknown label category {label!r}; expected one of {options}"
            )
        skin_type = normalize(skin, row, "fitzpatrick_scale")
        if md5 not in images:
            # Name the id and the folder searched: check_image alone would say 'None'.
            url = (row.get("url") or "").strip()
            raise RowError(
                "md5hash",
                f"image not found (no {md5}.jpg, .jpeg or .png anywhere under {str(root)!r}); "
                + (f"download it from {url} into that folder" if url else "add the image")
                + " or fix the md5hash",
            )
        path = check_image(images[md5], "md5hash")
        extra = {k: row[k] for k in ("label", "nine_partition_label", "three_partition_label")}
        extra.update({k: row[k] for k in ("fitzpatrick_centaur", "qc", "url") if k in row})
        return Sample(
            id=md5,
            image=str(path),
            prompt=PROMPTS[label_column],
            target=label,
            task="vqa",
            attributes={"skin_type": skin_type},
            options=list(options),
            split=split,
            meta={
                "source_image": relative(path, root),
                "fitzpatrick_scale": row["fitzpatrick_scale"],
                **extra,
            },
        )

    samples = convert_rows(df, csv, collector, make)
    record_normalizers(metadata, [skin])
    metadata["normalization"]["skin_type"]["source_column"] = "fitzpatrick_scale"
    groups = dict.fromkeys(SKIN_TYPE_GROUPS.values()) if group_skin_types else SKIN_TYPE_GROUPS
    metadata["attributes"] = {"skin_type": list(groups)}
    return ReadResult({split: samples}, ["skin_type"], metadata)
