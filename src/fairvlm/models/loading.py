"""``load_vlm``: a local directory or hub id -> :class:`VLMAdapter`."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
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


#: ``from_pretrained`` options that fairvlm sets itself -> what to write instead.
OWN_OPTIONS: dict[str, str] = {
    "trust_remote_code": "use load_vlm's trust_remote_code argument (off unless asked)",
    "dtype": "use load_vlm's dtype argument (--dtype)",
    "device": "use load_vlm's device argument (--device)",
    "adapter": "use load_vlm's adapter argument (--adapter)",
    "use_safetensors": "drop it: fairvlm loads safetensors only, never pickles",
    "pretrained_model_name_or_path": "give the model as load_vlm's first argument",
}


def check_load_options(options: Mapping[str, Any], name: str = "from_pretrained_kwargs") -> dict:
    """``options`` as a dict, refusing the keys fairvlm sets itself (``name`` in messages)."""
    for key in options:
        if key in OWN_OPTIONS:
            raise bad_value(name, key, OWN_OPTIONS[key])
    return dict(options)


def check_cuda_options(options: Mapping[str, Any]) -> None:
    """Refuse, before any download, the options only a CUDA machine can honour: a
    bitsandbytes 4/8-bit ``quantization_config`` and ``flash_attention_2``. Transformers
    would fail later with a long trace, or fall back to another kernel."""
    import torch

    quant = options.get("quantization_config")
    get = quant.get if isinstance(quant, Mapping) else lambda k, d=None: getattr(quant, k, d)
    bits = "4-bit" if get("load_in_4bit", False) else "8-bit" if get("load_in_8bit", False) else ""
    needs = []
    if bits:
        needs.append(("quantization_config", f"{bits} quantization", "bitsandbytes"))
    attn = options.get("attn_implementation")
    if attn == "flash_attention_2":
        needs.append(("attn_implementation", attn, "flash-attn"))
    for key, what, package in needs:
        if not torch.cuda.is_available():
            raise ModelError(
                f"{key}: {what} needs a CUDA GPU and none is visible: run on a CUDA machine "
                f"(with `pip install {package}`), or drop {key}"
            )
        if importlib.util.find_spec(package.replace("-", "_")) is None:
            raise ModelError(
                f"{key}: {what} needs the {package} package, which is not installed: "
                f"`pip install {package}`, or drop {key}"
            )


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
    **from_pretrained_kwargs: Any,
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
        **from_pretrained_kwargs: passed to the model's ``from_pretrained``: ``device_map``,
            ``attn_implementation``, ``revision`` (also given to the config and processor),
            ``quantization_config`` (a dict or ``BitsAndBytesConfig``; needs CUDA),
            ``low_cpu_mem_usage``, ... ``torch_dtype`` stands for ``dtype``.

    Raises:
        ModelError: missing path, unsupported architecture, unloadable adapter, an option
            that needs CUDA on a machine without it.
    """
    import torch
    from transformers import AutoConfig

    options = check_load_options(from_pretrained_kwargs)
    if "torch_dtype" in options:
        if dtype is not None:
            raise bad_value("torch_dtype", options["torch_dtype"], "give dtype only, not both")
        dtype = options.pop("torch_dtype")
    if "device_map" in options and device is not None:
        raise bad_value("device_map", options["device_map"], "give device or device_map, not both")
    check_cuda_options(options)
    src = check_source(path_or_hub_id)
    # with a device_map, accelerate places the weights; the dtype default follows its target
    dev = parse_device(device) if "device_map" not in options else None
    if dev == "meta" and adapter is not None:
        raise bad_value("device", dev, "an adapter needs weights: use cpu, cuda or auto")
    if dev == "meta" and set(options) - _META_OPTIONS:
        key = sorted(set(options) - _META_OPTIONS)[0]
        raise bad_value(key, options[key], "device='meta' reads no weights: drop it or use cpu")
    torch_dtype = parse_dtype(dtype, dev or ("cpu" if options["device_map"] == "cpu" else "auto"))
    hub = {"revision": options["revision"]} if "revision" in options else {}
    try:
        config = AutoConfig.from_pretrained(src, trust_remote_code=trust_remote_code, **hub)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"path={src!r} cannot be loaded as a transformers checkpoint ({exc}); fairvlm "
            f"supports {', '.join(supported_families())}"
        ) from exc
    spec = detect_family(config)
    model_cls = transformers_class(spec.model_class)
    processor = load_processor(spec, src, trust_remote_code=trust_remote_code, **hub)
    if dev == "meta":  # structure only: no weights read, no memory used
        with torch.device("meta"):
            model = model_cls._from_config(
                config, dtype=_meta_dtype(torch_dtype, config), **_without(options, "revision")
            )
    else:
        if options.get("quantization_config") is not None and dev is not None:
            # a quantized model is placed while it loads: 8-bit bitsandbytes refuses .to()
            options, dev = {**options, "device_map": {"": dev}}, None
        model = _from_pretrained(model_cls, src, torch_dtype, trust_remote_code, options)
        if dev is not None:
            model = model.to(dev)
    if adapter is not None:
        model = _load_adapter(model, adapter)
    model.eval()
    return VLMAdapter(model, processor, spec.name, name_or_path=src)


#: the options a structure-only (``meta``) model honours
_META_OPTIONS = {"revision", "attn_implementation"}


def _without(options: Mapping[str, Any], key: str) -> dict:
    return {k: v for k, v in options.items() if k != key}


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


def _from_pretrained(
    model_cls: Any, src: str, dtype: Any, trust_remote_code: bool, options: Mapping[str, Any]
) -> Any:
    """``from_pretrained`` of safetensors weights, with one-line errors for bad files."""
    from safetensors import SafetensorError

    _check_safetensors(Path(src), "path")
    try:
        return model_cls.from_pretrained(
            src,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            **options,
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
