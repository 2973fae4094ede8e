"""The generated CLI reference matches the parsers (rerun scripts/gen_cli.py when not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
