"""Tiny files in the exact formats of the public datasets, for the data tests."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def jpeg_bytes(color=(120, 60, 30), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def write_image(path: Path, color=(120, 60, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(color))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def ham10000(root: Path, extra: list[dict] | None = None) -> Path:
    """4 good rows: ages 30 / 50 / missing / 70, sexes male / female / unknown / female."""
    rows = [
        ("HAM_0000001", "ISIC_0000001", "mel", "histo", "30.0", "male", "back"),
        ("HAM_0000002", "ISIC_0000002", "nv", "follow_up", "50.0", "female", "face"),
        ("HAM_0000003", "ISIC_0000003", "bkl", "consensus", "", "unknown", "trunk"),
        ("HAM_0000004", "ISIC_0000004", "df", "histo", "70.0", "female", "scalp"),
    ]
    cols = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
    records = [dict(zip(cols, r, strict=True)) for r in rows] + (extra or [])
    for i, r in enumerate(records):
        part = "HAM10000_images_part_1" if i % 2 == 0 else "HAM10000_images_part_2"
        if not (root / part / f"{r['image_id']}.jpg").exists():
            write_image(root / part / f"{r['image_id']}.jpg", (10 * i, 50, 90))
    return write_csv(root / "HAM10000_metadata.csv", records)


def fitzpatrick(root: Path, scales=("1", "4", "-1", "6")) -> Path:
    labels = ["benign", "malignant", "non-neoplastic", "benign"]
    records = []
    for i, scale in enumerate(scales):
        md5 = f"{i:032x}"
        write_image(root / "images" / f"{md5}.jpg")
        records.append(
            {
                "md5hash": md5,
                "fitzpatrick_scale": scale,
                "fitzpatrick_centaur": scale,
                "label": "psoriasis",
                "nine_partition_label": "inflammatory",
                "three_partition_label": labels[i % 4],
                "qc": "",
                "url": f"https://example.org/{i}.jpg",
                "url_alphanum": f"httpexampleorg{i}jpg",
            }
        )
    return write_csv(root / "fitzpatrick17k.csv", records)


def mimic(root: Path, extra_demo: list[dict] | None = None) -> Path:
    """Subjects 1 (white), 2 (black), 3 (declined), 4 (conflicting), 5 (no demographics)."""
    reports = []
    for i, subject in enumerate(["1", "2", "3", "4", "5"], start=1):
        rel = f"files/p{subject}/s{100 + i}/img{i}.jpg"
        write_image(root / rel)
        reports.append(
            {
                "subject_id": subject,
                "study_id": str(100 + i),
                "image_path": rel,
                "report": f"FINDINGS: case {i}. IMPRESSION: none.",
                "split": "test" if i < 5 else "train",
            }
        )
    write_csv(root / "reports.csv", reports)
    demo = [
        {"subject_id": "1", "gender": "F", "anchor_age": "30", "race": "WHITE - RUSSIAN"},
        {"subject_id": "2", "gender": "M", "anchor_age": "60", "race": "BLACK/AFRICAN AMERICAN"},
        {
            "subject_id": "3",
            "gender": "M",
            "anchor_age": "80",
            "race": "PATIENT DECLINED TO ANSWER",
        },
        {"subject_id": "4", "gender": "F", "anchor_age": "45", "race": "ASIAN - KOREAN"},
        {"subject_id": "4", "gender": "F", "anchor_age": "45", "race": "HISPANIC OR LATINO"},
    ] + (extra_demo or [])
    write_csv(root / "demographics.csv", demo)
    return root


def social_parquet(path: Path, bad_image_row: bool = False) -> Path:
    """Set cf-a complete (2 races x 2 genders), set cf-b lacks the asian male."""
    rows = []
    for cf, job, combos in (
        (
            "cf-a",
            "nurse",
            [("black", "female"), ("black", "male"), ("asian", "female"), ("asian", "male")],
        ),
        (
            "cf-b",
            "software developer",
            [("black", "female"), ("black", "male"), ("asian", "female")],
        ),
    ):
        for race, gender in combos:
            rows.append(
                {
                    "image": {"bytes": jpeg_bytes(), "path": f"{cf}_{race}_{gender}.jpg"},
                    "dataset_segment": "race-gender",
                    "a1_type": "race",
                    "a2_type": "gender",
                    "counterfactual_set": cf,
                    "caption": f"A photo of a {race.title()} {gender} {job}.",
                    "a1": race.title(),
                    "a2": gender.title(),
                    "a1a2": f"{race.title()}-{gender.title()}",
                }
            )
    if bad_image_row:
        rows[2]["image"] = {"bytes": b"not an image", "path": "broken.jpg"}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def fairface(root: Path) -> Path:
    train = [
        {
            "file": "train/1.jpg",
            "age": "20-29",
            "gender": "Male",
            "race": "East Asian",
            "service_test": "True",
        },
        {
            "file": "train/2.jpg",
            "age": "more than 70",
            "gender": "Female",
            "race": "Latino_Hispanic",
            "service_test": "False",
        },
    ]
    val = [
        {
            "file": "val/1.jpg",
            "age": "3-9",
            "gender": "Female",
            "race": "Black",
            "service_test": "True",
        }
    ]
    for r in train + val:
        write_image(root / r["file"])
    write_csv(root / "fairface_label_train.csv", train)
    write_csv(root / "fairface_label_val.csv", val)
    return root
