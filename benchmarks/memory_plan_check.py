"""The memory plan (scripts/memory_plan.py) against the measured peak RSS of real jobs on CPU.

For each family at published geometry (``fairvlm tiny FAMILY --geometry published``, hidden
256, 4 layers, so that activations, not the interpreter, dominate), one child process per
job loads the model with ``load_vlm`` (float32, CPU), collates a batch of one-image samples
and runs the job once on one sample (a warm-up: kernels' code pages, AdamW's moments),
then on the batch: ``lora`` (``apply_lora`` with fairvlm's defaults, two steps of
forward with ``logits_to_keep``, ``per_sample_lm_loss``, backward and AdamW, as
``FairTrainer`` does) or ``forward`` (one ``forward_batch`` under inference mode, KV cache
and full logits). Peak RSS (``VmHWM``) is reset to the current RSS just before the job
(``/proc/self/clear_refs``), so measured = peak - RSS before: the job's increment. The
prediction is the plan's components less what is resident before the job (weights, the
trainable LoRA / projector copy, AdamW's moments) and without the CUDA allowance. The last line is
``ratio=<worst of predicted / measured and measured / predicted>``, so that a miss either
way counts; Goal: ratio <= 1.25.

    python benchmarks/memory_plan_check.py [--families llava qwen2_vl idefics3] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]

#: family -> (image W, H, batch): LLaVA's 576 tokens, Qwen2-VL's 256 (448 px), Idefics3's
#: 17 tiles (2,873 tokens) of one 364 px image.
CASES: dict[str, tuple[int, int, int]] = {
    "llava": (336, 336, 4),
    "qwen2_vl": (448, 448, 4),
    "idefics3": (364, 364, 2),
}
#: Resident before the job starts (after the warm-up), so not part of the measured increment.
RESIDENT = ("weights", "trainable + copy", "adamw moments")

_CHILD = """
import sys, torch
torch.set_num_threads(1)
from PIL import Image
from fairvlm.data.schema import Sample
from fairvlm.models import load_vlm
from fairvlm.training.config import LoraSettings
from fairvlm.training.lora import apply_lora
from fairvlm.training.trainer import _logits_to_keep, per_sample_lm_loss

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

model_dir, job, w, h, n = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
vlm = load_vlm(model_dir, device="cpu", dtype="float32")
img = Image.new("RGB", (w, h), "tan")
samples = [Sample(id=str(i), image=img, prompt=f"Is person {i} a doctor?", target="yes, a doctor")
           for i in range(n)]
train = job == "lora"
if train:
    apply_lora(vlm, LoraSettings())
    opt = torch.optim.AdamW([p for p in vlm.model.parameters() if p.requires_grad], lr=1e-4)

def run(batch, labels, keep):
    if train:
        vlm.model.train()
        for _ in range(2):
            out = vlm.model(**batch, logits_to_keep=keep)
            per_sample_lm_loss(out.logits, labels).mean().backward()
            del out
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        with torch.inference_mode():
            vlm.forward_batch(batch)

def collate(rows):
    batch = vlm.collate(rows, with_target=train)
    labels = batch.pop("labels", None)
    return batch, labels, _logits_to_keep(labels) if train else 0

# warm-up on one sample: the kernels' code pages and the AdamW moments become resident
run(*collate(samples[:1]))
batch, labels, keep = collate(samples)
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
before = status("VmRSS:")
run(batch, labels, keep)
print(status("VmHWM:") - before, batch["input_ids"].shape[1], keep)
"""


def _plan():
    spec = importlib.util.spec_from_file_location(
        "memory_plan", ROOT / "scripts" / "memory_plan.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["memory_plan"] = module
    spec.loader.exec_module(module)
    return module


def measure(model_dir: str, job: str, width: int, height: int, batch: int) -> tuple[int, int, int]:
    """(peak - RSS before the job in bytes, sequence length, logits kept) of a child."""
    # every block >= 64 KiB its own mmap, unmapped when freed: glibc's dynamic threshold
    # would otherwise keep freed tensors in the heap, and RSS would not follow live bytes
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, model_dir, job, str(width), str(height), str(batch)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    used, seq, keep = map(int, out.stdout.split()[-3:])
    return used, seq, keep


def predict(plan, arch, job: str, batch: int, seq: int, keep: int) -> float:
    """The plan's increment for the measured sequence: its components less the resident."""
    answer = max(keep - 1, 0)
    base = plan.Job(job, batch, dtype_bytes=4, gpu=False, answer_tokens=answer)
    job_ = replace(base, text_tokens=seq - arch.image_tokens - (answer if base.training else 0))
    parts = plan.components(arch, job_)
    return sum(v for k, v in parts.items() if k not in RESIDENT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=list(CASES))
    parser.add_argument("--jobs", nargs="*", default=["lora", "forward"])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    plan = _plan()
    from fairvlm.cli import main as fairvlm

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for family in args.families:
            width, height, batch = CASES[family]
            model_dir = os.path.join(work, family)
            flags = ["--geometry", "published", "--hidden-size", "256", "--num-layers", "4"]
            with open(os.devnull, "w") as quiet:
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    fairvlm(["tiny", family, model_dir, *flags, "--vision-hidden-size", "64"])
                finally:
                    sys.stdout = stdout
            arch = plan.folder_arch(model_dir, width, height)
            for job in args.jobs:
                used, seq, keep = measure(model_dir, job, width, height, batch)
                predicted = predict(plan, arch, job, batch, seq, keep)
                rows.append(
                    {
                        "family": family,
                        "job": job,
                        "batch": batch,
                        "tokens": seq,
                        "predicted_mib": predicted / plan.MIB,
                        "measured_mib": used / plan.MIB,
                        "ratio": predicted / used,
                    }
                )
                print(
                    f"{family:<10} {job:<8} b={batch} seq={seq:<5} predicted "
                    f"{predicted / plan.MIB:8.1f} MiB  measured {used / plan.MIB:8.1f} MiB  "
                    f"ratio {predicted / used:.2f}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))["ratio"]
    print(f"ratio={max(worst, 1 / worst):.3f}")


if __name__ == "__main__":
    main()
