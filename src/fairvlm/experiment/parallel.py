"""Run a :class:`StageGraph` on several worker processes (``jobs:`` / ``--jobs``).

The stages form a graph (a study's audits and trainings depend on its base model, not on
each other; studies are independent), so on a machine with several cores they can run
at once. Each worker is a fresh process (``spawn``: no state shared with the parent, the
same as a serial run) that keeps its imports warm and runs one stage at a time; the
parent hands out the stages whose inputs are finished, in plan order, and reports
progress. Caching and resume are those of ``StageGraph.run_stage``: a stage is written,
and recognised as finished, exactly as in a serial run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from fairvlm.errors import FairVLMError
from fairvlm.experiment.stages import LOG_FILE, Stage, StageGraph, StageResult
from fairvlm.plugins import load_plugins

Progress = Callable[[int, int, Stage, str, float], None]


class StageFailed(FairVLMError):
    """A stage raised in a worker process (its traceback is in the message and its log)."""


def _exit_with_parent(parent: int) -> None:
    """Ask Linux to end this worker when the parent dies (a killed run leaves no orphan
    still training); elsewhere the worker ends when its task queue closes."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker(
    index: int,
    parent: int,
    run_dir: str,
    stages: list[Stage],
    capture: bool,
    threads: int | None,
    plugins: Sequence[str],
    tasks: Any,
    results: Any,
) -> None:
    """A worker process: run the stage ids received on ``tasks`` until ``None``."""
    _exit_with_parent(parent)
    load_plugins(plugins)  # a spawned process has only the built-in registry entries
    if threads:
        import torch

        torch.set_num_threads(threads)
    graph = StageGraph(run_dir, stages, capture=capture)
    while True:
        sid = tasks.get()
        if sid is None:
            return
        start = time.perf_counter()
        try:
            seconds = graph.run_stage(graph.stages[sid])
        except KeyboardInterrupt:
            return  # Ctrl-C reaches the whole process group; the parent reports it
        except BaseException:
            error = traceback.format_exc()
            if not capture:  # else it is in the stage's log already
                print(error, file=sys.stderr, flush=True)
            results.put((index, sid, False, time.perf_counter() - start, error))
            continue
        results.put((index, sid, True, seconds, ""))


def run_parallel(
    graph: StageGraph,
    jobs: int,
    only: Sequence[str] | None = None,
    force: Sequence[str] = (),
    progress: Progress | None = None,
    threads: int | None = None,
    plugins: Sequence[str] = (),
) -> list[StageResult]:
    """Run what ``graph.plan(only, force)`` says on up to ``jobs`` worker processes.

    Stage actions must be picklable (module-level functions). ``threads``: torch threads
    per worker (``None``: leave torch alone). ``plugins``: modules each worker imports
    first (the experiment's ``plugins:``). Falls back to ``graph.run`` when at most one
    stage has to run.

    Raises:
        ConfigError: as ``graph.plan``, before any work.
        StageFailed: a stage raised; the stages running beside it are finished first, and
            the finished ones stay cached for the next run.
    """
    plan = graph.plan(only, force)
    todo = [s for s in graph.stages.values() if plan[s.id] != "skip"]
    n_workers = min(jobs, sum(plan[s.id] == "run" for s in todo))
    if n_workers <= 1:
        return graph.run(only, force, progress)

    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
    results_q = ctx.Queue()
    task_qs = [ctx.Queue() for _ in range(n_workers)]
    stages = list(graph.stages.values())
    workers = [
        ctx.Process(
            target=_worker,
            args=(
                i,
                os.getpid(),
                str(graph.run_dir),
                stages,
                graph.capture,
                threads,
                list(plugins),
                task_qs[i],
                results_q,
            ),  # fmt: skip
            name=f"fairvlm-stage-worker-{i}",
        )
        for i in range(n_workers)
    ]
    for w in workers:
        w.start()
    try:
        results = _schedule(graph, plan, todo, workers, task_qs, results_q, progress)
    except BaseException:
        for w in workers:
            if w.is_alive():
                w.terminate()
        raise
    finally:
        for q in task_qs:
            with contextlib.suppress(Exception):
                q.put(None)
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.kill()
                w.join()
    return results


def _schedule(
    graph: StageGraph,
    plan: dict[str, str],
    todo: list[Stage],
    workers: list[Any],
    task_qs: list[Any],
    results_q: Any,
    progress: Progress | None,
) -> list[StageResult]:
    n = len(todo)
    report = progress or (lambda *a: None)
    finished = {sid for sid, what in plan.items() if what == "skip"}  # done (plan checked)
    pending = [s.id for s in todo]
    index: dict[str, int] = {}
    started: dict[str, float] = {}
    running: dict[int, str] = {}
    idle = list(range(len(workers)))
    results: dict[str, StageResult] = {}
    failure: tuple[str, str] | None = None
    while pending or running:
        for sid in list(pending):  # start what can start, in plan order
            stage = graph.stages[sid]
            if failure or not all(d in finished for d in stage.deps):
                continue
            if plan[sid] == "cached" and graph.is_done(sid):
                pending.remove(sid)
                index[sid] = len(index) + 1
                report(index[sid], n, stage, "cached", 0.0)
                results[sid] = StageResult(stage, "cached")
                finished.add(sid)
                continue
            if not idle:
                continue  # keep going: later cached stages are still reported
            w = idle.pop(0)
            pending.remove(sid)
            index[sid] = len(index) + 1
            started[sid] = time.perf_counter()
            report(index[sid], n, stage, "running", 0.0)
            task_qs[w].put(sid)
            running[w] = sid
        if not running:
            if failure:
                break
            if pending:  # cannot happen: plan() checked every input
                raise FairVLMError(f"stages {pending} wait for inputs that never ran")
            continue
        try:
            w, sid, ok, seconds, error = results_q.get(timeout=1.0)
        except queue.Empty:
            for w, sid in running.items():
                if not workers[w].is_alive():
                    raise StageFailed(
                        f"the worker running stage {sid!r} died (exit code "
                        f"{workers[w].exitcode}; killed for memory?): rerun to resume; its "
                        f"output: {graph.folder(sid) / LOG_FILE}"
                    ) from None
            continue
        del running[w]
        idle.append(w)
        stage = graph.stages[sid]
        if ok:
            finished.add(sid)
            results[sid] = StageResult(stage, "ran", seconds)
            report(index[sid], n, stage, "done", seconds)
        else:
            report(index[sid], n, stage, "failed", time.perf_counter() - started[sid])
            failure = failure or (sid, error)
    if failure:
        sid, error = failure
        last = error.strip().splitlines()[-1] if error.strip() else "unknown error"
        where = graph.folder(sid) / LOG_FILE if graph.capture else "above"
        raise StageFailed(
            f"stage {sid!r} failed: {last} (its output and traceback: {where}; the finished "
            "stages are kept: run again to resume)"
        )
    return [results[s.id] for s in todo if s.id in results]
