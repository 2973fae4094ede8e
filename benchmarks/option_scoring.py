"""Option scoring, shared prefix / K independent passes: per-sample time as K grows.

A tiny LLaVA at LLaVA-1.5's geometry (336 px images, patch 14: 576 image tokens; text
hidden 512, 4 layers) scores K candidate answers (K = 1, 2, 7, 32; options of one to
several tokens) for 8 samples, with ``scoring="independent"`` (image + prompt + option
once per pair) and ``scoring="shared"`` (one prefill per sample, the options continue
from its KV cache), ``batch_size`` 8 for both. Prints the per-sample milliseconds of
each, ``max_abs_diff=<x>`` (the largest |log-prob difference| of the two paths over
every K) and, last, ``ratio=<t_shared(K=7) / t_shared(K=1)>``.
Goal: ratio <= 1.3 (and max_abs_diff <= 1e-4). Before those two lines, the float32
error of each path against a float64 run of the same weights (K = 7, two samples): the
rounding that the paths' difference is made of.

    python benchmarks/option_scoring.py [--n 8 --ks 1,2,7,32 --hidden 512 --layers 4]
"""

from __future__ import annotations

import argparse
import os
import time

import _llava15

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Candidate answers: the first is one token, the others of one to several.
WORDS = [
    "yes",
    "no",
    "benign",
    "malignant",
    "doctor",
    "nurse",
    "unknown",
    "lesion",
    "chest",
    "skin",
    "image",
    "person",
    "male",
    "female",
    "young",
    "old",
    "left",
    "right",
    "normal",
    "abnormal",
    "x-ray",
    "report",
    "white",
    "dark",
    "light",
    "cell",
    "tissue",
    "small",
    "large",
    "round",
    "oval",
    "red",
    "blue",
]


def _options(k: int) -> list[str]:
    out = []
    for i in range(k):
        word = WORDS[i % len(WORDS)]
        out.append(word if i % 3 != 2 else f"{word} {WORDS[(i + 5) % len(WORDS)]} lesion")
    return out


def _samples(n: int, image_size: int):
    import numpy as np
    from PIL import Image

    from fairvlm.data.schema import Sample

    rng = np.random.default_rng(0)
    prompts = ("What is shown?", "Is this person a doctor or a nurse?", "What is the diagnosis?")
    return [
        Sample(
            id=f"s{i}",
            image=Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), np.uint8)),
            prompt=prompts[i % len(prompts)],
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="samples")
    parser.add_argument("--ks", default="1,2,7,32", help="numbers of options (include 1 and 7)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (the best counts)")
    _llava15.add_arguments(parser)
    args = parser.parse_args()

    import numpy as np

    vlm = _llava15.build(args)
    samples = _samples(args.n, args.image_size)
    print(f"{_llava15.describe(vlm, args)} samples={args.n}")
    vlm.score_options(samples[:2], ["yes", "benign lesion"], scoring="shared")  # warm-up

    def timed(options, scoring):
        best, scores = float("inf"), None
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = vlm.score_options(samples, options, batch_size=args.batch, scoring=scoring)
            best = min(best, time.perf_counter() - start)
        return 1000 * best / len(samples), scores

    shared_ms, diff, at_7 = {}, 0.0, None
    for k in (int(x) for x in args.ks.split(",")):
        options = _options(k)
        t_ind, ind = timed(options, "independent")
        t_sh, sh = timed(options, "shared")
        shared_ms[k] = t_sh
        if k == 7:
            at_7 = (options, ind, sh)
        diff = max(diff, float(np.nanmax(np.abs(ind.sum_logprob - sh.sum_logprob))))
        tokens = float(sh.n_tokens.mean())
        print(
            f"K={k:<3d} option_tokens={tokens:.2f}  independent {t_ind:9.1f} ms/sample  "
            f"shared {t_sh:8.1f} ms/sample  speed-up {t_ind / t_sh:5.2f}x"
        )
    if at_7 is not None:
        _float32_error(vlm, samples[:2], *at_7)
    print(f"max_abs_diff={diff:.3g}")
    print(f"ratio={shared_ms[7] / shared_ms[1]:.3f}")


def _float32_error(vlm, samples, options, ind, sh) -> None:
    """How far each float32 path is from a float64 run of the same weights (K = 7, the
    first samples): the float32 rounding the two paths' difference is to be read against."""
    import copy

    import numpy as np

    exact = copy.copy(vlm)
    exact.model = copy.deepcopy(vlm.model).double()
    ref = exact.score_options(samples, options, batch_size=1, scoring="independent")
    sh64 = exact.score_options(samples, options, batch_size=len(samples), scoring="shared")
    n = len(samples)

    def err(a):
        return float(np.nanmax(np.abs(a[:n] - ref.sum_logprob)))

    print(
        f"K=7 against float64 (first {n} samples): float32 error independent "
        f"{err(ind.sum_logprob):.3g}, shared {err(sh.sum_logprob):.3g}; "
        f"shared - independent in float64 {err(sh64.sum_logprob):.3g}"
    )


if __name__ == "__main__":
    main()
