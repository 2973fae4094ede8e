"""The contrastive and gradient builders on tiny models."""

from __future__ import annotations

import pytest
import torch

from fairvlm.data.schema import Sample
from fairvlm.errors import ConfigError, DataError, ModelError
from fairvlm.mitigation.steering import (
    ContrastiveConfig,
    GradientConfig,
    aggregate,
    build_contrastive,
    build_gradient,
    select_sets,
)


def _hidden(vlm, samples, layer, **collate):
    """Reference activations through ``output_hidden_states`` (not through our hooks);
    not for the last layer, whose entry there is after the final norm."""
    batch = vlm.collate(samples, **collate)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.inference_mode():
        out = vlm.model(**inputs, output_hidden_states=True)
    return out.hidden_states[layer + 1].float(), batch


def test_mean_diff_last_prompt_matches_hidden_states(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(5)
    biased, neutral = samples[:2], samples[2:]
    vec = build_contrastive(
        vlm, biased=biased, neutral=neutral, config={"layers": [0], "batch_size": 2}
    )
    hb, _ = _hidden(vlm, biased, 0)
    hn, _ = _hidden(vlm, neutral, 0)
    expected = hb[:, -1].mean(0) - hn[:, -1].mean(0)  # left padding: the last prompt token is last
    torch.testing.assert_close(vec.vectors[0], expected, atol=1e-5, rtol=1e-5)
    assert vec.builder == "contrastive" and vec.config["n_biased"] == 2
    assert vec.hidden_size == 32 and vec.num_layers == 2 and vec.family == "llava"


def test_image_and_answer_pooling_match_hidden_states(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(4, target="a young woman")
    b, n = samples[:2], samples[2:]
    for position in ("image_mean", "answer_mean"):
        vec = build_contrastive(
            vlm, biased=b, neutral=n, config={"layers": [0], "position": position}
        )
        means = []
        for group in (b, n):
            h, batch = _hidden(vlm, group, 0, with_target=position == "answer_mean")
            if position == "image_mean":
                mask = vlm.image_token_mask(batch)
            else:
                lab = batch["labels"] != -100
                mask = torch.zeros_like(lab)
                mask[:, :-1] = lab[:, 1:]
            means.append(((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).mean(0))
        torch.testing.assert_close(vec.vectors[0], means[0] - means[1], atol=1e-5, rtol=1e-5)


def test_pca_points_from_neutral_to_biased_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    d = torch.zeros(16)
    d[3], d[7] = 3.0, -2.0
    neutral = torch.randn(40, 16, generator=g)
    biased = neutral + d + 0.05 * torch.randn(40, 16, generator=g)
    v = aggregate(biased, neutral, "pca")
    cos = float(v @ d / (v.norm() * d.norm()))
    assert cos > 0.99
    torch.testing.assert_close(v.norm(), d.norm(), atol=0.05, rtol=0.05)
    assert torch.equal(v, aggregate(biased, neutral, "pca"))
    assert float(aggregate(neutral, biased, "pca") @ d) < 0  # swapped sets: flipped sign


def _describe(i, target, task="describe"):
    from PIL import Image

    return Sample(
        id=f"d{i}",
        image=Image.new("RGB", (8, 8)),
        prompt="Describe the person.",
        target=target,
        task=task,
    )


def test_dataset_filters_select_by_mentions():
    samples = [
        _describe(0, "a young woman doctor"),
        _describe(1, "a doctor"),
        _describe(2, "an old man chef"),
        _describe(3, "a chef with a knife"),
        _describe(4, "a woman", task="concept"),
    ]
    b, n = select_sets(samples, ContrastiveConfig())
    assert sorted(s.id for s in b) == ["d0", "d2"] and sorted(s.id for s in n) == ["d1", "d3"]
    b, n = select_sets(samples, ContrastiveConfig(lexicon=["doctor"], limit=1))
    assert [s.id for s in b] == ["d0"] or [s.id for s in b] == ["d1"]
    assert len(n) == 1
    with pytest.raises(DataError, match="biased set"):
        select_sets(samples[1:2], ContrastiveConfig())


def test_contrastive_config_errors():
    with pytest.raises(ConfigError, match="aggregator"):
        ContrastiveConfig(aggregator="median")
    with pytest.raises(ConfigError, match="position"):
        ContrastiveConfig(position="first")
    with pytest.raises(ConfigError, match="not a ContrastiveConfig field"):
        ContrastiveConfig.from_dict({"layer": 3})
    for empty in ([], ""):  # an empty attribute lexicon would make every sample neutral
        with pytest.raises(ConfigError, match="lexicon"):
            ContrastiveConfig(lexicon=empty)


@pytest.mark.parametrize("target", ["pixels", "vision", "projector"])
def test_gradient_step_lowers_attribute_logprob(tiny_vlm, make_samples, target):
    vlm = tiny_vlm("llava")
    images = [s.image for s in make_samples(2)]
    vec = build_gradient(
        vlm, images=images, config={"target": target, "layers": [0, 1], "eps": 0.05}
    )
    before, after = vec.config["attribute_logprob"], vec.config["attribute_logprob_after"]
    assert len(before) == 2 and all(a < b for a, b in zip(after, before, strict=True))
    assert vec.layers == [0, 1] and all(n > 0 for n in vec.norms().values())
    assert vec.builder == "gradient" and vec.config["target"] == target


def test_gradient_vector_is_pooled_activation_difference(tiny_vlm, make_samples):
    """r_l = mean over image tokens of h_l(x') - h_l(x), x' rebuilt by hand from the sign."""
    from fairvlm.mitigation.steering.gradient import _attribute_logprob, _word_spans

    vlm = tiny_vlm("llava")
    image = make_samples(1)[0].image
    cfg = GradientConfig(layers=[0], eps=0.1, words=["man", "woman"], prefix="")
    vec = build_gradient(vlm, images=[image], config=cfg)
    base = Sample(id="x", image=image, prompt=cfg.prompt)
    batch = vlm.collate([base])
    x = batch["pixel_values"].clone().requires_grad_(True)
    wbatch, counts = _word_spans(vlm, image, cfg, "")
    labels = wbatch.pop("labels")
    logits = vlm.model(**{**wbatch, "pixel_values": torch.cat([x] * len(counts))}).logits
    (grad,) = torch.autograd.grad(_attribute_logprob(logits, labels, counts), x)
    x_new = x.detach() - 0.1 * x.detach().pow(2).mean().sqrt() * grad.sign()
    h0, _ = _hidden(vlm, [base], 0)
    with torch.inference_mode():
        h1 = vlm.model(**{**batch, "pixel_values": x_new}, output_hidden_states=True).hidden_states[
            1
        ]
    mask = vlm.image_token_mask(batch)[0]
    expected = (h1[0, mask] - h0[0, mask]).mean(0)
    torch.testing.assert_close(vec.vectors[0], expected, atol=1e-5, rtol=1e-5)


def test_gradient_bad_input_before_model_work(tiny_vlm):
    vlm = tiny_vlm("llava")
    with pytest.raises(ConfigError, match="words"):
        GradientConfig(words=[])
    with pytest.raises(ConfigError, match="words"):
        GradientConfig(words=["", "  "])
    with pytest.raises(ConfigError, match="words"):
        build_gradient(vlm, images=["unused.png"], config={"words": []})
    with pytest.raises(ModelError, match="layer 5 is out of range"):
        build_gradient(vlm, images=["unused.png"], config={"layers": [5]})
    with pytest.raises(ModelError, match="out of range"):
        build_contrastive(vlm, biased=[], neutral=[], config={"layers": [-3]})
    with pytest.raises(ConfigError, match="eps"):
        GradientConfig(eps=0)
    with pytest.raises(ConfigError, match="target"):
        GradientConfig(target="text")


def test_word_spans_after_a_prefix(tiny_vlm, make_samples):
    """The scored tokens are exactly the word's, after the prefix, before the end tokens."""
    from fairvlm.mitigation.steering.gradient import _candidates, _word_spans

    vlm = tiny_vlm("llava")
    image = make_samples(1)[0].image
    cfg = GradientConfig(words=["man", "old person"], prefix="a photo of", articles=["an"])
    candidates = _candidates(cfg, "a photo of")
    assert candidates == ["man", "an man", "old person", "an old person"]
    assert _candidates(cfg, "")[:2] == ["Man", "An man"]  # sentence start: capitalised
    batch, spans = _word_spans(vlm, image, cfg, "a photo of")
    assert len(spans) == 4
    for i, (start, stop) in enumerate(spans):
        ids = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert vlm.tokenizer.decode(ids[:start]).strip() == "a photo of"
        assert vlm.tokenizer.decode(ids[start:stop]).strip() == candidates[i]
        assert stop < len(ids)  # the end tokens are not scored


def test_auto_prefix_is_the_answer_before_the_first_attribute_word(tiny_vlm, make_samples):
    from fairvlm.mitigation.steering.gradient import _prefix

    vlm = tiny_vlm("llava")
    image = make_samples(1)[0].image
    text = vlm.generate([Sample(id="p", image=image, prompt="Describe the person.")])[0]
    words = text.split()
    assert len(words) >= 2, text  # a random tiny model still says something
    cfg = GradientConfig(words=[words[1]], prefix="auto", articles=[])
    assert _prefix(vlm, image, cfg) == text[: text.index(words[1])].strip()
    cfg = GradientConfig(words=[words[1]], prefix="auto", articles=[words[0].lower()])
    assert _prefix(vlm, image, cfg) == ""  # a trailing article is dropped
    assert _prefix(vlm, image, GradientConfig(words=["zebra"])) == ""  # never said: no prefix
