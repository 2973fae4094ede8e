"""Helpers of the audit tests: samples of every task, a call-counting model proxy, a fake VLM."""

from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image

from fairvlm.data.schema import Sample
from fairvlm.models import OptionScores

LABELS = ("benign", "malignant")
CONCEPTS = ("doctor", "nurse")


def _image(rng: np.random.Generator, size: int = 24) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def audit_samples(
    n: int = 6, tasks=("vqa", "report", "probe", "describe", "concept"), seed: int = 0
):
    """``n`` samples per task; attributes sex (always known) and skin_tone (every third unknown)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        attrs = {"sex": ("male", "female")[i % 2], "skin_tone": ("light", "dark", None)[i % 3]}
        concept = CONCEPTS[i % 2]
        make = {
            "vqa": dict(
                prompt="What is the diagnosis?", target=LABELS[i % 2], options=list(LABELS)
            ),
            "report": dict(prompt="Write the report.", target=f"The lesion is {LABELS[i % 2]}."),
            "probe": dict(prompt=f"Is this person a {concept}?", target="yes", concept=concept),
            "describe": dict(prompt="Describe the person.", concept=concept),
            "concept": dict(prompt="What is this person?", target=concept),
        }
        for task in tasks:
            out.append(
                Sample(
                    id=f"{task}{i}",
                    image=_image(rng),
                    task=task,
                    attributes=dict(attrs),
                    counterfactual_set=f"set{i // 2}",
                    **make[task],
                )
            )
    return out


class CountingVLM:
    """Delegates to a real adapter and counts the model calls and the samples they saw."""

    def __init__(self, vlm) -> None:
        self._vlm = vlm
        self.calls: Counter = Counter()
        self.seen: Counter = Counter()

    def generate(self, samples, **kwargs):
        self.calls["generate"] += 1
        self.seen.update((s.task, s.id) for s in samples)
        return self._vlm.generate(samples, **kwargs)

    def score_options(self, samples, options, **kwargs):
        self.calls["score_options"] += 1
        self.seen.update((s.task, s.id) for s in samples)
        return self._vlm.score_options(samples, options, **kwargs)

    def generate_and_score(self, samples, options, **kwargs):
        self.calls["generate_and_score"] += 1
        self.seen.update((s.task, s.id) for s in samples)
        return self._vlm.generate_and_score(samples, options, **kwargs)

    def __getattr__(self, name):
        return getattr(self._vlm, name)


class FakeVLM:
    """Answers from tables: ``texts[sample.id]`` and ``scores[sample.id]`` (one per option)."""

    name_or_path = "fake"

    def __init__(self, texts=None, scores=None) -> None:
        self.texts = texts or {}
        self.scores = scores or {}
        self.calls: Counter = Counter()

    def generate(self, samples, **kwargs):
        self.calls["generate"] += 1
        return [self.texts.get(s.id, "") for s in samples]

    def score_options(self, samples, options, **kwargs):
        self.calls["score_options"] += 1
        per = options if options and not isinstance(options[0], str) else [options] * len(samples)
        k = max(len(o) for o in per)
        sums = np.full((len(samples), k), np.nan)
        for i, (s, opts) in enumerate(zip(samples, per, strict=True)):
            sums[i, : len(opts)] = self.scores.get(s.id, [-1.0] * len(opts))
        n = np.where(np.isnan(sums), 0, 2)
        return OptionScores(sum_logprob=sums, mean_logprob=sums / 2, n_tokens=n)

    def generate_and_score(self, samples, options, **kwargs):
        return self.generate(samples), self.score_options(samples, options)
