"""``fairvlm models``: list the supported VLM families."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm models``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print each family with its ``config.model_type`` and transformers classes."""
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.registry import FAMILIES

    rows = [
        {
            "family": spec.name,
            "model_type": spec.model_type,
            "model_class": getattr(spec.model_class, "__name__", spec.model_class),
            "processor_class": spec.processor_class,
            "image_processor": spec.image_processor_class,
            "prompt_format": "chat template" if spec.chat else "prefix/suffix",
        }
        for spec in FAMILIES
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'family':<12} {'model class':<38} prompt format")
    for r in rows:
        print(f"{r['family']:<12} {r['model_class']:<38} {r['prompt_format']}")
    return 0
