"""What fairvlm relies on from transformers / PEFT, pinned on the installed releases, and
the warning hygiene a user's ``-W error`` run needs."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import torch

from fairvlm.models import supported_families
from fairvlm.upstream_warnings import UNAVOIDABLE, filter_unavoidable


@pytest.mark.parametrize("family", supported_families())
def test_decoder_layers_take_and_return_the_residual_stream(tiny_vlm, make_samples, family):
    """The hooks of steering, FairLLaVA's reader and record_layers assume: the decoder
    blocks are ``get_decoder().layers``; each is called once per forward step with the
    hidden states ``[B, T, H]`` first (positionally or as ``hidden_states``) and returns
    them as a Tensor or as the first item of a tuple; layer 0 sees the whole sequence
    the processor built (image tokens expanded before the model)."""
    vlm = tiny_vlm(family)
    batch = vlm.collate(make_samples(2))
    seen_in, seen_out = [], []
    first = vlm.decoder_layers[0]

    def pre(module, args, kwargs):
        seen_in.append(args[0] if args else kwargs["hidden_states"])

    def post(module, args, output):
        seen_out.append(output[0] if isinstance(output, tuple) else output)

    handles = [
        first.register_forward_pre_hook(pre, with_kwargs=True),
        first.register_forward_hook(post),
    ]
    try:
        with torch.inference_mode():
            vlm.forward_batch(batch)
    finally:
        for h in handles:
            h.remove()
    shape = (*batch["input_ids"].shape, vlm.hidden_size)
    assert len(seen_in) == len(seen_out) == 1
    assert tuple(seen_in[0].shape) == tuple(seen_out[0].shape) == shape


def test_generate_steps_are_prefill_then_one_token_each(tiny_vlm, make_samples):
    """Steering's prompt / generated split counts positions: with the KV cache,
    ``generate`` runs the prompt once, then one token per step."""
    vlm = tiny_vlm("llava")
    batch = vlm.collate(make_samples(2))
    lengths = []
    handle = vlm.decoder_layers[0].register_forward_hook(
        lambda m, a, o: lengths.append((o[0] if isinstance(o, tuple) else o).shape[1])
    )
    try:
        with torch.inference_mode():
            vlm.model.generate(
                **batch, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0
            )
    finally:
        handle.remove()
    assert lengths == [batch["input_ids"].shape[1], 1, 1, 1]


def test_only_the_listed_upstream_warnings_are_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error")
        filter_unavoidable()
        for category, message, _ in UNAVOIDABLE:
            warnings.warn(message.replace("\\", ""), category, stacklevel=1)  # ignored
        with pytest.raises(FutureWarning):
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert caught == []


def test_train_and_audit_pass_under_warnings_as_errors(tiny_llava, tmp_path):
    """A user's ``python -W error -m fairvlm train / audit`` on a tiny model."""
    from fairvlm.synth import synthesize

    data = synthesize("clinical", tmp_path / "data", {"n_train": 24, "n_finetune": 24})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    fairvlm = [sys.executable, "-W", "error", "-m", "fairvlm"]
    runs = {
        "train": [
            "train", str(tiny_llava), str(data), "--method", "fairllava", "--out",
            str(tmp_path / "adapter"), "--set", "steps=2", "--set", "batch_size=4",
            "--set", "lambdas.skin_tone=0.2", "--set", "split=finetune",
        ],
        "audit": [
            "audit", str(tiny_llava), str(data), "--adapter", str(tmp_path / "adapter"),
            "--tasks", "vqa", "--limit", "8", "--n-boot", "20", "--no-progress",
            "--out", str(tmp_path / "audit"),
        ],
    }  # fmt: skip
    for name, argv in runs.items():
        proc = subprocess.run([*fairvlm, *argv], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
    assert (tmp_path / "audit" / "metrics.json").exists()
