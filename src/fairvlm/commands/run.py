"""``fairvlm run EXPERIMENT.yaml --out DIR``: data -> base model -> audits -> methods ->
comparison table -> HTML report, each stage cached in its own folder (a rerun resumes)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm run``."""
    parser.add_argument("experiment", help="experiment YAML (see docs/experiments.md)")
    parser.add_argument("--out", required=True, help="run folder (reuse it to resume)")
    add_stage_flags(parser)


def add_stage_flags(parser: argparse.ArgumentParser) -> None:
    """``--only``, ``--force``, ``--jobs``, ``--verbose``, ``--quick``."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="run in --out even if it is not a fairvlm run folder (stale stages are replaced)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="STAGE",
        help="run only the matching stages (an id such as clinical/train/lora, a glob, or "
        "a part such as audit or lora); repeatable; their inputs must have run",
    )
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help="rerun the matching stages (and those that depend on them) even if up to date",
    )
    add_worker_flags(parser)
    parser.add_argument(
        "--quick", action="store_true", help="apply the experiment's quick: overrides"
    )


def seed_list(text: str) -> list[int]:
    """``0,1,2`` -> ``[0, 1, 2]`` (an argparse type: a bad value is a usage error)."""
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of distinct integers")
    return seeds


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    """``--jobs``, ``--verbose`` and ``--seeds`` (shared with ``fairvlm demo``)."""
    parser.add_argument(
        "--seeds",
        type=seed_list,
        metavar="S1,S2,...",
        help="train and steer every method once per seed; the table gives the mean, a "
        "t-interval over the seeds and the paired test pooled over them (replaces the "
        "experiment's seeds:)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="stages run at once, each in its own worker process (default: the "
        "experiment's jobs:, else 1)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each stage's own output (progress bars, training logs) instead of "
        "writing it to stage.log in the stage's folder",
    )


def run(args: argparse.Namespace) -> int:
    """Run the experiment; print the comparison table and the report's path."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.experiment import run_experiment

    result = run_experiment(
        args.experiment,
        args.out,
        only=args.only,
        force=args.force,
        quick=args.quick,
        jobs=args.jobs,
        verbose=args.verbose,
        overwrite=args.overwrite,
        seeds=args.seeds,
    )
    print(
        f"{len(result.ran)} stages ran, {len(result.cached)} up to date, "
        f"{result.seconds:.1f}s; run folder: {result.out_dir}"
    )
    return 0
