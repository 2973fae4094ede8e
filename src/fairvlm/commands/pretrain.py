"""``fairvlm pretrain DATA OUT``: train the small benchmark base model from scratch."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm pretrain``."""
    parser.add_argument("data", help="a dataset folder (e.g. from `fairvlm data synth`)")
    parser.add_argument(
        "out", help="the model folder (a finished run of the same config is reused)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a PretrainConfig field, e.g. --set steps=300 --set model.hidden_size=64",
    )
    parser.add_argument("--resume", action="store_true", help="continue an unfinished run in OUT")


def run(args: argparse.Namespace) -> int:
    """Validate the config, pretrain (or reuse OUT), print a summary."""
    import json
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.training.pretrain import RECORD_FILE, load_pretrain_config, pretrain

    cfg = load_pretrain_config(args.overrides)
    out = pretrain(args.data, args.out, cfg, resume=args.resume)
    record = json.loads((Path(out) / RECORD_FILE).read_text())
    loss = record["final_loss"]
    print(
        f"fairvlm pretrain: {out}: {record['global_step']} steps, "
        f"{record['n_parameters']:,} parameters, final loss "
        f"{'n/a' if loss is None else f'{loss:.4f}'}, {record['wall_time_s']:.1f} s of training"
    )
    return 0
