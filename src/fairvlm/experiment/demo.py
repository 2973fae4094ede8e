"""The shipped demo experiments (package data ``fairvlm/experiments/*.yaml``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

DEMO = "demo.yaml"
DEMO_QUICK = "demo_quick.yaml"


@contextlib.contextmanager
def demo_experiment_path(quick: bool = False) -> Iterator[Path]:
    """The path of ``demo.yaml`` (or ``demo_quick.yaml``), valid inside the ``with``."""
    ref = resources.files("fairvlm") / "experiments" / (DEMO_QUICK if quick else DEMO)
    with resources.as_file(ref) as path:
        yield Path(path)
