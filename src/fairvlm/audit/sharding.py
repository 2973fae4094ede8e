"""Several processes auditing one dataset, through Accelerate.

Under ``accelerate launch`` (or torchrun) each process takes every N-th batch of the
audit (:func:`shard`), writes its records as parts into the shared output folder, and
the main process merges them once every process is done. Batches are fixed before the
split, so the merged records, and the metrics, are those of a single-process run.
The output folder must be visible to every process (one machine, or a shared disk).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from fairvlm.errors import ConfigError

T = TypeVar("T")


def process_state() -> Any:
    """Accelerate's ``PartialState`` (one process unless launched with several)."""
    import torch
    from accelerate import PartialState

    # Without an accelerator PartialState only sets up gloo when told it runs on CPU.
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not (
        torch.accelerator.is_available()
    )
    return PartialState(cpu=cpu)


def shard(items: Sequence[T], state: Any) -> list[T]:
    """This process's share of ``items``, interleaved (``items[rank::world]``).

    Interleaving rather than contiguous chunks (``split_between_processes``) keeps the
    processes balanced when tasks of very different cost follow each other.
    """
    return list(items[state.process_index :: state.num_processes])


def is_distributed() -> bool:
    """Whether this process was started by a multi-process launcher."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launch_command(num_processes: int, module_args: Sequence[str]) -> list[str]:
    """The ``accelerate launch`` command running ``python -m fairvlm <module_args>`` in
    ``num_processes`` processes. Without a GPU, ``--multi_gpu`` is what makes
    accelerate start torchrun (the processes then use the gloo backend on CPU)."""
    exe = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which(
        "accelerate"
    )
    if exe is None:
        raise ConfigError(
            "--num-processes needs the `accelerate` command; install accelerate "
            "(pip install accelerate) or run `accelerate launch -m fairvlm audit ...` yourself"
        )
    return [
        exe, "launch", "--multi_gpu", "--num_processes", str(num_processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "fairvlm", *module_args,
    ]  # fmt: skip


def launch(num_processes: int, module_args: Sequence[str]) -> int:
    """Run ``fairvlm <module_args>`` in ``num_processes`` processes; their exit status."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(launch_command(num_processes, module_args), env=env).returncode


__all__ = ["is_distributed", "launch", "launch_command", "process_state", "shard"]
