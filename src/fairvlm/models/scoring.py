"""Log-probabilities of answer tokens (option scoring for probes and multiple choice)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fairvlm.errors import bad_value

#: How ``VLMAdapter.score_options`` runs: one prefill per sample whose KV cache all its
#: options share, or one full forward pass per (sample, option) pair.
SCORING = ("shared", "independent")


@dataclass
class OptionScores:
    """Scores of K candidate answers for N samples (NaN where a sample has fewer options).

    Attributes:
        sum_logprob: ``[N, K]`` log P(option | prompt), summed over the option's tokens.
        mean_logprob: ``[N, K]`` the same divided by the token count.
        n_tokens: ``[N, K]`` number of tokens of each option (0 where absent).
    """

    sum_logprob: np.ndarray
    mean_logprob: np.ndarray
    n_tokens: np.ndarray

    @classmethod
    def from_sums(cls, sums: np.ndarray, counts: np.ndarray) -> OptionScores:
        """The scores of summed log-probabilities and token counts (mean NaN at 0 tokens)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return cls(sum_logprob=sums, mean_logprob=means, n_tokens=counts)

    def best(self, mean: bool = False) -> np.ndarray:
        """Index of the highest-scoring option per sample."""
        scores = self.mean_logprob if mean else self.sum_logprob
        return np.nanargmax(scores, axis=1)


def answer_logprobs(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability and count of the labelled tokens of each row.

    ``logits`` may cover only the last ``n`` positions of the sequence (``logits_to_keep``);
    ``labels`` covers all ``T`` positions with ``-100`` outside the answer. The token at
    position ``p + 1`` is scored with the logits at position ``p``.

    Returns:
        ``(sum_logprob [B], n_tokens [B])`` in float32 (float64 for a float64 model) / int64.
    """
    n = logits.shape[1]
    targets = labels[:, labels.shape[1] - n + 1 :]
    logp = log_probs(logits[:, :-1])
    mask = targets != -100
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1), mask.sum(dim=1)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the vocabulary in float32 at least (a float64 model keeps
    float64, so that the scoring paths can be compared free of rounding)."""
    return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def normalise_options(
    options: Sequence[str] | Sequence[Sequence[str]], n_samples: int
) -> list[list[str]]:
    """One list of options per sample, from a shared list or a per-sample list of lists.

    Raises:
        ConfigError: the per-sample list has the wrong length or an empty entry.
    """
    if isinstance(options, str):
        raise bad_value("options", options, "give a list of answer strings, not one string")
    opts = list(options)
    if not opts:
        raise bad_value("options", opts, "give at least one candidate answer")
    if all(isinstance(o, str) for o in opts):
        return [list(opts) for _ in range(n_samples)]
    if len(opts) != n_samples:
        raise bad_value(
            "options",
            f"<{len(opts)} lists>",
            f"give one list of options per sample ({n_samples}) or one shared list",
        )
    out = [[o] if isinstance(o, str) else list(o) for o in opts]
    for i, o in enumerate(out):
        if not o:
            raise bad_value(f"options[{i}]", o, "give at least one candidate answer")
    return out


def empty_scores(per_sample: list[list[str]], options: Sequence[Any]) -> tuple:
    """``(sums, counts)`` of shape ``[samples, most options]``: NaN / 0 (ragged lists
    leave those in their unused cells)."""
    shape = (len(per_sample), max((len(o) for o in per_sample), default=len(options)))
    return np.full(shape, np.nan), np.zeros(shape, dtype=np.int64)


def score_independent(
    vlm: Any,
    samples: list[Any],
    per_sample: list[list[str]],
    batch_size: int,
    sums: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Fill ``sums`` / ``counts`` with one forward pass of image, prompt and option per
    (sample, option) pair, ``batch_size`` pairs at a time (``scoring="independent"``)."""
    pairs = [(i, k, s, o) for i, s in enumerate(samples) for k, o in enumerate(per_sample[i])]
    for chunk in chunks(pairs, batch_size):
        batch = vlm._encode(
            [p[2] for p in chunk], [p[3] for p in chunk], with_end=False, right=True
        )
        labels = batch.pop("labels")
        answer = int((labels != -100).sum(dim=1).max())
        vlm._add_positions(batch)
        with torch.inference_mode(), vlm._model_call(batch, answer_length=answer):
            logits = vlm.model(**batch, logits_to_keep=answer + 1).logits
        total, n = answer_logprobs(logits, labels)
        for (i, k, _, _), t, c in zip(chunk, total.tolist(), n.tolist(), strict=True):
            sums[i, k], counts[i, k] = t, c
