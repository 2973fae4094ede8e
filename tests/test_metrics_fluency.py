"""Perplexity under a tiny randomly initialised causal LM, checked against a manual loss."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from fairvlm.metrics import group_report, perplexity, perplexity_metric, token_nll

WORDS = ["a", "man", "woman", "doctor", "nurse", "is", "smiling", "the", "in", "room"]


@pytest.fixture(scope="module")
def lm():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.set_num_threads(1)
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=2, n_head=2, n_positions=32)
    return GPT2LMHeadModel(cfg).eval(), tokenizer


def _manual(text, model, tokenizer) -> tuple[float, int]:
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()  # mean NLL of tokens 2..T
    n = ids.shape[1] - 1
    return loss * n, n


def test_token_nll_matches_manual_loss_with_padding(lm):
    model, tokenizer = lm
    texts = ["a man is smiling", "the nurse", "a woman doctor in the room is smiling", "a", None]
    got = token_nll(texts, model, tokenizer, batch_size=3)  # mixed lengths in one batch
    for text, (nll, n) in zip(texts[:3], got[:3], strict=True):
        ref_nll, ref_n = _manual(text, model, tokenizer)
        assert n == ref_n
        assert nll == pytest.approx(ref_nll, rel=1e-4)
    assert got[3].tolist() == [0.0, 0.0] and got[4].tolist() == [0.0, 0.0]  # nothing to score
    total = sum(_manual(t, model, tokenizer)[0] for t in texts[:3])
    count = sum(_manual(t, model, tokenizer)[1] for t in texts[:3])
    assert perplexity(texts, model, tokenizer) == pytest.approx(math.exp(total / count), rel=1e-4)
    # A random model over a 12-word vocabulary is close to uniform: ppl near 12.
    assert 6 < perplexity(texts, model, tokenizer) < 24


def test_perplexity_group_metric_is_corpus_level(lm):
    model, tokenizer = lm
    texts = ["a man is smiling", "the nurse", "a woman doctor", "the room"]
    stats = token_nll(texts, model, tokenizer)
    rep = group_report(
        perplexity_metric, None, stats, pd.Series(["x", "x", "y", "y"], name="g"), n_boot=20
    )
    x = stats[:2].sum(0)
    assert rep.by_attribute["g"].groups["x"].value == pytest.approx(math.exp(x[0] / x[1]))
    assert np.isfinite(rep.overall_ci).all()
