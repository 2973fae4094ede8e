"""Steered generate time / unsteered generate time: same model, same batch, one run.

A call is ``model.generate`` on one fixed, left-padded batch (collation excluded), greedy,
exactly ``--tokens`` new tokens (``min_new_tokens`` = ``max_new_tokens``, so steering
cannot shorten the output). Steering: one vector on ``--steer-layers`` decoder layers,
``add`` at all positions (the default application). The set-ups alternate call by call
and the medians are compared, which cancels most of the drift of a shared machine. The
other operators / positions are printed for information. Goal: ratio <= 1.02. The last
line is ``ratio=<number>``.

The clock: on CPU, the process CPU time (``time.process_time``), which the other jobs of a
shared machine do not inflate (wall time counts the time this process waits for a core);
on CUDA, wall time after a synchronize. Wall-time medians are printed on CPU as well.

    python benchmarks/steering_overhead.py [--hidden 256 --layers 4 --batch 8 --tokens 16]
"""

from __future__ import annotations

import argparse
import contextlib
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

    on_cuda = args.device.startswith("cuda")

    def call(apply: dict | None) -> tuple[float, float]:
        """(wall seconds, clock seconds) of one generate; entering the steering context
        (the checks, the vector moved to the device) is counted."""
        if on_cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.ExitStack() as stack:
            if apply is not None:
                stack.enter_context(vector.apply(vlm, **apply))
            stack.enter_context(torch.inference_mode())
            vlm.model.generate(**batch, **kwargs)
        if on_cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - wall
        return wall, (wall if on_cuda else time.process_time() - cpu)

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
    walls: dict[str, list[float]] = {name: [] for name in setups}
    clocks: dict[str, list[float]] = {name: [] for name in setups}
    names = list(setups)
    for i in range(args.repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            wall, clock = call(setups[name])
            walls[name].append(wall)
            clocks[name].append(clock)
    med = {name: statistics.median(t) for name, t in clocks.items()}
    med_wall = {name: statistics.median(t) for name, t in walls.items()}
    clock = "wall time" if on_cuda else "process CPU time"
    print(
        f"llava hidden={args.hidden} layers={args.layers} image={args.image_size}px "
        f"batch={args.batch} new_tokens={args.tokens} steered layers={layers} "
        f"device={args.device} threads={args.threads}; {args.repeats} alternating calls"
    )
    for name in names:
        line = (
            f"median generate ({clock}): {name:<26} {med[name] * 1000:8.1f} ms  "
            f"ratio {med[name] / med['plain']:.3f}"
        )
        if not on_cuda:
            line += (
                f"   (wall {med_wall[name] * 1000:7.1f} ms, "
                f"ratio {med_wall[name] / med_wall['plain']:.3f})"
            )
        print(line)
    print(f"ratio={med['add/all'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()
