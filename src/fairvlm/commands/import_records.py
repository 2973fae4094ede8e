"""``fairvlm import-records lmms-eval SAMPLES_JSONL... --data DATA --out AUDIT_DIR``:
another tool's per-sample logs as a fairvlm audit folder (records, config, metrics)."""

from __future__ import annotations

import argparse

#: The tools whose logs ``fairvlm import-records`` reads (fairvlm.interop).
FORMATS = ("lmms-eval",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="the tool that wrote the logs")
    parser.add_argument(
        "logs",
        metavar="SAMPLES_JSONL",
        nargs="+",
        help="lmms-eval --log_samples files (<date>_samples_fairvlm_NAME_TASK.jsonl)",
    )
    parser.add_argument("--data", required=True, help="the dataset folder that was exported")
    parser.add_argument(
        "--out", metavar="AUDIT_DIR", required=True, help="the audit folder to write"
    )
    parser.add_argument("--split", default="test", help="the split exported (default test)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into AUDIT_DIR even when it is not a fairvlm audit folder",
    )


def run(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.interop.lmms_eval_import import import_lmms_eval

    out = import_lmms_eval(
        args.logs, args.data, args.out, split=args.split, overwrite=args.overwrite
    )
    print(f"imported {len(args.logs)} lmms-eval sample logs into {out} (records, metrics)")
    return 0
