"""``SteerSettings``: how a steering vector is applied, validated once and carried as data
from the YAML (``apply:``) or the CLI (``--steer-*``) to the hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fairvlm.config import Config
from fairvlm.mitigation.steering.vector import check_operator, check_positions, check_scale


@dataclass
class SteerSettings(Config):
    """The arguments of :meth:`SteeringVector.apply`; ``None`` keeps the vector's own.

    Attributes:
        scale: steering strength alpha (0 = no steering with ``add`` / ``ablate``).
        operator: ``add``, ``ablate`` or ``ablate_then_add``.
        positions: ``all``, ``prompt`` or ``generated``.
        layers: the vector's layers to apply (checked against the vector when it is
            applied; ``None``: all of them).
    """

    scale: float | None = None
    operator: str | None = None
    positions: str | None = None
    layers: list[int] | None = None

    def validate(self) -> None:
        if self.scale is not None:
            self.scale = check_scale(self.scale)
        if self.operator is not None:
            check_operator(self.operator)
        if self.positions is not None:
            check_positions(self.positions)

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``SteeringVector.apply`` that are set."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


__all__ = ["SteerSettings"]
