"""Steered generate time / unsteered generate time: same model, same batch, one run.

A call is ``model.generate`` on one fixed, left-padded batch (collation excluded), greedy,
exactly ``--tokens`` new tokens (``min_new_tokens`` = ``max_new_tokens``, so steering
cannot shorten the output). Steering: one vector on ``--steer-layers`` decoder layers,
``add`` at all positions (the default application). The set-ups alternate call by call
and the medians are compared, which cancels most of the drift of a shared machine. The
other operators / positions are printed for information. Goal: ratio <= 1.02. The last
line is ``ratio=<number>``.

    python benchmarks/steering_overhead.py [--hidden 256 --layers 4 --batch 8 --tokens 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steer-layers", default="2", help="comma-separated decoder layers")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from fairvlm.data.schema import Sample
    from fairvlm.mitigation.steering import SteeringVector
    from fairvlm.models import build_tiny_vlm

    torch.set_num_threads(args.threads)
    vlm = build_tiny_vlm(
        "llava",
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=4,
        vision_hidden_size=args.hidden,
        image_size=args.image_size,
        patch_size=8,
    )
    vlm.model.to(args.device)
    rng = np.random.default_rng(0)
    prompts = ("Describe the person.", "Is this person a doctor or a nurse in the room?")
    samples = [
        Sample(
            id=str(i),
            image=Image.fromarray(
                rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
            ),
            prompt=prompts[i % 2],
        )
        for i in range(args.batch)
    ]
    batch = vlm.collate(samples)
    layers = [int(x) for x in args.steer_layers.split(",")]
    g = torch.Generator().manual_seed(0)
    vector = SteeringVector(
        {layer: torch.randn(vlm.hidden_size, generator=g) for layer in layers},
        num_layers=vlm.num_layers,
    )
    kwargs = {
        "max_new_tokens": args.tokens,
        "min_new_tokens": args.tokens,
        "do_sample": False,
        "pad_token_id": vlm.tokenizer.pad_token_id,
    }

    def call(apply: dict | None) -> float:
        if apply is None:
            start = time.perf_counter()
            with torch.inference_mode():
                vlm.model.generate(**batch, **kwargs)
            return _sync(start, args.device)
        start = time.perf_counter()  # entering the context (vector to device) is counted
        with vector.apply(vlm, **apply), torch.inference_mode():
            vlm.model.generate(**batch, **kwargs)
        return _sync(start, args.device)

    setups = {
        "plain": None,
        "add/all": {"scale": 1.0, "operator": "add", "positions": "all"},
        "ablate_then_add/generated": {
            "scale": 1.0,
            "operator": "ablate_then_add",
            "positions": "generated",
        },
    }
    for apply in setups.values():  # warm-up
        call(apply)
    times: dict[str, list[float]] = {name: [] for name in setups}
    names = list(setups)
    for i in range(args.repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(call(setups[name]))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"llava hidden={args.hidden} layers={args.layers} image={args.image_size}px "
        f"batch={args.batch} new_tokens={args.tokens} steered layers={layers} "
        f"device={args.device} threads={args.threads}; {args.repeats} alternating calls"
    )
    for name, value in med.items():
        print(
            f"median generate: {name:<26} {value * 1000:8.1f} ms  ratio {value / med['plain']:.3f}"
        )
    print(f"ratio={med['add/all'] / med['plain']:.3f}")


def _sync(start: float, device: str) -> float:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
