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
