"""Model adapter: bad input, PEFT adapters, dtype/device parsing, option handling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fairvlm.data.schema import Sample
from fairvlm.errors import ConfigError, DataError, ModelError
from fairvlm.models import build_tiny_vlm, load_vlm, supported_families
from fairvlm.models.loading import parse_device, parse_dtype
from fairvlm.models.scoring import answer_logprobs, normalise_options


def test_unsupported_architecture_names_the_supported_families(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path
    )
    with pytest.raises(ModelError) as err:
        load_vlm(tmp_path)
    msg = str(err.value)
    assert "'llama'" in msg
    for family in supported_families():
        assert family in msg


def test_unsupported_family_name_for_tiny():
    with pytest.raises(ModelError, match="llava, llava_next, qwen2_vl"):
        build_tiny_vlm("blip2")


def test_missing_hub_id_offline_does_not_try_the_hub(monkeypatch):
    import huggingface_hub

    def boom(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("the hub was contacted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", boom)
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE=1, so the hub was not tried"):
        load_vlm("some-org/not-here-7b")


def test_missing_local_path_says_so(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_vlm(tmp_path / "nope")
    with pytest.raises(ModelError, match="no config.json"):
        load_vlm(tmp_path)


def test_sample_without_image_names_the_sample(tiny_llava):
    vlm = load_vlm(tiny_llava)
    with pytest.raises(DataError, match="'no-pic'"):
        vlm.collate([Sample(id="no-pic", image=None, prompt="What is shown?")])


def test_unreadable_image_names_the_sample(tiny_llava, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    vlm = load_vlm(tiny_llava)
    with pytest.raises(DataError, match="'bad-file'"):
        vlm.generate([Sample(id="bad-file", image=str(bad), prompt="What?")])
    with pytest.raises(DataError, match="'gone'"):
        vlm.score_options([Sample(id="gone", image=str(tmp_path / "x.png"), prompt="?")], ["a"])


def test_training_batch_needs_targets(tiny_llava, make_samples):
    vlm = load_vlm(tiny_llava)
    with pytest.raises(DataError, match="'s0' has no target"):
        vlm.collate(make_samples(2, target=None), with_target=True)


def test_dtype_and_device_parsing():
    assert parse_dtype("bfloat16", "cpu") is torch.bfloat16
    assert parse_dtype("torch.float16", "cpu") is torch.float16
    assert parse_dtype(None, "cpu") is torch.float32
    assert parse_dtype(None, "cuda") == "auto"
    assert parse_dtype("auto", "cpu") == "auto"
    with pytest.raises(ConfigError, match="dtype='fp33'"):
        parse_dtype("fp33", "cpu")
    assert parse_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="device='tpu'"):
        parse_device("tpu")


def test_load_in_bfloat16(tiny_llava, make_samples):
    vlm = load_vlm(tiny_llava, dtype="bfloat16", device="cpu")
    assert vlm.dtype == torch.bfloat16
    batch = vlm.collate(make_samples(1))
    assert batch["pixel_values"].dtype == torch.bfloat16
    scores = vlm.score_options(make_samples(1), ["yes", "no"])
    assert np.isfinite(scores.sum_logprob).all()


def test_peft_adapter_round_trip_with_trained_projector(tiny_llava, tmp_path, make_samples):
    from peft import LoraConfig, get_peft_model

    base = load_vlm(tiny_llava)
    cfg = LoraConfig(
        r=4,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        modules_to_save=["multi_modal_projector"],
    )
    peft_model = get_peft_model(base.model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(0.3)
    peft_model.save_pretrained(tmp_path / "adapter")
    samples = make_samples(2)
    with torch.inference_mode():
        expected = peft_model(**base.collate(samples)).logits
    loaded = load_vlm(tiny_llava, adapter=tmp_path / "adapter")
    plain = load_vlm(tiny_llava)
    with torch.inference_mode():
        got = loaded.forward_batch(loaded.collate(samples)).logits
        before = plain.forward_batch(plain.collate(samples)).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, before, atol=1e-3), "the adapter changed the outputs"
    assert loaded.num_layers == 2 and loaded.hidden_size == 32
    assert type(loaded.decoder_layers[0]).__name__ == "LlamaDecoderLayer"
    trained = [n for n, _ in loaded.projector.named_parameters()]
    assert trained, "projector resolves through the PeftModel"
    with pytest.raises(ModelError, match="adapter_config.json"):
        load_vlm(tiny_llava, adapter=tmp_path)


def test_save_is_atomic_and_replaces(tiny_vlm, tmp_path, make_samples):
    vlm = tiny_vlm("llava")
    out = tmp_path / "copy"
    vlm.save(out)
    vlm.save(out)  # replacing an existing directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava"


def test_answer_logprobs_by_hand():
    # 1 row, T=3, vocab 2; only position 2 is labelled (token 1), predicted at position 1.
    logits = torch.tensor([[[0.0, 0.0], [0.0, np.log(3.0)], [5.0, 5.0]]])
    labels = torch.tensor([[-100, -100, 1]])
    total, n = answer_logprobs(logits, labels)
    assert n.tolist() == [1]
    assert total.item() == pytest.approx(np.log(0.75))
    # the same with only the last 2 positions' logits kept
    total2, _ = answer_logprobs(logits[:, 1:], labels)
    assert total2.item() == pytest.approx(np.log(0.75))


def test_options_shared_ragged_and_bad():
    assert normalise_options(["yes", "no"], 2) == [["yes", "no"], ["yes", "no"]]
    assert normalise_options([["a"], ["b", "c"]], 2) == [["a"], ["b", "c"]]
    with pytest.raises(ConfigError, match="one list of options per sample"):
        normalise_options([["a"], ["b"]], 3)
    with pytest.raises(ConfigError, match="not one string"):
        normalise_options("yes", 1)


def test_ragged_options_fill_nan(tiny_vlm, make_samples):
    vlm = tiny_vlm("llava")
    scores = vlm.score_options(make_samples(2), [["yes"], ["yes", "no"]])
    assert np.isnan(scores.sum_logprob[0, 1]) and scores.n_tokens[0, 1] == 0
    assert scores.sum_logprob[0, 0] < 0 and scores.best().tolist()[0] == 0


def test_tiny_tokenizer_is_trained_on_the_corpus(tmp_path):
    corpus = ["melanoma melanoma melanoma nevus nevus"] * 20
    vlm = build_tiny_vlm("llava", corpus=corpus, hidden_size=16, num_heads=2)
    ids = vlm.tokenizer("melanoma", add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, "a frequent corpus word is one token"
    assert vlm.tokenizer.decode(vlm.tokenizer("any text: ünïcode")["input_ids"]) == (
        "any text: ünïcode"
    ), "byte-level BPE encodes unseen text losslessly"
    assert vlm.hidden_size == 16


def test_tiny_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="hidden_size=30 .*multiple of num_heads=4"):
        build_tiny_vlm("llava", hidden_size=30)
    with pytest.raises(ConfigError, match="image_size=30"):
        build_tiny_vlm("llava", image_size=30)
    with pytest.raises(ConfigError, match="corpus"):
        build_tiny_vlm("llava", corpus=[])


def test_meta_device_gives_structure_without_weights(tiny_llava):
    vlm = load_vlm(tiny_llava, device="meta")
    assert vlm.device.type == "meta"
    assert vlm.num_layers == 2 and vlm.image_tokens_per_image(64, 64) == 16
    with pytest.raises(ConfigError, match="adapter needs weights"):
        load_vlm(tiny_llava, device="meta", adapter=tiny_llava)


def test_garbage_config_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-arch"}')
    with pytest.raises(ModelError, match="cannot be loaded as a transformers checkpoint"):
        load_vlm(tmp_path)


def test_empty_inputs(tiny_vlm):
    vlm = tiny_vlm("llava")
    assert vlm.generate([]) == []
    assert vlm.score_options([], ["yes", "no"]).sum_logprob.shape == (0, 2)
    with pytest.raises(ConfigError, match="at least one sample"):
        vlm.collate([])
