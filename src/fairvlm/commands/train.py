"""``fairvlm train MODEL DATA --method M --out DIR``: LoRA fine-tuning with a mitigation method.

Several processes: ``accelerate launch --num_processes N -m fairvlm train ...`` on GPUs;
on a CPU-only machine add ``--multi_gpu`` (accelerate then starts torchrun and the
processes talk over gloo; without it accelerate starts a single process).
"""

from __future__ import annotations

import argparse

from fairvlm.commands.model_args import add_model_arg, parse_model_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm train``."""
    parser.add_argument("model", help="base model directory or hub id")
    parser.add_argument("data", help="dataset folder (from `fairvlm data`)")
    parser.add_argument(
        "--method",
        required=True,
        help="a registered training method, e.g. lora, fairllava or asd (an unknown name "
        "lists them all)",
    )
    parser.add_argument(
        "--out", required=True, help="output directory (adapter, heads, config, log)"
    )
    parser.add_argument("--config", help="YAML with train: and method: sections")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field: lr=2e-4, lora.r=8, method.fairness_lambda=0.5, lambdas.sex=0.1",
    )
    add_model_arg(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --out"
    )


def run(args: argparse.Namespace) -> int:
    """Train, then print where the adapter went and the probe summary."""
    import os
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import DataError
    from fairvlm.training import train

    if not Path(args.data).exists():
        raise DataError(
            f"data={args.data!r} does not exist: give a dataset folder from `fairvlm data`"
        )
    result = train(
        args.model,
        args.data,
        args.method,
        args.config,
        args.out,
        resume=args.resume,
        overrides=args.overrides,
        model_args=parse_model_args(args.model_arg),
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # several processes: the main one reports
    losses = [row["loss"] for row in result.log_history if "loss" in row]
    if losses:
        print(
            f"trained {result.method}: {result.global_step} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}"
        )
    for row in result.probe:
        mi = "" if row["club_mi"] is None else f", CLUB MI {row['club_mi']:.3f}"
        print(
            f"probe {row['attribute']}: balanced accuracy {row['balanced_accuracy']:.2f} "
            f"(chance {row['chance_balanced']:.2f}){mi}{'  <- the estimator is being fooled' if row['fooled'] else ''}"
        )
    print(
        f"adapter: {result.out_dir} (load with load_vlm({args.model!r}, adapter={str(result.out_dir)!r}))"
    )
    return 0
