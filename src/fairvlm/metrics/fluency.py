"""Fluency: perplexity of texts under a reference causal language model.

Any ``transformers`` causal LM and its tokenizer. Texts are tokenized as the tokenizer
is configured (its special tokens included); every token after the first is scored,
so a text of ``T`` tokens contributes ``T - 1`` predictions. Corpus perplexity is
``exp(sum NLL / sum tokens)``, which is a function of summed per-text statistics and
therefore bootstraps as fast as accuracy (:data:`perplexity_metric`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairvlm.metrics.base import Metric


def token_nll(
    texts: Sequence[str | None],
    model,
    tokenizer,
    *,
    batch_size: int = 8,
    max_length: int | None = 512,
    progress: bool = False,
) -> np.ndarray:
    """Per text ``[sum of token NLL (nats), number of scored tokens]``, shape ``[n, 2]``.

    A missing or one-token text gives ``[0, 0]`` (no prediction to score).
    """
    import torch
    from tqdm.auto import tqdm

    out = np.zeros((len(texts), 2))
    todo = [i for i, t in enumerate(texts) if t]
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(todo), batch_size), disable=not progress, desc="perplexity"):
            rows = todo[start : start + batch_size]
            enc = [
                tokenizer(str(texts[i]), truncation=max_length is not None, max_length=max_length)[
                    "input_ids"
                ]
                for i in rows
            ]
            width = max(len(e) for e in enc)
            # Right padding by hand: the tokenizer may have no pad token.
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, e in enumerate(enc):
                ids[j, : len(e)] = torch.tensor(e, dtype=torch.long)
                mask[j, : len(e)] = 1
            ids, mask = ids.to(device), mask.to(device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            scored = mask[:, 1:].bool()
            out[rows, 0] = (nll * scored).sum(1).cpu().numpy()
            out[rows, 1] = scored.sum(1).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _ppl_fn(_y_true, y_pred) -> float:
    s = np.asarray(y_pred, dtype=np.float64).reshape(-1, 2).sum(0)
    return float(np.exp(s[0] / s[1])) if s[1] > 0 else float("nan")


def _ppl_from_stats(s: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(
            s[..., 1] > 0, np.exp(s[..., 0] / np.where(s[..., 1] > 0, s[..., 1], 1)), np.nan
        )


#: Corpus perplexity; ``y_pred`` is the ``[n, 2]`` output of :func:`token_nll`.
perplexity_metric = Metric(
    "perplexity",
    _ppl_fn,
    stats=lambda _t, p: np.asarray(p, dtype=np.float64).reshape(-1, 2),
    from_stats=_ppl_from_stats,
    scale="perplexity (>= 1, lower is more fluent)",
)


def perplexity(texts: Sequence[str | None], model, tokenizer, *, batch_size: int = 8) -> float:
    """Corpus perplexity ``exp(sum NLL / sum tokens)`` of ``texts`` under ``model``."""
    return perplexity_metric.fn(None, token_nll(texts, model, tokenizer, batch_size=batch_size))
