"""A full audit's throughput at LLaVA-1.5's geometry, against its unavoidable work.

A tiny LLaVA at LLaVA-1.5's geometry (336 px images, patch 14: 576 image tokens; text
hidden 512, 4 layers) is audited by ``run_audit`` on N samples of each of ``vqa``
(3 options, generation + option scoring), ``probe`` (yes / no) and ``report`` (an open
answer), ``batch_size`` 8, read from a dataset folder (PNG images): records, Parquet
parts, metrics with bootstrap CIs (after a warm-up audit that pays the imports). Then the
same batches' unavoidable work is timed on the same model with no Python around it:
the image + prompt batch, collated beforehand, is prefilled once, the tokens the audit
decoded are decoded (greedy steps over the KV cache, until every row has ended or the
budget is spent) and, for ``vqa``, the option tokens after the first are run over the
cache in one pass. The floor is timed before and after the audit; the faster counts.

Prints the samples per second of both, where the audit's time goes (collation and
image processing, model forward passes, Parquet writes, metrics, the rest), and last
``ratio=<unavoidable seconds / audit seconds>``. Goal: ratio >= 0.8.

    python benchmarks/audit_throughput.py [--n 16 --hidden 512 --layers 4 --threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

import _llava15

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DIAGNOSES = ["nevus", "melanoma", "keratosis"]


def _samples(n: int, image_size: int):
    import numpy as np
    from PIL import Image

    from fairvlm.data.schema import Sample

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), np.uint8))
        attrs = {"skin_tone": ("light", "dark")[i % 2]}
        diagnosis = DIAGNOSES[i % 3]
        common = {"image": image, "attributes": attrs, "split": "test"}
        out += [
            Sample(
                id=f"v{i}",
                task="vqa",
                prompt="What is the diagnosis? Answer with one of: nevus, melanoma, keratosis.",
                options=DIAGNOSES,
                target=diagnosis,
                **common,
            ),
            Sample(
                id=f"p{i}",
                task="probe",
                prompt="Is this lesion a melanoma?",
                concept="melanoma",
                target="yes" if diagnosis == "melanoma" else "no",
                **common,
            ),
            Sample(
                id=f"r{i}",
                task="report",
                prompt="Write the dermoscopy report.",
                target=f"A {diagnosis} lesion on {attrs['skin_tone']} skin.",
                **common,
            ),
        ]
    return out


class Clock:
    """Wall time spent inside wrapped calls, by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._wrapped: list[tuple] = []

    @contextmanager
    def timing(self, label: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] += time.perf_counter() - start

    def wrap(self, owner, name: str, label: str) -> None:
        real = getattr(owner, name)

        def timed(*args, **kwargs):
            with self.timing(label):
                return real(*args, **kwargs)

        self._wrapped.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, real in reversed(self._wrapped):
            if real is None:
                delattr(owner, name)  # an instance attribute over the class's method
            else:
                setattr(owner, name, real)


def _model_seconds(model):
    """Forward-pass seconds of ``model`` (its top-level calls), via forward hooks."""
    state = {"seconds": 0.0, "start": 0.0}

    def pre(module, args, kwargs):
        state["start"] = time.perf_counter()

    def post(module, args, kwargs, output):
        state["seconds"] += time.perf_counter() - state["start"]

    hooks = [
        model.register_forward_pre_hook(pre, with_kwargs=True),
        model.register_forward_hook(post, with_kwargs=True),
    ]
    return state, hooks


def _unavoidable(vlm, samples, batch_size: int, max_new: dict) -> float:
    """Seconds of prefill + decoded tokens (+ vqa's option continuation) of the audit's
    batches, from pre-collated inputs."""
    import torch

    from fairvlm.models import shared_scoring

    by_task = defaultdict(list)
    for s in samples:
        by_task[s.task].append(s)
    ends = set(vlm.end_token_ids if isinstance(vlm.end_token_ids, list) else [vlm.end_token_ids])
    total = 0.0
    for task, items in by_task.items():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = vlm._encode(chunk, None, with_end=False)
            answer_ids = (
                shared_scoring.option_ids(vlm, chunk, [s.options for s in chunk])
                if task == "vqa"
                else None
            )
            vlm._add_positions(batch)
            with torch.inference_mode():
                begin = time.perf_counter()
                out = vlm.model(**batch, use_cache=True, logits_to_keep=1)
                cache = shared_scoring._output_cache(out)
                steps = max_new.get(task, 0)
                token = out.logits[:, -1].argmax(-1, keepdim=True)
                mask, pos = batch["attention_mask"], batch["position_ids"][:, -1:]
                done = torch.zeros(len(chunk), dtype=torch.bool)
                for _ in range(steps - 1):
                    done |= torch.isin(token.view(-1), torch.tensor(sorted(ends)))
                    if bool(done.all()):
                        break
                    mask = torch.cat([mask, torch.ones_like(token)], dim=1)
                    pos = pos + 1
                    step = vlm.model(
                        input_ids=token,
                        attention_mask=mask,
                        position_ids=pos,
                        **{shared_scoring._cache_keyword(vlm): cache},
                        use_cache=True,
                    )
                    token = step.logits[:, -1].argmax(-1, keepdim=True)
                total += time.perf_counter() - begin
            if answer_ids is not None:  # the options' tokens after the first: one pass
                with torch.inference_mode():
                    prefix = shared_scoring.prefill(vlm, batch, use_cache=True)
                    tail = shared_scoring.longest_tail(answer_ids)
                    rows = [
                        (g, k, ids)
                        for g, a in enumerate(answer_ids)
                        for k, ids in enumerate(a)
                        if len(ids) > 1
                    ]
                    if rows:
                        begin = time.perf_counter()
                        shared_scoring._continue(vlm, prefix, rows, tail)
                        total += time.perf_counter() - begin
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="samples per task")
    _llava15.add_arguments(parser)
    args = parser.parse_args()

    from fairvlm.audit import AuditConfig, run_audit
    from fairvlm.data.storage import load_samples, save_dataset

    vlm = _llava15.build(args)
    samples = _samples(args.n, args.image_size)
    cfg = AuditConfig(
        tasks=["vqa", "probe", "report"], batch_size=args.batch, progress=False, max_new_tokens=16
    )
    print(f"{_llava15.describe(vlm, args)} samples={len(samples)} ({args.n} per task)")
    budgets = {"vqa": cfg.closed_max_new_tokens, "report": cfg.max_new_tokens, "probe": 0}
    with tempfile.TemporaryDirectory() as tmp:
        data = save_dataset({"test": samples}, os.path.join(tmp, "data"))
        samples = load_samples(data, "test")  # as the audit reads them
        # warm-up: the first audit of a process imports the metric libraries
        run_audit(vlm, data, {**cfg.to_dict(), "limit": 2}, os.path.join(tmp, "warm"))
        # the floor before and after the audit, the faster counts (the machine is shared)
        floor_s = _unavoidable(vlm, samples, args.batch, budgets)
        audit_s, parts = _timed_audit(vlm, data, cfg, os.path.join(tmp, "audit"))
        floor_s = min(floor_s, _unavoidable(vlm, samples, args.batch, budgets))

    n = len(samples)
    print(f"audit        {n / audit_s:7.2f} samples/s  ({audit_s:.2f} s)")
    print(f"unavoidable  {n / floor_s:7.2f} samples/s  ({floor_s:.2f} s)")
    parts["the rest (generate's loop, records, Python)"] = audit_s - sum(parts.values())
    for label, seconds in parts.items():
        print(f"  {label:<45s} {seconds:7.2f} s  {100 * seconds / audit_s:5.1f} %")
    print(f"ratio={floor_s / audit_s:.3f}")


def _timed_audit(vlm, data, cfg, out) -> tuple[float, dict[str, float]]:
    """Seconds of ``run_audit`` and of its parts."""
    from fairvlm.audit import run_audit
    from fairvlm.audit import runner as audit_runner
    from fairvlm.audit import store as audit_store

    clock = Clock()
    clock.wrap(vlm, "_encode", "collation + image processing")
    clock.wrap(audit_store.RecordStore, "write_part", "Parquet writes")
    clock.wrap(audit_store.RecordStore, "compact", "Parquet writes")
    clock.wrap(audit_runner, "compute_metrics", "metrics (bootstrap)")
    forward, hooks = _model_seconds(vlm.model)
    start = time.perf_counter()
    try:
        run_audit(vlm, data, cfg, out)
    finally:
        seconds = time.perf_counter() - start
        for hook in hooks:
            hook.remove()
        clock.restore()
    return seconds, {**clock.seconds, "model forward passes": forward["seconds"]}


if __name__ == "__main__":
    main()
