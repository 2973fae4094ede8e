"""HAM10000 dermoscopy: ``HAM10000_metadata.csv`` + ``{image_id}.jpg`` images.

Closed VQA on the diagnosis ``dx`` with the seven classes as options (human-readable
names; the dataset's codes kept as synonyms in ``meta["synonyms"]``), attributes
``sex`` and ``age_group`` (<45, 45-65, >65; a missing age or sex is unknown).
"""

from __future__ import annotations

from pathlib import Path

from fairvlm.data.normalize import AGE_GROUPS, age_group_normalizer, sex_normalizer
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

COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
#: dx code -> the option text the model is asked to choose.
DX_NAMES: dict[str, str] = {
    "akiec": "actinic keratosis",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}
OPTIONS = list(DX_NAMES.values())
PROMPT = "What is the diagnosis of the skin lesion in this image?"


def read_ham10000(src: str | Path, *, skip_bad: bool = False, split: str = "test") -> ReadResult:
    """Read HAM10000 from its folder (or its metadata CSV).

    Args:
        src: the folder holding ``HAM10000_metadata.csv`` and the images (in any
            sub-folder, e.g. ``HAM10000_images_part_1``), or the CSV itself.
        skip_bad: skip (and count) malformed rows instead of raising.
        split: the split the samples go to (HAM10000 has no official split).
    """
    src = Path(src)
    csv = find_file(src, ["HAM10000_metadata.csv", "HAM10000_metadata"], "HAM10000_metadata.csv")
    root = src if src.is_dir() else csv.parent
    df = read_csv(csv, COLUMNS)
    images = index_images(root, (".jpg", ".jpeg"))
    metadata = new_metadata("ham10000", src, split=split)
    collector = RowCollector(metadata, skip_bad)
    sex, age = sex_normalizer("sex"), age_group_normalizer("age_group")
    synonyms = {name: [code] for code, name in DX_NAMES.items()}

    def make(i: int, row: dict[str, str]) -> Sample:
        image_id = row["image_id"].strip()
        if not image_id:
            raise RowError("image_id", "empty image_id")
        code = row["dx"].strip().lower()
        if code not in DX_NAMES:
            raise RowError(
                "dx", f"unknown dx category {row['dx']!r}; expected one of {list(DX_NAMES)}"
            )
        if image_id not in images:
            # Name the id and the folder searched: check_image alone would say 'None'.
            raise RowError(
                "image_id",
                f"image not found (no {image_id}.jpg or .jpeg anywhere under {str(root)!r}); "
                "put the HAM10000 image folders there or fix the image_id",
            )
        path = check_image(images[image_id], "image_id")
        return Sample(
            id=image_id,
            image=str(path),
            prompt=PROMPT,
            target=DX_NAMES[code],
            task="vqa",
            attributes={"sex": normalize(sex, row, "sex"), "age_group": normalize(age, row, "age")},
            options=list(OPTIONS),
            split=split,
            meta={
                "source_image": relative(path, root),
                "dx": code,
                "synonyms": synonyms,
                "lesion_id": row["lesion_id"],
                "dx_type": row["dx_type"],
                "localization": row["localization"],
                "age": row["age"],
            },
        )

    samples = convert_rows(df, csv, collector, make)
    record_normalizers(metadata, [sex, age])
    metadata["normalization"]["age_group"]["source_column"] = "age"
    metadata["attributes"] = {"age_group": list(AGE_GROUPS), "sex": ["female", "male"]}
    return ReadResult({split: samples}, ["age_group", "sex"], metadata)
