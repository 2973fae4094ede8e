"""Readers of public formats on tiny files written in exactly their format."""

from __future__ import annotations

import pytest
from data_support import fairface, fitzpatrick, ham10000, mimic, social_parquet, write_image

from fairvlm.data import READERS
from fairvlm.data.readers.fairface import read_fairface
from fairvlm.data.readers.fitzpatrick17k import read_fitzpatrick17k
from fairvlm.data.readers.ham10000 import OPTIONS, read_ham10000
from fairvlm.data.readers.mimic_cxr import read_mimic_cxr
from fairvlm.data.readers.social_counterfactuals import (
    concept_from_caption,
    read_social_counterfactuals,
)
from fairvlm.errors import DataError


def test_ham10000_samples_attributes_and_unknowns(tmp_path):
    ham10000(tmp_path)
    result = read_ham10000(tmp_path)
    samples = result.splits["test"]
    assert [s.id for s in samples] == [f"ISIC_000000{i}" for i in range(1, 5)]
    assert [s.attributes for s in samples] == [
        {"sex": "male", "age_group": "<45"},
        {"sex": "female", "age_group": "45-65"},
        {"sex": None, "age_group": None},
        {"sex": "female", "age_group": ">65"},
    ]
    assert [s.target for s in samples] == [
        "melanoma",
        "melanocytic nevus",
        "benign keratosis",
        "dermatofibroma",
    ]
    assert samples[0].options == OPTIONS and len(OPTIONS) == 7
    assert samples[0].meta["synonyms"]["melanoma"] == ["mel"]
    assert samples[1].meta["source_image"] == "HAM10000_images_part_2/ISIC_0000002.jpg"
    norm = result.metadata["normalization"]
    assert norm["sex"]["raw_to_normalised"] == {"female": "female", "male": "male", "unknown": None}
    assert norm["age_group"]["raw_to_normalised"]["50.0"] == "45-65"
    assert result.skipped == 0


def test_ham10000_unknown_dx_names_file_row_column_then_skip(tmp_path):
    bad = {
        "lesion_id": "HAM_9",
        "image_id": "ISIC_0000009",
        "dx": "xyz",
        "dx_type": "histo",
        "age": "40.0",
        "sex": "male",
        "localization": "back",
    }
    csv = ham10000(tmp_path, [bad])
    with pytest.raises(DataError, match=r"HAM10000_metadata.csv, row 5, column 'dx'.*'xyz'"):
        read_ham10000(tmp_path)
    result = read_ham10000(csv, skip_bad=True)
    assert len(result.splits["test"]) == 4 and result.skipped == 1
    assert result.metadata["skipped"]["rows"][0]["row"] == 5
    assert result.metadata["skipped"]["by_reason"] == {"dx: unknown dx category 'xyz'": 1}


def test_ham10000_unreadable_image_and_missing_column(tmp_path):
    ham10000(tmp_path)
    (tmp_path / "HAM10000_images_part_1" / "ISIC_0000003.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"row 3, column 'image_id'.*unreadable"):
        read_ham10000(tmp_path)
    import pandas as pd

    df = pd.read_csv(tmp_path / "HAM10000_metadata.csv").drop(columns=["sex"])
    df.to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    with pytest.raises(DataError, match=r"HAM10000_metadata.csv, row 0 \(header\), column 'sex'"):
        read_ham10000(tmp_path)


def test_fitzpatrick_skin_types_grouping_and_unknown(tmp_path):
    fitzpatrick(tmp_path)
    plain = read_fitzpatrick17k(tmp_path).splits["test"]
    assert [s.attributes["skin_type"] for s in plain] == ["1", "4", None, "6"]
    assert plain[1].target == "malignant" and plain[1].options == [
        "benign",
        "malignant",
        "non-neoplastic",
    ]
    grouped = read_fitzpatrick17k(tmp_path, group_skin_types=True)
    assert [s.attributes["skin_type"] for s in grouped.splits["test"]] == [
        "1-2",
        "3-4",
        None,
        "5-6",
    ]
    assert grouped.metadata["attributes"]["skin_type"] == ["1-2", "3-4", "5-6"]


def test_fitzpatrick_unknown_scale(tmp_path):
    fitzpatrick(tmp_path, scales=("1", "9", "2", "3"))
    with pytest.raises(DataError, match=r"row 2, column 'fitzpatrick_scale'.*'9'"):
        read_fitzpatrick17k(tmp_path)
    assert len(read_fitzpatrick17k(tmp_path, skip_bad=True).splits["test"]) == 3


def test_mimic_join_race_vocabulary_conflicts_and_missing(tmp_path):
    result = read_mimic_cxr(mimic(tmp_path))
    test, train = result.splits["test"], result.splits["train"]
    assert [s.attributes for s in test] == [
        {"sex": "female", "age_group": "<45", "race": "white"},
        {"sex": "male", "age_group": "45-65", "race": "black"},
        {"sex": "male", "age_group": ">65", "race": None},
        {"sex": "female", "age_group": "45-65", "race": None},  # asian vs hispanic: unknown
    ]
    assert train[0].attributes == {"age_group": None, "race": None, "sex": None}
    assert test[0].task == "report" and test[0].target.startswith("FINDINGS: case 1")
    assert result.metadata["demographics"]["conflicting"]["race"] == 1
    assert result.metadata["demographics"]["subjects_without_demographics"] == 1
    raw = result.metadata["normalization"]["race"]["raw_to_normalised"]
    assert raw["PATIENT DECLINED TO ANSWER"] is None and raw["WHITE - RUSSIAN"] == "white"


def test_mimic_unknown_race_category(tmp_path):
    extra = [{"subject_id": "6", "gender": "M", "anchor_age": "50", "race": "MARTIAN"}]
    mimic(tmp_path, extra)
    with pytest.raises(DataError, match=r"demographics.csv, row 6, column 'race'.*'martian'"):
        read_mimic_cxr(tmp_path)
    assert read_mimic_cxr(tmp_path, skip_bad=True).skipped == 1


def test_concept_from_caption():
    assert concept_from_caption("A photo of a Black female nurse.", ["Black", "Female"]) == "nurse"
    assert concept_from_caption("a skinny male working as a chef", ["skinny", "male"]) == "chef"
    with pytest.raises(ValueError, match="unknown concept"):
        concept_from_caption("A photo of a nurse", ["Black", "Female"])


def test_social_counterfactuals_sets_concepts_and_bad_rows(tmp_path):
    result = read_social_counterfactuals(social_parquet(tmp_path / "data" / "train-0.parquet"))
    samples = list(result.splits["test"])
    assert len(samples) == 7 and result.attributes == ["gender", "race"]
    assert samples[0].attributes == {"gender": "female", "race": "black"}
    assert samples[0].concept == "nurse" and samples[5].concept == "software developer"
    assert samples[0].counterfactual_set == "cf-a" and samples[0].id == "cf-a_black_female"
    assert samples[0].target == "A photo of a Black female nurse."
    assert samples[0].load_image().size == (8, 8)
    social_parquet(tmp_path / "bad" / "x.parquet", bad_image_row=True)
    with pytest.raises(DataError, match=r"x.parquet, row 3, column 'image'"):
        list(read_social_counterfactuals(tmp_path / "bad").splits["test"])
    skipping = read_social_counterfactuals(tmp_path / "bad", skip_bad=True)
    assert len(list(skipping.splits["test"])) == 6 and skipping.skipped == 1


def test_fairface_splits_and_normalised_classes(tmp_path):
    result = read_fairface(fairface(tmp_path))
    assert sorted(result.splits) == ["train", "val"]
    train = result.splits["train"]
    assert train[0].attributes == {"age": "20-29", "gender": "male", "race": "east_asian"}
    assert train[1].attributes == {"age": "70+", "gender": "female", "race": "latino_hispanic"}
    assert result.splits["val"][0].id == "val_1" and train[0].meta["service_test"] == "True"
    write_image(tmp_path / "val" / "2.jpg")
    (tmp_path / "fairface_label_val.csv").write_text(
        "file,age,gender,race,service_test\nval/2.jpg,3-9,Other,Black,True\n"
    )
    with pytest.raises(DataError, match=r"fairface_label_val.csv, row 1, column 'gender'"):
        read_fairface(tmp_path)


def test_registry_matches_cli_formats():
    from fairvlm.commands.data import FORMATS

    assert set(FORMATS) == set(READERS)


def test_ham10000_missing_image_names_the_id_and_the_folder(tmp_path):
    ham10000(tmp_path)
    (tmp_path / "HAM10000_images_part_2" / "ISIC_0000002.jpg").unlink()
    with pytest.raises(DataError) as err:
        read_ham10000(tmp_path)
    msg = str(err.value)
    assert "row 2, column 'image_id'" in msg and "None" not in msg
    assert "no ISIC_0000002.jpg or .jpeg anywhere under" in msg and str(tmp_path) in msg
    skipped = read_ham10000(tmp_path, skip_bad=True).metadata["skipped"]
    assert skipped["count"] == 1
    assert skipped["by_reason"] == {"image_id: image not found": 1}


def test_fitzpatrick_missing_image_names_the_id_the_folder_and_the_url(tmp_path):
    fitz = tmp_path / "fitz"
    fitzpatrick(fitz)
    md5 = f"{2:032x}"
    (fitz / "images" / f"{md5}.jpg").unlink()
    with pytest.raises(DataError) as err:
        read_fitzpatrick17k(fitz)
    msg = str(err.value)
    assert "row 3, column 'md5hash'" in msg and "None" not in msg
    assert f"no {md5}.jpg, .jpeg or .png anywhere under {str(fitz)!r}" in msg
    assert "download it from https://example.org/2.jpg" in msg
