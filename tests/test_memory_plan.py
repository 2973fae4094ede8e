"""scripts/memory_plan.py: the arithmetic on hand-checkable cases, and the script's tables."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "memory_plan.py"


@pytest.fixture(scope="module")
def plan():
    spec = importlib.util.spec_from_file_location("memory_plan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["memory_plan"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def llava7b(plan):
    return plan.published_arch(plan.LLAVA_15_7B, "llava-1.5-7b", plan.LLAVA_IMAGE_TOKENS)


def _small(plan, **kw):
    """h 32, f 64, 4 heads of 8, one layer with the 7 LoRA targets."""
    arch = plan.Arch(
        name="small",
        hidden=32,
        layers=1,
        intermediate=64,
        vocab=100,
        heads=4,
        kv_heads=4,
        head_dim=8,
        vision_hidden=16,
        vision_layers=1,
        vision_intermediate=32,
        image_tokens=10,
        vision_tokens=10,
        params=1000,
        linear_params=800,
        projector_params=50,
        lora_linears=((32, 32),) * 4 + ((32, 64),) * 2 + ((64, 32),),
    )
    return replace(arch, **kw)


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_parameters_of_a_config_equal_the_built_models(plan, family, tiny_vlm_dir, tiny_vlm):
    from transformers import AutoConfig

    arch = plan.arch_from_config(AutoConfig.from_pretrained(tiny_vlm_dir(family)), family, 16)
    model = tiny_vlm(family).model
    assert arch.params == sum(p.numel() for p in model.parameters())
    # one decoder block by the formula: q, k, v, o (Qwen2: q / k / v biases), MLP, 2 norms
    block = sum(p.numel() for p in model.get_decoder().layers[0].parameters())
    bias = family == "qwen2_vl"
    assert plan.decoder_layer_params(32, 64, 32, bias) == block == 10304 + (96 if bias else 0)
    assert len(arch.lora_linears) == 7 * 2  # 7 targets x 2 layers


def test_llava_7b_counts_match_its_published_size(plan, llava7b):
    assert llava7b.params == 7_063_427_072  # "7.06B params" on the Hub
    # 32 blocks, embeddings and LM head (32,064 rows), final norm
    text = 32 * plan.decoder_layer_params(4096, 11008, 4096, False) + 2 * 32064 * 4096 + 4096
    # the rest is CLIP ViT-L/14-336's vision tower (303.5 M) and the projector
    assert text + 303_507_456 + llava7b.projector_params == llava7b.params
    # r=64 on q, k, v, o (4096 -> 4096) and gate, up, down (4096 <-> 11008), 32 layers
    assert sum(64 * (i + o) for i, o in llava7b.lora_linears) == 64 * 32 * 78080 == 159_907_840
    assert llava7b.projector_params == 1024 * 4096 + 4096 + 4096 * 4096 + 4096


def test_layer_activations_by_hand(plan):
    arch = _small(plan)
    job = plan.Job("lora", 1, lora_r=8)
    # fp32 norm inputs 4 x (2h + 2) = 264; bf16 x (2h + 2kv + 3f = 320, dropout outputs
    # 6h + f = 256, 2 r x 7 = 112) = 1376; lse 4 x heads = 16; bool masks 6h + f = 256
    assert plan.layer_activation_bytes(arch, job) == 264 + 1376 + 16 + 256
    # on CPU the masks are in the dtype (float32 here): 256 x 4
    cpu = replace(job, gpu=False, dtype_bytes=4)
    assert plan.layer_activation_bytes(arch, cpu) == 264 + 688 * 4 + 16 + 1024


def test_checkpointing_keeps_layer_inputs_only(plan, llava7b):
    off = plan.components(llava7b, plan.Job("lora", 8))["activations"]
    on = plan.components(llava7b, plan.Job("lora", 8, checkpointing=True))["activations"]
    assert on < off / 5
    tokens = 8 * (576 + 48 + 16)
    per_layer = plan.layer_activation_bytes(llava7b, plan.Job("lora", 8))
    assert off - on == pytest.approx(tokens * (31 * per_layer - 32 * 4096 * 2))


def test_qlora_weights_shrink_like_nf4(plan, llava7b):
    bf16 = plan.components(llava7b, plan.Job("lora", 1))["weights"]
    nf4 = plan.components(llava7b, plan.Job("qlora", 1))["weights"]
    assert bf16 == 2 * llava7b.params
    # 0.5625 bytes for the Linear weights, fp32 for the rest (embeddings, LM head, norms)
    assert nf4 == pytest.approx(
        llava7b.linear_params * 0.5625 + (llava7b.params - llava7b.linear_params) * 4
    )
    # the Linear weights shrink 2 / 0.5625 = 3.6x; the fp32 embeddings and LM head
    # (prepare_model_for_kbit_training) bring the whole model to 2.9x
    assert 2.8 < bf16 / nf4 < 3.0
    assert bf16 - nf4 > 8 * 2**30


def test_audit_kv_cache_and_asd_peak(plan, llava7b):
    kv = plan.components(llava7b, plan.Job("audit", 8))["kv cache"]
    assert kv == 8 * (576 + 48 + 32) * 32 * 2 * 4096 * 2  # b x tokens x layers x k,v x h x bf16
    asd = plan.peak_bytes(llava7b, plan.Job("asd", 8))
    assert asd == plan.peak_bytes(llava7b, plan.Job("lora", 8))  # training outweighs the pass


def test_main_prints_both_plans(plan):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert plan.main(["--markdown"]) == 0
    text = out.getvalue()
    assert "llava-hf/llava-1.5-7b-hf: 7.06 B parameters, 576 image tokens" in text
    assert "Qwen/Qwen2-VL-7B-Instruct: 8.29 B parameters, 256 image tokens" in text
    assert text.count("| bf16 LoRA |") == 2 and "| QLoRA (NF4 base) |" in text


def test_main_predicts_a_folders_job(plan, tiny_vlm_dir):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        args = ["--model", str(tiny_vlm_dir("llava")), "--job", "forward", "--batch", "16"]
        assert plan.main([*args, "--dtype", "float32", "--cpu", "--image-size", "32"]) == 0
    lines = dict(line.rsplit(None, 2)[:2] for line in out.getvalue().splitlines())
    assert "cuda overhead" not in lines
    # 16 x (16 image + 48 text) tokens x 2 layers x k, v x 32 x 4 bytes: 0.5 MiB
    assert float(lines["kv cache"]) == 16 * 64 * 2 * 2 * 32 * 4 / 2**20 == 0.5
