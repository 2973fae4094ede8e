"""JSONL + images and LLaVA JSON: dataset round trips are lossless."""

from __future__ import annotations

import json

import pytest
from data_support import jpeg_bytes, write_image
from PIL import Image

from fairvlm.data import (
    Sample,
    load_dataset,
    load_samples,
    open_image_bytes,
    read_jsonl,
    read_llava_json,
    samples_from_dataset,
    save_dataset,
    write_jsonl,
    write_llava_json,
)
from fairvlm.errors import DataError


def _records(root):
    write_image(root / "images" / "a.jpg", (200, 0, 0))
    write_image(root / "images" / "nested" / "b.jpg", (0, 200, 0))
    Image.new("RGB", (3, 3), (1, 2, 3)).save(root / "images" / "c.png")
    base = {
        "target": None,
        "options": None,
        "concept": None,
        "counterfactual_set": None,
        "meta": {},
    }
    return [
        {
            **base,
            "id": "a",
            "image": "images/a.jpg",
            "prompt": "Diagnosis?",
            "target": "melanoma",
            "task": "vqa",
            "attributes": {"sex": "female", "age_group": None},
            "options": ["melanoma", "nevus"],
            "split": "test",
            "meta": {"dx": "mel", "n": [1, 2]},
        },
        {
            **base,
            "id": "b",
            "image": "images/nested/b.jpg",
            "prompt": "Describe.",
            "task": "describe",
            "attributes": {"sex": None, "age_group": None},
            "concept": "nurse",
            "counterfactual_set": "cf1",
            "split": "test",
        },
        {
            **base,
            "id": "c",
            "image": "images/c.png",
            "prompt": "Report.",
            "target": "Normal.",
            "task": "report",
            "attributes": {"sex": "male", "age_group": ">65"},
            "options": [],
            "split": "train",
        },
        {
            **base,
            "id": "d",
            "image": None,
            "prompt": "Text only?",
            "target": "yes",
            "task": "probe",
            "attributes": {"sex": None, "age_group": "<45"},
            "options": ["yes", "no"],
            "split": "train",
        },
    ]


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_jsonl_dataset_jsonl_round_trip_is_lossless(tmp_path):
    src = tmp_path / "src"
    records = _records(src)
    (src / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = read_jsonl(src)
    ds_path = save_dataset(result.splits, tmp_path / "ds", metadata=result.metadata)
    ds = load_dataset(ds_path)
    out = write_jsonl({s: samples_from_dataset(ds[s]) for s in ds}, tmp_path / "out")
    back = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert sorted(back, key=lambda r: r["id"]) == records
    src_images = {k: v for k, v in _files(src).items() if k != "data.jsonl"}
    out_images = {k: v for k, v in _files(out).items() if k != "data.jsonl"}
    assert out_images == src_images  # same paths, same bytes


def test_llava_round_trip_is_lossless(tmp_path):
    src = tmp_path / "src"
    write_image(src / "img" / "x.jpg")
    write_image(src / "img" / "y.jpg", (0, 0, 255))
    records = [
        {
            "id": "x",
            "image": "img/x.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is shown?"},
                {"from": "gpt", "value": "a lesion"},
                {"from": "human", "value": "Benign?"},
                {"from": "gpt", "value": "yes"},
            ],
            "task": "vqa",
            "attributes": {"gender": None, "race": "black"},
            "options": None,
            "concept": None,
            "counterfactual_set": None,
            "split": "test",
            "meta": {},
        },
        {
            "id": "y",
            "image": "img/y.jpg",
            "conversations": [
                {"from": "human", "value": "Describe the person.\n<image>"},
                {"from": "gpt", "value": "A nurse."},
            ],
            "task": "describe",
            "attributes": {"gender": "female", "race": None},
            "options": None,
            "concept": "nurse",
            "counterfactual_set": "s1",
            "split": "test",
            "meta": {"k": 1},
        },
    ]
    (src / "train.json").write_text(json.dumps(records))
    result = read_llava_json(src / "train.json")
    first = result.splits["test"][0]
    assert first.prompt == "What is shown?" and first.target == "a lesion"
    ds_path = save_dataset(result.splits, tmp_path / "ds")
    out = write_llava_json({"test": load_samples(ds_path, "test")}, tmp_path / "out")
    assert json.loads((out / "llava.json").read_text()) == records
    assert (out / "img" / "y.jpg").read_bytes() == (src / "img" / "y.jpg").read_bytes()


def test_plain_llava_without_fairvlm_fields(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "llava.json").write_text(
        json.dumps(
            [
                {
                    "id": 7,
                    "image": "a.jpg",
                    "conversations": [
                        {"from": "human", "value": "<image>\nHi"},
                        {"from": "gpt", "value": "Hello"},
                    ],
                }
            ]
        )
    )
    sample = read_llava_json(tmp_path).splits["test"][0]
    assert (sample.id, sample.prompt, sample.target, sample.attributes) == ("7", "Hi", "Hello", {})


def test_jsonl_bad_lines_named_or_skipped(tmp_path):
    write_image(tmp_path / "a.jpg")
    lines = [
        {"id": "ok", "image": "a.jpg", "prompt": "p", "attributes": {"sex": "male"}},
        {"id": "bad", "prompt": "p", "task": "guess"},
        {"id": "bad2", "prompt": "p", "attributes": {"age": 42}},
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n{oops\n")
    with pytest.raises(DataError, match=r"data.jsonl, row 2, column 'task'"):
        read_jsonl(tmp_path)
    result = read_jsonl(tmp_path, skip_bad=True)
    assert [s.id for s in result.splits["test"]] == ["ok"] and result.skipped == 3
    assert [r["column"] for r in result.metadata["skipped"]["rows"]] == [
        "task",
        "attributes",
        "<json>",
    ]


def test_pil_images_without_source_are_named_by_id(tmp_path):
    img = Image.new("RGB", (2, 2), (9, 9, 9))
    out = write_jsonl([Sample("a/b", img, "p", split="test")], tmp_path / "out")
    record = json.loads((out / "data.jsonl").read_text())
    assert record["image"] == "images/a_b.png"
    assert Image.open(out / "images" / "a_b.png").getpixel((0, 0)) == (9, 9, 9)


def test_two_images_same_source_path_do_not_overwrite(tmp_path):
    meta = {"source_image": "img.jpg"}
    a = Sample("a", open_image_bytes(jpeg_bytes((255, 0, 0))), "p", meta=dict(meta))
    b = Sample("b", open_image_bytes(jpeg_bytes((0, 0, 255))), "p", meta=dict(meta))
    out = write_jsonl([a, b], tmp_path / "out")
    paths = [json.loads(line)["image"] for line in (out / "data.jsonl").read_text().splitlines()]
    assert paths[0] == "img.jpg" and paths[1] != "img.jpg"
    assert (out / paths[1]).read_bytes() == jpeg_bytes((0, 0, 255))
