"""``--model-arg KEY=VALUE``: Hugging Face ``from_pretrained`` options, shared by every
command that loads a model (values are YAML scalars or JSON: ``true``, ``sdpa``, ``{...}``)."""

from __future__ import annotations

import argparse
from typing import Any

FLAG = "--model-arg"


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--model-arg`` flag (``args.model_arg``: the raw items)."""
    parser.add_argument(
        FLAG,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a from_pretrained option, e.g. attn_implementation=sdpa, revision=main, "
        "device_map=auto, quantization_config='{\"load_in_4bit\": true}' (repeatable; "
        "see docs/models.md)",
    )


def parse_model_args(items: list[str]) -> dict[str, Any]:
    """``{key: value}`` from ``KEY=VALUE`` items; a malformed one is a one-line error."""
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import bad_value
    from fairvlm.models.loading import check_load_options
    from fairvlm.yamlpos import parse_yaml_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise bad_value(FLAG, item, "write KEY=VALUE, e.g. attn_implementation=sdpa")
        out[key.strip()] = parse_yaml_value(text, key.strip())
    return check_load_options(out, FLAG)
