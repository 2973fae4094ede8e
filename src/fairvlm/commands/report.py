"""``fairvlm report DIR --out report.html``: the self-contained HTML report of a run."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm report``."""
    parser.add_argument("run_dir", help="the --out folder of `fairvlm run` / `fairvlm demo`")
    parser.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    parser.add_argument("--table", action="store_true", help="also print the comparison table")


def run(args: argparse.Namespace) -> int:
    """Write the report and print its path."""
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.report import write_report

    out = write_report(args.run_dir, args.out)
    if args.table:
        import json
        from pathlib import Path

        # start-up: command modules import only the standard library (fast `fairvlm --help`)
        from fairvlm.experiment.summary_table import format_table

        print(format_table(json.loads((Path(args.run_dir) / "summary.json").read_text())))
    print(f"report: {out}")
    return 0
