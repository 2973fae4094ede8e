"""ASD ablation study on the embedded social benchmark (issue 7).

    python scripts/asd_study.py --base BASE_MODEL --data SOCIAL_DATA --out runs/asd_study

1. Writes a CMSC-style counterfactual fine-tuning set with the generator settings of
   SOCIAL_DATA (``build_cmsc(like=...)``: same concepts and cues, truthful answers).
2. Audits the base model on SOCIAL_DATA's test split (probe -> MaxSkew@K, MinSkew@K,
   NDKL per attribute; concept recognition accuracy = utility).
3. Fine-tunes the base model with ``naive``, ``asd-loss-only``, ``asd-sampling-only`` and
   ``asd`` for each seed, the same steps, data and LoRA, and audits each.
4. Prints the ablation table (mean over seeds, 95 % t-interval), the per-epoch skew
   logged during ASD training, and whether the issue's goals are met; writes
   ``study.json`` and ``study.md`` into OUT. Finished runs in OUT are reused.

Tune on something other than the test split: ``--audit-split finetune``, or (cleaner, as
done for docs/asd.md) ``--data`` = the same benchmark regenerated with another seed, each
with its own ``--out``. Only then run on the benchmark whose test split is reported.

Skew metrics are the means over the single attributes (gender, race, age) of the
audit's per-attribute values (its overall also averages intersections).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("naive", "asd-loss-only", "asd-sampling-only", "asd")
METRICS = ("max_skew", "min_skew", "ndkl", "utility")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the biased social base model folder")
    p.add_argument("--data", required=True, help="the social benchmark folder (test split audited)")
    p.add_argument("--out", required=True, help="study folder (reused across calls)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=150, help="optimiser steps of every run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3,
                   help="learning rate of every variant (3e-3: chosen on a seed-100 validation "
                   "benchmark, see docs/asd.md)")  # fmt: skip
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--sets", type=int, default=2, help="CMSC counterfactual sets per concept")
    p.add_argument("--train-on", default="cmsc", choices=["cmsc", "finetune"],
                   help="cmsc: a CMSC-style set built like --data; finetune: --data's own "
                   "finetune split (e.g. one that keeps part of the stereotype)")  # fmt: skip
    p.add_argument("--cmsc-tasks", nargs="+", default=["probe", "concept", "describe"])
    p.add_argument("--no-negatives", action="store_true", help="CMSC without 'no' probes")
    p.add_argument("--projector", default="full", choices=["full", "lora", "frozen"])
    p.add_argument("--scheduler", default="constant")
    p.add_argument("--k", type=int, default=None, help="K of Skew@K (default: half of each pool)")
    p.add_argument("--method-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra ASD option for the asd variants, e.g. tau1=0.5")  # fmt: skip
    p.add_argument("--audit-split", default="test",
                   help="split of --data that is audited; tune hyperparameters on 'finetune' "
                   "(with its own --out), report on 'test'")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _audit(
    adapter: Any, data: str, out: Path, attributes: list[str], k: int | None, split: str = "test"
) -> dict:
    """Audit probe + concept on ``split``; the study's four numbers (+ details)."""
    from fairvlm.audit import AuditConfig, run_audit
    from fairvlm.metrics import MetricsConfig

    cfg = AuditConfig(
        tasks=["probe", "concept"],
        split=split,
        closed_mode="score",
        batch_size=64,
        progress=False,
        metrics=MetricsConfig(n_boot=200, k=k),
    )
    run_audit(adapter, data, cfg, out, overwrite=True)
    m = json.loads((out / "metrics.json").read_text())["tasks"]
    probe, concept = m["probe"]["metrics"], m["concept"]["metrics"]
    row = {
        key: float(sum(probe[key]["by_attribute"][a] for a in attributes) / len(attributes))
        for key in ("max_skew", "min_skew", "ndkl")
    }
    row["utility"] = float(concept["accuracy"]["overall"])
    row["utility_ci"] = concept["accuracy"].get("ci")
    row["by_attribute"] = {
        key: {a: probe[key]["by_attribute"][a] for a in attributes}
        for key in ("max_skew", "min_skew", "ndkl")
    }
    return row


def base_row(
    model: str, data: str, out: Path, attrs: list[str], k: int | None = None, split: str = "test"
) -> dict:
    """The base model's audit row, cached in ``out/base.json``."""
    from fairvlm.models import load_vlm

    base_file = out / "base.json"
    if base_file.is_file():
        return json.loads(base_file.read_text())
    base = _audit(load_vlm(model), data, out / "base_audit", attrs, k, split)
    _write_json(base_file, base)
    return base


def _train_config(args: argparse.Namespace, seed: int, variant: str) -> dict:
    method: dict[str, Any] = {"progress": False, "k": args.k}
    if variant == "naive":
        method["track_skew"] = True  # log its skew per epoch too (no effect on training)
    else:
        for item in args.method_set:
            key, value = item.split("=", 1)
            import yaml

            method[key] = yaml.safe_load(value)
    return {
        "train": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": seed,
            "scheduler": args.scheduler,
            "warmup_ratio": 0.0,
            "probe_split": None,
            "progress": False,
            "logging_steps": 10,
            "save_steps": 10**6,
            "lora": {
                "r": args.lora_r,
                "alpha": 2 * args.lora_r,
                "dropout": 0.0,
                "projector": args.projector,
            },
        },
        "method": method,
    }


def _run(args: argparse.Namespace, cmsc: Path, variant: str, seed: int, attrs: list[str]) -> dict:
    import shutil

    from fairvlm.training import train

    run_dir = Path(args.out) / "runs" / f"{variant}-seed{seed}"
    done = run_dir / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.time()
    result = train(
        args.base,
        str(cmsc),
        variant,
        _train_config(args, seed, variant),
        run_dir / "model",
    )
    train_s = time.time() - start
    row = _audit(result.adapter, args.data, run_dir / "audit", attrs, args.k, args.audit_split)
    row.update(
        variant=variant,
        seed=seed,
        steps=result.global_step,
        train_s=round(train_s, 1),
        skew_log=[
            {k: v for k, v in r.items() if k.startswith("asd/") or k in ("epoch", "step")}
            for r in result.log_history
            if "asd/epoch" in r
        ],
    )
    _write_json(done, row)
    return row


def _mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of the 95 % t-interval over seeds (0 for one seed)."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def _table(base: dict, runs: dict[str, list[dict]]) -> tuple[str, dict]:
    lines = [
        "| method | MaxSkew@K | MinSkew@K | NDKL | concept accuracy |",
        "|---|---|---|---|---|",
        f"| base | {base['max_skew']:.3f} | {base['min_skew']:.3f} | {base['ndkl']:.4f} | "
        f"{base['utility']:.3f} |",
    ]
    summary: dict[str, dict] = {"base": {k: base[k] for k in METRICS}}
    for variant, rows in runs.items():
        cells, summary[variant] = [], {}
        for key in METRICS:
            mean, half = _mean_ci([r[key] for r in rows])
            summary[variant][key] = {"mean": mean, "ci": [mean - half, mean + half]}
            digits = 4 if key == "ndkl" else 3
            cells.append(f"{mean:.{digits}f} ± {half:.{digits}f}")
        lines.append(f"| {variant} (n={len(rows)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines), summary


def _paired(runs: dict[str, list[dict]], key: str) -> str:
    """``|ASD| - |naive|`` of ``key`` paired by seed: mean ± 95 % t half-width."""
    diffs = [abs(a[key]) - abs(n[key]) for a, n in zip(runs["asd"], runs["naive"], strict=True)]
    if len(diffs) < 2:
        return ""
    mean, half = _mean_ci(diffs)
    return f"; paired by seed, |ASD| - |naive| = {mean:+.3f} ± {half:.3f} (n={len(diffs)})"


def _goals(base: dict, summary: dict, runs: dict[str, list[dict]]) -> list[str]:
    out = []
    if "asd" not in summary:
        return out
    asd = summary["asd"]
    for key, label in (("max_skew", "MaxSkew"), ("min_skew", "|MinSkew|")):
        b, a = abs(base[key]), abs(asd[key]["mean"])
        cut = 1 - a / b if b > 0 else float("nan")
        out.append(f"{label}: base {b:.3f} -> ASD {a:.3f} ({100 * cut:.0f}% toward 0; goal >= 50%): "
                   f"{'MET' if cut >= 0.5 else 'NOT MET'}")  # fmt: skip
        if "naive" in summary:
            n = abs(summary["naive"][key]["mean"])
            out.append(f"{label}: ASD {a:.3f} vs naive {n:.3f} (goal: ASD <= naive): "
                       f"{'MET' if a <= n else 'NOT MET'}{_paired(runs, key)}")  # fmt: skip
    drop = 100 * (base["utility"] - asd["utility"]["mean"])
    out.append(f"concept accuracy: base {base['utility']:.3f} -> ASD {asd['utility']['mean']:.3f} "
               f"({drop:+.1f} points lost; goal <= 2): {'MET' if drop <= 2 else 'NOT MET'}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from fairvlm.data import dataset_metadata
    from fairvlm.mitigation.asd.cmsc import CMSCConfig, build_cmsc

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    attrs = sorted(dataset_metadata(args.data)["attributes"])
    cmsc = Path(args.data) if args.train_on == "finetune" else out / "cmsc"
    if not (cmsc / "fairvlm_metadata.json").is_file():
        build_cmsc(
            cmsc,
            CMSCConfig(
                like=args.data,
                n_sets=args.sets,
                n_test_sets=0,
                tasks=args.cmsc_tasks,
                negatives=not args.no_negatives,
            ),
        )
    base = base_row(args.base, args.data, out, attrs, args.k, args.audit_split)
    runs: dict[str, list[dict]] = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            row = _run(args, cmsc, variant, seed, attrs)
            runs[variant].append(row)
            print(f"{variant} seed {seed}: MaxSkew {row['max_skew']:.3f} MinSkew "
                  f"{row['min_skew']:.3f} NDKL {row['ndkl']:.4f} acc {row['utility']:.3f} "
                  f"({row['train_s']} s)", flush=True)  # fmt: skip
    table, summary = _table(base, runs)
    goals = _goals(base, summary, runs)
    curves = {
        v: [[(r["asd/epoch"], r.get("asd/max_skew"), r.get("asd/min_skew")) for r in row["skew_log"]]
            for row in rows]
        for v, rows in runs.items()
    }  # fmt: skip
    print(f"\nASD ablation on {args.data}, split {args.audit_split} (attributes {', '.join(attrs)}; {args.steps} steps, "
          f"seeds {args.seeds}; mean ± 95% t-interval half-width)\n")  # fmt: skip
    print(table)
    print("\nskew estimated during training (epoch, MaxSkew, MinSkew on the CMSC pools), seed "
          f"{args.seeds[0]}:")  # fmt: skip
    for v, c in curves.items():
        print(f"  {v}: " + ", ".join(f"({e:.0f}, {a:.3f}, {b:.3f})" for e, a, b in c[0]))
    print("\n" + "\n".join(goals))
    _write_json(out / "study.json", {"args": vars(args), "base": base, "runs": runs,
                                     "summary": summary, "goals": goals})  # fmt: skip
    (out / "study.md").write_text(table + "\n\n" + "\n".join(goals) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
