"""``load_vlm``: a local directory or hub id -> :class:`VLMAdapter`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fairvlm.errors import ModelError, bad_value
from fairvlm.models.adapter import VLMAdapter
from fairvlm.models.families import (
    detect_family,
    load_processor,
    supported_families,
    transformers_class,
)

_DTYPES = ("float32", "float16", "bfloat16", "auto")
_DEVICES = ("cpu", "cuda", "auto", "mps", "meta")
# "org/name" or "name": what the hub accepts as a repository id.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def parse_dtype(dtype: Any, device: str) -> Any:
    """A ``torch.dtype`` (or ``"auto"``) from ``None``, a name or a dtype.

    ``None`` means float32 on CPU (fast and exact there) and the checkpoint's own dtype
    (``"auto"``) on an accelerator.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.float32 if device == "cpu" else "auto"
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise bad_value("dtype", dtype, f"use one of {', '.join(_DTYPES)}")
    return name if name == "auto" else getattr(torch, name)


def parse_device(device: str | None) -> str:
    """``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` / ``meta``; ``None`` or ``auto``: cuda if present.

    ``meta`` builds the model structure without reading weights (for ``fairvlm info``).
    """
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).split(":")[0] not in _DEVICES:
        raise bad_value("device", device, f"use one of {', '.join(_DEVICES)} (or cuda:N)")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise bad_value("device", device, "no CUDA device is visible; use device='cpu'")
    return str(device)


def offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_source(path_or_hub_id: str | Path) -> str:
    """Fail early, with a clear message, on a path that cannot be loaded.

    A local directory is used as it is. Anything else is a hub id, which is only
    looked up when the hub may be contacted.
    """
    src = str(path_or_hub_id)
    path = Path(src).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"path={src!r} has no config.json: point at a directory written by "
                "save_pretrained (or `fairvlm tiny FAMILY OUT`)"
            )
        return str(path)
    if path.exists():
        raise ModelError(f"path={src!r} is a file: point at a model directory")
    looks_local = isinstance(path_or_hub_id, Path) or src.startswith(("/", ".", "~"))
    if looks_local or not _HUB_ID.match(src):
        raise ModelError(f"path={src!r} does not exist: point at a model directory")
    if offline():
        raise ModelError(
            f"path={src!r} is not a local directory and HF_HUB_OFFLINE=1, so the hub was "
            "not tried: download the model first or unset HF_HUB_OFFLINE"
        )
    return src


def load_vlm(
    path_or_hub_id: str | Path,
    *,
    dtype: str | Any | None = None,
    device: str | None = None,
    adapter: str | Path | None = None,
    trust_remote_code: bool = False,
) -> VLMAdapter:
    """Load a supported VLM and its processor; the family comes from ``config.model_type``.

    Args:
        path_or_hub_id: a directory written by ``save_pretrained`` or a hub id.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"``, a torch dtype
            or ``None`` (float32 on CPU, the checkpoint's dtype on GPU).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``/``None`` (cuda if present),
            or ``"meta"`` (the structure without weights: fast, for inspection only).
        adapter: a PEFT adapter directory (e.g. a LoRA from ``fairvlm train``) to load on top.
        trust_remote_code: run code shipped with the checkpoint (off unless asked).

    Raises:
        ModelError: missing path, unsupported architecture, unloadable adapter.
    """
    import torch
    from transformers import AutoConfig

    src = check_source(path_or_hub_id)
    dev = parse_device(device)
    if dev == "meta" and adapter is not None:
        raise bad_value("device", dev, "an adapter needs weights: use cpu, cuda or auto")
    torch_dtype = parse_dtype(dtype, dev)
    try:
        config = AutoConfig.from_pretrained(src, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"path={src!r} cannot be loaded as a transformers checkpoint ({exc}); fairvlm "
            f"supports {', '.join(supported_families())}"
        ) from exc
    spec = detect_family(config)
    model_cls = transformers_class(spec.model_class)
    processor = load_processor(spec, src, trust_remote_code=trust_remote_code)
    if dev == "meta":  # structure only: no weights read, no memory used
        with torch.device("meta"):
            model = model_cls._from_config(config, dtype=_meta_dtype(torch_dtype, config))
    else:
        model = _from_pretrained(model_cls, src, torch_dtype, trust_remote_code).to(dev)
    if adapter is not None:
        model = _load_adapter(model, adapter)
    model.eval()
    return VLMAdapter(model, processor, spec.name, name_or_path=src)


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_CONVERT = (
    "fairvlm loads safetensors only, never pickles; convert once where you trust the "
    "file: load it with transformers (or torch.load(..., weights_only=True)) and "
    "save_pretrained(OUT, safe_serialization=True)"
)


def _check_safetensors(folder: Path, what: str, weights: str = "*.safetensors") -> None:
    """Refuse a local checkpoint or adapter folder whose weights are pickles only."""
    if not folder.is_dir() or any(folder.glob(weights)):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(f"{what}={str(folder)!r} holds pickled weights ({pickles[0]}): {_CONVERT}")


def _from_pretrained(model_cls: Any, src: str, dtype: Any, trust_remote_code: bool) -> Any:
    """``from_pretrained`` of safetensors weights, with one-line errors for bad files."""
    from safetensors import SafetensorError

    _check_safetensors(Path(src), "path")
    try:
        return model_cls.from_pretrained(
            src, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True
        )
    except SafetensorError as exc:
        raise ModelError(
            f"path={src!r}: a safetensors file is corrupt or truncated ({exc}); re-download "
            "or re-save the checkpoint"
        ) from None
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        fix = _CONVERT if "safetensors" in reason else "check the folder or hub id"
        raise ModelError(f"path={src!r} cannot be loaded ({reason}); {fix}") from None


def _meta_dtype(dtype: Any, config: Any) -> Any:
    """The dtype of a structure-only model: the checkpoint's own for ``"auto"``."""
    import torch

    if dtype != "auto":
        return dtype
    saved = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return (
        getattr(torch, str(saved).removeprefix("torch."), torch.float32) if saved else torch.float32
    )


def _load_adapter(model: Any, adapter: str | Path) -> Any:
    """Wrap ``model`` in a ``peft.PeftModel`` loaded from ``adapter``."""
    from peft import PeftModel
    from safetensors import SafetensorError

    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelError(
            f"adapter={str(adapter)!r} has no adapter_config.json: point at a directory "
            "written by PEFT's save_pretrained"
        )
    _check_safetensors(path, "adapter", "adapter_model.safetensors")
    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=False)
    except SafetensorError as exc:
        raise ModelError(
            f"adapter={str(adapter)!r}: adapter_model.safetensors is corrupt or truncated "
            f"({exc}); retrain or re-save the adapter"
        ) from None
