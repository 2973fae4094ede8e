"""The attributes a head on z predicts: checked against the data, encoded per batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fairvlm.data.schema import Sample
from fairvlm.errors import ConfigError


def attribute_targets(
    attributes: torch.Tensor, names: Sequence[str], name: str, valid: torch.Tensor
) -> torch.Tensor:
    """``[B]`` value indices of attribute ``name``; ``-1`` where unknown or z is invalid.

    ``attributes`` is the batch's ``[B, A]`` value indices, its columns in ``names`` order.
    """
    targets = attributes[:, list(names).index(name)].clone()
    targets[~valid.to(targets.device)] = -1
    return targets


def check_attributes(names: Sequence[str], samples: Sequence[Sample], field_name: str) -> None:
    """Every attribute in ``names`` is in the samples with at least two known values.

    Raises:
        ConfigError: naming the attribute, what the data has and the fix.
    """
    present = sorted({k for s in samples for k in s.attributes})
    for name in names:
        if name not in present:
            raise ConfigError(
                f"{field_name}: attribute {name!r} is not in the data (its attributes: "
                f"{', '.join(present) or 'none'}): name one of those, or use rename with a preset"
            )
        values = sorted({s.attributes.get(name) for s in samples} - {None})
        if len(values) < 2:
            raise ConfigError(
                f"{field_name}: attribute {name!r} has {len(values)} known value(s) in the training "
                f"data ({values}); MI with a constant is 0: drop it or use data with >= 2 groups"
            )


__all__ = ["attribute_targets", "check_attributes"]
