"""``fairvlm export lmms-eval DATA OUT``: a dataset as another tool's task folder."""

from __future__ import annotations

import argparse

#: The formats of ``fairvlm export`` (fairvlm.interop).
FORMATS = ("lmms-eval",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="the tool whose tasks to write")
    parser.add_argument("data", help="the dataset folder")
    parser.add_argument("out", help="the task folder to write (replaced atomically)")
    parser.add_argument(
        "--tasks",
        help="comma-separated fairvlm tasks, e.g. vqa,report (default: those the split has)",
    )
    parser.add_argument("--split", default="test", help="the split exported (default test)")
    parser.add_argument(
        "--name",
        help="the NAME of the task names fairvlm_NAME_TASK (default: the data folder's name)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        help="generation budget of report / describe (default: the audit's, 48)",
    )


def run(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.interop.lmms_eval_export import export_lmms_eval

    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks is not None else None
    manifest = export_lmms_eval(
        args.data,
        args.out,
        tasks=tasks,
        split=args.split,
        name=args.name,
        max_new_tokens=args.max_new_tokens,
    )
    for task, entry in manifest["tasks"].items():
        print(f"{entry['lmms_eval_task']}: {entry['n_samples']} {task} samples")
    print(
        f"wrote {args.out}; run: lmms-eval --include_path {args.out} --tasks <task> --log_samples"
    )
    return 0
