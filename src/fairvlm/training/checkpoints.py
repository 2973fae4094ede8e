"""Which Trainer checkpoint a resumed run starts from."""

from __future__ import annotations

import re
import sys
from pathlib import Path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

#: Written by the Trainer after the weights, optimizer and RNG states of a checkpoint:
#: a checkpoint folder without it was interrupted while saving.
COMPLETE_MARKER = "trainer_state.json"


def last_complete_checkpoint(root: str | Path) -> str | None:
    """The newest ``checkpoint-N`` under ``root`` that holds ``trainer_state.json``.

    ``transformers.trainer_utils.get_last_checkpoint`` takes the newest folder even when a
    kill while saving left it incomplete, and the resume then crashes; here each newer
    incomplete folder is skipped, and said so on stderr.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p)
        for p in root.iterdir()
        if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    )
    for _, path in reversed(found):
        if (path / COMPLETE_MARKER).is_file():
            return str(path)
        print(
            f"fairvlm: resume: skipping {path} (incomplete, no {COMPLETE_MARKER}: "
            "interrupted while saving)",
            file=sys.stderr,
        )
    return None


__all__ = ["last_complete_checkpoint"]
