"""``fairvlm steer build|sweep`` and ``fairvlm audit --steer`` on a tiny model and dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from fairvlm.cli import main
from fairvlm.data.schema import Sample
from fairvlm.mitigation.steering import SteeringVector


@pytest.fixture(scope="module")
def social_dir(tmp_path_factory):
    from fairvlm.data.storage import save_dataset

    rng = np.random.default_rng(0)
    concepts = ("doctor", "chef")

    def sample(split, i, task):
        gender = ("man", "woman")[i % 2]
        concept = concepts[(i // 2) % 2]
        fields = {
            "describe": dict(
                prompt="Describe the person.",
                target=f"a {gender} {concept}" if i % 3 else f"a {concept}",
            ),
            "concept": dict(prompt="What is this person?", target=concept, options=list(concepts)),
        }[task]
        return Sample(
            id=f"{split}-{task}-{i}",
            image=Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)),
            task=task,
            concept=concept,
            attributes={"gender": "male" if gender == "man" else "female"},
            **fields,
        )

    splits = {
        split: [sample(split, i, t) for t in ("describe", "concept") for i in range(n)]
        for split, n in (("train", 6), ("test", 4))
    }
    return save_dataset(splits, tmp_path_factory.mktemp("steer") / "social")


def test_build_then_sweep(tiny_llava, social_dir, tmp_path, capsys):
    vec_path = tmp_path / "vec.safetensors"
    rc = main(
        [
            "steer",
            "build",
            str(tiny_llava),
            str(social_dir),
            "--method",
            "contrastive",
            "--layers",
            "0,1",
            "--set",
            "position=answer_mean",
            "--out",
            str(vec_path),
            "--no-progress",
        ]
    )
    assert rc == 0
    vec = SteeringVector.load(vec_path)
    assert vec.layers == [0, 1] and vec.config["position"] == "answer_mean"
    assert vec.config["n_biased"] == 4 and vec.config["n_neutral"] == 2  # i % 3 != 0 mention

    out = tmp_path / "sweep"
    rc = main(
        [
            "steer",
            "sweep",
            str(tiny_llava),
            str(social_dir),
            "--vector",
            str(vec_path),
            "--operator",
            "add",
            "--scales",
            "0,-40",
            "--layers",
            "0,0+1",
            "--n-boot",
            "20",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    table = pd.read_csv(out / "table.csv")
    assert table["run"].tolist() == ["base", "L0_S-40", "L0+1_S-40"]
    assert {"describe.mention_rate", "concept.accuracy", "concept.accuracy.delta"} <= set(table)
    assert table.loc[0, "concept.accuracy.delta"] == 0.0
    base = pd.read_parquet(out / "runs/base/records.parquet")
    steered = pd.read_parquet(out / "runs/L0+1_S-40/records.parquet")
    assert (base["output"] != steered["output"]).any()
    meta = yaml.safe_load((out / "sweep.yaml").read_text())
    assert meta["vector"]["builder"] == "contrastive" and meta["operator"] == "add"
    assert "| run | layers | scale |" in capsys.readouterr().out


def test_audit_steer_scale_zero_equals_unsteered(tiny_llava, social_dir, tmp_path):
    vec = SteeringVector({1: torch.ones(32)}, num_layers=2)
    vec.save(tmp_path / "v.safetensors")
    common = [
        str(tiny_llava),
        str(social_dir),
        "--tasks",
        "describe",
        "--n-boot",
        "10",
        "--no-progress",
    ]
    assert main(["audit", *common, "--out", str(tmp_path / "a")]) == 0
    assert (
        main(
            [
                "audit",
                *common,
                "--out",
                str(tmp_path / "b"),
                "--steer",
                str(tmp_path / "v.safetensors"),
                "--steer-scale",
                "0",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "audit",
                *common,
                "--out",
                str(tmp_path / "c"),
                "--steer",
                str(tmp_path / "v.safetensors"),
                "--steer-scale",
                "50",
            ]
        )
        == 0
    )
    a, b, c = (pd.read_parquet(tmp_path / d / "records.parquet")["output"].tolist() for d in "abc")
    assert a == b and a != c


def test_cli_bad_input(tiny_llava, social_dir, tmp_path, capsys):
    rc = main(
        [
            "steer",
            "build",
            str(tiny_llava),
            str(social_dir),
            "--method",
            "gradient",
            "--set",
            "words=[]",
            "--out",
            str(tmp_path / "v.safetensors"),
        ]
    )
    assert rc == 2 and "words=[] is not valid" in capsys.readouterr().err
    rc = main(
        [
            "steer",
            "build",
            str(tiny_llava),
            str(social_dir),
            "--method",
            "gradient",
            "--layers",
            "9",
            "--out",
            str(tmp_path / "v.safetensors"),
            "--no-progress",
        ]
    )
    assert rc == 2 and "layer 9 is out of range" in capsys.readouterr().err
    SteeringVector({0: torch.ones(16)}).save(tmp_path / "w.safetensors")
    rc = main(
        [
            "steer",
            "sweep",
            str(tiny_llava),
            str(social_dir),
            "--vector",
            str(tmp_path / "w.safetensors"),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert rc == 2 and "hidden_size=16" in capsys.readouterr().err
    assert not (tmp_path / "s" / "runs").exists()


def test_audit_steer_bad_vector_fails_before_generation(tiny_llava, social_dir, tmp_path, capsys):
    """A vector of another hidden size / a bad operator: exit 2, nothing written."""
    common = [str(tiny_llava), str(social_dir), "--tasks", "describe", "--no-progress"]
    SteeringVector({0: torch.ones(16)}).save(tmp_path / "w.safetensors")
    rc = main(
        ["audit", *common, "--out", str(tmp_path / "a"), "--steer", str(tmp_path / "w.safetensors")]
    )
    assert rc == 2 and "hidden_size=16" in capsys.readouterr().err
    SteeringVector({1: torch.ones(32)}, num_layers=2).save(tmp_path / "v.safetensors")
    rc = main(
        [
            "audit",
            *common,
            "--out",
            str(tmp_path / "b"),
            "--steer",
            str(tmp_path / "v.safetensors"),
            "--steer-operator",
            "mul",
        ]
    )
    assert rc == 2 and "operator='mul'" in capsys.readouterr().err
    for out in ("a", "b"):
        assert not [p for p in (tmp_path / out).rglob("*") if p.is_file()]
