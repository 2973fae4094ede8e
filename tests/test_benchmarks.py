"""The audit benchmarks run end to end at a tiny geometry and print their figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = ["--hidden", "32", "--layers", "1", "--image-size", "32", "--patch-size", "8"]


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *TINY, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_option_scoring_prints_its_figures_with_ratio_last():
    out = _run("option_scoring.py", "--n", "2", "--ks", "1,7", "--repeats", "1")
    assert re.search(r"^K=7 .* speed-up", out, re.M)
    diff = float(re.search(r"^max_abs_diff=(\S+)$", out, re.M).group(1))
    assert diff < 1e-4  # at this size float32 rounding stays small
    assert "shared - independent in float64" in out
    assert re.search(r"ratio=[0-9.]+\s*\Z", out)


def test_audit_throughput_prints_where_the_time_goes_with_ratio_last():
    out = _run("audit_throughput.py", "--n", "2")
    for part in ("model forward passes", "metrics (bootstrap)", "collation + image processing"):
        assert part in out
    ratio = float(re.search(r"ratio=([0-9.]+)\s*\Z", out).group(1))
    assert 0 < ratio < 10


def test_run_all_skips_the_helper_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    found = [p.name for p in run_all.scripts()]
    assert "_llava15.py" not in found and "audit_throughput.py" in found
