"""Print pyproject.toml's dependency floors as pins (``name==floor``), one per line.

``make test-compat`` installs through these as pip constraints, which is a lowest-direct
resolution: every direct dependency at its lower bound, the rest at their newest.
pyproject.toml stays the one source of the floors.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> list[str]:
    """``name==floor`` of every dependency (and of ``extras``) with a ``>=`` bound."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    pins = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement.split(";")[0])
        if match is None:
            raise SystemExit(f"floors.py: cannot parse the requirement {requirement!r}")
        name, spec = match.group(1), match.group(3)
        lower = re.search(r">=\s*([^,\s]+)", spec)
        if lower is None:
            raise SystemExit(f"floors.py: {requirement!r} has no lower bound: give it one (>=)")
        pins.append(f"{name}=={lower.group(1)}")
    return pins


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    print("\n".join(floors(root / "pyproject.toml")))
