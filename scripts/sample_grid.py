"""Draw docs/benchmark_samples.png: samples of both embedded benchmarks, per group.

Top: clinical images per skin tone (rows) and diagnosis (columns), with the default
``underrep`` appearance shift of the minority (dark) group, and the ``subtle`` group cue.
Bottom: social counterfactual sets (one scene per row, every gender x race x age).

Usage: ``.venv/bin/python scripts/sample_grid.py [--out docs/benchmark_samples.png]``
"""

from __future__ import annotations

import argparse
import io
import itertools
from pathlib import Path

import numpy as np
from PIL import Image


def _img(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def clinical_rows(per_class: int = 3, seed: int = 0) -> list[tuple[str, list[np.ndarray]]]:
    """(row label, images) per skin tone x appearance setting; columns = diagnoses."""
    from fairvlm.synth import clinical as clin
    from fairvlm.synth.config import ClinicalConfig

    rng = np.random.default_rng(seed)
    settings = [
        ("mechanism=none", ClinicalConfig(mechanism="none")),
        ("underrep (default)", ClinicalConfig(mechanism="underrep")),
        ("group_cue=subtle", ClinicalConfig(mechanism="none", group_cue="subtle")),
    ]
    rows = []
    for label, cfg in settings:
        for tone in ("light", "dark"):
            images = [
                _img(clin.render(cfg, clin.Case(tone, d, None, None), rng)[0])
                for d in cfg.classes
                for _ in range(per_class)
            ]
            rows.append((f"{label}: {tone}", images))
    return rows


def social_rows(n_concepts: int = 4, seed: int = 0) -> list[tuple[str, list[np.ndarray]]]:
    """One counterfactual set per concept: every gender x race x age combination."""
    from fairvlm.synth import social as soc
    from fairvlm.synth.config import SocialConfig

    cfg = SocialConfig()
    rng = np.random.default_rng(seed)
    combos = [
        dict(zip(soc.ATTRIBUTES, v, strict=True)) for v in itertools.product(*soc.VALUES.values())
    ]
    rows = []
    for concept in cfg.concepts[:n_concepts]:
        scene = soc.new_scene(cfg, concept, rng)
        rows.append((concept, [_img(soc.render(cfg, scene, a, rng)) for a in combos]))
    return rows


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmark_samples.png"))
    args = parser.parse_args()
    clinical, social = clinical_rows(), social_rows()
    width = max(len(r[1]) for r in clinical + social)
    height = len(clinical) + len(social)
    fig, axes = plt.subplots(height, width, figsize=(width * 0.9, height * 1.0 + 0.8))
    for ax in axes.flat:
        ax.axis("off")
    for i, (label, images) in enumerate(clinical + social):
        for j, im in enumerate(images):
            axes[i, j].imshow(im, interpolation="nearest")
        axes[i, 0].text(-3, 16, label, ha="right", va="center", fontsize=7)
    axes[0, 1].set_title("nevus", fontsize=8)
    axes[0, 4].set_title("melanoma", fontsize=8)
    axes[0, 7].set_title("keratosis", fontsize=8)
    from fairvlm.synth import social as soc

    combos = list(itertools.product(*soc.VALUES.values()))
    for j, (g, r, a) in enumerate(combos):
        axes[len(clinical), j].set_title(f"{g}\n{r} {a}", fontsize=6)
    fig.suptitle(
        "fairvlm embedded benchmarks: clinical (top), social counterfactual sets (bottom)",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.16, right=0.99, top=0.93, bottom=0.01, wspace=0.08, hspace=0.45)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
