"""The steering vector: per-layer directions plus how they were made, saved as safetensors.

A :class:`SteeringVector` is data only. It holds one ``[hidden]`` tensor per decoder
layer and its provenance (model, builder, creation config) and the default way to apply
it (operator, positions, scale); :meth:`SteeringVector.apply` installs it on a model for
the duration of a ``with`` block (see :mod:`fairvlm.mitigation.steering.apply`).

File format: a safetensors file with one tensor per layer, named ``layer.<l>``, in the
vector's own dtype (the builders make float32; a round trip is exact), and the metadata
as JSON in the header under ``fairvlm_steering``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fairvlm.atomic import atomic_file
from fairvlm.errors import ConfigError, DataError, ModelError, bad_value
from fairvlm.mitigation.steering.apply import (
    OPERATORS,
    POSITIONS,
    check_operator,
    check_positions,
    check_scale,
    steer,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

#: Header key of the metadata and the format tag written with it.
METADATA_KEY = "fairvlm_steering"
FORMAT = "fairvlm.steering/1"
_TENSOR_PREFIX = "layer."


@dataclass(eq=False)  # tensors: compare with torch.equal, not ==
class SteeringVector:
    """Per-layer steering directions and their metadata.

    Attributes:
        vectors: decoder layer index -> ``[hidden_size]`` tensor.
        hidden_size: width of the residual stream the vector was built for.
        num_layers: number of decoder layers of the model it was built on (``None`` =
            unknown: only the layer indices are checked).
        family, model_name: the model it was built on (informative; a mismatch warns).
        builder: ``contrastive``, ``gradient``, ``combination`` or ``manual``.
        operator, positions, scale: defaults of :meth:`apply`.
        config: the builder's configuration (saved for reproduction).
    """

    vectors: dict[int, torch.Tensor]
    hidden_size: int | None = None
    num_layers: int | None = None
    family: str | None = None
    model_name: str | None = None
    builder: str = "manual"
    operator: str = "add"
    positions: str = "all"
    scale: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.vectors, Mapping) or not self.vectors:
            raise bad_value("vectors", self.vectors, "give at least one {layer: tensor} entry")
        clean: dict[int, torch.Tensor] = {}
        for layer, vec in self.vectors.items():
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise bad_value("vectors", layer, "layer indices are non-negative integers")
            if not isinstance(vec, torch.Tensor) or vec.dim() != 1 or not vec.is_floating_point():
                raise bad_value(
                    f"vectors[{layer}]",
                    getattr(vec, "shape", type(vec).__name__),
                    "give a 1-D float tensor of size hidden_size",
                )
            if not torch.isfinite(vec).all():
                raise bad_value(f"vectors[{layer}]", "non-finite values", "rebuild the vector")
            clean[layer] = vec.detach()
        self.vectors = dict(sorted(clean.items()))
        sizes = {int(v.numel()) for v in self.vectors.values()}
        if len(sizes) != 1:
            raise bad_value("vectors", sorted(sizes), "every layer's tensor must have one size")
        size = sizes.pop()
        if self.hidden_size is None:
            self.hidden_size = size
        elif self.hidden_size != size:
            raise bad_value("hidden_size", self.hidden_size, f"the tensors have size {size}")
        if self.num_layers is not None and self.layers[-1] >= self.num_layers:
            raise bad_value(
                "num_layers", self.num_layers, f"layer {self.layers[-1]} needs more layers"
            )
        check_operator(self.operator)
        check_positions(self.positions)
        self.scale = check_scale(self.scale)

    # -- structure -----------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        """The decoder layers the vector has a direction for, ascending."""
        return list(self.vectors)

    def norms(self) -> dict[int, float]:
        """L2 norm of each layer's direction."""
        return {layer: float(v.float().norm()) for layer, v in self.vectors.items()}

    def metadata(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-able."""
        return {
            "format": FORMAT,
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "family": self.family,
            "model_name": self.model_name,
            "builder": self.builder,
            "operator": self.operator,
            "positions": self.positions,
            "scale": self.scale,
            "config": self.config,
        }

    def check_fits(self, adapter: Any, layers: Sequence[int] | None = None) -> None:
        """Raise if the vector cannot be applied to ``adapter``'s decoder.

        Checks the hidden size, the layer count of the source model and that every
        (selected) layer exists. A different family or model name only warns: a vector
        may be moved between a base model and its fine-tuned copy.

        Raises:
            ModelError: the hidden size or layer count differs, or a layer is out of range.
        """
        hidden, n_layers = int(adapter.hidden_size), int(adapter.num_layers)
        if self.hidden_size != hidden:
            raise ModelError(
                f"steering vector hidden_size={self.hidden_size} does not fit the model "
                f"{_model_label(adapter)} (hidden_size={hidden}): build the vector on this model"
            )
        if self.num_layers is not None and self.num_layers != n_layers:
            raise ModelError(
                f"steering vector was built on a model with num_layers={self.num_layers}; the "
                f"model {_model_label(adapter)} has {n_layers} decoder layers: build the vector "
                "on this model"
            )
        for layer in self.select(layers):
            if layer >= n_layers:
                raise ModelError(
                    f"steering layer={layer} is out of range: the model "
                    f"{_model_label(adapter)} has decoder layers 0..{n_layers - 1}"
                )
        family = getattr(adapter, "family", None)
        if self.family and family and self.family != family:
            import warnings

            warnings.warn(
                f"steering vector built on family {self.family!r} applied to {family!r}",
                stacklevel=2,
            )

    def select(self, layers: Sequence[int] | int | None) -> list[int]:
        """The vector's layers restricted to ``layers`` (``None``: all of them).

        Raises:
            ConfigError: a requested layer has no direction in this vector.
        """
        if layers is None:
            return self.layers
        wanted = [layers] if isinstance(layers, int) else list(layers)
        missing = [lay for lay in wanted if lay not in self.vectors]
        if missing or not wanted:
            raise bad_value(
                "layers", wanted, f"choose a non-empty subset of the vector's layers {self.layers}"
            )
        return sorted(set(wanted))

    # -- application ---------------------------------------------------------------
    def apply(
        self,
        adapter: Any,
        scale: float | None = None,
        operator: str | None = None,
        positions: str | None = None,
        layers: Sequence[int] | None = None,
    ) -> AbstractContextManager[Any]:
        """Steer ``adapter`` inside a ``with`` block; ``None`` arguments use the vector's
        defaults. See :func:`fairvlm.mitigation.steering.apply.steer`."""
        return steer(
            adapter,
            self,
            scale=self.scale if scale is None else scale,
            operator=self.operator if operator is None else operator,
            positions=self.positions if positions is None else positions,
            layers=layers,
        )

    # -- arithmetic ----------------------------------------------------------------
    def _combine(self, other: SteeringVector, sign: float) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if self.hidden_size != other.hidden_size or (
            self.num_layers is not None
            and other.num_layers is not None
            and self.num_layers != other.num_layers
        ):
            raise ModelError(
                f"cannot combine steering vectors of hidden_size/num_layers "
                f"{self.hidden_size}/{self.num_layers} and {other.hidden_size}/"
                f"{other.num_layers}: build both on the same model"
            )
        out = {layer: v.float().clone() for layer, v in self.vectors.items()}
        for layer, v in other.vectors.items():
            out[layer] = out[layer] + sign * v.float() if layer in out else sign * v.float()
        return self._derived(
            out,
            {"op": "add" if sign > 0 else "sub", "terms": [self.metadata(), other.metadata()]},
            num_layers=self.num_layers if self.num_layers is not None else other.num_layers,
        )

    def __add__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, 1.0)

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, -1.0)

    def __mul__(self, factor: float) -> SteeringVector:
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            return NotImplemented
        if not math.isfinite(factor):
            raise bad_value("factor", factor, "multiply by a finite number")
        out = {layer: v * float(factor) for layer, v in self.vectors.items()}
        return self._derived(
            out, {"op": "mul", "factor": float(factor), "terms": [self.metadata()]}
        )

    __rmul__ = __mul__

    def __truediv__(self, factor: float) -> SteeringVector:
        if isinstance(factor, int | float) and not isinstance(factor, bool) and factor == 0:
            raise bad_value("factor", factor, "divide by a non-zero number")
        return self * (1.0 / factor)

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def _derived(
        self, vectors: dict[int, torch.Tensor], how: dict, num_layers: int | None = None
    ) -> SteeringVector:
        return SteeringVector(
            vectors,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers if num_layers is None else num_layers,
            family=self.family,
            model_name=self.model_name,
            builder="combination",
            operator=self.operator,
            positions=self.positions,
            scale=self.scale,
            config=how,
        )

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the vector as safetensors (metadata in the header), atomically."""
        from safetensors.torch import save_file

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{_TENSOR_PREFIX}{layer}": v.detach().cpu().contiguous()
            for layer, v in self.vectors.items()
        }
        with atomic_file(out) as tmp:
            save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(self.metadata())})
        return out

    @classmethod
    def load(cls, path: str | Path) -> SteeringVector:
        """Read a vector written by :meth:`save`.

        Raises:
            DataError: the file is missing, not safetensors, or not a fairvlm steering vector.
        """
        from safetensors import SafetensorError, safe_open

        file = Path(path)
        if not file.is_file():
            raise bad_value("path", str(path), "give an existing .safetensors file", DataError)
        try:
            with safe_open(str(file), framework="pt") as fh:
                header = fh.metadata() or {}
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise bad_value(
                "path", str(path), f"not a readable safetensors file ({exc})", DataError
            ) from None
        if METADATA_KEY not in header:
            raise bad_value(
                "path",
                str(path),
                "has no fairvlm steering metadata: write it with SteeringVector.save",
                DataError,
            )
        meta = json.loads(header[METADATA_KEY])
        vectors = {}
        for name, tensor in tensors.items():
            if not name.startswith(_TENSOR_PREFIX) or not name[len(_TENSOR_PREFIX) :].isdigit():
                raise bad_value("path", str(path), f"unexpected tensor {name!r}", DataError)
            vectors[int(name[len(_TENSOR_PREFIX) :])] = tensor
        try:
            return cls(
                vectors,
                hidden_size=meta.get("hidden_size"),
                num_layers=meta.get("num_layers"),
                family=meta.get("family"),
                model_name=meta.get("model_name"),
                builder=meta.get("builder", "manual"),
                operator=meta.get("operator", "add"),
                positions=meta.get("positions", "all"),
                scale=meta.get("scale", 1.0),
                config=meta.get("config") or {},
            )
        except ConfigError as exc:
            raise DataError(f"steering vector {str(path)!r} is invalid: {exc}") from None

    def __repr__(self) -> str:
        norms = ", ".join(f"{k}: {v:.3g}" for k, v in self.norms().items())
        return (
            f"SteeringVector(builder={self.builder!r}, family={self.family!r}, "
            f"hidden_size={self.hidden_size}, layers={{{norms}}}, operator={self.operator!r}, "
            f"positions={self.positions!r}, scale={self.scale})"
        )


def _model_label(adapter: Any) -> str:
    return repr(getattr(adapter, "name_or_path", "") or type(adapter).__name__)


def is_vector_file(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file that fairvlm wrote as a steering vector."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return METADATA_KEY in (fh.metadata() or {})
    except (OSError, SafetensorError):
        return False


__all__ = [
    "FORMAT",
    "METADATA_KEY",
    "OPERATORS",
    "POSITIONS",
    "SteeringVector",
    "check_operator",
    "check_positions",
    "check_scale",
    "is_vector_file",
]
