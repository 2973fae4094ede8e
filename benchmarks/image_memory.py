"""Peak memory of one collated batch: four 8000 x 8000 images / four 512 x 512 ones.

Each size runs in its own process (peak RSS is per process, ``VmHWM``): it loads a
tiny LLaVA at LLaVA-1.5's input size (336 px), writes four JPEG files of the size and
collates them (``VLMAdapter.collate``: load, reduce, process). The images are reduced
on load to 4x the processor's largest input, so the batch of huge images should cost
about what the small one does: Goal: ratio <= 1.5 (peak RSS 8000 px / peak RSS 512 px).
The last line is ``ratio=<number>``.

    python benchmarks/image_memory.py [--side 8000] [--small 512]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _write_images(side: int, work: str) -> list[str]:
    """Four side x side JPEGs (gradients: small files, full-size decodes)."""
    from PIL import Image

    paths = []
    for i in range(4):
        img = Image.radial_gradient("L").resize((side, side)).convert("RGB")
        path = os.path.join(work, f"{side}-{i}.jpg")
        img.rotate(90 * i).save(path, quality=90)
        paths.append(path)
    return paths


def _peak_rss_mib(paths: list[str], model_dir: str) -> tuple[float, float]:
    """(peak RSS, RSS before collating) in MiB of a child process that collates ``paths``."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent
    code = f"""
from fairvlm.data.schema import Sample
from fairvlm.models import load_vlm
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
vlm = load_vlm({model_dir!r})
before = hwm()
vlm.collate([Sample(id=str(i), image=p, prompt="Describe.") for i, p in enumerate({paths!r})])
print(hwm(), before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    peak, before = map(float, out.stdout.split()[-2:])
    return peak, before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=8000)
    parser.add_argument("--small", type=int, default=512)
    args = parser.parse_args()
    from fairvlm.models import build_tiny_vlm

    with tempfile.TemporaryDirectory() as work:
        model = os.path.join(work, "llava")
        build_tiny_vlm("llava", model, image_size=336, patch_size=14)
        peaks = {n: _peak_rss_mib(_write_images(n, work), model) for n in (args.small, args.side)}
    for n, (peak, before) in peaks.items():
        print(f"four {n} px images: peak RSS {peak:.0f} MiB ({before:.0f} MiB before collating)")
    print(f"ratio={peaks[args.side][0] / peaks[args.small][0]:.3f}")


if __name__ == "__main__":
    main()
