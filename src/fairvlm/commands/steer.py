"""``fairvlm steer build|sweep``: build a steering vector; audit it over scales and layers.

    fairvlm steer build MODEL DATA --method contrastive --layers 4,8 --out VEC.safetensors
    fairvlm steer sweep MODEL DATA --vector VEC.safetensors --scales 0,2,4 --layers 4,8,4+8 --out DIR

Apply a vector during one audit with ``fairvlm audit ... --steer VEC --steer-scale A``.
"""

from __future__ import annotations

import argparse

from fairvlm.commands.model_args import add_model_arg, parse_model_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``fairvlm steer``."""
    sub = parser.add_subparsers(dest="steer_command", metavar="ACTION")
    build = sub.add_parser("build", help="build a steering vector", description="build a vector")
    build.add_argument("model", metavar="MODEL", help="model directory or hub id")
    build.add_argument("data", metavar="DATA", help="dataset folder (samples or images)")
    build.add_argument(
        "--method",
        required=True,
        help="a registered steering builder, e.g. contrastive or gradient (an unknown name "
        "lists them all)",
    )
    build.add_argument("--layers", help="decoder layers, e.g. 4,8 or -1 (default: the middle)")
    build.add_argument("--out", required=True, metavar="VEC.safetensors")
    build.add_argument(
        "--overwrite", action="store_true", help="replace --out even if it is not a steering vector"
    )
    build.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field of the builder's config (YAML value), e.g. position=answer_mean",
    )
    _model_flags(build)

    sweep = sub.add_parser(
        "sweep", help="audit a vector over scales x layers", description="fairness-utility sweep"
    )
    sweep.add_argument("model", metavar="MODEL", help="model directory or hub id")
    sweep.add_argument("data", metavar="DATA", help="dataset folder")
    sweep.add_argument("--vector", required=True, metavar="VEC.safetensors")
    sweep.add_argument(
        "--scales", help="comma-separated, e.g. 0,2,4 or -4,-2,0 (default: SweepConfig's, 0,2,4)"
    )
    sweep.add_argument("--layers", help="layer sets: ',' between sets, '+' within one: 4,8,4+8")
    sweep.add_argument("--operator", help="add, ablate or ablate_then_add (default: the vector's)")
    sweep.add_argument("--positions", help="all, prompt or generated (default: the vector's)")
    sweep.add_argument("--tasks", help="audit tasks (default: SweepConfig's, describe,concept)")
    sweep.add_argument("--split", help="audit split (default test)")
    sweep.add_argument("--limit", type=int, help="at most N samples per task (stratified)")
    sweep.add_argument("--limit-mode", metavar="MODE", help="stratified (default) or first")
    sweep.add_argument("--batch-size", type=int, help="samples per model call")
    sweep.add_argument("--n-boot", type=int, help="bootstrap replicates of the CIs")
    sweep.add_argument("--out", required=True, metavar="DIR")
    sweep.add_argument("--overwrite", action="store_true", help="start afresh, do not resume")
    _model_flags(sweep)


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", metavar="DIR", help="a PEFT adapter to load on the model")
    parser.add_argument("--dtype", help="e.g. float32, bfloat16")
    parser.add_argument("--device", help="e.g. cpu, cuda")
    add_model_arg(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _overrides(items: list[str]) -> dict:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import bad_value
    from fairvlm.yamlpos import parse_yaml_value

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise bad_value("--set", item, "write key=value, e.g. aggregator=pca")
        out[key.strip()] = parse_yaml_value(text, key.strip())
    return out


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.atomic import check_writable
    from fairvlm.errors import bad_value
    from fairvlm.mitigation import steering
    from fairvlm.mitigation.steering.builders import get_builder
    from fairvlm.models import load_vlm

    builder = get_builder(args.method)
    options = _overrides(args.set)
    if args.layers is not None:
        options["layers"] = args.layers
    cfg = builder.parse(options)  # bad fields fail before the model loads
    model_args = parse_model_args(args.model_arg)
    if not Path(args.data).exists():
        raise bad_value("DATA", args.data, "give an existing dataset folder")
    if not args.out.endswith(".safetensors"):
        raise bad_value("--out", args.out, "name a .safetensors file")
    check_writable(args.out, "--out")  # before the vector is computed, not after
    if Path(args.out).exists() and not args.overwrite and not steering.is_vector_file(args.out):
        raise bad_value(
            "--out",
            args.out,
            "it exists and is not a fairvlm steering vector: choose another "
            "path, or pass --overwrite to replace it",
        )
    vlm = load_vlm(
        args.model, dtype=args.dtype, device=args.device, adapter=args.adapter, **model_args
    )
    vector = builder.build(vlm, args.data, cfg, progress=not args.no_progress)
    path = vector.save(args.out)
    print(vector)
    print(f"wrote {path}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import bad_value
    from fairvlm.mitigation.steering import SteeringVector
    from fairvlm.mitigation.steering.sweep import SweepConfig, parse_layer_sets, run_sweep

    audit: dict = {}
    for name in ("tasks", "split", "limit", "limit_mode", "batch_size"):
        if getattr(args, name) is not None:
            audit[name] = getattr(args, name)
    if args.n_boot is not None:
        audit["metrics"] = {"n_boot": args.n_boot}
    if args.no_progress:
        audit["progress"] = False
    given = {
        "scales": args.scales,
        "layers": parse_layer_sets(args.layers) if args.layers else None,
        "operator": args.operator,
        "positions": args.positions,
    }
    given = {k: v for k, v in given.items() if v is not None}
    cfg = SweepConfig.from_dict({**given, "audit": audit}, prefix="--")
    if not Path(args.vector).is_file():
        raise bad_value("--vector", args.vector, "give an existing .safetensors steering vector")
    vector = SteeringVector.load(args.vector)
    rows = run_sweep(
        args.model,
        args.data,
        vector,
        cfg,
        args.out,
        adapter=args.adapter,
        dtype=args.dtype,
        device=args.device,
        model_args=parse_model_args(args.model_arg),
        overwrite=args.overwrite,
    )
    print((Path(args.out) / "table.md").read_text(), end="")
    print(f"wrote {Path(args.out) / 'table.csv'} ({len(rows)} runs)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch ``build`` / ``sweep``."""
    if args.steer_command == "build":
        return _build(args)
    if args.steer_command == "sweep":
        return _sweep(args)
    print("usage: fairvlm steer {build,sweep} ... (see fairvlm steer --help)")
    return 2
