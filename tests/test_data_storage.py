"""Storage: save/load round trips, unknown attributes, atomic writes, concepts."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from fairvlm.data import (
    CMSC_CONCEPTS,
    CONCEPT_GROUPS,
    METADATA_FILE,
    Sample,
    dataset_metadata,
    load_dataset,
    load_samples,
    save_dataset,
)
from fairvlm.data.concepts import concept_group, concept_phrase
from fairvlm.errors import DataError


def _jpeg(path, color=(200, 10, 10)):
    Image.new("RGB", (8, 6), color).save(path, format="JPEG")
    return path


def _samples(tmp_path):
    jpg = _jpeg(tmp_path / "a.jpg")
    return [
        Sample(
            "s0",
            str(jpg),
            "What is it?",
            "melanoma",
            "vqa",
            {"sex": "female", "age": None},
            options=["melanoma", "nevus"],
            meta={"k": [1, 2]},
        ),
        Sample(
            "s1",
            Image.new("RGB", (5, 5), (0, 255, 0)),
            "Describe.",
            None,
            "describe",
            {"sex": None},
            concept="doctor",
            counterfactual_set="cf1",
        ),
        Sample("s2", None, "Text only", "x", "report", {}, options=[]),
    ]


def test_round_trip_keeps_values_unknowns_and_bytes(tmp_path):
    samples = _samples(tmp_path)
    out = save_dataset(
        {"test": samples[:2], "train": samples[2:]},
        tmp_path / "ds",
        metadata={"normalization": {"sex": {"F": "female"}}},
    )
    ds = load_dataset(out)
    assert set(ds) == {"test", "train"} and len(ds["test"]) == 2
    assert ds["test"].features["attributes"].keys() == {"age", "sex"}
    back = load_samples(out, "test")
    assert back[0].attributes == {"age": None, "sex": "female"}
    assert back[1].attributes == {"age": None, "sex": None}
    assert back[0].options == ["melanoma", "nevus"] and back[1].options is None
    assert back[0].meta == {"k": [1, 2]} and back[1].concept == "doctor"
    assert back[1].counterfactual_set == "cf1" and back[0].split == "test"
    # the JPEG file is stored byte for byte, the PIL image losslessly
    raw = ds["test"].cast_column("image", ds["test"].features["image"].__class__(decode=False))
    assert raw[0]["image"]["bytes"] == (tmp_path / "a.jpg").read_bytes()
    assert list(back[1].load_image().getdata())[0] == (0, 255, 0)
    text = load_samples(out, "train")[0]
    assert text.image is None and text.options == [] and text.task == "report"
    meta = dataset_metadata(out)
    assert meta["splits"] == {"test": 2, "train": 1}
    assert meta["attributes"] == {"age": [], "sex": ["female"]}
    assert meta["unknown_counts"]["test"] == {"age": 2, "sex": 1}
    assert meta["normalization"] == {"sex": {"F": "female"}}


def test_resaving_loaded_samples_keeps_jpeg_bytes(tmp_path):
    out = save_dataset({"test": _samples(tmp_path)[:1]}, tmp_path / "a")
    again = save_dataset({"test": load_samples(out, "test")}, tmp_path / "b")
    ds = load_dataset(again)["test"]
    raw = ds.cast_column("image", ds.features["image"].__class__(decode=False))[0]["image"]
    assert raw["bytes"] == (tmp_path / "a.jpg").read_bytes()


def test_limit_and_bad_split(tmp_path):
    out = save_dataset({"test": _samples(tmp_path)}, tmp_path / "ds")
    assert [s.id for s in load_samples(out, "test", limit=2)] == ["s0", "s1"]
    with pytest.raises(DataError, match="split='val'"):
        load_samples(out, "val")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (Sample("x", None, "p", task="nope"), "task='nope'"),
        (Sample("x", None, "p", attributes={"age": 42}), "age=42"),
        (Sample("x", "/no/such.png", "p"), "no/such.png"),
        (Sample("x", None, "p", meta={"o": object()}), "meta cannot be stored"),
    ],
)
def test_bad_samples_name_the_problem(tmp_path, bad, match):
    with pytest.raises(DataError, match=match):
        save_dataset({"test": [bad]}, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind


def test_duplicate_ids_rejected(tmp_path):
    s = Sample("dup", None, "p")
    with pytest.raises(DataError, match="'dup' appears twice"):
        save_dataset({"a": [s], "b": [s]}, tmp_path / "ds")


def test_interrupted_write_leaves_no_dataset(tmp_path):
    def stream():
        yield Sample("ok", None, "p", attributes={"sex": "male"})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_dataset({"test": stream()}, tmp_path / "ds", attributes=["sex"])
    assert list(tmp_path.iterdir()) == []


def test_replace_existing_dataset_but_not_foreign_folder(tmp_path):
    out = save_dataset({"test": [Sample("a", None, "p")]}, tmp_path / "ds")
    save_dataset({"test": [Sample("b", None, "p"), Sample("c", None, "p")]}, out)
    assert [s.id for s in load_samples(out, "test")] == ["b", "c"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a fairvlm output"):
        save_dataset({"test": [Sample("a", None, "p")]}, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_streaming_metadata_read_after_samples(tmp_path):
    meta = {"skipped": {"count": 0}}

    def stream():
        yield Sample("a", None, "p")
        meta["skipped"]["count"] = 3  # a reader counts as it goes

    out = save_dataset({"test": stream()}, tmp_path / "ds", metadata=meta, attributes=[])
    assert json.loads((out / METADATA_FILE).read_text())["skipped"]["count"] == 3


def test_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="not a dataset folder"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match="no fairvlm_metadata.json"):
        dataset_metadata(tmp_path)


def test_concepts():
    assert [len(v) for v in CONCEPT_GROUPS.values()] == [5, 6, 7]
    assert len(set(CMSC_CONCEPTS)) == 18
    assert concept_group("weapon") == "responsibility" and concept_group("nurse") == "occupation"
    assert concept_phrase("engineer") == "an engineer"
    assert concept_phrase("weapon") == "holding a weapon"


def test_open_image_bytes_is_lazy_and_kept():
    from fairvlm.data import open_image_bytes
    from fairvlm.data.storage import encode_image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    img = open_image_bytes(buf.getvalue())
    img.load()
    assert encode_image(img, "x")["bytes"] == buf.getvalue()


def test_empty_split_round_trips(tmp_path):
    out = save_dataset({"test": [], "train": [Sample("a", None, "p")]}, tmp_path / "ds")
    assert load_samples(out, "test") == [] and len(load_samples(out, "train")) == 1
    assert dataset_metadata(out)["splits"] == {"test": 0, "train": 1}
