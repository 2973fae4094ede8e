"""``fairvlm metrics RECORDS``: recompute metrics from audit records, without the model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "records", metavar="RECORDS", help="records.parquet, a .jsonl file or an audit directory"
    )
    parser.add_argument("--out", metavar="PATH", help="write metrics.json here (atomically)")
    parser.add_argument(
        "--json", action="store_true", help="print the metrics JSON instead of the table"
    )
    parser.add_argument(
        "--n-boot",
        type=int,
        default=None,
        help="bootstrap replicates for CIs (0: none; default: the audit's, else 1000)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="bootstrap seed (default: the audit's, else 0)"
    )
    parser.add_argument(
        "--min-group-size",
        type=int,
        default=None,
        help="flag groups smaller than this (default: the audit's, else 10)",
    )
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help="K of Skew@K (default: the audit's, else half of each concept pool)",
    )
    parser.add_argument(
        "--attributes",
        default=None,
        help="comma-separated attributes to audit (default: the audit's, else all attr.* columns)",
    )
    parser.add_argument(
        "--model", default=None, help="model label written into metrics.json (default: the audit's)"
    )
    parser.add_argument(
        "--data", default=None, help="data label written into metrics.json (default: the audit's)"
    )
    parser.add_argument(
        "--ignore-config",
        action="store_true",
        help="ignore the audit folder's config.yaml: flags and library defaults only",
    )


def run(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.metrics import MetricsConfig, compute_metrics, read_records, write_metrics

    # The audit's own metric settings (lexicon, intersections, synonyms, bias pairs ...)
    # are the base, so recomputing reproduces its metrics.json; given flags override them.
    saved = None if args.ignore_config else _saved_audit(args.records)
    base = MetricsConfig(**saved["metrics"]) if saved else MetricsConfig()
    overrides = {
        "min_group_size": args.min_group_size,
        "n_boot": args.n_boot,
        "seed": args.seed,
        "k": args.k,
        "attributes": args.attributes,  # "a,b": the config splits it
    }
    cfg = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    model = args.model if args.model is not None else (saved or {}).get("model")
    data = args.data if args.data is not None else (saved or {}).get("data")
    if saved:
        print(f"metric settings from {saved['file']} (given flags override them)", file=sys.stderr)
    records = read_records(args.records)
    metrics = compute_metrics(records, model=model, data=data, config=cfg)
    if args.out:
        write_metrics(metrics, args.out)
    if args.json:
        json.dump(metrics, sys.stdout, indent=2)
        print()
    else:
        print(format_table(metrics))
        if args.out:
            print(f"wrote {args.out}")
    return 0


def _saved_audit(records: str) -> dict[str, Any] | None:
    """The metrics config, model and data of the audit whose folder holds ``records``.

    ``None`` when that folder has no ``config.yaml`` or it is not an audit's (no ``audit``
    key): plain records files are recomputed with the flags and library defaults.
    """
    import yaml

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import bad_value
    from fairvlm.metrics import MetricsConfig

    path = Path(records)
    file = (path if path.is_dir() else path.parent) / "config.yaml"
    if not file.is_file():
        return None
    doc = yaml.safe_load(file.read_text()) or {}
    audit = doc.get("audit") if isinstance(doc, dict) else None
    if not isinstance(audit, dict):
        return None
    metrics = audit.get("metrics") or {}
    names = [f.name for f in dataclasses.fields(MetricsConfig)]
    unknown = [k for k in metrics if k not in names] if isinstance(metrics, dict) else ["metrics"]
    if unknown:
        raise bad_value(
            f"{file}: audit.metrics",
            metrics,
            f"use a mapping of MetricsConfig fields {names}, or pass --ignore-config",
        )
    return {
        "file": str(file),
        "metrics": metrics,
        "model": doc.get("model"),
        "data": doc.get("data"),
    }


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def format_table(metrics: dict) -> str:
    """One line per task and metric: overall [CI] and the attribute with the largest gap."""
    lines = [f"{'task':<9} {'metric':<32} {'overall':>8} {'95% CI':>17}  largest gap"]
    for task, entry in metrics["tasks"].items():
        for name, m in entry["metrics"].items():
            kind = m.get("kind")
            if kind == "group":
                ci = m.get("ci") or [None, None]
                gaps = {
                    a: r["gap"] for a, r in m["by_attribute"].items() if r.get("gap") is not None
                }
                worst = max(gaps, key=gaps.get) if gaps else None
                gap = (
                    f"{worst}: {gaps[worst]:.4f} {_ci(m['by_attribute'][worst]['gap_ci'])}"
                    if worst
                    else "-"
                )
                lines.append(f"{task:<9} {name:<32} {_fmt(m['overall']):>8} {_ci(ci):>17}  {gap}")
            elif kind in ("ranking", "disparity"):
                by = m.get("by_attribute") or {}
                detail = ", ".join(f"{a}={_fmt(v)}" for a, v in by.items())
                lines.append(f"{task:<9} {name:<32} {_fmt(m.get('overall')):>8} {'':>17}  {detail}")
        for note in entry.get("notes", []):
            lines.append(f"{task:<9} note: {note}")
    return "\n".join(lines)


def _ci(ci) -> str:
    lo, hi = (ci or [None, None])[:2]
    return "-" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"
