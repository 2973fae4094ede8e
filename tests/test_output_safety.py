"""No writer deletes or writes beside a user's files, and no name escapes its folder."""

from __future__ import annotations

import textwrap

import pytest
from audit_support import audit_samples

from fairvlm.atomic import OUTPUT_MARKER, check_name
from fairvlm.cli import main
from fairvlm.errors import ConfigError

FAST = ["--batch-size", "4", "--max-new-tokens", "4", "--n-boot", "10", "--no-progress"]


def _user_folder(path):
    """A user's folder with a file in it; returns ``{file: bytes}`` to compare later."""
    path.mkdir(parents=True)
    (path / "thesis.tex").write_bytes(b"\\chapter{Results}\n\x00\xff binary tail")
    (path / "notes").mkdir()
    (path / "notes" / "a.txt").write_text("keep me")
    return _contents(path)


def _contents(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from fairvlm.data import save_dataset

    return save_dataset(
        {"test": audit_samples(4, tasks=["vqa"])}, tmp_path_factory.mktemp("d") / "d"
    )


@pytest.mark.parametrize("name", ["", "  ", ".", "..", "../x", "a/b", ".hidden", "a\\b", "x\0"])
def test_names_that_become_paths_are_plain_components(name):
    with pytest.raises(ConfigError, match="becomes a folder name"):
        check_name(name, "name")
    assert check_name("lora-r8_v2+steer", "name") == "lora-r8_v2+steer"


def test_tiny_keeps_a_users_folder_and_a_dataset(tmp_path, dataset, capsys):
    user = tmp_path / "mine"
    before = _user_folder(user)
    assert main(["tiny", "llava", str(user)]) == 2
    err = capsys.readouterr().err
    assert "not a fairvlm output folder" in err and "--overwrite" in err and str(user) in err
    assert _contents(user) == before
    data_before = _contents(dataset)
    assert main(["tiny", "llava", str(dataset)]) == 2
    assert _contents(dataset) == data_before


def test_tiny_replaces_its_own_model_folder_and_overwrite_replaces_any(tmp_path):
    out = tmp_path / "m"
    assert main(["tiny", "llava", str(out)]) == 0
    assert (out / OUTPUT_MARKER).is_file() and (out / "config.json").is_file()
    assert main(["tiny", "llava", str(out), "--hidden-size", "16", "--num-heads", "2"]) == 0
    assert '"hidden_size": 16' in (out / "config.json").read_text()
    user = tmp_path / "mine"
    _user_folder(user)
    assert main(["tiny", "llava", str(user), "--overwrite"]) == 0
    assert not (user / "thesis.tex").exists() and (user / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_experiment_method_names_cannot_leave_the_run_folder(tmp_path):
    from fairvlm.experiment.config import load_experiment

    victim = tmp_path / "victim"
    before = _user_folder(victim)
    path = tmp_path / "exp.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            studies:
              clinical:
                data: {synth: clinical}
                methods:
                  - lora
                  - {method: lora, name: "../../../victim"}
            """
        )
    )
    with pytest.raises(ConfigError, match=r"exp.yaml:6: studies.clinical.methods\[1\].name"):
        load_experiment(path)
    assert main(["run", str(path), "--out", str(tmp_path / "runs" / "a")]) == 2
    assert _contents(victim) == before


def test_audit_refuses_a_users_folder_and_a_dataset(tiny_llava, dataset, tmp_path, capsys):
    argv = ["audit", str(tiny_llava), str(dataset), "--tasks", "vqa", *FAST]
    user = tmp_path / "mine"
    before = _user_folder(user)
    assert main([*argv, "--out", str(user)]) == 2
    assert "not a fairvlm output folder" in capsys.readouterr().err
    assert _contents(user) == before
    data_before = _contents(dataset)
    assert main([*argv, "--out", str(dataset)]) == 2
    assert _contents(dataset) == data_before
    out = tmp_path / "audit"
    assert main([*argv, "--out", str(out)]) == 0
    assert main([*argv, "--out", str(out)]) == 0  # its own folder: resumed
    assert main(["tiny", "llava", str(out)]) == 2  # an audit folder is not a model folder
    assert (out / "records.parquet").is_file()


def test_a_second_audit_into_a_locked_folder_is_refused_and_a_dead_lock_taken_over(
    tiny_llava, dataset, tmp_path, capsys
):
    import signal
    import subprocess
    import sys

    import pandas as pd

    from fairvlm.atomic import LOCK_FILE

    out = tmp_path / "audit"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from fairvlm.atomic import output_lock\n"
         "with output_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
         str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["audit", str(tiny_llava), str(dataset), "--tasks", "vqa", *FAST, "--out", str(out)]
        before = _contents(out)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"in use by pid {holder.pid}" in err and LOCK_FILE in err
        assert _contents(out) == before  # the refused run wrote and deleted nothing
        holder.send_signal(signal.SIGKILL)  # dies holding the lock
        holder.wait(timeout=10)
        assert (out / LOCK_FILE).is_file()
        assert main(argv) == 0
        assert (
            f"taking over the lock {out / LOCK_FILE} of pid {holder.pid}" in capsys.readouterr().err
        )
        assert not (out / LOCK_FILE).exists()
        assert len(pd.read_parquet(out / "records.parquet")) == 4
    finally:
        if holder.poll() is None:
            holder.kill()


def _lora(base_dir, out, seed):
    import torch
    from peft import LoraConfig, get_peft_model

    from fairvlm.models import load_vlm

    model = get_peft_model(
        load_vlm(base_dir).model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])
    )
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    model.save_pretrained(out)


def test_a_resumed_audit_is_identified_by_content_not_paths(tiny_llava, tmp_path, capsys):
    """The same inputs under other paths resume; data regenerated, adapter retrained, a
    config field changed, each under the same paths: each refusal names what changed, and
    --overwrite recomputes."""
    from fairvlm.data import save_dataset

    data, adapter, out = tmp_path / "d", tmp_path / "lora", tmp_path / "audit"
    save_dataset({"test": audit_samples(4, tasks=["vqa"], seed=0)}, data)
    _lora(tiny_llava, adapter, seed=0)
    argv = ["audit", str(tiny_llava), str(data), "--tasks", "vqa", "--adapter", str(adapter)]
    argv += [*FAST, "--out", str(out)]
    assert main(argv) == 0
    assert main(argv) == 0  # unchanged inputs: resumed, and said so
    assert "resuming: 4 records already in" in capsys.readouterr().err
    # the same model, adapter and data under other spellings of their paths: the same audit
    (tmp_path / "model-link").symlink_to(tiny_llava, target_is_directory=True)
    moved = ["audit", str(tmp_path / "model-link"), str(tmp_path / "." / "d"), "--tasks", "vqa"]
    moved += ["--adapter", str(tmp_path / ".." / tmp_path.name / "lora"), *FAST, "--out", str(out)]
    assert main(moved) == 0
    assert "resuming: 4 records already in" in capsys.readouterr().err

    save_dataset({"test": audit_samples(4, tasks=["vqa"], seed=1)}, data)
    assert main(argv) == 2
    assert "the data changed (regenerated or edited at the same path?) (tasks vqa)" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--overwrite"]) == 0

    _lora(tiny_llava, adapter, seed=1)
    assert main(argv) == 2
    assert "the adapter's weights changed under the same path" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0

    assert main([*argv, "--closed-mode", "score"]) == 2  # a field the vqa records depend on
    assert "'closed_mode': 'both'" in capsys.readouterr().err


def test_run_keeps_a_users_folder(tmp_path, capsys):
    """A run replaces stale stage folders: it runs only in its own folder, or an empty one."""
    user = tmp_path / "home"
    _user_folder(user)
    (user / "clinical").mkdir()  # a folder named like a study
    (user / "clinical" / "data").write_text("precious")
    before = _contents(user)
    exp = tmp_path / "exp.yaml"
    exp.write_text("studies:\n  clinical:\n    data: {synth: clinical}\n    methods: [lora]\n")
    assert main(["run", str(exp), "--out", str(user)]) == 2
    assert "not a fairvlm output folder" in capsys.readouterr().err
    assert _contents(user) == before


def test_a_run_folder_from_before_the_marker_still_resumes(tmp_path):
    from fairvlm.experiment.runner import _unmarked_run

    run = tmp_path / "run"
    (run / "clinical" / "data").mkdir(parents=True)
    (run / "experiment.yaml").write_text("name: x\n")
    assert not _unmarked_run(run)
    (run / "clinical" / "data" / "stage_config.json").write_text("{}")
    assert _unmarked_run(run)


def test_steer_build_keeps_a_file_that_is_not_a_vector(tiny_llava, dataset, tmp_path, capsys):
    import torch

    from fairvlm.mitigation.steering import SteeringVector, is_vector_file

    user = tmp_path / "weights.safetensors"
    user.write_bytes(b"a user's file, not a vector")
    argv = ["steer", "build", str(tiny_llava), str(dataset), "--method", "contrastive"]
    assert main([*argv, "--out", str(user)]) == 2
    assert "not a fairvlm steering vector" in capsys.readouterr().err
    assert user.read_bytes() == b"a user's file, not a vector"
    vec = tmp_path / "v.safetensors"
    SteeringVector({0: torch.ones(32)}, num_layers=2).save(vec)
    assert is_vector_file(vec) and not is_vector_file(user)


def test_a_second_run_into_a_locked_run_folder_is_refused(tmp_path, capsys):
    import os

    from fairvlm.atomic import output_lock

    exp = tmp_path / "exp.yaml"
    exp.write_text("studies:\n  clinical:\n    data: {synth: clinical}\n    methods: [lora]\n")
    run = tmp_path / "run"
    with output_lock(run):  # a run in progress (this process stands in for it)
        assert main(["run", str(exp), "--out", str(run)]) == 2
    assert f"in use by pid {os.getpid()}" in capsys.readouterr().err
    assert [p.name for p in run.iterdir()] == []  # the refused run wrote nothing


def test_train_keeps_a_users_folder_and_takes_the_folders_lock(
    tiny_llava, dataset, tmp_path, capsys
):
    import os

    from fairvlm.atomic import output_lock

    argv = ["train", str(tiny_llava), str(dataset), "--method", "lora", "--set", "split=test"]
    user = tmp_path / "mine"
    before = _user_folder(user)
    for extra in ([], ["--resume"]):
        assert main([*argv, "--out", str(user), *extra]) == 2
        assert _contents(user) == before
    assert "not a fairvlm train folder" in capsys.readouterr().err
    out = tmp_path / "adapter"
    with output_lock(out):  # a training run in progress (this process stands in for it)
        assert main([*argv, "--set", "steps=1", "--out", str(out)]) == 2
    assert f"in use by pid {os.getpid()}" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == []


def test_steer_sweep_keeps_a_users_folder(tiny_llava, dataset, tmp_path, capsys):
    import torch

    from fairvlm.mitigation.steering import SteeringVector

    vec = tmp_path / "v.safetensors"
    SteeringVector({0: torch.ones(32)}, num_layers=2).save(vec)
    user = tmp_path / "mine"
    before = _user_folder(user)
    argv = ["steer", "sweep", str(tiny_llava), str(dataset), "--vector", str(vec), "--tasks",
            "vqa", "--out"]  # fmt: skip
    assert main([*argv, str(user)]) == 2
    assert "not a fairvlm sweep folder" in capsys.readouterr().err
    assert _contents(user) == before
