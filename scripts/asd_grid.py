"""ASD against naive fine-tuning over a budget grid (issue 19, item 1).

    python scripts/asd_grid.py --base BASE --data DATA --out runs/asd_grid_demo \\
        --lrs 1e-5 1e-4 1e-3 3e-3 --steps 50 100 200 --seeds 0 1 2 3 4

Every cell (learning rate x steps) fine-tunes the base model with ``naive`` and ``asd``
for every seed on DATA's own finetune split (the runs of ``scripts/asd_study.py
--train-on finetune``: same LoRA, batch and audit) and audits DATA's test split.
Per cell and metric, the paired difference ``|ASD| - |naive|`` over the seeds gets a
two-sided paired t-test; Holm corrects over every test of the grid (cells x the two skew
metrics). The concept-accuracy difference is reported beside it, so "closer to 0 at equal
utility" can be read off. Nothing is selected from the grid: every cell is reported, so
no validation split is needed. Writes ``grid.json``, ``grid.md`` and ``tradeoff.png``
into OUT; finished runs are reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asd_study  # noqa: E402  (the study's runs, audit and t-interval, reused cell by cell)

SKEWS = (("max_skew", "MaxSkew"), ("min_skew", "|MinSkew|"))


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-5, 1e-4, 1e-3, 3e-3])
    p.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--label", default=None, help="the setting's name in the table and plot")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def _cell_args(args: argparse.Namespace, lr: float, steps: int) -> argparse.Namespace:
    study = asd_study._args(["--base", args.base, "--data", args.data, "--out", "-"])
    study.lr, study.steps, study.train_on = lr, steps, "finetune"
    study.out = str(Path(args.out) / f"lr{lr:g}-steps{steps}")
    return study


def _paired(naive: list[dict], asd: list[dict], key: str, absolute: bool) -> dict[str, Any]:
    """Mean and 95 % t half-width of ASD - naive paired by seed, and the t-test's p."""
    from scipy import stats

    f = abs if absolute else (lambda v: v)
    diffs = [f(a[key]) - f(n[key]) for a, n in zip(asd, naive, strict=True)]
    mean, half = asd_study._mean_ci(diffs)
    p = float(stats.ttest_1samp(diffs, 0.0).pvalue) if len(set(diffs)) > 1 else 1.0
    return {"diff": mean, "half": half, "p": p, "per_seed": diffs}


def _plot(cells: list[dict], base: dict, label: str, path: Path) -> None:
    """Top: the trade-off (skew against concept accuracy, one line per method and step
    budget, lr rising along it). Bottom: skew against lr with its t-interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({c["steps"] for c in cells})
    shades = [0.45 + 0.55 * i / max(len(budgets) - 1, 1) for i in range(len(budgets))]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    lowest = min(min(c[m]["utility"]["mean"] for m in ("naive", "asd")) for c in cells)
    for col, (key, name) in enumerate(SKEWS):
        for method, style, cmap in (("naive", "o-", "Blues"), ("asd", "s--", "Oranges")):
            for shade, steps in zip(shades, budgets, strict=True):
                colour = plt.get_cmap(cmap)(shade)
                row = sorted((c for c in cells if c["steps"] == steps), key=lambda c: c["lr"])
                acc = [c[method]["utility"]["mean"] for c in row]
                skew = [abs(c[method][key]["mean"]) for c in row]
                half = [(c[method][key]["ci"][1] - c[method][key]["ci"][0]) / 2 for c in row]
                tag = f"{method}, {steps} steps"
                axes[0, col].plot(acc, skew, style, color=colour, label=tag, alpha=0.85)
                axes[1, col].errorbar([c["lr"] for c in row], skew, yerr=half, fmt=style,
                                      color=colour, label=tag, alpha=0.85, capsize=3)  # fmt: skip
        axes[0, col].plot([base["utility"]], [abs(base[key])], "k*", markersize=12, label="base")
        axes[1, col].axhline(abs(base[key]), color="k", linestyle=":", label="base")
        axes[0, col].set_xlim(min(lowest, 0.9) - 0.01, 1.005)
        axes[0, col].set_xlabel("concept accuracy (mean over seeds; 1 = ceiling)")
        axes[1, col].set_xscale("log")
        axes[1, col].set_xlabel("learning rate")
        for ax in axes[:, col]:
            ax.set_ylabel(f"{name} (mean over seeds; 0 = no skew)")
            ax.grid(alpha=0.3)
    axes[0, 0].set_title(f"{label}: skew against utility, lr rising along each line")
    axes[1, 0].set_title("skew against lr, 95 % t-interval over seeds")
    axes[1, 1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from fairvlm.data import dataset_metadata
    from fairvlm.metrics.paired import holm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    label = args.label or out.name
    attrs = sorted(dataset_metadata(args.data)["attributes"])
    base = asd_study.base_row(args.base, args.data, out, attrs)
    cells = []
    for steps in args.steps:
        for lr in args.lrs:
            cell_args = _cell_args(args, lr, steps)
            runs: dict[str, list[dict]] = {"naive": [], "asd": []}
            for seed in args.seeds:
                for variant in runs:
                    row = asd_study._run(cell_args, Path(args.data), variant, seed, attrs)
                    runs[variant].append(row)
                    print(f"lr {lr:g} steps {steps} {variant} seed {seed}: MaxSkew "
                          f"{row['max_skew']:.3f} MinSkew {row['min_skew']:.3f} acc "
                          f"{row['utility']:.3f} ({row['train_s']} s)", flush=True)  # fmt: skip
            _, summary = asd_study._table(base, runs)
            cell = {"lr": lr, "steps": steps, **summary}
            cell["tests"] = {
                key: _paired(runs["naive"], runs["asd"], key, True) for key, _ in SKEWS
            }
            cell["utility_diff"] = _paired(runs["naive"], runs["asd"], "utility", False)
            cells.append(cell)
    tests = [(c, key) for c in cells for key, _ in SKEWS]
    for (c, key), p in zip(tests, holm([c["tests"][key]["p"] for c, key in tests]), strict=True):
        c["tests"][key]["p_holm"] = p
    lines = [
        f"ASD vs naive on {label} ({len(args.seeds)} seeds per cell; |ASD| - |naive| paired by "
        f"seed, mean ± 95 % t half-width, two-sided paired t-test, Holm over the grid's "
        f"{len(tests)} tests; base: MaxSkew {base['max_skew']:.3f}, MinSkew "
        f"{base['min_skew']:.3f}, accuracy {base['utility']:.3f})",
        "",
        "| lr | steps | naive MaxSkew | asd MaxSkew | Δ|MaxSkew| | p (Holm) | naive MinSkew | "
        "asd MinSkew | Δ|MinSkew| | p (Holm) | naive acc | asd acc | Δ acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    wins = []
    for c in cells:
        parts = [f"{c['lr']:g}", str(c["steps"])]
        for key, name in SKEWS:
            t = c["tests"][key]
            parts += [f"{c['naive'][key]['mean']:.3f}", f"{c['asd'][key]['mean']:.3f}",
                      f"{t['diff']:+.3f} ± {t['half']:.3f}", f"{t['p']:.3f} ({t['p_holm']:.3f})"]  # fmt: skip
            if t["p_holm"] < args.alpha and t["diff"] < 0:
                wins.append(f"lr {c['lr']:g}, {c['steps']} steps: {name}")
        u = c["utility_diff"]
        parts += [f"{c['naive']['utility']['mean']:.3f}", f"{c['asd']['utility']['mean']:.3f}",
                  f"{u['diff']:+.3f} ± {u['half']:.3f}"]  # fmt: skip
        lines.append("| " + " | ".join(parts) + " |")
    verdict = (
        "ASD is significantly closer to 0 than naive (Holm-adjusted p < "
        f"{args.alpha}) in: " + "; ".join(wins)
        if wins
        else f"No cell shows ASD significantly closer to 0 than naive (every Holm-adjusted "
        f"p >= {args.alpha}, or the difference favours naive)."
    )
    smallest = min((c["tests"][key]["p_holm"], c["lr"], c["steps"], key) for c, key in tests)
    lines += ["", verdict, f"Smallest Holm-adjusted p: {smallest[0]:.3f} "
              f"(lr {smallest[1]:g}, {smallest[2]} steps, {smallest[3]})."]  # fmt: skip
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    _plot(cells, base, label, out / "tradeoff.png")
    asd_study._write_json(out / "grid.json", {"args": vars(args), "base": base, "cells": cells,
                                              "verdict": verdict})  # fmt: skip
    (out / "grid.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
