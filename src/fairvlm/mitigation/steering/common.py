"""Helpers shared by the steering builders: the layers field and sample loading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairvlm.config import is_int
from fairvlm.data.schema import Sample
from fairvlm.data.storage import load_samples, samples_from_dataset
from fairvlm.errors import DataError, bad_value


def check_layers_field(value: list[int] | None) -> None:
    """Raise unless a config's ``layers`` (coerced by the config base) is ``None`` (the
    middle layer) or a non-empty list of integer layer indices."""
    if value is not None and (not value or not all(is_int(v) for v in value)):
        raise bad_value("layers", value, "give a non-empty list of integer layer indices, or null")


def load_samples_of(data: Any, split: str) -> tuple[list[Sample], str]:
    """The samples of ``split`` from a dataset folder, a ``DatasetDict`` or a sequence of
    samples (taken as they are), and a label of the data for the vector's metadata."""
    if isinstance(data, str | Path):
        if not Path(data).exists():
            raise bad_value("data", str(data), "give an existing dataset folder", DataError)
        return load_samples(data, split), str(data)
    if hasattr(data, "keys") and hasattr(data, "column_names"):
        if split not in data:
            raise bad_value("split", split, f"choose one of {sorted(data)}", DataError)
        return samples_from_dataset(data[split]), "<datasets.DatasetDict>"
    samples = list(data)
    bad = [type(s).__name__ for s in samples if not isinstance(s, Sample)]
    if bad:
        raise bad_value(
            "data", bad[0], "give a dataset folder, a DatasetDict or Samples", DataError
        )
    return samples, "<samples>"


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def vector_origin(adapter: Any) -> dict[str, Any]:
    """The ``SteeringVector`` fields that name the model a vector is built on."""
    return {
        "hidden_size": int(adapter.hidden_size),
        "num_layers": int(adapter.num_layers),
        "family": getattr(adapter, "family", None),
        "model_name": str(getattr(adapter, "name_or_path", "") or "") or None,
    }
