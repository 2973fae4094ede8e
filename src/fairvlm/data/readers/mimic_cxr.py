"""MIMIC-CXR-style report generation: a reports table joined with demographics.

Files (CSV or CSV.GZ) in SRC:

- ``reports.csv``: ``subject_id, study_id, image_path, report`` (+ optional ``split``,
  e.g. from ``mimic-cxr-2.0.0-split.csv``); ``image_path`` relative to SRC.
- ``demographics.csv``: ``subject_id, gender, anchor_age, race`` (MIMIC-IV ``patients``
  joined with ``admissions.race``; several rows per subject are allowed).

Attributes: ``sex`` (M/F), ``age_group`` (from ``anchor_age``: <45, 45-65, >65) and
``race`` normalised to white / black / asian / hispanic / other
(:data:`~fairvlm.data.normalize.MIMIC_RACE_PREFIXES`); unknown / declined / unable to
obtain -> unknown. A subject whose rows disagree on a known value gets unknown for that
attribute (counted in ``metadata["demographics"]["conflicting"]``), never a guess.
"""

from __future__ import annotations

from pathlib import Path

from fairvlm.data.normalize import (
    AGE_GROUPS,
    RACE_VOCABULARY,
    age_group_normalizer,
    mimic_race_normalizer,
    sex_normalizer,
)
from fairvlm.data.readers.base import (
    ReadResult,
    RowCollector,
    RowError,
    check_image,
    convert_rows,
    find_file,
    new_metadata,
    normalize,
    read_csv,
    record_normalizers,
    rows,
)
from fairvlm.data.schema import Sample

REPORT_COLUMNS = ("subject_id", "study_id", "image_path", "report")
DEMOGRAPHIC_COLUMNS = ("subject_id", "gender", "anchor_age", "race")
ATTRIBUTES = ("age_group", "race", "sex")
PROMPT = "Write the radiology report for this chest X-ray."


def _demographics(src: Path, collector: RowCollector, metadata: dict, norms: dict):
    csv = find_file(src, ["demographics.csv", "demographics.csv.gz"], "demographics.csv")
    df = read_csv(csv, DEMOGRAPHIC_COLUMNS)
    columns = {"sex": "gender", "age_group": "anchor_age", "race": "race"}
    known: dict[str, dict[str, set[str]]] = {}
    for i, row in rows(df):
        try:
            subject = row["subject_id"].strip()
            if not subject:
                raise RowError("subject_id", "empty subject_id")
            values = {a: normalize(norms[a], row, c) for a, c in columns.items()}
        except RowError as exc:
            collector.bad(csv, i, exc.column, exc.reason)
            continue
        entry = known.setdefault(subject, {a: set() for a in columns})
        for attr, value in values.items():
            if value is not None:
                entry[attr].add(value)
    conflicting = dict.fromkeys(columns, 0)
    table: dict[str, dict[str, str | None]] = {}
    for subject, entry in known.items():
        table[subject] = {}
        for attr, values in entry.items():
            conflicting[attr] += len(values) > 1
            table[subject][attr] = next(iter(values)) if len(values) == 1 else None
    metadata["demographics"] = {
        "file": str(csv),
        "subjects": len(table),
        "conflicting": conflicting,
    }
    return table


def read_mimic_cxr(
    src: str | Path,
    *,
    skip_bad: bool = False,
    split: str = "test",
    allow_outside_paths: bool = False,
) -> ReadResult:
    """Read a MIMIC-CXR-style folder (see the module docstring for the files).

    Args:
        src: the folder with ``reports.csv`` and ``demographics.csv`` (and the images).
        skip_bad: skip (and count) malformed rows instead of raising.
        split: the split of rows without a ``split`` column value.
        allow_outside_paths: accept image paths that leave the source folder.
    """
    src = Path(src)
    if not src.is_dir():
        src = src.parent
    metadata = new_metadata("mimic_cxr", src, split=split)
    collector = RowCollector(metadata, skip_bad)
    norms = {
        "sex": sex_normalizer("sex"),
        "age_group": age_group_normalizer("age_group"),
        "race": mimic_race_normalizer("race"),
    }
    demographics = _demographics(src, collector, metadata, norms)
    csv = find_file(src, ["reports.csv", "reports.csv.gz"], "reports.csv")
    df = read_csv(csv, REPORT_COLUMNS)
    missing_subjects: set[str] = set()

    def make(i: int, row: dict[str, str]) -> Sample:
        for column in ("subject_id", "study_id", "image_path", "report"):
            if not row[column].strip():
                raise RowError(column, f"empty {column}")
        path = check_image(src / row["image_path"].strip(), "image_path", src, allow_outside_paths)
        subject = row["subject_id"].strip()
        if subject not in demographics:
            missing_subjects.add(subject)
        attributes = demographics.get(subject, dict.fromkeys(ATTRIBUTES))
        return Sample(
            id=f"{row['study_id'].strip()}_{path.stem}",
            image=str(path),
            prompt=PROMPT,
            target=row["report"].strip(),
            task="report",
            attributes=dict(attributes),
            split=row.get("split", "").strip() or split,
            meta={
                "source_image": row["image_path"].strip(),
                "subject_id": subject,
                "study_id": row["study_id"].strip(),
            },
        )

    samples = convert_rows(df, csv, collector, make)
    metadata["demographics"]["subjects_without_demographics"] = len(missing_subjects)
    record_normalizers(metadata, norms.values())
    for attr, column in (("sex", "gender"), ("age_group", "anchor_age"), ("race", "race")):
        metadata["normalization"][attr]["source_column"] = column
    metadata["attributes"] = {
        "age_group": list(AGE_GROUPS),
        "race": list(RACE_VOCABULARY),
        "sex": ["female", "male"],
    }
    splits: dict[str, list[Sample]] = {}
    for sample in samples:
        splits.setdefault(sample.split or split, []).append(sample)
    return ReadResult(splits or {split: []}, list(ATTRIBUTES), metadata)
