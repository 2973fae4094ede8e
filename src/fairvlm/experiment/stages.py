"""Stages: cached, resumable units of work, each in its own folder.

A stage is an id (``clinical/train/lora``), a folder, a config (plain JSON-able data),
the ids of the stages it reads, and an action. Its *hash* is the SHA-256 of its config
and its kind. When the action returns, ``stage.json`` is written into the folder (last,
atomically) with the hash and the *token* of every input stage; its own token is new
for every completed run. A stage is up to date when its ``stage.json`` exists, its hash
matches and its inputs still carry the tokens it was built from, so re-running an
upstream stage (``--force``) makes everything downstream stale, and a stage killed
half-way (no ``stage.json``) runs again, told to resume when its folder holds the same
config (``stage_config.json``, written first).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.atomic import atomic_write_text, write_marker
from fairvlm.errors import ConfigError

DONE_FILE = "stage.json"
CONFIG_FILE = "stage_config.json"
#: A stage's console output (progress bars, training logs, warnings) when captured.
LOG_FILE = "stage.log"


def config_hash(kind: str, config: Any) -> str:
    """A stable hash of a stage's kind and config (canonical JSON, sorted keys)."""
    text = json.dumps({"kind": kind, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file, ``None`` when missing or unreadable (a half-written marker)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def captured_output(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr to ``path`` (appended) while inside: Python's
    ``sys.stdout``/``sys.stderr`` and file descriptors 1 and 2, so that progress bars,
    C-level output and logging handlers bound to the original streams land there too."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with open(path, "a", buffering=1, encoding="utf-8", errors="replace") as log:
        try:
            saved = [os.dup(1), os.dup(2)]
        except OSError:  # no standard descriptors (embedded interpreters): Python level only
            saved = []
        try:
            for fd in (1, 2) if saved else ():
                os.dup2(log.fileno(), fd)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, old in zip((1, 2), saved, strict=False):
                os.dup2(old, fd)
                os.close(old)


def log_tail(folder: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a stage's captured output ('' when there is none)."""
    try:
        text = (folder / LOG_FILE).read_text(errors="replace")
    except OSError:
        return ""
    # progress bars rewrite their line with \r: keep what was last shown on each line
    shown = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(line for line in shown[-lines:] if line.strip())


@dataclass
class StageContext:
    """What an action gets: its folder, its config, its inputs' folders, resume flag."""

    stage: Stage
    folder: Path
    inputs: dict[str, Path]
    resume: bool
    run_dir: Path


@dataclass
class Stage:
    """One unit of work. ``kind`` is its type (data, base, audit, train, steer)."""

    id: str
    kind: str
    folder: str
    config: dict[str, Any]
    action: Callable[[StageContext], Any]
    deps: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def hash(self) -> str:
        """The config hash (inputs enter through their tokens, not here)."""
        return config_hash(self.kind, self.config)

    def matches(self, pattern: str) -> bool:
        """``--only``/``--force`` matching: a glob on the id, an id prefix, or a path part
        (``clinical``, ``audit``, ``lora`` and ``clinical/*/lora`` all match
        ``clinical/train/lora``)."""
        pattern = pattern.strip("/")
        return (
            fnmatch.fnmatchcase(self.id, pattern)
            or self.id.startswith(pattern + "/")
            or pattern in self.id.split("/")
        )


@dataclass
class StageResult:
    """What happened to a stage in one run: ``ran``, ``cached`` or ``skipped``."""

    stage: Stage
    status: str
    seconds: float = 0.0


class StageGraph:
    """Stages in dependency order over one run folder."""

    def __init__(self, run_dir: str | Path, stages: Sequence[Stage], capture: bool = False):
        self.run_dir = Path(run_dir)
        self.capture = capture  # each action's output goes to its folder's stage.log
        self.stages: dict[str, Stage] = {}
        for stage in stages:
            if stage.id in self.stages:
                raise ConfigError(f"stage id {stage.id!r} is defined twice")
            missing = [d for d in stage.deps if d not in self.stages]
            if missing:
                raise ConfigError(f"stage {stage.id!r} reads {missing[0]!r}, defined after it")
            folder = self.run_dir / stage.folder
            if not folder.resolve().is_relative_to(self.run_dir.resolve()):  # it is replaced
                raise ConfigError(
                    f"stage {stage.id!r}: its folder {str(folder)!r} is outside the run folder "
                    f"{str(self.run_dir)!r}: name the study and method rows without '..' or '/'"
                )
            self.stages[stage.id] = stage

    def folder(self, stage_id: str) -> Path:
        """The absolute folder of a stage (inside the run folder: checked at construction)."""
        return self.run_dir / self.stages[stage_id].folder

    def done_record(self, stage_id: str) -> dict[str, Any] | None:
        """The ``stage.json`` of a stage, or ``None``."""
        return read_json(self.folder(stage_id) / DONE_FILE)

    def is_done(self, stage_id: str) -> bool:
        """Finished with this config and these inputs (see the module doc)."""
        stage = self.stages[stage_id]
        rec = self.done_record(stage_id)
        if not rec or rec.get("hash") != stage.hash:
            return False
        for dep in stage.deps:
            dep_rec = self.done_record(dep)
            if not dep_rec or rec.get("inputs", {}).get(dep) != dep_rec.get("token"):
                return False
        return True

    def select(self, patterns: Iterable[str]) -> list[str]:
        """Ids matching any pattern; an error naming the pattern that matches none."""
        out: list[str] = []
        for pattern in patterns:
            hits = [s for s in self.stages.values() if s.matches(pattern)]
            if not hits:
                raise ConfigError(
                    f"stage={pattern!r} matches no stage: use one of {list(self.stages)}"
                )
            out += [s.id for s in hits if s.id not in out]
        return out

    def plan(self, only: Sequence[str] | None = None, force: Sequence[str] = ()) -> dict[str, str]:
        """``stage id -> "run" | "cached" | "skip"`` without doing any work.

        ``only``: run just the matching stages (their inputs must be done already, or the
        error names the missing one). ``force``: rerun the matching stages even when done;
        their downstream stages become stale and run too (unless excluded by ``only``).

        Raises:
            ConfigError: a pattern that matches nothing, or an ``only`` stage whose input
                has not run.
        """
        selected = set(self.select(only)) if only else set(self.stages)
        forced = set(self.select(force))
        plan: dict[str, str] = {}
        for sid, stage in self.stages.items():
            if sid not in selected:
                plan[sid] = "skip"
                continue
            dirty = sid in forced or not self.is_done(sid)
            dirty = dirty or any(plan.get(d) == "run" for d in stage.deps)
            plan[sid] = "run" if dirty else "cached"
            for dep in stage.deps:
                if plan[dep] == "skip" and not self.is_done(dep):
                    raise ConfigError(
                        f"stage {sid!r} needs {dep!r}, which has not run (or is stale): run "
                        f"without --only, or add --only {dep}"
                    )
        return plan

    def run_stage(self, stage: Stage) -> float:
        """Run one stage's action; write its markers. Returns the seconds it took."""
        folder = self.folder(stage.id)
        saved = read_json(folder / CONFIG_FILE)
        tokens = {d: (self.done_record(d) or {}).get("token") for d in stage.deps}
        # resume a partial output only if it was started with this config from these inputs
        resume = bool(saved) and saved.get("hash") == stage.hash and saved.get("inputs") == tokens
        if folder.exists() and not resume:
            shutil.rmtree(folder)  # another config's partial or stale output
        elif (folder / DONE_FILE).exists():
            # forced or stale inputs: start clean, the old outputs are not this run's
            (folder / DONE_FILE).unlink()
            shutil.rmtree(folder)
            resume = False
        folder.mkdir(parents=True, exist_ok=True)
        write_marker(folder, stage.kind)  # the stage's writer may fill this folder in place
        write_json(
            folder / CONFIG_FILE,
            {
                "id": stage.id,
                "kind": stage.kind,
                "hash": stage.hash,
                "inputs": tokens,
                "config": stage.config,
            },
        )
        inputs = {dep: self.folder(dep) for dep in stage.deps}
        start, cpu = time.perf_counter(), time.process_time()
        context = StageContext(stage, folder, inputs, resume, self.run_dir)
        if self.capture:
            with captured_output(folder / LOG_FILE):
                try:
                    stage.action(context)
                except BaseException:
                    traceback.print_exc()  # into the log, where the failure display reads it
                    raise
        else:
            stage.action(context)
        seconds = time.perf_counter() - start
        # CPU time of this process (all its threads): what the stage costs on a quiet machine,
        # whatever else was running beside it
        cpu_seconds = time.process_time() - cpu
        write_json(
            folder / DONE_FILE,
            {
                "id": stage.id,
                "kind": stage.kind,
                "hash": stage.hash,
                "token": uuid.uuid4().hex,
                "inputs": tokens,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu_seconds, 3),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        return seconds

    def run(
        self,
        only: Sequence[str] | None = None,
        force: Sequence[str] = (),
        progress: Callable[[int, int, Stage, str, float], None] | None = None,
    ) -> list[StageResult]:
        """Run what :meth:`plan` says, in order; ``progress(i, n, stage, status, seconds)``
        is called before (status ``running``) and after (``done``/``cached``/``failed``)
        each stage."""
        plan = self.plan(only, force)
        todo = [s for s in self.stages.values() if plan[s.id] != "skip"]
        results = []
        for i, stage in enumerate(todo, 1):
            # a stage planned "cached" may have become stale if an input re-ran after a
            # crash; re-check with the markers as they are now
            if plan[stage.id] == "cached" and self.is_done(stage.id):
                if progress:
                    progress(i, len(todo), stage, "cached", 0.0)
                results.append(StageResult(stage, "cached"))
                continue
            if progress:
                progress(i, len(todo), stage, "running", 0.0)
            start = time.perf_counter()
            try:
                seconds = self.run_stage(stage)
            except BaseException as exc:
                if progress:
                    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                    progress(i, len(todo), stage, status, time.perf_counter() - start)
                raise
            if progress:
                progress(i, len(todo), stage, "done", seconds)
            results.append(StageResult(stage, "ran", seconds))
        return results
