"""A sharded audit (two CPU processes, gloo, through ``accelerate launch``) writes the
records and metrics of a single-process audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from audit_support import audit_samples

from fairvlm.audit.sharding import launch_command, shard


def test_shards_interleave_and_cover_every_batch_once():
    items = list(range(7))
    parts = [shard(items, SimpleNamespace(process_index=r, num_processes=3)) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]


def test_launch_command_runs_fairvlm_under_accelerate():
    cmd = launch_command(2, ["audit", "M", "D", "--out", "O"])
    assert cmd[1:5] == ["launch", "--multi_gpu", "--num_processes", "2"]
    assert cmd[-7:] == ["-m", "fairvlm", "audit", "M", "D", "--out", "O"]


@pytest.mark.slow
def test_two_processes_write_the_records_and_metrics_of_one(tiny_llava, tmp_path):
    from fairvlm.data import save_dataset

    data = save_dataset({"test": audit_samples(5)}, tmp_path / "data")
    common = ["--batch-size", "2", "--max-new-tokens", "4", "--n-boot", "20", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    outs = {}
    for n in (1, 2):
        outs[n] = tmp_path / f"p{n}"
        argv = [sys.executable, "-m", "fairvlm", "audit", str(tiny_llava), str(data)]
        argv += ["--out", str(outs[n]), "--num-processes", str(n), *common]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "(25 records)" in proc.stdout  # printed once, by the main process
        assert proc.stdout.count("wrote ") == 1
    one, two = (pd.read_parquet(outs[n] / "records.parquet") for n in (1, 2))
    pd.testing.assert_frame_equal(one.drop(columns="latency_s"), two.drop(columns="latency_s"))
    metrics = [json.loads((outs[n] / "metrics.json").read_text()) for n in (1, 2)]
    assert metrics[0] == metrics[1]
    assert not (outs[2] / "records.parts").exists()
    config = yaml.safe_load((outs[2] / "config.yaml").read_text())
    assert config["processes"] == 2
