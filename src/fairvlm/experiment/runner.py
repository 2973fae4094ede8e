"""``run_experiment``: validate, plan, run the stages (cached), summarise, report.

Run folder::

    OUT/experiment.yaml     the experiment as run (quick overrides merged)
    OUT/<study>/...         one folder per stage (see ``fairvlm.experiment.plan``)
    OUT/summary.json        the comparison tables (see ``fairvlm.experiment.summary``)
    OUT/report.html         the self-contained report
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fairvlm import __version__
from fairvlm.atomic import atomic_write_text, check_output_dir, output_lock, write_marker
from fairvlm.errors import bad_value
from fairvlm.experiment import hooks
from fairvlm.experiment.config import load_experiment
from fairvlm.experiment.parallel import run_parallel
from fairvlm.experiment.plan import StudyPlan, plan_experiment
from fairvlm.experiment.reference import compare_to_reference
from fairvlm.experiment.specs import ExperimentConfig
from fairvlm.experiment.stages import (
    CONFIG_FILE,
    LOG_FILE,
    Stage,
    StageGraph,
    StageResult,
    log_tail,
    write_json,
)
from fairvlm.experiment.summary import study_summary
from fairvlm.experiment.summary_table import format_table
from fairvlm.report import write_report

SUMMARY_FILE = "summary.json"
RUN_KIND = "run"
REPORT_FILE = "report.html"


@dataclass
class RunResult:
    """What :func:`run_experiment` did: the folder, each stage's fate, the summary."""

    out_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    seconds: float = 0.0

    @property
    def ran(self) -> list[str]:
        """Ids of the stages that ran (not cached)."""
        return [r.stage.id for r in self.stages if r.status == "ran"]

    @property
    def cached(self) -> list[str]:
        """Ids of the stages found up to date."""
        return [r.stage.id for r in self.stages if r.status == "cached"]


class StageProgress:
    """The stage display: a line when a stage starts and one when it ends (index, status,
    time, total elapsed); a failed stage's line is followed by the end of its output."""

    def __init__(self, stream: TextIO | None = None, run_dir: Path | None = None):
        self.stream = stream or sys.stdout
        self.run_dir = run_dir
        self.start = time.perf_counter()

    def __call__(self, i: int, n: int, stage: Stage, status: str, seconds: float) -> None:
        total = time.perf_counter() - self.start
        head = f"[{i:>2}/{n}] {stage.id:<40}"
        if status == "running":
            msg = f"{head} running ...     (elapsed {total:6.1f}s)"
        elif status == "cached":
            msg = f"{head} cached (up to date)"
        elif status == "done":
            msg = f"{head} done in {seconds:6.1f}s (elapsed {total:6.1f}s)"
        else:  # failed / interrupted
            msg = f"{head} {status.upper()} after {seconds:.1f}s"
            if status == "failed" and self.run_dir is not None:
                folder = self.run_dir / stage.folder
                tail = log_tail(folder)
                if tail:
                    msg += f"\n  end of its output ({folder / LOG_FILE}):\n" + "\n".join(
                        "  | " + line for line in tail.splitlines()
                    )
        print(msg, file=self.stream, flush=True)


def _rows(graph: StageGraph, sp: StudyPlan) -> list[dict[str, Any]]:
    """One dict per method with its audited seeds: the stage folders and metrics.json of
    each (``seeds``: one entry per seed; a single entry without ``seeds:``). A method with
    no finished audit (``--only``) is left out of the table."""
    rows: dict[str, dict[str, Any]] = {}
    for row in sp.rows:
        if not graph.is_done(row.audit):
            continue
        run = {
            "seed": row.seed,
            "audit": graph.stages[row.audit].folder,
            "train": graph.stages[row.train].folder if row.train else None,
            "steer": graph.stages[row.steer].folder if row.steer else None,
            "metrics": json.loads((graph.folder(row.audit) / "metrics.json").read_text()),
        }
        rows.setdefault(row.method, {"method": row.method, "seeds": []})["seeds"].append(run)
    return list(rows.values())


def _versus(graph: StageGraph, sp: StudyPlan, rows: list[dict[str, Any]]):
    """The comparison of the study's audited rows with its reference row, for
    :func:`study_summary` (``None`` when the reference row is not audited yet); a row run at
    several seeds gives one audit folder per seed."""
    folders = {r["method"]: [str(graph.run_dir / s["audit"]) for s in r["seeds"]] for r in rows}
    ref = sp.study.summary.reference
    if ref not in folders:
        return None
    others = {m: f for m, f in folders.items() if m != ref}
    return lambda columns: compare_to_reference(folders[ref], others, columns)


def summarize(
    cfg: ExperimentConfig, run_dir: Path, graph: StageGraph, plans: Sequence[StudyPlan]
) -> dict[str, Any]:
    """summary.json's content from the finished audits of every study."""
    studies = []
    for sp in plans:
        rows = _rows(graph, sp)
        if not rows:
            continue
        data = sp.data_dir(run_dir)
        try:
            data_rel = str(data.relative_to(run_dir))
        except ValueError:
            data_rel = str(data)
        studies.append(
            study_summary(
                sp.study.name,
                rows[0]["seeds"][0]["metrics"],
                rows,
                attributes=sp.study.summary.attributes,
                utility=sp.study.summary.utility,
                extra={"data": data_rel, "split": sp.study.audit.split},
                targets=hooks.method_targets(sp.study),
                reference=sp.study.summary.reference,
                versus=_versus(graph, sp, rows),
                seeds=cfg.seeds,
            )
        )
    return {
        "experiment": cfg.name,
        "seed": cfg.seed,
        "seeds": cfg.seeds,
        "version": __version__,
        "samples_per_group": cfg.report.samples_per_group,
        "studies": studies,
    }


def _unmarked_run(run_dir: Path) -> bool:
    """A run folder written before runs had a marker: the experiment and its stages."""
    return (run_dir / "experiment.yaml").is_file() and any(run_dir.glob(f"*/**/{CONFIG_FILE}"))


def run_experiment(
    yaml_path: str | Path,
    out_dir: str | Path,
    only: Sequence[str] | None = None,
    force: Sequence[str] = (),
    quick: bool = False,
    *,
    progress: Callable[[int, int, Stage, str, float], None] | None = None,
    report: bool = True,
    echo: bool = True,
    jobs: int | None = None,
    verbose: bool = False,
    overwrite: bool = False,
    seeds: Sequence[int] | None = None,
) -> RunResult:
    """Run an experiment YAML into ``out_dir``; stages already done are skipped.

    Args:
        yaml_path: the experiment file (see ``fairvlm.experiment.config``).
        out_dir: the run folder (created; reusing it resumes).
        only: run just the stages matching these patterns (ids, globs or id parts).
        force: rerun the matching stages (and what depends on them) even when done.
        quick: apply the file's ``quick:`` overrides.
        progress: stage callback (default: one printed line per stage).
        report: write ``report.html``. ``echo``: print the comparison table.
        jobs: stages run at once, each in a worker process (default: the file's ``jobs:``;
            1 runs every stage in this process).
        verbose: show each stage's own output (progress bars, training logs) instead of
            writing it to ``stage.log`` in the stage's folder.
        overwrite: run in ``out_dir`` even when it is not a fairvlm run folder (its stage
            folders are replaced when stale).
        seeds: run every method once per seed (replaces the file's ``seeds:``).

    Raises:
        ConfigError: a bad experiment file or stage pattern, before any work starts.
        DataError: ``out_dir`` is a folder fairvlm did not write as a run (``overwrite``).
    """
    import torch
    import yaml

    start = time.perf_counter()
    cfg = load_experiment(yaml_path, quick=quick, seeds=None if seeds is None else list(seeds))
    run_dir = Path(out_dir).resolve()
    # stale stage folders get replaced: only in a run folder (or one of before the marker)
    check_output_dir(run_dir, RUN_KIND, overwrite or _unmarked_run(run_dir))
    plans = plan_experiment(cfg, run_dir)
    graph = StageGraph(run_dir, [st for sp in plans for st in sp.stages], capture=not verbose)
    graph.plan(only, force)  # bad patterns or missing inputs: fail before any work
    n_jobs = cfg.jobs if jobs is None else jobs
    if n_jobs < 1:
        raise bad_value("jobs", n_jobs, "use a positive number of worker processes")
    torch.set_num_threads(cfg.threads)
    with output_lock(run_dir):  # one run per folder
        run_dir.mkdir(parents=True, exist_ok=True)
        write_marker(run_dir, RUN_KIND)
        atomic_write_text(run_dir / "experiment.yaml", yaml.safe_dump(cfg.raw, sort_keys=False))
        show = progress or StageProgress(run_dir=run_dir)
        if n_jobs > 1:
            results = run_parallel(
                graph, n_jobs, only, force, show, threads=cfg.threads, plugins=cfg.plugins
            )
        else:
            results = graph.run(only, force, progress=show)
        summary = summarize(cfg, run_dir, graph, plans)
        write_json(run_dir / SUMMARY_FILE, summary)
        result = RunResult(run_dir, results, summary)
        if echo:
            print("\n" + format_table(summary))
        if report and summary["studies"]:
            result.report = write_report(run_dir, run_dir / REPORT_FILE)
            if echo:
                print(f"\nreport: {result.report}")
    result.seconds = time.perf_counter() - start
    return result
