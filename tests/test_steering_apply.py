"""Applying steering vectors: exact edits, hook lifetime, positions, batching, families, LoRA."""

from __future__ import annotations

import pytest
import torch

from fairvlm.errors import ConfigError, ModelError
from fairvlm.mitigation.steering import SteeringVector, record_layers
from fairvlm.models import supported_families


def _vector(vlm, layers=(1,), seed=0, norm=4.0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    vecs = {}
    for layer in layers:
        v = torch.randn(vlm.hidden_size, generator=g)
        vecs[layer] = v / v.norm() * norm
    return SteeringVector(vecs, num_layers=vlm.num_layers, family=vlm.family)


def _hook_counts(vlm) -> list[tuple[int, int]]:
    return [(len(b._forward_hooks), len(b._forward_pre_hooks)) for b in vlm.decoder_layers]


def _logits(vlm, samples):
    batch = vlm.collate(samples)
    with torch.inference_mode():
        return vlm.forward_batch(batch).logits


@pytest.mark.parametrize("operator", ["add", "ablate"])
def test_scale_zero_is_identical(tiny_vlm, make_samples, operator):
    vlm = tiny_vlm("llava")
    samples = make_samples(3)
    vec = _vector(vlm, layers=(0, 1))
    base_text = vlm.generate(samples, max_new_tokens=6)
    base_logits = _logits(vlm, samples)
    with vec.apply(vlm, scale=0.0, operator=operator) as handle:
        assert handle.active and len(handle.handles) == 2
        text = vlm.generate(samples, max_new_tokens=6)
        logits = _logits(vlm, samples)
    assert text == base_text
    assert torch.equal(logits, base_logits)
    with vec.apply(vlm, scale=3.0, operator=operator):
        assert not torch.equal(_logits(vlm, samples), base_logits)  # the hooks do act


def test_add_shifts_the_layer_output_by_scale_times_v(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    vec = _vector(vlm, layers=(1,))
    batch = vlm.collate(samples)
    with record_layers(vlm, [1]) as before, torch.inference_mode():
        vlm.forward_batch(batch)
    with vec.apply(vlm, scale=2.5), record_layers(vlm, [1]) as after, torch.inference_mode():
        vlm.forward_batch(batch)
    delta = after[1][0] - before[1][0]
    expected = (2.5 * vec.vectors[1]).expand_as(delta)
    torch.testing.assert_close(delta, expected, atol=1e-5, rtol=1e-5)


def test_ablation_leaves_no_component(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(3)
    vec = _vector(vlm, layers=(0,))
    unit = vec.vectors[0] / vec.vectors[0].norm()
    batch = vlm.collate(samples)
    with record_layers(vlm, [0]) as plain, torch.inference_mode():
        vlm.forward_batch(batch)
    with vec.apply(vlm, operator="ablate"), record_layers(vlm, [0]) as rec, torch.inference_mode():
        vlm.forward_batch(batch)
    before, after = plain[0][0] @ unit, rec[0][0] @ unit
    assert before.abs().max() > 0.1  # there was a component to remove
    assert after.abs().max() < 1e-5 * rec[0][0].norm(dim=-1).max()
    # ablate_then_add sets the component to scale * |v|
    steer = vec.apply(vlm, operator="ablate_then_add", scale=0.5)
    with steer, record_layers(vlm, [0]) as rec2, torch.inference_mode():
        vlm.forward_batch(batch)
    torch.testing.assert_close(
        rec2[0][0] @ unit,
        torch.full_like(before, 0.5 * float(vec.vectors[0].norm())),
        atol=1e-4,
        rtol=1e-4,
    )


def test_hooks_removed_also_when_generation_raises(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    vec = _vector(vlm, layers=(0, 1))
    user = vlm.decoder_layers[1].register_forward_hook(lambda m, a, o: None)
    try:
        counts = _hook_counts(vlm)
        with pytest.raises(ValueError), vec.apply(vlm, positions="generated") as handle:
            assert _hook_counts(vlm) != counts
            vlm.generate(samples, max_new_tokens=2, not_a_generate_kwarg=1)
        assert not handle.active
        assert _hook_counts(vlm) == counts  # ours gone, the user's hook kept
        assert user.id in vlm.decoder_layers[1]._forward_hooks
    finally:
        user.remove()


def test_hooks_removed_when_a_decode_step_raises(tiny_vlm, make_samples):
    """An error inside the model, mid-generation (the 3rd forward: a decode step)."""
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    vec = _vector(vlm, layers=(0, 1))
    calls = []

    def fail_on_third(module, args, output):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom in decode")

    user = vlm.decoder_layers[0].register_forward_hook(fail_on_third)
    try:
        counts = _hook_counts(vlm)
        with (
            pytest.raises(RuntimeError, match="boom in decode"),
            vec.apply(vlm, positions="prompt") as handle,
        ):
            assert len(handle.handles) == 2 and len(vlm.call_listeners) == 1
            vlm.generate(samples, max_new_tokens=6)
        assert len(calls) == 3 and not handle.active
        assert _hook_counts(vlm) == counts and vlm.call_listeners == []
    finally:
        user.remove()
    assert _hook_counts(vlm) == [(0, 0)] * vlm.num_layers


def test_ablation_holds_at_every_generate_step(tiny_vlm, make_samples):
    """Recorded after the steering hook, prefill and decode steps: no component left."""
    vlm = tiny_vlm("llava")
    samples = make_samples(3)
    vec = _vector(vlm, layers=(1,))
    unit = vec.vectors[1] / vec.vectors[1].norm()
    with vec.apply(vlm, operator="ablate"), record_layers(vlm, [1]) as rec:
        vlm.generate(samples, max_new_tokens=4)
    assert len(rec[1]) == 4
    for h in rec[1]:
        assert float((h @ unit).abs().max()) < 1e-5 * float(h.norm(dim=-1).max())


def test_bad_input_fails_before_any_hook(tiny_vlm):
    vlm = tiny_vlm("llava")
    counts = _hook_counts(vlm)
    other = SteeringVector({0: torch.ones(16)}, num_layers=2)
    deep = SteeringVector({1: torch.ones(32)}, num_layers=4)
    far = SteeringVector({7: torch.ones(32)})
    for vec, match in ((other, "hidden_size"), (deep, "num_layers=4"), (far, "out of range")):
        with pytest.raises(ModelError, match=match), vec.apply(vlm):
            pytest.fail("the block must not run")
    with pytest.raises(ConfigError, match="operator"), _vector(vlm).apply(vlm, operator="mul"):
        pass
    layer_out_of_range = _vector(vlm).apply(vlm, layers=[5])
    with (
        pytest.raises(ConfigError, match=r"subset of the vector's layers \[1\]"),
        layer_out_of_range,
    ):
        pytest.fail("the block must not run")
    assert _hook_counts(vlm) == counts


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_positions_split_prefill_and_decode(tiny_vlm, make_samples, positions):
    """A recorder before and after the steering hook sees the edit of each forward step."""
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    vec = _vector(vlm, layers=(1,))
    steer = vec.apply(vlm, scale=2.0, positions=positions)
    with record_layers(vlm, [1]) as pre, steer, record_layers(vlm, [1]) as post:
        vlm.generate(samples, max_new_tokens=4)
    steps = list(zip(pre[1], post[1], strict=True))
    assert len(steps) == 4 and steps[0][0].shape[1] > 1  # one prefill + 3 decode steps
    edited = [not torch.equal(a, b) for a, b in steps]
    assert edited == (
        [True, False, False, False] if positions == "prompt" else [False, True, True, True]
    )
    a, b = steps[0 if positions == "prompt" else 1]
    torch.testing.assert_close(b - a, (2.0 * vec.vectors[1]).expand_as(a), atol=1e-5, rtol=1e-5)


def test_generated_positions_leave_prefill_untouched(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    vec = _vector(vlm, layers=(0, 1), norm=20.0)
    with record_layers(vlm, [0, 1]) as plain:
        base = vlm.generate(samples, max_new_tokens=5)
    with vec.apply(vlm, positions="generated"), record_layers(vlm, [0, 1]) as rec:
        steered = vlm.generate(samples, max_new_tokens=5)
    for layer in (0, 1):
        assert torch.equal(rec[layer][0], plain[layer][0])  # prefill as unsteered
    assert steered != base


def test_chunked_step_is_split_by_the_announced_prompt_length():
    """A step straddling the prompt end edits only its prompt (or generated) tokens."""
    from fairvlm.mitigation.steering import StepTracker

    tracker = StepTracker("prompt")
    tracker.begin(5)
    assert tracker.split(0, torch.zeros(1, 3, 2)) == "prompt"
    assert tracker.split(1, torch.zeros(1, 5, 2)) == "prompt"  # each layer counts its own
    assert tracker.split(0, torch.zeros(1, 3, 2)).tolist() == [1.0, 1.0, 0.0]
    assert tracker.split(0, torch.zeros(1, 1, 2)) == "generated"
    tracker.begin(2)  # the next call starts over
    assert tracker.split(0, torch.zeros(1, 2, 2)) == "prompt"


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_positions_refuse_steps_they_cannot_place(tiny_vlm, make_samples, positions):
    """Without the KV cache every step re-reads the sequence: the old keyword-based split
    took each step for a prefill and steered generated tokens as prompt ones."""
    vlm = tiny_vlm("llava")
    samples = make_samples(2)
    vec = _vector(vlm, layers=(1,))
    with (
        pytest.raises(ConfigError, match=rf"positions='{positions}'.*use_cache=False"),
        vec.apply(vlm, positions=positions),
    ):
        vlm.generate(samples, max_new_tokens=3, use_cache=False)
    batch = vlm.collate(samples)
    with (
        pytest.raises(ConfigError, match=r"positions='prompt'.*VLMAdapter.generate"),
        vec.apply(vlm, positions="prompt"),
        torch.inference_mode(),
    ):
        vlm.model(**batch)  # a call the adapter did not announce
    assert vlm.call_listeners == [] and _hook_counts(vlm) == [(0, 0)] * vlm.num_layers
    with vec.apply(vlm, positions="all"):  # needs no positions: any call pattern works
        vlm.generate(samples, max_new_tokens=3, use_cache=False)


def test_positions_need_an_adapter_that_announces_calls(tiny_vlm):
    class Bare:  # the duck-typed interface steer() takes, without call_listeners
        def __init__(self, vlm):
            self.decoder_layers, self.hidden_size = vlm.decoder_layers, vlm.hidden_size
            self.num_layers, self.device, self.dtype = vlm.num_layers, vlm.device, vlm.dtype
            self.family = vlm.family

    bare = Bare(tiny_vlm("llava"))
    vec = _vector(tiny_vlm("llava"))
    refused = pytest.raises(ConfigError, match=r"positions='prompt'.*use positions='all'")
    with refused, vec.apply(bare, positions="prompt"):
        pytest.fail("the block must not run")
    with vec.apply(bare, positions="all") as handle:
        assert handle.active


def _per_sample_equals_batched(vlm, samples, vec, **kw):
    with vec.apply(vlm, **kw):
        batched = vlm.generate(samples, max_new_tokens=5, batch_size=len(samples))
        single = [vlm.generate([s], max_new_tokens=5)[0] for s in samples]
    return batched, single


@pytest.mark.parametrize(
    ("operator", "positions"),
    [
        ("add", "all"),
        ("ablate_then_add", "all"),
        ("add", "generated"),  # the prefill / decode split must not depend on the padding
        ("ablate_then_add", "prompt"),
    ],
)
def test_batched_equals_per_sample(tiny_vlm, make_samples, operator, positions):
    vlm = tiny_vlm("llava")
    samples = make_samples(4)  # prompts of different lengths: left padding in the batch
    mask = vlm.collate(samples)["attention_mask"]
    assert (mask[:, 0] == 0).any() and mask[:, -1].all()  # the batch is left-padded
    vec = _vector(vlm, layers=(0, 1), norm=6.0)
    batched, single = _per_sample_equals_batched(
        vlm, samples, vec, operator=operator, positions=positions, scale=1.0
    )
    assert batched == single
    assert batched != vlm.generate(samples, max_new_tokens=5)


@pytest.mark.parametrize("family", supported_families())
def test_every_family(tiny_vlm, make_samples, family):
    vlm = tiny_vlm(family)
    samples = make_samples(3)
    vec = _vector(vlm, layers=(0, vlm.num_layers - 1), norm=30.0)
    counts = _hook_counts(vlm)
    base = vlm.generate(samples, max_new_tokens=4)
    with vec.apply(vlm, scale=0.0):
        assert vlm.generate(samples, max_new_tokens=4) == base
    batched, single = _per_sample_equals_batched(vlm, samples, vec, positions="all")
    assert batched == single
    assert batched != base
    assert _hook_counts(vlm) == counts


def test_composes_with_a_lora_adapter(tiny_vlm_dir, make_samples, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    from fairvlm.models import load_vlm

    base_dir = tiny_vlm_dir("llava")
    plain = load_vlm(base_dir)
    peft = get_peft_model(
        plain.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(0)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # a LoRA that changes the model
    peft.save_pretrained(tmp_path / "lora")
    vlm = load_vlm(base_dir, adapter=tmp_path / "lora")
    assert isinstance(vlm.model, PeftModel)
    samples = make_samples(2)
    vec = _vector(vlm, layers=(1,))
    batch = vlm.collate(samples)
    with record_layers(vlm, [1]) as before, torch.inference_mode():
        vlm.forward_batch(batch)
    with vec.apply(vlm, scale=1.5), record_layers(vlm, [1]) as after, torch.inference_mode():
        vlm.forward_batch(batch)
    torch.testing.assert_close(
        after[1][0] - before[1][0],
        (1.5 * vec.vectors[1]).expand_as(before[1][0]),
        atol=1e-5,
        rtol=1e-5,
    )
    lora_layers = [m for m in vlm.model.modules() if hasattr(m, "lora_A")]
    assert lora_layers and all(m.lora_A for m in lora_layers)  # LoRA still in place
    base_plain = load_vlm(base_dir)
    with torch.inference_mode():
        differs = not torch.equal(
            vlm.forward_batch(batch).logits, base_plain.forward_batch(batch).logits
        )
    assert differs  # the adapter is active under the steering
    # steered generation on the adapter model: changed, batched == per sample, hooks gone
    counts = _hook_counts(vlm)
    lora_text = vlm.generate(samples, max_new_tokens=5)
    strong = _vector(vlm, layers=(0, 1), norm=30.0)
    batched, single = _per_sample_equals_batched(vlm, samples, strong)
    assert batched == single and batched != lora_text
    assert _hook_counts(vlm) == counts
