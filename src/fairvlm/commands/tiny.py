"""``fairvlm tiny FAMILY OUT``: build a tiny random model of a family, offline."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm tiny``."""
    parser.add_argument("family", help="a family from `fairvlm models` (e.g. llava)")
    parser.add_argument(
        "out", help="directory to write (replaces only a fairvlm model folder or an empty one)"
    )
    parser.add_argument("--hidden-size", type=int, default=32, help="text hidden size")
    parser.add_argument("--num-layers", type=int, default=2, help="text decoder layers")
    parser.add_argument("--num-heads", type=int, default=4, help="attention heads")
    parser.add_argument("--vision-hidden-size", type=int, default=32)
    parser.add_argument("--vision-layers", type=int, default=2)
    parser.add_argument(
        "--geometry",
        default="tiny",
        help="input geometry (fairvlm.models.published.GEOMETRIES): tiny (small images, "
        "the default) or published (the reference checkpoint's image size, patch size, "
        "tiles and merge factor; docs/models.md)",
    )
    parser.add_argument(
        "--image-size", type=int, help="input side in pixels (default 32; tiny geometry only)"
    )
    parser.add_argument("--patch-size", type=int, help="default 8; tiny geometry only")
    parser.add_argument("--corpus", help="text file (one text per line) to train the tokenizer on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT even if it is not a fairvlm model"
    )


def run(args: argparse.Namespace) -> int:
    """Build, save and summarise the tiny model."""
    from pathlib import Path

    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import bad_value
    from fairvlm.models import build_tiny_vlm
    from fairvlm.models.published import GEOMETRIES

    if args.geometry not in GEOMETRIES:
        raise bad_value("--geometry", args.geometry, f"use one of {', '.join(GEOMETRIES)}")
    for flag, value in (("--image-size", args.image_size), ("--patch-size", args.patch_size)):
        if args.geometry == "published" and value is not None:
            raise bad_value(flag, value, "drop it: --geometry published sets it")
    corpus = None
    if args.corpus:
        path = Path(args.corpus)
        if not path.is_file():
            raise bad_value("--corpus", args.corpus, "give an existing text file")
        corpus = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    vlm = build_tiny_vlm(
        args.family,
        args.out,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        vision_hidden_size=args.vision_hidden_size,
        vision_layers=args.vision_layers,
        image_size=args.image_size,
        patch_size=args.patch_size,
        geometry=args.geometry,
        corpus=corpus,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    n_params = sum(p.numel() for p in vlm.model.parameters())
    print(
        f"wrote a tiny random {vlm.family} to {args.out} ({vlm.num_layers} layers, "
        f"hidden {vlm.hidden_size}, {n_params:,} parameters, {args.geometry} geometry, "
        "untrained)"
    )
    return 0
