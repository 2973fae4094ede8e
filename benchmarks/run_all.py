"""Run every benchmark script of this folder, each in its own process, and print one
table of their ratios.

Each script prints ``ratio=<number>`` as its last line; its goal is read from its
docstring (``Goal: ratio <= 1.05`` / ``goal >= 5x``). A script that fails or prints no
ratio is reported as such; the exit status is 1 when any did.

    python benchmarks/run_all.py [--only NAME ...] [--timeout 600]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATIO = re.compile(r"^ratio=([-+0-9.eE]+|nan|inf)\s*$", re.MULTILINE)
GOAL = re.compile(r"goal:?\s*(?:ratio\s*)?(<=|>=)\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


def scripts(only: list[str] | None = None) -> list[Path]:
    """The benchmark scripts (every ``*.py`` here but this one and the helpers named
    ``_*.py``), optionally filtered."""
    found = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    if only:
        found = [p for p in found if any(o in p.stem for o in only)]
    return found


def goal_of(path: Path) -> tuple[str, float] | None:
    """``("<=", 1.05)`` from the script's text, or None."""
    m = GOAL.search(path.read_text(encoding="utf-8"))
    return (m.group(1), float(m.group(2))) if m else None


def run_one(path: Path, timeout: float) -> dict:
    """Run a script; its ratio (last ``ratio=`` line), seconds and status."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"ratio": None, "seconds": timeout, "status": f"timeout {timeout:.0f}s"}
    seconds = time.perf_counter() - start
    ratios = RATIO.findall(proc.stdout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return {
            "ratio": None,
            "seconds": seconds,
            "status": f"exit {proc.returncode}: {tail[0][:60]}",
        }
    if not ratios:
        return {"ratio": None, "seconds": seconds, "status": "no ratio= line"}
    return {"ratio": float(ratios[-1]), "seconds": seconds, "status": "ok"}


def verdict(ratio: float | None, goal: tuple[str, float] | None) -> str:
    """``met`` / ``missed`` / ``-``."""
    if ratio is None or goal is None:
        return "-"
    op, value = goal
    return "met" if (ratio <= value if op == "<=" else ratio >= value) else "missed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only scripts whose name contains these")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per script")
    args = parser.parse_args(argv)
    rows = []
    for path in scripts(args.only):
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        res = run_one(path, args.timeout)
        goal = goal_of(path)
        rows.append(
            (
                path.stem,
                "-" if res["ratio"] is None else f"{res['ratio']:.3f}",
                f"{goal[0]} {goal[1]:g}" if goal else "-",
                verdict(res["ratio"], goal),
                f"{res['seconds']:.1f}",
                res["status"],
            )
        )
    header = ("benchmark", "ratio", "goal", "verdict", "seconds", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return 1 if any(r[5] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
