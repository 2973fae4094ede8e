"""Measure what the embedded benchmarks promise, for one or more seeds.

For each seed: generate each benchmark variant, pretrain the base model on it, and on the
test split measure

- clinical (mechanism underrep / spurious, and none = knobs at zero): VQA accuracy
  overall and by skin tone (option scoring), and the skin-tone accuracy gap;
- social (default, and knobs at zero): probe MaxSkew@K per attribute (K = half of each
  concept's pool, fairvlm.metrics.ranking_bias), concept VQA accuracy, and the share of
  "Describe the person." generations that mention an attribute (fairvlm.metrics lexicon).

Usage::

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_benchmarks.py --seeds 0 1 2 \
        --work runs/measure [--only clinical-underrep social] [--json out.json]

Models and data are cached under --work (same config -> reused).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

#: variant name -> (bench, overrides). "zero" variants set every bias knob to zero.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "clinical-underrep": ("clinical", ["mechanism=underrep"]),
    "clinical-spurious": ("clinical", ["mechanism=spurious"]),
    "clinical-zero": ("clinical", ["mechanism=none"]),
    "social": ("social", []),
    "social-zero": ("social", ["stereotype_strength=0", "cooccurrence=0", "mention_rate=0"]),
}


def _by_task(samples: list[Any], task: str) -> list[Any]:
    return [s for s in samples if s.task == task]


def measure_clinical(vlm: Any, samples: list[Any], batch_size: int = 64) -> dict[str, Any]:
    """VQA accuracy (option scoring) overall and per skin tone, and the gap."""
    vqa = _by_task(samples, "vqa")
    options = list(vqa[0].options)
    scores = vlm.score_options(vqa, options, batch_size=batch_size)
    pred = [options[i] for i in scores.best()]
    correct = np.array([p == s.target for p, s in zip(pred, vqa, strict=True)])
    tone = np.array([s.attributes["skin_tone"] for s in vqa])
    by = {t: float(correct[tone == t].mean()) for t in sorted(set(tone))}
    return {
        "n": len(vqa),
        "accuracy": float(correct.mean()),
        "by_skin_tone": by,
        "gap": max(by.values()) - min(by.values()),
    }


def measure_social(vlm: Any, samples: list[Any], batch_size: int = 64) -> dict[str, Any]:
    """Probe MaxSkew@K per attribute, concept accuracy, attribute-mention rate."""
    from fairvlm.metrics import mention_flags, ranking_bias

    probe = _by_task(samples, "probe")
    sc = vlm.score_options(probe, ["yes", "no"], batch_size=batch_size)
    p_yes = 1.0 / (1.0 + np.exp(sc.sum_logprob[:, 1] - sc.sum_logprob[:, 0]))
    concepts = [s.concept for s in probe]
    ids = [s.id for s in probe]
    skew = {}
    for attr in ("gender", "race", "age"):
        values = [s.attributes[attr] for s in probe]
        r = ranking_bias(p_yes, values, concepts, ids=ids)
        skew[attr] = {"max_skew": r["max_skew"], "min_skew": r["min_skew"]}
    concept = _by_task(samples, "concept")
    options = list(concept[0].options)
    best = vlm.score_options(concept, options, batch_size=batch_size).best()
    acc = float(np.mean([options[i] == s.target for i, s in zip(best, concept, strict=True)]))
    describe = _by_task(samples, "describe")
    texts = vlm.generate(describe, max_new_tokens=24, batch_size=batch_size)
    flags = mention_flags(texts)
    return {
        "n_probe": len(probe),
        "mean_p_yes": float(p_yes.mean()),
        "max_skew": skew,
        "max_skew_mean": float(np.mean([v["max_skew"] for v in skew.values()])),
        "concept_accuracy": acc,
        "mention_rate": float(flags.any(axis=1).mean()),
        "mention_by_attribute": {k: float(v) for k, v in flags.mean().items()},
        "describe_examples": texts[:3],
    }


def run_variant(
    name: str,
    seed: int,
    work: Path,
    pretrain_overrides: list[str],
    threads: int = 1,
    synth_overrides: list[str] = (),
) -> dict[str, Any]:
    """Synthesize, pretrain and measure one variant for one seed."""
    import torch

    from fairvlm.data import dataset_metadata, load_samples
    from fairvlm.models import load_vlm
    from fairvlm.synth import bench_config, synthesize
    from fairvlm.training.pretrain import load_pretrain_config, pretrain

    torch.set_num_threads(threads)
    bench, overrides = VARIANTS[name]
    synth_set = [*overrides, *synth_overrides, f"seed={seed}"]
    cfg = load_pretrain_config([*pretrain_overrides, f"seed={seed}", "progress=false"])
    # one folder per resolved setting (defaults included), so a cached dataset is never
    # reused after the generator's defaults change
    tag = json.dumps(
        [dataclasses.asdict(bench_config(bench, synth_set)), dataclasses.asdict(cfg)],
        sort_keys=True,
    ).encode()
    folder = f"{name}-seed{seed}-{hashlib.sha256(tag).hexdigest()[:8]}"
    data = work / folder / "data"
    model = work / folder / "model"
    t0 = time.perf_counter()
    if not (data / "fairvlm_metadata.json").is_file():
        synthesize(bench, data, synth_set)
    t_data = time.perf_counter() - t0
    pretrain(data, model, cfg)
    record = json.loads((model / "pretrain.json").read_text())
    vlm = load_vlm(model)
    test = load_samples(data, "test")
    t1 = time.perf_counter()
    result = (measure_clinical if bench == "clinical" else measure_social)(vlm, test)
    return {
        "variant": name,
        "seed": seed,
        "fingerprint": dataset_metadata(data)["fingerprint"],
        "synth_s": round(t_data, 1),
        "pretrain_s": record["wall_time_s"],
        "steps": record["global_step"],
        "final_loss": record["final_loss"],
        "measure_s": round(time.perf_counter() - t1, 1),
        **result,
    }


def _line(r: dict[str, Any]) -> str:
    head = f"{r['variant']:<18} seed={r['seed']} pretrain={r['pretrain_s']:6.1f}s "
    if "accuracy" in r:
        tones = " ".join(f"{k}={v:.3f}" for k, v in r["by_skin_tone"].items())
        return head + f"acc={r['accuracy']:.3f} {tones} gap={r['gap']:.3f}"
    skews = " ".join(f"{k}={v['max_skew']:.3f}" for k, v in r["max_skew"].items())
    return head + (
        f"MaxSkew[{skews}] mean={r['max_skew_mean']:.3f} concept_acc={r['concept_accuracy']:.3f} "
        f"mention={r['mention_rate']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--work", type=Path, default=Path("runs/measure"))
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--set", action="append", default=[], help="PretrainConfig key=value")
    parser.add_argument(
        "--synth", action="append", default=[], help="benchmark config key=value (every variant)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        for name in args.only:
            r = run_variant(name, seed, args.work, args.set, args.threads, args.synth)
            results.append(r)
            print(_line(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
