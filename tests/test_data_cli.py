"""`fairvlm data import / inspect / export / synth` end to end on tiny files."""

from __future__ import annotations

import json

import pytest
from data_support import ham10000, social_parquet

from fairvlm.cli import main
from fairvlm.data import dataset_metadata, load_samples


def test_import_skip_bad_counts_rows_in_output_and_metadata(tmp_path, capsys):
    bad = {
        "lesion_id": "H9",
        "image_id": "ISIC_0000009",
        "dx": "zzz",
        "dx_type": "histo",
        "age": "",
        "sex": "male",
        "localization": "back",
    }
    ham10000(tmp_path / "src", [bad])
    out = tmp_path / "ds"
    assert main(["data", "import", "ham10000", str(tmp_path / "src"), str(out)]) == 2
    err = capsys.readouterr().err
    assert "row 5, column 'dx'" in err and not out.exists()
    rc = main(
        [
            "data",
            "import",
            "ham10000",
            str(tmp_path / "src"),
            str(out),
            "--skip-bad",
            "--option",
            "split=train",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "imported 4 samples {'train': 4}" in printed and "skipped 1 bad rows" in printed
    meta = dataset_metadata(out)
    assert meta["skipped"]["count"] == 1 and meta["skipped"]["rows"][0]["column"] == "dx"
    assert meta["attributes"]["age_group"] == ["<45", "45-65", ">65"]
    assert meta["unknown_counts"]["train"] == {"age_group": 1, "sex": 1}
    assert meta["normalization"]["sex"]["raw_to_normalised"]["unknown"] is None
    assert len(load_samples(out, "train")) == 4


def test_interrupted_streaming_import_leaves_no_dataset(tmp_path, capsys):
    social_parquet(tmp_path / "src" / "a.parquet", bad_image_row=True)
    out = tmp_path / "ds"
    assert main(["data", "import", "social_counterfactuals", str(tmp_path / "src"), str(out)]) == 2
    assert "row 3, column 'image'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no OUT, no temp folder


def test_inspect_reports_incomplete_set_and_tables(tmp_path, capsys):
    social_parquet(tmp_path / "src" / "a.parquet")
    out = tmp_path / "ds"
    assert main(["data", "import", "social_counterfactuals", str(tmp_path / "src"), str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    test = summary["splits"]["test"]
    assert test["n"] == 7
    assert test["attributes"]["race"] == {"distribution": {"asian": 3, "black": 4}, "unknown": 0}
    assert test["counterfactual_sets"]["complete"] == ["cf-a"]
    assert test["counterfactual_sets"]["incomplete"]["cf-b"]["missing"] == [
        {"gender": "male", "race": "asian"}
    ]
    assert test["concept_by_attribute"]["gender"]["software developer"] == {"female": 2, "male": 1}
    assert main(["data", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "incomplete cf-b" in text and "unknown=0" in text


def test_export_jsonl_from_cli(tmp_path, capsys):
    ham10000(tmp_path / "src")
    main(["data", "import", "ham10000", str(tmp_path / "src"), str(tmp_path / "ds")])
    assert main(["data", "export", "jsonl", str(tmp_path / "ds"), str(tmp_path / "j")]) == 0
    lines = (tmp_path / "j" / "data.jsonl").read_text().splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert first["image"] == "HAM10000_images_part_1/ISIC_0000001.jpg"
    assert (tmp_path / "j" / first["image"]).read_bytes() == (
        tmp_path / "src" / first["image"]
    ).read_bytes()


def test_bad_reader_option(tmp_path, capsys):
    ham10000(tmp_path / "src")
    rc = main(
        [
            "data",
            "import",
            "ham10000",
            str(tmp_path / "src"),
            str(tmp_path / "ds"),
            "--option",
            "colour=red",
        ]
    )
    assert rc == 2 and "colour=red" in capsys.readouterr().err


def test_synth_passes_overrides(monkeypatch, tmp_path, capsys):
    import fairvlm.synth

    seen = {}

    def fake(bench, out, overrides=None):
        seen.update(bench=bench, out=out, overrides=overrides)
        return tmp_path / "x"

    monkeypatch.setattr(fairvlm.synth, "synthesize", fake)
    assert (
        main(["data", "synth", "social", str(tmp_path / "x"), "--set", "seed=3", "--set", "n=2"])
        == 0
    )
    assert seen == {"bench": "social", "out": str(tmp_path / "x"), "overrides": ["seed=3", "n=2"]}


@pytest.mark.parametrize("argv", [["data"], ["data", "import", "nope", "a", "b"]])
def test_usage_errors(argv):
    with pytest.raises(SystemExit):
        main(argv)
