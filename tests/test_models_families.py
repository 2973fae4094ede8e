"""Must-shows of the model adapter, for every supported family (tiny random models)."""

from __future__ import annotations

import pytest
import torch

from fairvlm.models import load_vlm, supported_families

FAMILIES = list(supported_families())


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


def test_save_load_gives_identical_logits(family, tiny_vlm, tiny_vlm_dir, make_samples):
    built = tiny_vlm(family)
    loaded = load_vlm(tiny_vlm_dir(family))
    assert loaded.family == family
    samples = make_samples(2)
    with torch.inference_mode():
        a = built.forward_batch(built.collate(samples)).logits
        b = loaded.forward_batch(loaded.collate(samples)).logits
    assert a.shape == b.shape
    assert torch.equal(a, b)


def test_batched_generate_equals_one_by_one(family, tiny_vlm, make_samples):
    vlm = tiny_vlm(family)
    samples = make_samples(3)
    lengths = vlm.collate(samples)["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) == 3, "the prompts must differ in length (left padding)"
    batched = vlm.generate(samples, max_new_tokens=6, batch_size=3)
    alone = [vlm.generate([s], max_new_tokens=6)[0] for s in samples]
    assert batched == alone
    assert all(batched), "a random tiny model still generates some text"


def _manual_option_logprob(vlm, sample, option):
    """log P(option | prompt) by hand: the processor on prompt+answer text, log-softmax."""
    img = sample.load_image()
    images = [[img]] if vlm.spec.nested_images else [img]
    if vlm.spec.chat:
        full = vlm.build_prompt(
            type(sample)(id=sample.id, image=img, prompt=sample.prompt, target=option),
            with_target=True,
        )
        text = full[: full.rindex(option) + len(option)]
        ids = vlm.processor(text=[text], images=images, return_tensors="pt")
        n_prompt = vlm.processor(text=[vlm.build_prompt(sample)], images=images)["input_ids"]
        start = len(n_prompt[0])
        batch = ids
    else:  # PaliGemma: the processor's own suffix handling (which appends eos)
        batch = vlm.processor(
            text=[sample.prompt], images=images, suffix=[option], return_tensors="pt"
        )
        labels = batch.pop("labels")[0]
        start = int((labels == -100).sum())
        for k in ("input_ids", "attention_mask", "token_type_ids"):
            batch[k] = batch[k][:, :-1]  # drop eos: options are scored without it
    with torch.inference_mode():
        logits = vlm.model(**batch).logits[0].float()
    ids_ = batch["input_ids"][0]
    logp = torch.log_softmax(logits, dim=-1)
    picked = [logp[p - 1, ids_[p]].item() for p in range(start, len(ids_))]
    return sum(picked), len(picked)


def test_score_options_equals_manual_log_softmax(family, tiny_vlm, make_samples):
    vlm = tiny_vlm(family)
    samples = make_samples(2)
    options = ["yes", "no", "a malignant lesion"]
    scores = vlm.score_options(samples, options, batch_size=4)
    assert scores.sum_logprob.shape == (2, 3)
    for i, s in enumerate(samples):
        for k, o in enumerate(options):
            total, n = _manual_option_logprob(vlm, s, o)
            assert scores.n_tokens[i, k] == n
            assert scores.sum_logprob[i, k] == pytest.approx(total, abs=1e-4)
            assert scores.mean_logprob[i, k] == pytest.approx(total / n, abs=1e-4)
    assert scores.n_tokens[0, 2] > scores.n_tokens[0, 0]


def test_image_token_mask_is_where_image_features_enter(family, tiny_vlm, make_samples):
    vlm = tiny_vlm(family)
    samples = make_samples(2, size=(40, 48))
    batch = vlm.collate(samples)
    mask = vlm.image_token_mask(batch)
    assert mask.shape == batch["input_ids"].shape
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach().clone()

    decoder = vlm.base_model.get_decoder()
    handle = decoder.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.inference_mode():
            vlm.forward_batch(batch)
    finally:
        handle.remove()
    text_embeds = decoder.get_input_embeddings()(batch["input_ids"])
    replaced = (captured["embeds"] != text_embeds).any(dim=-1)
    # the image features replace exactly the masked positions, nothing else
    assert torch.equal(replaced, mask)
    counts = mask.sum(dim=1).tolist()
    assert counts[0] == counts[1] > 0
    if family in ("idefics3", "smolvlm"):
        # hand-computed: 2x2 tiles of 32 px + the global image, each (32/8)^2 / 2^2 = 4
        assert counts == [20, 20]
    else:  # the processor's own count (Idefics3's also counts the tile tags)
        expected = vlm.processor._get_num_multimodal_tokens(image_sizes=[[40, 48]])
        assert counts[0] == expected["num_image_tokens"][0]
    if family in ("llava", "paligemma"):  # hand-computed: (32 px / 8 px patches)^2 = 16
        assert counts == [16, 16]


def test_decoder_hook_fires_during_generate_and_is_removed(family, tiny_vlm, make_samples):
    vlm = tiny_vlm(family)
    layer = vlm.decoder_layers[0]
    seen = []

    def hook(module, args, output):
        seen.append(output)

    handle = layer.register_forward_hook(hook)
    try:
        vlm.generate(make_samples(2), max_new_tokens=3, batch_size=2, min_new_tokens=3)
    finally:
        handle.remove()
    assert len(seen) == 3  # prefill + 2 decoding steps
    assert all(isinstance(o, torch.Tensor) for o in seen)
    assert seen[0].shape[-1] == vlm.hidden_size
    assert len(layer._forward_hooks) == 0
    vlm.generate(make_samples(1), max_new_tokens=2)
    assert len(seen) == 3


def test_labels_mask_everything_but_the_answer(family, tiny_vlm, make_samples):
    vlm = tiny_vlm(family)
    samples = make_samples(3, target="no it is not")
    batch = vlm.collate(samples, with_target=True)
    labels, ids = batch["labels"], batch["input_ids"]
    assert labels.shape == ids.shape
    for row in range(3):
        keep = labels[row] != -100
        n = int(keep.sum())
        assert keep[-n:].all() and not keep[:-n].any(), "answer tokens sit at the end"
        assert torch.equal(labels[row][keep], ids[row][keep])
        answer = vlm.tokenizer.decode(labels[row][keep], skip_special_tokens=True)
        assert answer.strip() == "no it is not"
        assert (
            int(labels[row][keep][-1]) in vlm.end_token_ids
            or vlm.tokenizer.decode(labels[row][keep][-1:]).strip() == ""
        ), "the answer is closed by the end-of-turn token"
        assert not (vlm.image_token_mask(batch)[row] & keep).any()
    assert batch["attention_mask"][:, -1].all(), "left padding: the last column is real"


def test_structure(family, tiny_vlm):
    vlm = tiny_vlm(family)
    assert vlm.num_layers == 2
    assert vlm.hidden_size == 32
    assert isinstance(vlm.decoder_layers, torch.nn.ModuleList)
    params = {id(p) for p in vlm.model.parameters()}
    for part in (vlm.vision_module, vlm.projector):
        assert any(id(p) in params for p in part.parameters())
    assert not set(map(id, vlm.projector.parameters())) & set(
        map(id, vlm.decoder_layers.parameters())
    )


def test_training_loss_is_the_answer_tokens_nll(family, tiny_vlm, make_samples):
    from fairvlm.models.scoring import answer_logprobs

    vlm = tiny_vlm(family)
    batch = vlm.collate(make_samples(3, target="a round lesion"), with_target=True)
    vlm.model.train()
    try:
        out = vlm.model(**batch)
        out.loss.backward()
    finally:
        vlm.model.eval()
    total, n = answer_logprobs(out.logits.detach(), batch["labels"])
    assert out.loss.item() == pytest.approx(-(total.sum() / n.sum()).item(), rel=1e-4)
    grads = [p.grad for p in vlm.projector.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "gradient reaches projector"
    vlm.model.zero_grad(set_to_none=True)
