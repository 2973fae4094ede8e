"""The shipped quick demo, end to end (slow: each run takes about a minute on 2 cores).

- two quick demos with the same seed write identical metrics.json files;
- a demo killed in the middle and rerun finishes without redoing finished stages (and
  ends with the same metrics as the uninterrupted run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairvlm.experiment.stages import DONE_FILE

pytestmark = pytest.mark.slow


def _quick_demo(out: Path):
    from fairvlm.experiment import run_experiment
    from fairvlm.experiment.demo import demo_experiment_path

    with demo_experiment_path(quick=True) as path:
        return run_experiment(path, out, echo=False, report=False)


def _metrics_files(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("metrics.json"))
    }


def _done_tokens(run_dir: Path) -> dict[str, str]:
    return {
        str(p.parent.relative_to(run_dir)): json.loads(p.read_text())["token"]
        for p in run_dir.rglob(DONE_FILE)
    }


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_a")
    result = _quick_demo(out)
    assert not result.cached and result.ran
    return out, result


def test_quick_demo_covers_both_benchmarks(clean_run):
    out, result = clean_run
    summary = json.loads((out / "summary.json").read_text())
    studies = {s["name"]: s for s in summary["studies"]}
    assert set(studies) == {"clinical", "social"}
    assert len(studies["clinical"]["rows"]) >= 3 and len(studies["social"]["rows"]) >= 3
    kinds = {c["kind"] for c in studies["social"]["columns"]}
    assert {"utility", "skew", "mention"} <= kinds
    assert {"utility", "gap", "es"} <= {c["kind"] for c in studies["clinical"]["columns"]}


def test_two_quick_demos_give_identical_metrics(clean_run, tmp_path):
    first, _ = clean_run
    _quick_demo(tmp_path)
    a, b = _metrics_files(first), _metrics_files(tmp_path)
    assert len(a) >= 6 and a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_killed_demo_resumes_without_redoing_finished_stages(clean_run, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairvlm", "demo", "--quick", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while len(_done_tokens(out)) < 4 and proc.poll() is None:
            assert time.monotonic() < deadline, "the demo made no progress"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this demo dies
        proc.wait()
    before = _done_tokens(out)
    total = len(clean_run[1].stages)
    assert 4 <= len(before) < total, "kill the demo while stages are left"

    resumed = _quick_demo(out)
    assert set(resumed.cached) >= set(before)
    assert set(resumed.ran) == {r.stage.id for r in resumed.stages} - set(before)
    after = _done_tokens(out)
    assert {k: after[k] for k in before} == before  # finished stages were not redone
    assert _metrics_files(out) == _metrics_files(clean_run[0])
