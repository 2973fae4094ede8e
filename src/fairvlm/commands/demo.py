"""``fairvlm demo [--out DIR] [--quick]``: the shipped experiment over both embedded
benchmarks (clinical: LoRA / FairLLaVA / baselines; social: naive / ASD / steering)."""

from __future__ import annotations

import argparse

DEFAULT_OUT = "fairvlm-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm demo``."""
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"run folder (default ./{DEFAULT_OUT}; reuse resumes)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="the one-minute smoke version (demo_quick.yaml)"
    )
    parser.add_argument("--only", action="append", metavar="STAGE", help="as in `fairvlm run`")
    parser.add_argument("--overwrite", action="store_true", help="as in `fairvlm run`")
    parser.add_argument(
        "--force", action="append", default=[], metavar="STAGE", help="as in `fairvlm run`"
    )
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.commands.run import add_worker_flags

    add_worker_flags(parser)
    parser.add_argument(
        "--show-config", action="store_true", help="print the shipped experiment YAML and exit"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo experiment; print the comparison table and the report's path."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.experiment.demo import demo_experiment_path

    with demo_experiment_path(args.quick) as path:
        if args.show_config:
            print(path.read_text(), end="")
            return 0
        # start-up: command modules import only the standard library (fast `fairvlm --help`)
        from fairvlm.experiment import run_experiment

        result = run_experiment(
            path,
            args.out,
            only=args.only,
            force=args.force,
            jobs=args.jobs,
            verbose=args.verbose,
            overwrite=args.overwrite,
            seeds=args.seeds,
        )
    print(
        f"{len(result.ran)} stages ran, {len(result.cached)} up to date in "
        f"{result.seconds:.1f}s; open {result.report or result.out_dir}"
    )
    return 0
