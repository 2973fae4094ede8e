"""Batched audit / per-sample loop: the same audit work, same tiny model, same data.

The per-sample loop answers every (sample, task) of the audit plan one at a time with
the task's own call (``task.run(vlm, [sample])``: one generate and/or one scoring call
per sample), writing nothing. The batched audit is ``run_audit`` with ``--batch``
samples per call, timed from its start to its last record written (planning, batching,
Parquet parts included; the metrics after it are excluded: they cost the same however
the records were made, and are printed apart). Tasks: vqa (generation + option
scoring), report, yes/no probe, describe. The generation length is fixed (no early
stop) so both generate the same tokens. Goal: ratio >= 5 (loop time / batched time).
The last line is ``ratio=<number>``.

    python benchmarks/audit_batching.py [--n 48 --batch 32 --hidden 64 --new-tokens 12]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _samples(n: int, image_size: int):
    import numpy as np
    from PIL import Image

    from fairvlm.data.schema import Sample

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        attrs = {"sex": ("male", "female")[i % 2], "skin_tone": ("light", "dark")[i // 2 % 2]}
        concept = ("doctor", "nurse")[i % 2]
        common = {"attributes": attrs, "concept": concept}
        tasks = {
            "vqa": {"prompt": "What is the diagnosis?", "target": ("benign", "malignant")[i % 2],
                    "options": ["benign", "malignant", "unknown"]},
            "report": {"prompt": "Write the report.", "target": "The lesion is benign."},
            "probe": {"prompt": f"Is this person a {concept}?", "target": "yes"},
            "describe": {"prompt": "Describe the person."},
        }  # fmt: skip
        for task, fields in tasks.items():
            pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
            out.append(
                Sample(
                    id=f"{task}{i}", image=Image.fromarray(pixels), task=task, **common, **fields
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="samples per task")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from fairvlm.audit import AuditConfig, plan_audit, run_audit
    from fairvlm.data import save_dataset
    from fairvlm.models import build_tiny_vlm

    torch.set_num_threads(args.threads)
    vlm = build_tiny_vlm(
        "llava", hidden_size=args.hidden, num_layers=args.layers, image_size=args.image_size
    )
    # no early stop: both runs generate exactly --new-tokens tokens per answer
    vlm.model.generation_config.eos_token_id = None
    vlm.end_token_ids = []

    with tempfile.TemporaryDirectory() as tmp:
        data = save_dataset({"test": _samples(args.n, args.image_size)}, f"{tmp}/data")
        cfg = AuditConfig(
            batch_size=args.batch,
            max_new_tokens=args.new_tokens,
            closed_max_new_tokens=args.new_tokens,
            progress=False,
            metrics={"n_boot": 0},
        )
        plan = plan_audit(data, cfg)
        n_records = sum(len(samples) for _, samples in plan.tasks.values())

        for task, samples in plan.tasks.values():  # warm-up: first calls pay one-off costs
            task.run(vlm, samples[:2])
        start = time.perf_counter()
        for task, samples in plan.tasks.values():
            for sample in samples:
                task.run(vlm, [sample])
        loop = time.perf_counter() - start

        last = []
        start = time.perf_counter()
        run_audit(
            vlm, data, cfg, f"{tmp}/audit", on_batch=lambda _: last.append(time.perf_counter())
        )
        total = time.perf_counter() - start
        batched = last[-1] - start
    print(f"per-sample loop   {n_records} records  {loop:.2f} s")
    print(f"batched audit     {n_records} records  {batched:.2f} s (batch_size={args.batch}; "
          f"+{total - batched:.2f} s for merging records and the metrics)")  # fmt: skip
    ratio = loop / batched
    print(
        f"hidden={args.hidden} layers={args.layers} new_tokens={args.new_tokens} threads={args.threads}"
    )
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
