"""Shared helpers of the training / FairLLaVA / baseline tests (not a test module)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fairvlm.data.schema import Sample

TINY_LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


def group_samples(n: int, seed: int = 0, unknown_sex_every: int = 3) -> list[Sample]:
    """Samples whose background encodes ``skin_tone`` (light/dark); ``sex`` unknown every k-th."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        g = i % 2
        pixels = np.full((32, 32, 3), 200 if g else 60, np.uint8)
        pixels += rng.integers(0, 20, (32, 32, 3), dtype=np.uint8)
        sex = (
            None
            if unknown_sex_every and i % unknown_sex_every == 0
            else ("male", "female")[(i // 2) % 2]
        )
        out.append(
            Sample(
                id=f"g{seed}-{i}",
                image=Image.fromarray(pixels),
                prompt="What is the diagnosis?",
                target=("benign", "malignant")[int(rng.random() < 0.5)],
                attributes={"skin_tone": ("light", "dark")[g], "sex": sex},
            )
        )
    return out


def train_cfg(method_options: dict | None = None, **train) -> dict:
    """A small config: 4 steps of batch 4, tiny LoRA, no warm-up, no progress bar."""
    base = {
        "steps": 4,
        "batch_size": 4,
        "logging_steps": 1,
        "save_steps": 100,
        "warmup_ratio": 0.0,
        "progress": False,
        "lr": 1e-3,
        "lora": dict(TINY_LORA),
    }
    base.update(train)
    return {"train": base, "method": method_options or {}}
