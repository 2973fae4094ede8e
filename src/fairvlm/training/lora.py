"""PEFT LoRA on the language model (and, when asked, the projector / vision tower / LM head).

Targets are resolved to full module names from the adapter's structure (the decoder,
the vision module and the projector it names), so LoRA never lands on the vision tower
or the LM head by accident, whatever the family calls its modules. A trained projector
goes through PEFT ``modules_to_save``: ``PeftModel.from_pretrained`` (hence
``load_vlm(base, adapter=DIR)``) restores it with the LoRA weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fairvlm.errors import ModelError
from fairvlm.training.config import LoraSettings


def _qualified_name(root: nn.Module, module: nn.Module) -> str:
    for name, mod in root.named_modules():
        if mod is module:
            return name
    raise ModelError(f"{type(module).__name__} is not a sub-module of {type(root).__name__}")


def _linears_under(root: nn.Module, prefix: str) -> list[str]:
    start = f"{prefix}." if prefix else ""
    return [n for n, m in root.named_modules() if isinstance(m, nn.Linear) and n.startswith(start)]


def lora_targets(adapter: Any, settings: LoraSettings) -> tuple[list[str], list[str]]:
    """``(target module names, modules_to_save names)`` for ``settings`` on ``adapter``.

    Raises:
        ModelError: no Linear of the language model matches ``settings.targets``.
    """
    base = adapter.base_model
    decoder = _qualified_name(base, base.get_decoder())
    projector = _qualified_name(base, adapter.projector)
    lm_linears = _linears_under(base, decoder)
    targets = [n for n in lm_linears if n.rsplit(".", 1)[-1] in set(settings.targets)]
    if not targets:
        found = sorted({n.rsplit(".", 1)[-1] for n in lm_linears})
        raise ModelError(
            f"lora.targets={settings.targets} match no Linear of the language model "
            f"({decoder}); its Linear layers are named {found}"
        )
    projector_linears = _linears_under(base, projector)
    if settings.vision:
        vision = _qualified_name(base, adapter.vision_module)
        targets += [n for n in _linears_under(base, vision) if n not in projector_linears]
    if settings.projector == "lora":
        targets += projector_linears
    if settings.lm_head:
        head = base.get_output_embeddings()
        if head is not None:
            targets.append(_qualified_name(base, head))
    modules_to_save = [projector] if settings.projector == "full" else []
    return sorted(set(targets)), modules_to_save


def apply_lora(adapter: Any, settings: LoraSettings, seed: int = 0) -> Any:
    """Wrap ``adapter.model`` in a ``peft.PeftModel`` (in place: ``adapter.model`` is replaced).

    Every other parameter is frozen; the LoRA matrices (and the projector copy under
    ``modules_to_save``) train. LoRA's random init is seeded with ``seed``. A quantized
    base (``quantization_config`` at load: QLoRA) goes through PEFT's
    ``prepare_model_for_kbit_training`` first.

    Raises:
        ModelError: the model already carries a PEFT adapter.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(adapter.model, PeftModel):
        raise ModelError(
            f"model {adapter.name_or_path!r} already carries a PEFT adapter: train on the base "
            "model, or merge the adapter into it first (merge_and_unload + save)"
        )
    if getattr(adapter.model, "hf_quantizer", None) is not None:  # a 4/8-bit base: QLoRA
        from peft import prepare_model_for_kbit_training

        # norms in float32, input grads on; checkpointing stays train.args' to switch on
        adapter.model = prepare_model_for_kbit_training(
            adapter.model, use_gradient_checkpointing=False
        )
    targets, modules_to_save = lora_targets(adapter, settings)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        modules_to_save=modules_to_save or None,
        bias="none",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(adapter.model, config)
    adapter.model = peft_model
    return peft_model


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that require a gradient."""
    return [n for n, p in model.named_parameters() if p.requires_grad]
