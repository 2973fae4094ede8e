"""The tiny LLaVA at LLaVA-1.5's image geometry that the audit benchmarks run: 336 px
images, patch 14 (576 image tokens), text hidden 512, 4 layers. A helper of the
benchmark scripts, not one itself (``run_all.py`` skips names that start with ``_``)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The geometry's flags (defaults: LLaVA-1.5's)."""
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=336)
    parser.add_argument("--patch-size", type=int, default=14)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)


def build(args: argparse.Namespace) -> Any:
    """The tiny LLaVA of ``args`` (torch limited to ``--threads``)."""
    import torch

    from fairvlm.models import build_tiny_vlm

    torch.set_num_threads(args.threads)
    return build_tiny_vlm(
        "llava",
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=8,
        vision_hidden_size=64,
        vision_layers=2,
        image_size=args.image_size,
        patch_size=args.patch_size,
    )


def describe(vlm: Any, args: argparse.Namespace) -> str:
    """One line: the geometry, the batch, the threads and the machine's load."""
    tokens = vlm.image_tokens_per_image(args.image_size, args.image_size)
    return (
        f"image_tokens={tokens} hidden={args.hidden} layers={args.layers} "
        f"batch_size={args.batch} threads={args.threads} load={os.getloadavg()[0]:.2f}"
    )
