"""Steering efficacy on the embedded social benchmark: the fairness-utility table.

For both builders (contrastive, gradient) and a few layers / scales / operators, audit
the steered base model on the test split and report the "Describe the person."
attribute-mention rate (fairness) and the concept-recognition VQA accuracy (utility),
with bootstrap CIs, against the unsteered model. Goal: mention rate down by >= 70 %
(relative), concept accuracy within 2 points. Also reported: how often the description
still names the image's concept (a utility of the description itself).

    python scripts/steering_efficacy.py --model BASE_DIR --data SOCIAL_DIR --out DIR
    python scripts/steering_efficacy.py --out DIR        # synthesises + pretrains first

Without ``--model`` / ``--data`` the default social benchmark is generated into
``DIR/social`` and the base model pretrained into ``DIR/base`` (cached by config hash).
Every audit is a resumable ``fairvlm.audit`` folder under ``DIR/sweeps`` (``DIR/sweeps-<split>``
for another ``--split``); the table is ``DIR/<table>.csv`` and ``DIR/<table>.md``
(``--table``, default ``efficacy``, suffixed ``-<split>`` for another split).

To choose a scale without looking at the test split, sweep on the finetune split first,
then audit only the chosen setting on test:

    python scripts/steering_efficacy.py ... --split finetune --only gradient-pixels \
        --scales gradient:add=8,12,16
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: name -> (builder, config). Layers are filled in with every decoder layer of the model.
VECTORS = {
    "contrastive-pca": (
        "contrastive",
        {"position": "answer_mean", "answer_tokens": 3, "aggregator": "pca", "limit": 512},
    ),
    "contrastive-mean_diff": (
        "contrastive",
        {"position": "answer_mean", "answer_tokens": 3, "aggregator": "mean_diff", "limit": 512},
    ),
    "gradient-pixels": ("gradient", {"target": "pixels", "positions": "last_prompt"}),
    "gradient-projector": ("gradient", {"target": "projector", "positions": "last_prompt"}),
    "gradient-pixels-imagemean": ("gradient", {"target": "pixels", "positions": "image_mean"}),
}
#: builder -> [(operator, scales)] swept. Contrastive vectors point towards the bias
#: (ablate them, or add them negatively); gradient vectors point away from it.
SWEEPS = {
    "contrastive": [("ablate", [1.0]), ("add", [-2.0, -4.0])],
    "gradient": [("add", [2.0, 4.0, 8.0])],
}


def concept_named(records_path: Path) -> tuple[float, float]:
    """Share of describe outputs naming the sample's concept (as a whole word), unsteered
    descriptions included; and the number of records."""
    import pandas as pd

    df = pd.read_parquet(records_path)
    df = df[df["task"] == "describe"]
    hits = [
        bool(re.search(rf"\b{re.escape(str(c))}\b", str(o), re.IGNORECASE))
        for c, o in zip(df["concept"], df["output"], strict=True)
    ]
    return (sum(hits) / len(hits) if hits else float("nan")), len(hits)


def _prepare(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    if args.model and args.data:
        return Path(args.model), Path(args.data)
    from fairvlm.synth import synthesize
    from fairvlm.training.pretrain import pretrain

    data = Path(args.data) if args.data else out / "social"
    if not data.exists():
        synthesize("social", data)
    model = Path(args.model) if args.model else pretrain(data, out / "base", {"progress": False})
    return model, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the pretrained social base model folder")
    parser.add_argument("--data", help="the social benchmark dataset folder")
    parser.add_argument("--out", default="runs/steering_efficacy")
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--only", nargs="*", help="vector names to run (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--split", default="test", help="the audited split (default test)")
    parser.add_argument(
        "--scales",
        action="append",
        default=[],
        metavar="BUILDER:OPERATOR=S1,S2",
        help="replace a builder's sweep, e.g. gradient:add=8,12 (repeat for several operators)",
    )
    parser.add_argument(
        "--layers", help="layer sets, ',' between sets, '+' within one (default: each, all)"
    )
    parser.add_argument("--table", default="efficacy", help="name of the table files")
    args = parser.parse_args()
    sweeps = _sweeps(args.scales)

    import pandas as pd
    import torch

    from fairvlm.mitigation import steering
    from fairvlm.mitigation.steering.sweep import run_sweep
    from fairvlm.models import load_vlm

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir, data_dir = _prepare(args, out)
    vlm = load_vlm(model_dir)
    all_layers = list(range(vlm.num_layers))
    layer_sets = [[layer] for layer in all_layers] + ([all_layers] if len(all_layers) > 1 else [])
    if args.layers:
        from fairvlm.mitigation.steering.sweep import parse_layer_sets

        layer_sets = parse_layer_sets(args.layers)
    audit = {
        "split": args.split,
        "tasks": ["describe", "concept"],
        "batch_size": args.batch_size,
        "progress": False,
        "metrics": {"n_boot": args.n_boot},
    }
    root = out / ("sweeps" if args.split == "test" else f"sweeps-{args.split}")
    base_dir = root / "base"
    rows = []
    started = time.perf_counter()
    for name, (builder, options) in VECTORS.items():
        if args.only and name not in args.only:
            continue
        path = out / "vectors" / f"{name}.safetensors"
        if path.is_file():
            vector = steering.SteeringVector.load(path)
        else:
            build = (
                steering.build_contrastive if builder == "contrastive" else steering.build_gradient
            )
            vector = build(vlm, data_dir, {**options, "layers": all_layers})
            vector.save(path)
        for operator, scales in sweeps[builder]:
            sweep_out = root / f"{name}-{operator}"
            table = run_sweep(
                vlm,
                data_dir,
                vector,
                {"scales": scales, "layers": layer_sets, "operator": operator, "audit": audit},
                sweep_out,
                base_dir=base_dir,
            )
            for row in table:
                steered = bool(row["operator"])
                if not steered and rows:
                    continue  # one unsteered row in the table
                folder = sweep_out / "runs" / row["run"] if steered else base_dir
                named, _ = concept_named(folder / "records.parquet")
                rows.append(
                    {
                        "vector": name if steered else "none (base)",
                        **{k: row.get(k) for k in ("operator", "layers", "scale")},
                        **{k: v for k, v in row.items() if k.startswith(("describe.", "concept."))},
                        "describe.concept_named": named,
                    }
                )
    df = pd.DataFrame(rows)
    base = df.iloc[0]
    df["goal_met"] = (df["describe.mention_rate"] <= 0.3 * base["describe.mention_rate"]) & (
        (df["concept.accuracy"] - base["concept.accuracy"]).abs() <= 0.02
    )
    table = args.table if args.split == "test" else f"{args.table}-{args.split}"
    df.to_csv(out / f"{table}.csv", index=False)
    md = _markdown(df)
    (out / f"{table}.md").write_text(md)
    print(md)
    print(
        f"model={model_dir} data={data_dir} split={args.split} "
        f"audits in {time.perf_counter() - started:.0f}s"
    )
    print(json.dumps({"rows": len(df), "goal_met": int(df["goal_met"].sum())}))


def _sweeps(items: list[str]) -> dict[str, list[tuple[str, list[float]]]]:
    """``SWEEPS`` with the builders named in ``--scales BUILDER:OPERATOR=S1,S2`` replaced."""
    given: dict[str, list[tuple[str, list[float]]]] = {}
    for item in items:
        head, _, values = item.partition("=")
        builder, _, operator = head.partition(":")
        try:
            scales = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            scales = []
        if builder not in SWEEPS or not operator or not scales:
            raise SystemExit(
                f"--scales {item!r}: write BUILDER:OPERATOR=S1,S2 with BUILDER one of "
                f"{list(SWEEPS)}, e.g. gradient:add=8,12"
            )
        given.setdefault(builder, []).append((operator, scales))
    return {**SWEEPS, **given}


def _ci(row, key: str) -> str:
    lo, hi = row.get(f"{key}.ci_lo"), row.get(f"{key}.ci_hi")
    return f"{row[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _markdown(df) -> str:
    head = (
        "| vector | operator | layers | scale | mention rate [95% CI] | drop | "
        "concept acc [95% CI] | delta | concept named | goal |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for _, r in df.iterrows():
        drop = r.get("describe.mention_rate.drop")
        delta = r.get("concept.accuracy.delta")
        lines.append(
            f"| {r['vector']} | {r['operator'] or ''} | {r['layers'] or ''} | {r['scale']:g} | "
            f"{_ci(r, 'describe.mention_rate')} | {drop:.0%} | {_ci(r, 'concept.accuracy')} | "
            f"{delta:+.3f} | {r['describe.concept_named']:.3f} | {'yes' if r['goal_met'] else ''} |"
        )
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
