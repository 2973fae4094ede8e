"""``fairvlm compare REF OTHER [OTHER ...] --out DIR``: paired comparison of audits."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", metavar="REF", help="the reference audit folder")
    parser.add_argument(
        "others",
        metavar="OTHER",
        nargs="+",
        help="audit folders of the same split and samples, each compared with REF",
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="write DIR/comparison.json (atomically)"
    )
    parser.add_argument(
        "--n-boot", type=int, default=1000, help="paired bootstrap replicates (default 1000)"
    )
    parser.add_argument(
        "--level",
        type=float,
        default=0.95,
        help="CI coverage; a change is significant when p < 1 - level (default 0.95)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--no-holm",
        dest="holm",
        action="store_false",
        help="judge significance by the raw p-values (default: Holm-adjusted over every "
        "p-value of the call)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into DIR even when it is not a fairvlm comparison folder",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.atomic import check_output_dir, check_writable
    from fairvlm.metrics.compare import (
        COMPARE_KIND,
        compare_audits,
        format_comparison,
        write_comparison,
    )

    out = Path(args.out)
    check_output_dir(out, COMPARE_KIND, args.overwrite)  # before any work
    check_writable(out)
    doc = compare_audits(
        args.reference,
        args.others,
        n_boot=args.n_boot,
        level=args.level,
        seed=args.seed,
        holm_correction=args.holm,
    )
    path = write_comparison(doc, out, overwrite=args.overwrite)
    print(format_comparison(doc))
    print(f"wrote {path}")
    return 0
