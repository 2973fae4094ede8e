"""Predicted peak memory of fairvlm jobs, computed from a model's config (docs/gpu.md).

Two uses. Without a folder it prints the plan for LLaVA-1.5-7B and Qwen2-VL-7B (their
published config values are below): bf16 LoRA, QLoRA, FairLLaVA, ASD and a steered audit,
at batch 1 and 8, with and without gradient checkpointing. With ``--model DIR`` it reads
that folder's ``config.json`` (any built-in family, through ``transformers.AutoConfig``)
and predicts one job there (``--job``, ``--batch``, ``--text-tokens``, ``--image-size``),
e.g. for a ``fairvlm tiny FAMILY OUT --geometry published`` model on CPU in float32.

Nothing here ran on a GPU: every number is arithmetic on the config. The CPU check of the
same model is ``benchmarks/memory_plan_check.py``.

    python scripts/memory_plan.py [--markdown]
    python scripts/memory_plan.py --model DIR --job lora --batch 4 --dtype float32
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MIB = 1024**2
GIB = 1024**3

#: CUDA context, cuBLAS / cuDNN workspaces and caching-allocator slack: an assumed
#: allowance added to every GPU job (not measured here: no GPU was available).
CUDA_OVERHEAD_BYTES = 1 * GIB
#: bitsandbytes NF4: 4 bits per weight plus one fp32 absmax per 64-weight block
#: (``bnb_4bit_use_double_quant`` would shrink the constants to ~8 bits per block).
NF4_BYTES_PER_PARAM = 0.5 + 4 / 64
#: fairvlm's LoRA defaults (``LoraSettings``: r=64, dropout 0.05, projector trained in full).
LORA_R = 64
#: Prompt text around the image and the answer, in tokens (a short VQA question).
TEXT_TOKENS = 48
ANSWER_TOKENS = 16
NEW_TOKENS = 32

#: llava-hf/llava-1.5-7b-hf, config.json on the Hugging Face Hub (text: Vicuna-7B /
#: LLaMA; vision: CLIP ViT-L/14-336; projector: 2-layer MLP, GELU).
LLAVA_15_7B: dict[str, Any] = {
    "model_type": "llava",
    "image_token_index": 32000,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "text_config": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32064,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
        "projection_dim": 768,
    },
}
#: 576 image tokens = (336 / 14)^2 for any input image; the tower sees 577 (+ class token).
LLAVA_IMAGE_TOKENS = 576

#: Qwen/Qwen2-VL-7B-Instruct, config.json on the Hugging Face Hub (text: Qwen2-7B with
#: grouped-query attention, 4 KV heads; vision: 675M ViT, patch 14, 2x2 patch merger).
QWEN2_VL_7B: dict[str, Any] = {
    "model_type": "qwen2_vl",
    "image_token_id": 151655,
    "text_config": {
        "model_type": "qwen2_vl_text",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24]},
    },
    "vision_config": {
        "model_type": "qwen2_vl_vision",
        "depth": 32,
        "embed_dim": 1280,
        "hidden_size": 3584,
        "mlp_ratio": 4,
        "num_heads": 16,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
}
#: A 448 x 448 image: (448 / 14)^2 = 1024 patches, merged 2 x 2 into 256 tokens.
QWEN_IMAGE_TOKENS = 256

JOBS = ("lora", "qlora", "fairllava", "asd", "audit", "forward")


@dataclass(frozen=True)
class Arch:
    """The numbers of a VLM that its memory depends on (all read from a config).

    ``image_tokens``: image tokens per image in the text sequence; ``vision_tokens``:
    tokens the vision tower runs on per image (patches of every tile).
    ``lora_linears``: ``(in, out)`` of every decoder Linear LoRA adapts.
    ``linear_params``: weights of every Linear but the LM head (what bitsandbytes
    quantizes); ``projector_params``: the projector, which fairvlm trains in full.
    """

    name: str
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    vision_hidden: int
    vision_layers: int
    vision_intermediate: int
    image_tokens: int
    vision_tokens: int
    params: int
    linear_params: int
    projector_params: int
    lora_linears: tuple[tuple[int, int], ...]

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


@dataclass(frozen=True)
class Job:
    """One job: ``kind`` in :data:`JOBS`, ``batch`` samples of one image each."""

    kind: str
    batch: int
    checkpointing: bool = False
    dtype_bytes: int = 2
    text_tokens: int = TEXT_TOKENS
    answer_tokens: int = ANSWER_TOKENS
    new_tokens: int = NEW_TOKENS
    lora_r: int = LORA_R
    lora_dropout: bool = True
    gpu: bool = True

    @property
    def training(self) -> bool:
        return self.kind in ("lora", "qlora", "fairllava", "asd")


def _get(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    return default


def arch_from_config(
    config: Any, name: str, image_tokens: int, targets: tuple[str, ...] | None = None
) -> Arch:
    """An :class:`Arch` of a ``transformers`` VLM config: parameter counts from the model
    built on the meta device (exact, no memory), sizes from the config."""
    import torch
    from torch import nn

    from fairvlm.models.adapter import resolve_attr
    from fairvlm.models.families import detect_family, transformers_class
    from fairvlm.training.config import LM_TARGETS

    text = config.get_text_config()
    vision = config.vision_config
    hidden = text.hidden_size
    heads = text.num_attention_heads
    spec = detect_family(config)
    with torch.device("meta"):
        model = transformers_class(spec.model_class)._from_config(config)
    decoder = model.get_decoder()
    head = model.get_output_embeddings()
    wanted = set(targets or LM_TARGETS)
    lora = tuple(
        (m.in_features, m.out_features)
        for n, m in decoder.named_modules()
        if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in wanted
    )
    linear = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and m is not head
    )
    projector = resolve_attr(model.model, spec.projector_attr)
    merge = _get(vision, "spatial_merge_size", default=None) or _get(config, "scale_factor") or 1
    v_hidden = _get(vision, "embed_dim", "hidden_size")
    return Arch(
        name=name,
        hidden=hidden,
        layers=text.num_hidden_layers,
        intermediate=text.intermediate_size,
        vocab=text.vocab_size,
        heads=heads,
        kv_heads=_get(text, "num_key_value_heads", default=heads),
        head_dim=_get(text, "head_dim", default=hidden // heads),
        vision_hidden=v_hidden,
        vision_layers=_get(vision, "depth", "num_hidden_layers"),
        vision_intermediate=_get(
            vision,
            "intermediate_size",
            default=int(v_hidden * _get(vision, "mlp_ratio", default=4)),
        ),
        image_tokens=image_tokens,
        vision_tokens=image_tokens * merge * merge,
        params=sum(p.numel() for p in model.parameters()),
        linear_params=linear,
        projector_params=sum(p.numel() for p in projector.parameters()),
        lora_linears=lora,
    )


def published_arch(spec: dict[str, Any], name: str, image_tokens: int) -> Arch:
    """The :class:`Arch` of one of the published configs above."""
    from transformers import AutoConfig

    spec = dict(spec)
    return arch_from_config(
        AutoConfig.for_model(spec.pop("model_type"), **spec), name, image_tokens
    )


def folder_arch(model_dir: str, width: int, height: int) -> Arch:
    """The :class:`Arch` of a model folder (its ``config.json``), image tokens for one
    ``width`` x ``height`` image counted by the folder's own processor."""
    from transformers import AutoConfig

    from fairvlm.models import load_vlm

    config = AutoConfig.from_pretrained(model_dir)
    tokens = load_vlm(model_dir, device="meta").image_tokens_per_image(width, height)
    return arch_from_config(config, os.path.basename(os.path.normpath(model_dir)), tokens)


def decoder_layer_params(hidden: int, intermediate: int, kv_dim: int, bias: bool) -> int:
    """Parameters of one LLaMA / Qwen2 decoder block: q, k, v, o, SwiGLU MLP, 2 RMSNorms
    (Qwen2 has q / k / v biases)."""
    attn = 2 * hidden * hidden + 2 * hidden * kv_dim
    biases = hidden + 2 * kv_dim if bias else 0
    return attn + biases + 3 * hidden * intermediate + 2 * hidden


def layer_activation_bytes(arch: Arch, job: Job) -> float:
    """Bytes one decoder layer keeps for backward, per token, under LoRA (frozen base).

    The frozen base Linears keep nothing (autograd saves a matmul input only for the
    weight's gradient); what stays is, in elements: the inputs of the two RMSNorms in fp32
    (2h) and their 1/rms (2); SDPA's q, k, v, output and log-sum-exp (2h + 2kv + heads:
    flash / memory-efficient attention keeps no seq x seq matrix); SwiGLU's gate, up and
    silu(gate) (3f); for each LoRA target its dropout output (h for q, k, v, o, gate, up;
    f for down), its dropout mask (1 byte on CUDA, the dtype on CPU), and the rank-r input
    of B (2r). The same count
    as Korthikanti et al. (2022, "Reducing activation recomputation in large transformer
    models", 34 s b h for GPT), redone for this block.
    """
    a = job.dtype_bytes
    h, f, kv = arch.hidden, arch.intermediate, arch.kv_dim
    lora_inputs = 6 * h + f if job.lora_dropout else 3 * h + f  # no dropout: shared inputs
    # CUDA's fused dropout keeps a bool mask; the CPU kernel keeps its noise in the dtype
    masks = (6 * h + f) * (1 if job.gpu else a) if job.lora_dropout else 0
    n_lora = len(arch.lora_linears) / max(arch.layers, 1)
    return (
        4 * (2 * h + 2)
        + a * (2 * h + 2 * kv + 3 * f + lora_inputs + 2 * job.lora_r * n_lora)
        + 4 * arch.heads
        + masks
    )


def components(arch: Arch, job: Job) -> dict[str, float]:
    """Bytes of each part of ``job``'s peak, by name (see docs/gpu.md for the formulas)."""
    a, b = job.dtype_bytes, job.batch
    seq = arch.image_tokens + job.text_tokens + (job.answer_tokens if job.training else 0)
    tokens = b * seq
    out: dict[str, float] = {}
    if job.kind == "qlora":
        # prepare_model_for_kbit_training casts every unquantized weight to fp32
        out["weights"] = (
            arch.linear_params * NF4_BYTES_PER_PARAM + (arch.params - arch.linear_params) * 4
        )
    else:
        out["weights"] = arch.params * a
    if job.training:
        lora = sum(job.lora_r * (i + o) for i, o in arch.lora_linears)
        projector_bytes = 4 if job.kind == "qlora" else a
        # PEFT keeps LoRA weights in fp32; the projector's trained copy (modules_to_save)
        # has the base dtype. AdamW keeps its two moments in the parameter's dtype.
        out["trainable + copy"] = lora * 4 + arch.projector_params * projector_bytes
        out["gradients"] = lora * 4 + arch.projector_params * projector_bytes
        out["adamw moments"] = 2 * (lora * 4 + arch.projector_params * projector_bytes)
        per_layer = layer_activation_bytes(arch, job)
        if job.checkpointing:
            # each layer's input is kept, one layer's set is recomputed in backward
            acts = tokens * (arch.layers * arch.hidden * a + per_layer)
        else:
            acts = tokens * arch.layers * per_layer
        # final norm input; projector input and GELU input (the projector trains)
        acts += tokens * arch.hidden * 4
        acts += b * (arch.image_tokens * (arch.vision_hidden + arch.hidden)) * a
        out["activations"] = acts
        keep = job.answer_tokens + 1
        # logits in the model dtype, their fp32 copy, fp32 log-softmax and its gradient
        copies = a + 8 + (4 if a < 4 else 0)
        out["logits + loss"] = b * keep * arch.vocab * copies
        if job.kind == "fairllava":
            # the read layer's hidden states stay referenced until the loss; pooled z
            out["fairllava read"] = tokens * arch.hidden * a * (1 if job.checkpointing else 0)
    else:
        # the KV cache of the prompt (and of the new tokens when generating)
        cached = seq + (job.new_tokens if job.kind == "audit" else 0)
        out["kv cache"] = b * cached * arch.layers * 2 * arch.kv_dim * a
        # the merged input embeddings (held through the layer loop), and one layer's largest
        # live set: residual, norm output, SwiGLU's silu(gate), up and their product
        out["layer working set"] = tokens * (3 * arch.hidden + 3 * arch.intermediate) * a
        positions = seq if job.kind == "forward" else 1  # generate keeps the last logits
        out["logits"] = b * positions * arch.vocab * (a if job.kind == "forward" else 4)
    # vision tower without gradient (frozen): every layer's hidden states are returned
    # (LLaVA reads the second to last), plus one layer's MLP working set
    out["vision tower"] = (
        b
        * arch.vision_tokens
        * ((arch.vision_layers + 1) * arch.vision_hidden + 2 * arch.vision_intermediate)
        * a
    )
    if job.gpu:
        out["cuda overhead"] = CUDA_OVERHEAD_BYTES
    return out


def peak_bytes(arch: Arch, job: Job) -> float:
    """The predicted peak: the sum of :func:`components`, and for ASD the larger of its
    training step and its per-epoch skew pass (an audit forward at the same batch)."""
    total = sum(components(arch, job).values())
    if job.kind == "asd":
        total = max(total, sum(components(arch, replace(job, kind="forward")).values()))
    return total


def plan_rows(arch: Arch) -> list[dict[str, Any]]:
    """The plan of ``arch``: every setting x batch 1 / 8 x checkpointing off / on (GiB)."""
    rows = []
    for kind, label in (
        ("lora", "bf16 LoRA"),
        ("qlora", "QLoRA (NF4 base)"),
        ("fairllava", "FairLLaVA"),
        ("asd", "ASD"),
        ("audit", "steered audit"),
    ):
        row: dict[str, Any] = {"setting": label}
        for batch in (1, 8):
            for ckpt in (False, True):
                if kind == "audit" and ckpt:
                    continue
                row[(batch, ckpt)] = peak_bytes(arch, Job(kind, batch, checkpointing=ckpt)) / GIB
        rows.append(row)
    return rows


def format_plan(arch: Arch, markdown: bool = False) -> str:
    """The plan of ``arch`` as a text (or Markdown) table, in GiB."""
    cols = [(1, False), (1, True), (8, False), (8, True)]
    head = ["setting"] + [f"b={b}{' ckpt' if c else ''}" for b, c in cols]
    lines = [
        f"{arch.name}: {arch.params / 1e9:.2f} B parameters, {arch.image_tokens} image "
        f"tokens, {TEXT_TOKENS} prompt + {ANSWER_TOKENS} answer tokens (GiB)"
    ]
    rows = [[r["setting"]] + [_cell(r.get(c)) for c in cols] for r in plan_rows(arch)]
    if markdown:
        lines += ["", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        lines += ["  ".join(f"{h:>18}" if i else f"{h:<18}" for i, h in enumerate(head))]
        lines += ["  ".join(f"{v:>18}" if i else f"{v:<18}" for i, v in enumerate(r)) for r in rows]
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model folder (config.json): predict one job there")
    parser.add_argument("--job", choices=JOBS, default="lora")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--text-tokens", type=int, default=TEXT_TOKENS)
    parser.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS)
    parser.add_argument("--image-size", default="448x448", help="W[xH] of each image")
    parser.add_argument("--cpu", action="store_true", help="no CUDA overhead allowance")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.model is None:
        for spec, name, tokens in (
            (LLAVA_15_7B, "llava-hf/llava-1.5-7b-hf", LLAVA_IMAGE_TOKENS),
            (QWEN2_VL_7B, "Qwen/Qwen2-VL-7B-Instruct", QWEN_IMAGE_TOKENS),
        ):
            print(format_plan(published_arch(spec, name, tokens), args.markdown) + "\n")
        return 0
    width, _, height = args.image_size.partition("x")
    arch = folder_arch(args.model, int(width), int(height or width))
    job = Job(
        args.job,
        args.batch,
        checkpointing=args.checkpointing,
        dtype_bytes=4 if args.dtype == "float32" else 2,
        text_tokens=args.text_tokens,
        answer_tokens=args.answer_tokens,
        gpu=not args.cpu,
    )
    for key, value in components(arch, job).items():
        print(f"{key:<20} {value / MIB:10.1f} MiB")
    print(f"{'peak':<20} {peak_bytes(arch, job) / MIB:10.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
