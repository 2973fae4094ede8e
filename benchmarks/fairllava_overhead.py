"""FairLLaVA step time / plain LoRA step time: same model, same batch, one run.

A training step here is ``FairTrainer.compute_loss`` + backward + AdamW step on one fixed
batch (collation excluded, so the ratio isolates the method's own cost: the layer hook,
the token draw, the CLUB heads, the B x B CLUB matrix and the logged scalars). The two
set-ups alternate step by step and the medians are compared, which cancels most of the
drift of a shared machine. Goal: ratio <= 1.05. The last line is ``ratio=<number>``.

    python benchmarks/fairllava_overhead.py [--hidden 256 --layers 4 --batch 8 --steps 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image
    from transformers import TrainingArguments

    from fairvlm.data.schema import Sample
    from fairvlm.mitigation.fairllava import FairLLaVAConfig, FairLLaVATerm
    from fairvlm.models import build_tiny_vlm
    from fairvlm.training import (
        AttributeSpace,
        FairTrainer,
        LoraSettings,
        SampleDataset,
        TrainCollator,
        apply_lora,
    )

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            id=str(i),
            image=Image.fromarray(
                rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
            ),
            prompt="What is the diagnosis?",
            target=["benign", "malignant"][i % 2],
            attributes={
                "skin_tone": ["light", "dark"][(i // 2) % 2],
                "sex": ["male", "female", None][i % 3],
            },
        )
        for i in range(args.batch)
    ]
    space = AttributeSpace.from_samples(samples)
    out = tempfile.mkdtemp(prefix="fairllava-overhead-")
    adapters, trainers = {}, {}
    for name in ("lora", "fairllava"):
        vlm = build_tiny_vlm(
            "llava",
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=4,
            vision_hidden_size=args.hidden,
            image_size=args.image_size,
            patch_size=8,
        )
        model = apply_lora(vlm, LoraSettings())
        terms = []
        if name == "fairllava":
            cfg = FairLLaVAConfig.from_dict(
                {"preset": "mimic_cxr", "rename": {"race": "skin_tone", "age": "sex"}}
            )
            cfg.lambdas = {"skin_tone": 0.2, "sex": 0.1}
            terms = [FairLLaVATerm(cfg, space, vlm.hidden_size)]
            terms[0].attach(vlm)
        targs = TrainingArguments(
            output_dir=out, report_to="none", use_cpu=True, remove_unused_columns=False
        )
        trainer = FairTrainer(
            model, args=targs, train_dataset=SampleDataset(samples, space), terms=terms, space=space
        )
        trainer.create_optimizer()
        adapters[name], trainers[name] = vlm, trainer
    batch = TrainCollator(adapters["lora"])(
        [SampleDataset(samples, space)[i] for i in range(len(samples))]
    )

    def step(name: str) -> float:
        trainer = trainers[name]
        model = trainer.model
        model.train()
        start = time.perf_counter()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for name in trainers:  # warm-up
        step(name)
    times: dict[str, list[float]] = {"lora": [], "fairllava": []}
    for i in range(args.steps):
        order = ("lora", "fairllava") if i % 2 == 0 else ("fairllava", "lora")
        for name in order:
            times[name].append(step(name))
    lora, fair = statistics.median(times["lora"]), statistics.median(times["fairllava"])
    print(
        f"llava hidden={args.hidden} layers={args.layers} image={args.image_size}px batch={args.batch} "
        f"LoRA r=64 on q,k,v,o,gate,up,down + projector; {args.steps} alternating steps, threads={args.threads}"
    )
    print(
        f"median step: plain LoRA {lora * 1000:.1f} ms, FairLLaVA (2 attributes) {fair * 1000:.1f} ms"
    )
    print(f"ratio={fair / lora:.3f}")


if __name__ == "__main__":
    main()
