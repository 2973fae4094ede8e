"""Steering on new models: each recipe over several benchmark seeds, each with its own base
(issue 19, item 3).

    python scripts/steering_seeds.py --root runs/steer --seeds 1 2 3 4 5 --out runs/steer/study

ROOT/seedS/data is a social benchmark generated with seed S and ROOT/seedS/base the model
pretrained on its train split (``fairvlm data synth social`` + ``fairvlm pretrain``). For
every seed and recipe:

1. the vector is built on the seed's **train** split, at every decoder layer;
2. scale x layer set are swept on the **finetune** split (``--finetune-limit`` samples
   per task), and one setting is chosen by a rule fixed in advance: the lowest mention
   rate with ``|delta concept accuracy| <= --max-acc-drop`` and concept named
   ``>= --min-named``; on a tie the smaller ``|scale|``;
3. the chosen setting is audited on the **test** split, which nothing was chosen on.

Recipes: ``contrastive`` (mean difference of describe answers that name the attributes
against those that do not, the demo's), ``gradient`` (one FGSM step on pixels, the
demo's), and ``per-value``: one contrastive direction per attribute value (the biased set
= answers naming that value's word), averaged with equal weights: one mean difference is
weighted by how often each branch of the description ("A young ...", "An old ...") occurs,
and removes the common one; the per-value mean gives every branch the same weight.

The test table has the mention rate overall and per attribute (gender, race, age), the
concept accuracy, the share of descriptions that name the concept, and the sentiment,
each with its bootstrap 95 % CI. Writes OUT/steering_seeds.json and .md; every audit is
a resumable folder under ROOT/seedS/steer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steering_efficacy import concept_named  # noqa: E402  (one definition of the share)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONTRASTIVE = {"position": "answer_mean", "answer_tokens": 3, "aggregator": "mean_diff"}
#: The words of each attribute value in the benchmark's descriptions (per-value recipe).
VALUE_WORDS = {
    "young": ["young"],
    "old": ["old"],
    "man": ["man"],
    "woman": ["woman"],
    "light": ["light skinned"],
    "brown": ["brown skinned"],
    "dark": ["dark skinned"],
}
#: recipe -> (operator, scales swept on finetune).
SCALES = {
    "contrastive": [-2.0, -3.0, -4.0, -6.0],
    "per-value": [-2.0, -3.0, -4.0, -6.0],
    "gradient": [4.0, 8.0, 12.0, 16.0],
}
ATTRIBUTES = ("gender", "race", "age")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="folder with seedS/data and seedS/base")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--recipes", nargs="+", default=list(SCALES), choices=list(SCALES))
    p.add_argument("--out", required=True)
    p.add_argument("--finetune-limit", type=int, default=192)
    p.add_argument("--max-acc-drop", type=float, default=0.01)
    p.add_argument("--min-named", type=float, default=0.95)
    p.add_argument("--n-boot", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def _vector(recipe: str, vlm: Any, data: Path, path: Path) -> Any:
    from fairvlm.mitigation import steering

    if path.is_file():
        return steering.SteeringVector.load(path)
    layers = list(range(vlm.num_layers))
    if recipe == "gradient":
        vector = steering.build_gradient(
            vlm, data, {"target": "pixels", "positions": "last_prompt", "layers": layers}
        )
    else:
        values = VALUE_WORDS if recipe == "per-value" else {"any": None}
        parts = [
            steering.build_contrastive(
                vlm, data, {**CONTRASTIVE, "limit": 512, "layers": layers, "lexicon": words}
            )
            for words in values.values()
        ]
        vector = parts[0]
        for part in parts[1:]:
            vector = vector + part
        vector = vector / len(parts)  # the mean, so the scales compare with one direction
    vector.save(path)
    return vector


def _measure(folder: Path) -> dict[str, Any]:
    """The table's numbers from one audit folder (value and CI of each)."""
    m = json.loads((folder / "metrics.json").read_text())["tasks"]
    describe, concept = m["describe"]["metrics"], m["concept"]["metrics"]

    def cell(entry: dict) -> dict:
        return {"value": entry["overall"], "ci": entry.get("ci")}

    row = {
        "mention_rate": cell(describe["mention_rate"]),
        "concept_accuracy": cell(concept["accuracy"]),
        "sentiment": cell(describe["sentiment"]),
        "concept_named": concept_named(folder / "records.parquet")[0],
    }
    lexicons = describe["mention_rate"]["by_lexicon"]
    for name in ATTRIBUTES:
        row[f"mention_{name}"] = cell(lexicons[name])
    return row


def _choose(rows: list[dict], base: dict, args: argparse.Namespace) -> dict | None:
    ok = [
        r
        for r in rows
        if abs(r["concept_accuracy"]["value"] - base["concept_accuracy"]["value"])
        <= args.max_acc_drop + 1e-12
        and r["concept_named"] >= args.min_named
    ]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["mention_rate"]["value"], abs(r["scale"])))


def _audit_cfg(split: str, limit: int | None, args: argparse.Namespace) -> dict:
    return {"split": split, "tasks": ["describe", "concept"], "batch_size": 64, "limit": limit,
            "progress": False, "metrics": {"n_boot": args.n_boot}}  # fmt: skip


def _one_seed(seed: int, args: argparse.Namespace) -> dict:
    from fairvlm.mitigation.steering.sweep import run_sweep
    from fairvlm.models import load_vlm

    root = Path(args.root) / f"seed{seed}"
    data, vlm = root / "data", load_vlm(root / "base")
    layers = list(range(vlm.num_layers))
    layer_sets = [[layer] for layer in layers] + [layers]
    out: dict[str, Any] = {"seed": seed, "recipes": {}}
    ft_base_dir, test_base_dir = root / "steer" / "finetune-base", root / "steer" / "test-base"
    if not (test_base_dir / "metrics.json").is_file():
        from fairvlm.audit import AuditConfig, run_audit

        run_audit(vlm, str(data), AuditConfig.from_dict(_audit_cfg("test", None, args)),
                  test_base_dir, overwrite=True)  # fmt: skip
    for recipe in args.recipes:
        vector = _vector(recipe, vlm, data, root / "steer" / f"{recipe}.safetensors")
        sweep_dir = root / "steer" / f"finetune-{recipe}"
        audit = _audit_cfg("finetune", args.finetune_limit, args)
        table = run_sweep(
            vlm, data, vector,
            {"scales": SCALES[recipe], "layers": layer_sets, "operator": "add", "audit": audit},
            sweep_dir, base_dir=ft_base_dir,
        )  # fmt: skip
        base = _measure(ft_base_dir)
        rows = [
            {**_measure(sweep_dir / "runs" / r["run"]), "layers": r["layers"], "scale": r["scale"]}
            for r in table
            if r["operator"]
        ]
        chosen = _choose(rows, base, args)
        entry: dict[str, Any] = {"finetune": rows, "finetune_base": base, "chosen": None}
        if chosen is not None:
            chosen_layers = [int(x) for x in str(chosen["layers"]).split("+")]
            test = run_sweep(
                vlm, data, vector,
                {"scales": [chosen["scale"]], "layers": [chosen_layers], "operator": "add",
                 "audit": _audit_cfg("test", None, args)},
                root / "steer" / f"test-{recipe}", base_dir=test_base_dir,
            )  # fmt: skip
            run = next(r["run"] for r in test if r["operator"])
            entry["chosen"] = {"layers": chosen["layers"], "scale": chosen["scale"]}
            entry["test"] = _measure(root / "steer" / f"test-{recipe}" / "runs" / run)
        out["recipes"][recipe] = entry
        print(f"seed {seed} {recipe}: chosen {entry['chosen']}", flush=True)
    out["test_base"] = _measure(test_base_dir)
    return out


def _fmt(cell: dict) -> str:
    ci = cell.get("ci") or [None, None]
    if ci[0] is None:
        return f"{cell['value']:.3f}"
    return f"{cell['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "| seed | recipe | layers | scale | mention rate | drop | gender | race | age | "
        "concept acc | Δ acc | concept named | sentiment | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        base = res["test_base"]
        cells = [_fmt(base["mention_rate"]), "0%"] + [
            _fmt(base[f"mention_{a}"]) for a in ATTRIBUTES
        ]
        cells += [_fmt(base["concept_accuracy"]), "+0.000", f"{base['concept_named']:.3f}",
                  _fmt(base["sentiment"]), ""]  # fmt: skip
        lines.append(f"| {res['seed']} | none (base) |  | 0 | " + " | ".join(cells) + " |")
        for recipe, entry in res["recipes"].items():
            if entry["chosen"] is None:
                lines.append(f"| {res['seed']} | {recipe} | no setting met the rule on "
                             "finetune |" + " |" * 11)  # fmt: skip
                continue
            t = entry["test"]
            drop = 1 - t["mention_rate"]["value"] / base["mention_rate"]["value"]
            delta = t["concept_accuracy"]["value"] - base["concept_accuracy"]["value"]
            goal = drop >= 0.8 and abs(delta) <= args.max_acc_drop + 1e-12
            cells = [_fmt(t["mention_rate"]), f"{drop:.0%}"]
            cells += [_fmt(t[f"mention_{a}"]) for a in ATTRIBUTES]
            cells += [_fmt(t["concept_accuracy"]), f"{delta:+.3f}", f"{t['concept_named']:.3f}",
                      _fmt(t["sentiment"]), "yes" if goal else ""]  # fmt: skip
            c = entry["chosen"]
            lines.append(f"| {res['seed']} | {recipe} | {c['layers']} | {c['scale']:g} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n" + _summary(results, args)


def _summary(results: list[dict], args: argparse.Namespace) -> str:
    """Per recipe: the mean drop and accuracy change over the seeds (95 % t half-width)
    and on how many seeds the goal (drop >= 80 %, |delta acc| <= the limit) is met."""
    import math
    import statistics

    from scipy import stats

    lines = ["", "| recipe | seeds | mention-rate drop | Δ concept acc | goal met on |",
             "|---|---|---|---|---|"]  # fmt: skip
    for recipe in args.recipes:
        drops, deltas = [], []
        for res in results:
            entry = res["recipes"].get(recipe)
            if entry is None or entry["chosen"] is None:
                drops.append(0.0)  # nothing allowed by the rule: the model is left unsteered
                deltas.append(0.0)
                continue
            base, test = res["test_base"], entry["test"]
            drops.append(1 - test["mention_rate"]["value"] / base["mention_rate"]["value"])
            deltas.append(test["concept_accuracy"]["value"] - base["concept_accuracy"]["value"])
        n = len(drops)
        t = stats.t.ppf(0.975, n - 1) / math.sqrt(n) if n > 1 else 0.0
        met = sum(
            d >= 0.8 and abs(a) <= args.max_acc_drop + 1e-12
            for d, a in zip(drops, deltas, strict=True)
        )
        half_d = t * statistics.stdev(drops) if n > 1 else 0.0
        half_a = t * statistics.stdev(deltas) if n > 1 else 0.0
        lines.append(f"| {recipe} | {n} | {statistics.fmean(drops):.0%} ± {half_d:.0%} | "
                     f"{statistics.fmean(deltas):+.3f} ± {half_a:.3f} | {met} of {n} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [_one_seed(seed, args) for seed in args.seeds]
    table = _table(results, args)
    print(table)
    (out / "steering_seeds.json").write_text(
        json.dumps({"args": vars(args), "results": results}, indent=2)
    )
    (out / "steering_seeds.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
