"""``fairvlm info MODEL``: a model's family and structure."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fairvlm.commands.model_args import add_model_arg, parse_model_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``fairvlm info``."""
    parser.add_argument("model", help="model directory (or hub id when online)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--adapter", help="PEFT adapter directory to load on top")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 | auto")
    parser.add_argument(
        "--device",
        default=None,
        help="meta (default without --adapter: structure only, no weights read) | cpu | "
        "cuda | auto (default with --adapter)",
    )
    add_model_arg(parser)
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="run code shipped with the model"
    )
    parser.add_argument(
        "--image-size",
        metavar="W[xH]",
        help="also report image_tokens: how many tokens one image of this size becomes",
    )


def parse_image_size(value: str) -> tuple[int, int]:
    """``"672"`` or ``"672x448"`` as ``(width, height)``."""
    from fairvlm.errors import bad_value  # start-up: command modules import only stdlib

    parts = value.lower().split("x")
    if len(parts) > 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise bad_value("--image-size", value, "use W or WxH in pixels, e.g. 672 or 672x448")
    width = int(parts[0])
    return width, int(parts[-1]) if len(parts) == 2 else width


def model_info(vlm: Any, image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Family, sizes, parameter counts, module names and image tokens per image (64 px,
    and ``image_size`` ``(width, height)`` when given)."""

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    names = {id(m): n for n, m in vlm.model.named_modules()}
    info = {
        "name_or_path": vlm.name_or_path,
        "family": vlm.family,
        "model_class": type(vlm.base_model).__name__,
        "num_layers": vlm.num_layers,
        "hidden_size": vlm.hidden_size,
        "parameters": count(vlm.model),
        "vision_module": names.get(id(vlm.vision_module), type(vlm.vision_module).__name__),
        "vision_parameters": count(vlm.vision_module),
        "projector": names.get(id(vlm.projector), type(vlm.projector).__name__),
        "projector_parameters": count(vlm.projector),
        "decoder_layers": names.get(id(vlm.decoder_layers), "?"),
        "image_token": vlm.tokenizer.convert_ids_to_tokens(vlm.image_token_id),
        "image_tokens_per_image_64px": vlm.image_tokens_per_image(64, 64),
        "dtype": str(vlm.dtype).removeprefix("torch."),
        "device": str(vlm.device),
        "peft_adapter": vlm.base_model is not vlm.model,
    }
    if image_size is not None:
        info["image_size"] = list(image_size)
        info["image_tokens"] = vlm.image_tokens_per_image(*image_size)
    return info


def run(args: argparse.Namespace) -> int:
    """Load the model and print its structure."""
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.models import load_vlm

    image_size = parse_image_size(args.image_size) if args.image_size else None
    vlm = load_vlm(
        args.model,
        dtype=args.dtype,
        device=args.device or ("auto" if args.adapter else "meta"),
        adapter=args.adapter,
        trust_remote_code=args.trust_remote_code,
        **parse_model_args(args.model_arg),
    )
    info = model_info(vlm, image_size)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(
            f"{key:<{width}}  {value:,}"
            if isinstance(value, int) and not isinstance(value, bool)
            else f"{key:<{width}}  {value}"
        )
    return 0
