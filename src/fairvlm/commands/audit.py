"""``fairvlm audit MODEL DATA --out DIR``: records, group metrics and config of an audit.

Several processes: ``--num-processes N``, or ``accelerate launch -m fairvlm audit ...``.
A rerun with the same ``--out`` resumes: finished (sample, task) records are kept.
"""

from __future__ import annotations

import argparse

from fairvlm.commands.model_args import FLAG, add_model_arg, parse_model_args

#: Flags forwarded as they are when ``--num-processes`` relaunches the command.
_FORWARD = (
    ("--tasks", "tasks"),
    ("--adapter", "adapter"),
    ("--batch-size", "batch_size"),
    ("--limit", "limit"),
    ("--limit-mode", "limit_mode"),
    ("--split", "split"),
    ("--attributes", "attributes"),
    ("--max-new-tokens", "max_new_tokens"),
    ("--closed-mode", "closed_mode"),
    ("--scoring", "scoring"),
    ("--seed", "seed"),
    ("--n-boot", "n_boot"),
    ("--config", "config"),
    ("--steer", "steer"),
    ("--steer-scale", "steer_scale"),
    ("--steer-operator", "steer_operator"),
    ("--steer-positions", "steer_positions"),
    ("--dtype", "dtype"),
    ("--device", "device"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm audit``."""
    parser.add_argument("model", metavar="MODEL", help="model directory or hub id")
    parser.add_argument("data", metavar="DATA", help="dataset folder (from `fairvlm data`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="audit folder (resumed)")
    parser.add_argument(
        "--tasks",
        help="comma-separated registered audit tasks, e.g. vqa,report (default: the data's)",
    )
    parser.add_argument("--adapter", metavar="DIR", help="a PEFT adapter to load on the model")
    parser.add_argument("--batch-size", type=int, help="samples per model call (default 16)")
    parser.add_argument(
        "--limit", type=int, help="at most N samples per task (a seeded, stratified draw)"
    )
    parser.add_argument(
        "--limit-mode",
        metavar="MODE",
        help="how --limit picks: stratified (default: by group and target, seeded by "
        "--seed) or first (the first N)",
    )
    parser.add_argument("--split", help="the split to audit (default test)")
    parser.add_argument("--attributes", help="comma-separated attributes (default: all)")
    parser.add_argument("--max-new-tokens", type=int, help="generation budget of open tasks")
    parser.add_argument("--closed-mode", choices=("both", "generate", "score"))
    parser.add_argument(
        "--scoring",
        help="option scoring: shared (one prefill per sample, default) or independent",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--n-boot", type=int, help="bootstrap replicates of the CIs")
    parser.add_argument(
        "--config", metavar="YAML", help="AuditConfig fields (or a previous audit's config.yaml)"
    )
    parser.add_argument("--steer", metavar="VEC.safetensors", help="apply a steering vector")
    parser.add_argument("--steer-scale", type=float, help="steering strength alpha")
    parser.add_argument("--steer-operator", help="add, ablate or ablate_then_add")
    parser.add_argument("--steer-positions", help="all, prompt or generated")
    parser.add_argument(
        "--num-processes", type=int, default=1, help="audit shards in N processes (Accelerate)"
    )
    parser.add_argument("--overwrite", action="store_true", help="start afresh, do not resume")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="record samples whose image cannot be read as failed, and go on",
    )
    parser.add_argument("--dtype", help="e.g. float32, bfloat16")
    parser.add_argument("--device", help="e.g. cpu, cuda")
    add_model_arg(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _config(args: argparse.Namespace):

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.audit import AuditConfig
    from fairvlm.audit.config import LIMIT_MODES
    from fairvlm.errors import bad_value
    from fairvlm.yamlpos import read_yaml_mapping

    data: dict = {}
    if args.config:
        data = read_yaml_mapping(args.config, "--config")
        if isinstance(data.get("audit"), dict):  # a previous audit's config.yaml
            data = data["audit"]
    for flag in ("tasks", "batch_size", "limit", "split", "attributes", "seed"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    if args.limit_mode is not None:
        if args.limit_mode not in LIMIT_MODES:  # named as the flag, not as the field
            raise bad_value("--limit-mode", args.limit_mode, f"use one of {list(LIMIT_MODES)}")
        data["limit_mode"] = args.limit_mode
    if args.max_new_tokens is not None:
        data["max_new_tokens"] = args.max_new_tokens
    if args.closed_mode is not None:
        data["closed_mode"] = args.closed_mode
    if args.scoring is not None:
        data["scoring"] = args.scoring
    if args.n_boot is not None:
        data["metrics"] = {**(data.get("metrics") or {}), "n_boot": args.n_boot}
    if args.no_progress:
        data["progress"] = False
    if args.skip_bad:
        data["skip_bad"] = True
    return AuditConfig.from_dict(data)


def _steering(args: argparse.Namespace):
    """``(vector, apply kwargs)`` from the --steer flags, or None."""
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import ConfigError, bad_value
    from fairvlm.mitigation.steering import SteeringVector
    from fairvlm.mitigation.steering.settings import SteerSettings

    given = {
        "scale": args.steer_scale,
        "operator": args.steer_operator,
        "positions": args.steer_positions,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.steer is None:
        if given:
            key = next(iter(given))
            raise bad_value(f"--steer-{key}", given[key], "give --steer VEC too")
        return None
    settings = SteerSettings.from_dict(given, prefix="--steer-")
    if not Path(args.steer).is_file():
        raise bad_value("--steer", args.steer, "give an existing .safetensors steering vector")
    try:
        vector = SteeringVector.load(args.steer)
    except Exception as exc:  # any reader failure is a bad --steer file, reported as such
        if isinstance(exc, ConfigError):
            raise
        raise bad_value(
            "--steer", args.steer, f"it cannot be read as a steering vector ({exc})"
        ) from exc
    return vector, settings.kwargs()


def _relaunch_args(args: argparse.Namespace) -> list[str]:
    argv = ["audit", args.model, args.data, "--out", args.out]
    for flag, name in _FORWARD:
        value = getattr(args, name)
        if value is not None:
            argv += [flag, str(value)]
    for item in args.model_arg:
        argv += [FLAG, item]
    argv += [
        f
        for f, on in (
            ("--no-progress", args.no_progress),
            ("--overwrite", args.overwrite),
            ("--skip-bad", args.skip_bad),
        )
        if on
    ]
    return argv


def run(args: argparse.Namespace) -> int:
    """Validate, audit (resuming), then print the metrics table."""
    import os
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.atomic import check_output_dir, output_lock
    from fairvlm.audit import plan_audit, run_audit
    from fairvlm.audit.runner import AUDIT_KIND
    from fairvlm.audit.sharding import is_distributed, launch
    from fairvlm.errors import bad_value

    if args.num_processes < 1:
        raise bad_value("--num-processes", args.num_processes, "use a positive integer")
    cfg = _config(args)
    steer = _steering(args)
    model_args = parse_model_args(args.model_arg)  # a bad item fails before any launch
    if args.num_processes > 1 and not is_distributed():
        plan_audit(args.data, cfg)  # bad input fails here, once, not in every process
        check_output_dir(Path(args.out), AUDIT_KIND, args.overwrite)
        with output_lock(args.out):  # held for the shards, which take none themselves
            return launch(args.num_processes, _relaunch_args(args))
    out = run_audit(
        args.model,
        args.data,
        cfg,
        args.out,
        steer=steer,
        adapter=args.adapter,
        dtype=args.dtype,
        device=args.device,
        model_args=model_args,
        overwrite=args.overwrite,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    _print_summary(out)
    return 0


def _print_summary(out) -> None:
    import json

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.audit import METRICS_FILE, RECORDS_FILE
    from fairvlm.commands.metrics import format_table

    metrics = json.loads((out / METRICS_FILE).read_text())
    print(format_table(metrics))
    n = sum(entry["n"] for entry in metrics["tasks"].values())
    failed = sum(entry.get("n_failed", 0) for entry in metrics["tasks"].values())
    note = f", {failed} failed: see their error column" if failed else ""
    print(
        f"wrote {out / RECORDS_FILE} ({n + failed} records{note}), {out / METRICS_FILE}, "
        f"{out / 'config.yaml'}"
    )
