"""``fairvlm audit``: outputs, table, resume through --config, errors before model work."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util

import pandas as pd
import pytest
import yaml
from audit_support import audit_samples

from fairvlm.cli import main

FAST = ["--batch-size", "4", "--max-new-tokens", "4", "--n-boot", "10", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fairvlm.data import save_dataset

    root = tmp_path_factory.mktemp("audit_cli")
    samples = audit_samples(4, tasks=["vqa", "probe"])
    no_targets = [dataclasses.replace(s, target=None) for s in samples]
    return (
        save_dataset({"test": samples}, root / "data"),
        save_dataset({"test": no_targets}, root / "no_targets"),
    )


def test_audit_writes_records_metrics_config_and_prints_a_table(tiny_llava, data, tmp_path, capsys):
    out = tmp_path / "audit"
    argv = ["audit", str(tiny_llava), str(data[0]), "--out", str(out), "--tasks", "vqa,probe"]
    assert main([*argv, *FAST]) == 0
    printed = capsys.readouterr().out
    assert "vqa       accuracy" in printed and "probe     max_skew" in printed
    assert "(8 records)" in printed
    records = pd.read_parquet(out / "records.parquet")
    assert sorted(records["task"].unique()) == ["probe", "vqa"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["audit"]["batch_size"] == 4 and config["audit"]["metrics"]["n_boot"] == 10
    assert config["model"] == str(tiny_llava)

    # the saved config reproduces the audit: nothing is left to compute
    assert main(["audit", str(tiny_llava), str(data[0]), "--out", str(out), "--config",
                 str(out / "config.yaml")]) == 0  # fmt: skip
    again = pd.read_parquet(out / "records.parquet")
    pd.testing.assert_frame_equal(again, records)


def test_missing_targets_fail_before_the_model_is_loaded(data, tmp_path, capsys):
    # the model path does not exist: a data error proves nothing was loaded first
    argv = ["audit", str(tmp_path / "no-model"), str(data[1]), "--out", str(tmp_path / "a")]
    assert main([*argv, "--tasks", "vqa"]) == 2
    err = capsys.readouterr().err
    assert "task 'vqa' needs a target on every sample: 4 of 4" in err
    assert not (tmp_path / "a").exists()


def test_unknown_attribute_flag_is_a_clear_error(data, tmp_path, capsys):
    argv = ["audit", str(tmp_path / "no-model"), str(data[0]), "--out", str(tmp_path / "a")]
    assert main([*argv, "--attributes", "race"]) == 2
    assert "attributes=['race'] is not valid" in capsys.readouterr().err


def test_steer_scale_without_a_vector_is_refused(data, tmp_path, capsys):
    argv = ["audit", "m", str(data[0]), "--out", str(tmp_path / "a"), "--steer-scale", "2"]
    assert main(argv) == 2
    assert "--steer-scale=2.0 is not valid: give --steer VEC too" in capsys.readouterr().err


def test_steer_needs_the_steering_module_or_an_existing_vector(data, tmp_path, capsys):
    vec = tmp_path / "v.safetensors"
    vec.write_bytes(b"")
    argv = ["audit", "m", str(data[0]), "--out", str(tmp_path / "a"), "--steer"]
    assert main([*argv, str(tmp_path / "missing.safetensors")]) == 2
    assert "give an existing .safetensors" in capsys.readouterr().err
    steering = importlib.util.find_spec("fairvlm.mitigation.steering")
    if steering is None or not hasattr(importlib.import_module(steering.name), "SteeringVector"):
        assert main([*argv, str(vec)]) == 2
        assert "--steer needs fairvlm.mitigation.steering" in capsys.readouterr().err
    else:  # the module is there: an empty file is not a vector, and it says so
        assert main([*argv, str(vec)]) == 2  # a clear error, not a traceback
        assert capsys.readouterr().err.startswith("fairvlm audit: error: ")


def test_steer_flags_apply_the_vector_scale_zero_changes_nothing(tiny_llava, data, tmp_path):
    steering = pytest.importorskip("fairvlm.mitigation.steering")
    if not hasattr(steering, "SteeringVector"):
        pytest.skip("fairvlm.mitigation.steering is not complete yet")
    import torch

    vec = tmp_path / "v.safetensors"
    steering.SteeringVector({0: torch.ones(32)}, num_layers=2).save(vec)
    base = ["audit", str(tiny_llava), str(data[0]), "--tasks", "probe", *FAST]
    outs = {}
    for name, extra in (("plain", []), ("zero", ["0"]), ("four", ["4"])):
        outs[name] = tmp_path / name
        steer = ["--steer", str(vec), "--steer-scale", *extra] if extra else []
        assert main([*base, "--out", str(outs[name]), *steer]) == 0
    p = {k: pd.read_parquet(o / "records.parquet")["p_yes"].to_numpy() for k, o in outs.items()}
    assert (p["zero"] == p["plain"]).all()
    assert abs(p["four"] - p["plain"]).max() > 1e-3
