"""Bad input ends in one line that names the file or argument and the fix, exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from audit_support import audit_samples

from fairvlm.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from fairvlm.data import save_dataset

    root = tmp_path_factory.mktemp("errors")
    return str(save_dataset({"test": audit_samples(2, tasks=["vqa"])}, root / "d"))


def _one_line_error(capsys, *needles):
    """The error line (stderr's last; progress bars may come before it)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    line = err.splitlines()[-1]
    assert line.startswith("fairvlm ") and ": error: " in line, err
    for needle in needles:
        assert needle in line, err
    return line


@pytest.mark.parametrize(
    ("text", "needle"),
    [("lr: [1\nsteps: 2\n", "not valid YAML"), ("- 1\n- 2\n", "must be a mapping")],
)
@pytest.mark.parametrize("command", ["audit", "train"])
def test_config_yaml_with_a_syntax_error_or_a_list(
    command, text, needle, dataset, tiny_llava, tmp_path, capsys
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    argv = [command, str(tiny_llava), dataset, "--out", str(tmp_path / "o"), "--config", str(bad)]
    if command == "train":
        argv += ["--method", "lora"]
    assert main(argv) == 2
    err = _one_line_error(capsys, str(bad), needle)
    if needle == "not valid YAML":
        assert f"{bad}:2" in err or f"{bad}:1" in err  # the line of the problem


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "M", "D", "--method", "lora", "--out", "o", "--set", "lr=[1"],
        ["steer", "build", "M", "D", "--method", "contrastive", "--out", "v.st", "--set", "x=[1"],
        ["pretrain", "D", "o", "--set", "steps=[1"],
    ],
)
def test_set_value_that_is_not_yaml(argv, dataset, tiny_llava, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = {"M": str(tiny_llava), "D": dataset}
    assert main([real.get(a, a) for a in argv]) == 2
    _one_line_error(capsys, "--set", "[1", "not a YAML value")


def test_metrics_of_a_file_that_is_not_records(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    assert main(["metrics", str(bad)]) == 2
    _one_line_error(capsys, str(bad), "cannot be read as audit records")


def test_closed_pipe_ends_quietly(tmp_path):
    """``fairvlm models | head -1``: no BrokenPipeError traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        f"{sys.executable} -m fairvlm models | head -c 1",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_one_sample_audit_writes_metrics_with_undefined_gaps(tiny_llava, dataset, tmp_path):
    """``--limit 1``: a gap over one sample is undefined (NaN, with a note), not a crash."""
    import json

    out = tmp_path / "one"
    argv = ["audit", str(tiny_llava), dataset, "--tasks", "vqa", "--limit", "1"]
    assert main([*argv, "--n-boot", "10", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert "fewer than 2 samples with a known value" in text


def _copy_model(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_or_pickled_weights_are_refused_in_one_line(tiny_llava, dataset, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    corrupt = _copy_model(tiny_llava, tmp_path / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    audit = ["audit", "--tasks", "vqa", "--limit", "1", "--no-progress"]
    assert main([*audit, str(corrupt), dataset, "--out", str(tmp_path / "a1")]) == 2
    _one_line_error(capsys, str(corrupt), "corrupt or truncated")

    pickled = _copy_model(tiny_llava, tmp_path / "pickled")
    state = load_file(pickled / "model.safetensors")
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")
    assert main([*audit, str(pickled), dataset, "--out", str(tmp_path / "a2")]) == 2
    err = _one_line_error(capsys, "pytorch_model.bin", "safetensors only", "save_pretrained")
    assert "weights_only=False" not in err


_UNWRITABLE = "/sys/fairvlm-cannot-write/out"  # EPERM even for root (sysfs)


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs")
def test_unwritable_output_is_one_line_before_any_work(tiny_llava, dataset, capsys):
    runs = [
        ["tiny", "llava", _UNWRITABLE],
        ["data", "synth", "clinical", _UNWRITABLE, "--set", "n_train=4"],
        ["audit", str(tiny_llava), dataset, "--tasks", "vqa", "--out", _UNWRITABLE],
        ["steer", "build", str(tiny_llava), dataset, "--method", "contrastive",
         "--out", _UNWRITABLE + "/v.safetensors"],
    ]  # fmt: skip
    for argv in runs:
        assert main(argv) == 2, argv
        _one_line_error(capsys, "/sys/fairvlm-cannot-write", "writable")


def test_truncated_stored_image_names_the_sample(tiny_llava, tmp_path, capsys):
    import dataclasses

    import numpy as np
    from PIL import Image

    from fairvlm.data import save_dataset

    samples = audit_samples(4, tasks=["vqa"])
    png = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[: png.stat().st_size * 2 // 3])  # header intact
    samples[1] = dataclasses.replace(samples[1], image=str(png))
    data = save_dataset({"test": samples}, tmp_path / "d")
    argv = ["audit", str(tiny_llava), str(data), "--tasks", "vqa", "--no-progress"]
    assert main([*argv, "--n-boot", "10", "--out", str(tmp_path / "a")]) == 2
    _one_line_error(capsys, f"sample {samples[1].id!r}", "cannot be read", "--skip-bad")

    # --skip-bad: the sample is recorded as failed, the others are audited and scored
    assert main([*argv, "--n-boot", "10", "--out", str(tmp_path / "a"), "--skip-bad"]) == 0
    assert "4 records, 1 failed" in capsys.readouterr().out
    records = pd.read_parquet(tmp_path / "a" / "records.parquet").set_index("sample_id")
    assert records["error"].notna().tolist() == [False, True, False, False]
    assert "cannot be read" in records.loc[samples[1].id, "error"]
    assert records["output"].notna().sum() == 3
    vqa = json.loads((tmp_path / "a" / "metrics.json").read_text())["tasks"]["vqa"]
    assert (vqa["n"], vqa["n_failed"]) == (3, 1)
    assert vqa["metrics"]["accuracy"]["n"] == 3


def test_jsonl_image_outside_the_source_folder_needs_consent(tmp_path, capsys):
    import json

    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "outside.png")
    src = tmp_path / "src"
    src.mkdir()
    record = {"id": "s0", "image": "../outside.png", "prompt": "?", "target": "yes"}
    (src / "data.jsonl").write_text(json.dumps(record) + "\n")
    out = tmp_path / "d"
    assert main(["data", "import", "jsonl", str(src), str(out)]) == 2
    _one_line_error(capsys, "leaves the source folder", "--allow-outside-paths")
    assert not out.exists()
    assert main(["data", "import", "jsonl", str(src), str(out), "--allow-outside-paths"]) == 0
    assert main(["data", "import", "ham10000", str(src), str(out), "--allow-outside-paths"]) == 2


def test_prompt_longer_than_the_context_fails_before_the_forward_pass(tiny_vlm, make_samples):
    import dataclasses

    from fairvlm.errors import DataError

    vlm = tiny_vlm("llava")
    sample = make_samples(1)[0]
    long = dataclasses.replace(sample, id="long", prompt="word " * (vlm.max_length + 10))
    with pytest.raises(DataError, match=rf"sample 'long'.*context of {vlm.max_length}"):
        vlm.generate([sample, long], max_new_tokens=2)
    with pytest.raises(DataError, match="sample 'long'"):
        vlm.score_options([long], ["yes", "no"])
    assert len(vlm.generate([sample], max_new_tokens=2)) == 1


def test_decompression_bomb_on_import_names_the_file(tmp_path, capsys):
    import json

    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    # 14000 x 14000 of one colour: a few kB of PNG, ~200 M pixels once decoded
    Image.new("1", (14000, 14000)).save(src / "bomb.png", optimize=True)
    assert (src / "bomb.png").stat().st_size < 100_000
    record = {"id": "s0", "image": "bomb.png", "prompt": "?", "target": "yes"}
    (src / "data.jsonl").write_text(json.dumps(record) + "\n")
    assert main(["data", "import", "jsonl", str(src), str(tmp_path / "d")]) == 2
    _one_line_error(capsys, "bomb.png", "decompression bomb")


@pytest.mark.parametrize(
    ("family", "largest"),
    [("llava", 32 * 32), ("llava_next", 64 * 64), ("qwen2_vl", 4096), ("idefics3", 64 * 64),
     ("paligemma", 32 * 32)],
)  # fmt: skip
def test_images_are_reduced_on_load_to_a_bound_of_the_processors_input(tiny_vlm, family, largest):
    """Memory must not grow with the source resolution (benchmarks/image_memory.py)."""
    from PIL import Image

    from fairvlm.data.schema import Sample

    vlm = tiny_vlm(family)
    assert vlm.max_image_pixels == 4 * largest
    huge = Sample(id="huge", image=Image.new("RGB", (3000, 1000), "white"), prompt="?")
    w, h = huge.load_image(max_pixels=vlm.max_image_pixels).size
    assert w * h <= vlm.max_image_pixels and abs(w / h - 3.0) < 0.1  # aspect ratio kept
    small = Sample(id="small", image=Image.new("RGB", (40, 20), "white"), prompt="?")
    assert small.load_image(max_pixels=vlm.max_image_pixels).size == (40, 20)  # untouched
