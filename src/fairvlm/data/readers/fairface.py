"""FairFace: ``fairface_label_{train,val}.csv`` (file, age, gender, race, service_test)
with the face images at the relative paths of the ``file`` column (``train/1.jpg``).

Each row becomes a ``describe`` sample (no target) with attributes ``gender``
(male / female), ``race`` (the seven FairFace classes in snake case) and ``age`` (the
FairFace bins; "more than 70" -> "70+"). The split is taken from the label file's name.
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
    new_metadata,
    normalize,
    read_csv,
    record_normalizers,
)
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError

COLUMNS = ("file", "age", "gender", "race")
RACES = {
    "white": "white",
    "black": "black",
    "latino_hispanic": "latino_hispanic",
    "latino hispanic": "latino_hispanic",
    "east asian": "east_asian",
    "east_asian": "east_asian",
    "southeast asian": "southeast_asian",
    "southeast_asian": "southeast_asian",
    "indian": "indian",
    "middle eastern": "middle_eastern",
    "middle_eastern": "middle_eastern",
}
AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
PROMPT = "Describe the person in this image."


def _label_files(src: Path) -> list[tuple[str, Path]]:
    files = [src] if src.is_file() else sorted(src.glob("fairface_label_*.csv"))
    if not files:
        raise DataError(
            f"src={str(src)!r} has no fairface_label_*.csv; point SRC at the folder with "
            "fairface_label_train.csv / fairface_label_val.csv"
        )
    return [(f.stem.removeprefix("fairface_label_") or "test", f) for f in files]


def read_fairface(
    src: str | Path,
    *,
    skip_bad: bool = False,
    image_root: str | Path | None = None,
    allow_outside_paths: bool = False,
) -> ReadResult:
    """Read FairFace label CSV(s) and their images.

    Args:
        src: the folder with ``fairface_label_*.csv``, or one label CSV.
        skip_bad: skip (and count) malformed rows instead of raising.
        image_root: the folder the ``file`` paths are relative to (default: the CSV's).
        allow_outside_paths: accept image paths that leave the source folder.
    """
    src = Path(src)
    metadata = new_metadata("fairface", src, image_root=str(image_root) if image_root else None)
    collector = RowCollector(metadata, skip_bad)
    norms = {
        "gender": Normalizer("gender", {"male": "male", "female": "female"}),
        "race": Normalizer("race", RACES),
        "age": Normalizer("age", {**{a: a for a in AGES}, "more than 70": "70+"}),
    }
    splits: dict[str, list[Sample]] = {}
    for split, csv in _label_files(src):
        df = read_csv(csv, COLUMNS)
        root = Path(image_root) if image_root else csv.parent

        def make(i: int, row: dict[str, str], split=split, root=root) -> Sample:
            rel = row["file"].strip()
            if not rel:
                raise RowError("file", "empty file path")
            path = check_image(root / rel, "file", root, allow_outside_paths)
            attributes = {a: normalize(n, row, a) for a, n in norms.items()}
            meta = {"source_image": rel}
            if "service_test" in row:
                meta["service_test"] = row["service_test"]
            return Sample(
                id=Path(rel).with_suffix("").as_posix().replace("/", "_"),
                image=str(path),
                prompt=PROMPT,
                target=None,
                task="describe",
                attributes=attributes,
                split=split,
                meta=meta,
            )

        splits[split] = convert_rows(df, csv, collector, make)
    record_normalizers(metadata, norms.values())
    metadata["attributes"] = {
        "age": list(AGES),
        "gender": ["female", "male"],
        "race": sorted(set(RACES.values())),
    }
    return ReadResult(splits, ["age", "gender", "race"], metadata)
