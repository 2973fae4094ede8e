"""Positions on real layouts: multi-tile and dynamic-resolution images, batches of mixed
sizes, left padding, at each family's published geometry.

Each position is checked against an independent computation from the processor's own
output for each sample alone (no batch, no padding): the FairLLaVA ``image`` / ``text``
masks, the steering ``image_mean`` / ``last_prompt`` positions and their pooling, the
gradient vector's pooling (against the hidden states of an unpadded forward pass) and the
audit's answer positions (option scores against an unpadded forward pass).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fairvlm.data.schema import Sample
from fairvlm.mitigation.steering import gradient
from fairvlm.mitigation.steering.activations import pool_positions
from fairvlm.models.builtin_families import BUILTIN
from fairvlm.representation.reader import token_mask

#: The built-in families (plugins may register more; they have no published geometry).
FAMILIES = [spec.name for spec in BUILTIN]

#: Two images per family whose token counts differ where the family's layout allows it
#: (LLaVA-1.5 and PaliGemma always give 576 / 256: the prompts' lengths differ instead).
SIZES = {
    "llava": [(64, 64), (672, 448)],
    "llava_next": [(672, 672), (500, 300)],  # 2x2 tiles; a 1008x336-style grid, unpadded
    "qwen2_vl": [(448, 448), (224, 672)],  # 256 and 192 tokens
    "qwen2_5_vl": [(448, 448), (224, 672)],
    "idefics3": [(364, 364), (364, 728)],  # 17 and 9 tiles
    "smolvlm": [(512, 512), (512, 1024)],
    "paligemma": [(224, 224), (64, 96)],
}
PROMPTS = ["Is this person a doctor or a nurse in the room?", "What is shown?"]
OPTIONS = ["yes", "no, benign"]


def _samples(family: str, target: str | None = None) -> list[Sample]:
    return [
        Sample(id=f"s{i}", image=Image.new("RGB", size, (40 * i, 90, 160)), prompt=p, target=target)
        for i, (size, p) in enumerate(zip(SIZES[family], PROMPTS, strict=True))
    ]


def _alone(vlm, sample: Sample):
    """The processor's output for ``sample`` on its own: no batch, no padding."""
    return vlm.processor(
        text=[vlm.build_prompt(sample)], images=vlm._images([sample]), return_tensors="pt"
    )


def _layout(vlm, batch, samples):
    """Per row: (left padding, the sample's own ids), checked to be where the batch has them."""
    rows = []
    for i, s in enumerate(samples):
        ids = _alone(vlm, s)["input_ids"][0]
        pad = int((batch["attention_mask"][i] == 0).int().cumprod(0).sum())  # leading zeros
        assert torch.equal(batch["input_ids"][i, pad : pad + len(ids)], ids)
        assert not batch["attention_mask"][i, :pad].any()
        rows.append((pad, ids))
    return rows


@pytest.mark.parametrize("family", FAMILIES)
def test_fairllava_image_and_text_masks(family, published_vlm):
    vlm = published_vlm(family)
    samples = _samples(family)
    batch = vlm.collate(samples)
    rows = _layout(vlm, batch, samples)
    counts = [int((ids == vlm.image_token_id).sum()) for _, ids in rows]
    if family not in ("llava", "paligemma"):
        assert counts[0] != counts[1]  # mixed token counts, not just mixed prompts
    assert len({pad for pad, _ in rows}) == 2 and min(pad for pad, _ in rows) == 0
    image = token_mask(batch, vlm.image_token_mask(batch), "image")
    text = token_mask(batch, vlm.image_token_mask(batch), "text")
    for i, (pad, ids) in enumerate(rows):
        want = torch.zeros(batch["input_ids"].shape[1], dtype=torch.bool)
        want[pad : pad + len(ids)] = ids == vlm.image_token_id
        assert torch.equal(image[i], want)
        want_text = torch.zeros_like(want)
        want_text[pad : pad + len(ids)] = ids != vlm.image_token_id
        assert torch.equal(text[i], want_text)
        assert int(image[i].sum()) == counts[i]


@pytest.mark.parametrize("family", FAMILIES)
def test_steering_positions_and_pooling(family, published_vlm):
    vlm = published_vlm(family)
    samples = _samples(family, target="yes")
    batch = vlm.collate(samples, with_target=True)
    rows = _layout(vlm, batch, samples)
    width = batch["input_ids"].shape[1]
    # hidden state at t is (t, 2t): a pooled vector gives back the positions it read
    t = torch.arange(width, dtype=torch.float32)
    hidden = torch.stack([t, 2 * t], dim=-1).expand(len(samples), width, 2)
    last = pool_positions(hidden, batch, "last_prompt", vlm)
    image = pool_positions(hidden, batch, "image_mean", vlm)
    for i, (pad, ids) in enumerate(rows):
        end = pad + len(ids)  # the answer starts here: labels only from there on
        assert (batch["labels"][i, :end] == -100).all() and batch["labels"][i, end] != -100
        assert last[i].tolist() == [end - 1, 2 * (end - 1)]
        where = pad + (ids == vlm.image_token_id).nonzero().flatten().double()
        assert image[i, 0].item() == pytest.approx(where.mean().item(), rel=1e-6)


def _unpadded(vlm, sample: Sample, answer_text: str):
    """The sample alone with ``answer_text`` after its prompt (no end token), as the
    processor's inputs; and its prompt length and answer ids."""
    enc = dict(_alone(vlm, sample))
    prompt = vlm.build_prompt(sample)
    answer = vlm._answer_ids(prompt, vlm._answer_text(sample, prompt, answer_text, with_end=False))
    n = enc["input_ids"].shape[1]
    for key, value in list(enc.items()):
        if torch.is_tensor(value) and value.dim() == 2 and value.shape[1] == n:
            fill = (
                answer
                if key == "input_ids"
                else [1 if key == "attention_mask" else 0] * len(answer)
            )
            if key == "token_type_ids":  # PaliGemma: the answer is the suffix (type 1)
                fill = [1] * len(answer)
            enc[key] = torch.cat([value, torch.tensor([fill], dtype=value.dtype)], dim=1)
    enc.pop("labels", None)
    return enc, n, answer


def _unpadded_score(vlm, sample: Sample, option: str) -> float:
    """log P(option | prompt) from one forward pass of the sample alone, no padding."""
    enc, n, answer = _unpadded(vlm, sample, option)
    with torch.no_grad():
        logits = vlm.model(**enc).logits[0].float()
    logp = torch.log_softmax(logits[n - 1 : n - 1 + len(answer)], dim=-1)
    return float(logp[torch.arange(len(answer)), torch.tensor(answer)].sum())


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("scoring", ["shared", "independent"])
def test_audit_answer_positions(family, scoring, published_vlm):
    vlm = published_vlm(family)
    samples = _samples(family)
    scores = vlm.score_options(samples, OPTIONS, batch_size=4, scoring=scoring)
    want = np.array([[_unpadded_score(vlm, s, o) for o in OPTIONS] for s in samples])
    np.testing.assert_allclose(scores.sum_logprob, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("positions", ["image_mean", "last_prompt"])
def test_gradient_vector_pooling(family, positions, published_vlm):
    vlm = published_vlm(family)
    cfg = gradient.GradientConfig(
        positions=positions, prefix="The person is", layers=[0], words=["man"], articles=[]
    )
    image = Image.new("RGB", SIZES[family][0], (90, 120, 30))
    sample = Sample(id="g", image=image, prompt=cfg.prompt, target=cfg.prefix)
    batch = vlm.collate([sample], with_target=True)
    _, spans = gradient._word_spans(vlm, image, cfg, cfg.prefix)
    pooled, _ = gradient._read(vlm, batch, [0], cfg, spans[0][0], None)
    # independent: layer 0's output in an unpadded forward of prompt + prefix
    enc, n, prefix_ids = _unpadded(vlm, sample, cfg.prefix)
    assert spans[0][0] == len(prefix_ids)
    with torch.no_grad():
        hidden = vlm.model(**enc, output_hidden_states=True).hidden_states[1][0].float()
    if positions == "last_prompt":
        want = hidden[n + len(prefix_ids) - 1]
    else:
        want = hidden[:n][enc["input_ids"][0, :n] == vlm.image_token_id].mean(0)
    torch.testing.assert_close(pooled[0], want, rtol=1e-4, atol=1e-4)
