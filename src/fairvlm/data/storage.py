"""Datasets on disk: a Hugging Face ``DatasetDict`` (images as ``Image`` features) plus
``fairvlm_metadata.json`` (attribute vocabularies, normalisation, skipped rows, config).

Columns of a stored split: id, image, prompt, target, task, attributes (a struct with
one nullable string field per attribute, so that ``None`` = unknown survives), options,
concept, counterfactual_set, split, meta (a JSON string).

Writes are atomic: the dataset is built in a hidden temporary folder next to ``out`` and
renamed into place only once complete, with the metadata file written last, so an
interrupted write never leaves ``out`` looking like a dataset.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from fairvlm.atomic import atomic_dir, check_replaceable
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError, bad_value
from fairvlm.registry import AUDIT_TASKS, did_you_mean

#: The file that marks a complete fairvlm dataset folder.
METADATA_FILE = "fairvlm_metadata.json"
#: Version of the on-disk layout, stored in the metadata.
FORMAT_VERSION = 1
#: The columns of every stored split, in order.
COLUMNS = (
    "id",
    "image",
    "prompt",
    "target",
    "task",
    "attributes",
    "options",
    "concept",
    "counterfactual_set",
    "split",
    "meta",
)
#: Attribute on a PIL image holding the encoded bytes it was opened from.
_SOURCE_BYTES = "fairvlm_source_bytes"


def dataset_features(attributes: Sequence[str]):
    """The ``datasets.Features`` of a stored split with these attribute names."""
    from datasets import Features, Image, List, Value

    string = Value("string")
    return Features(
        {
            "id": string,
            "image": Image(),
            "prompt": string,
            "target": string,
            "task": string,
            "attributes": {name: Value("string") for name in attributes},
            "options": List(string),
            "concept": string,
            "counterfactual_set": string,
            "split": string,
            "meta": string,
        }
    )


def open_image_bytes(data: bytes) -> PILImage.Image:
    """Open encoded image bytes lazily, remembering them so storage keeps them as they are.

    Saving such an image stores the original bytes (no lossy JPEG re-encoding), the way
    ``datasets`` stores an image opened from a file by its file. Edit a ``copy()`` of
    the image, never the image in place, or the edit is not what gets stored.
    """
    img = PILImage.open(io.BytesIO(data))
    setattr(img, _SOURCE_BYTES, data)
    return img


def _read_image_file(path: str | os.PathLike, sample_id: str) -> bytes:
    try:
        data = Path(path).read_bytes()
        with PILImage.open(io.BytesIO(data)):
            pass  # header check only: cheap, and catches non-images early
    except (OSError, ValueError) as exc:
        raise DataError(
            f"sample {sample_id!r}: image={str(path)!r} cannot be read ({exc}); "
            "fix the path or remove the sample"
        ) from exc
    return data


def encode_image(image: Any, sample_id: str) -> dict | None:
    """The ``{"bytes", "path"}`` struct stored for a sample's image (None stays None)."""
    if image is None:
        return None
    if isinstance(image, (str, os.PathLike)):
        return {"bytes": _read_image_file(image, sample_id), "path": Path(image).name}
    if isinstance(image, PILImage.Image):
        source = getattr(image, _SOURCE_BYTES, None)
        if source is not None:
            return {"bytes": source, "path": None}
        filename = getattr(image, "filename", "")
        if filename and os.path.isfile(filename):
            return {"bytes": _read_image_file(filename, sample_id), "path": Path(filename).name}
        from datasets.features.image import encode_pil_image

        return encode_pil_image(image)
    raise DataError(
        f"sample {sample_id!r}: image of type {type(image).__name__} is not supported; "
        "give a PIL image, a file path or None"
    )


def _check_sample(sample: Any, attributes: Sequence[str] | None) -> Sample:
    if not isinstance(sample, Sample):
        raise DataError(
            f"expected a Sample, got {type(sample).__name__}; build Sample(...) objects"
        )
    sid = sample.id
    if not isinstance(sid, str) or not sid:
        raise DataError(f"sample id={sid!r} is not valid: ids are non-empty strings")
    if sample.task not in AUDIT_TASKS:
        raise DataError(
            f"sample {sid!r}: task={sample.task!r} is not valid: use one of "
            f"{AUDIT_TASKS.names()}{did_you_mean(sample.task, AUDIT_TASKS.names())}"
        )
    if not isinstance(sample.prompt, str):
        raise DataError(f"sample {sid!r}: prompt={sample.prompt!r} is not valid: give a string")
    for name, value in sample.attributes.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"sample {sid!r}: attribute name {name!r} is not a non-empty string")
        if value is not None and not isinstance(value, str):
            raise DataError(
                f"sample {sid!r}: attribute {name}={value!r} is not valid: "
                "attribute values are strings, or None for unknown"
            )
        if attributes is not None and name not in attributes:
            raise DataError(
                f"sample {sid!r}: attribute {name!r} is not in attributes={list(attributes)}; "
                "add it to the attribute list given to save_dataset"
            )
    for field in ("target", "concept", "counterfactual_set"):
        value = getattr(sample, field)
        if value is not None and not isinstance(value, str):
            raise DataError(
                f"sample {sid!r}: {field}={value!r} is not valid: give a string or None"
            )
    if sample.options is not None and not (
        isinstance(sample.options, list) and all(isinstance(o, str) for o in sample.options)
    ):
        raise DataError(f"sample {sid!r}: options={sample.options!r} is not a list of strings")
    return sample


def _row(sample: Sample, attributes: Sequence[str], split: str) -> dict[str, Any]:
    try:
        meta = json.dumps(sample.meta, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"sample {sample.id!r}: meta cannot be stored as JSON ({exc}); keep only "
            "strings, numbers, booleans, None, lists and dicts in meta"
        ) from exc
    return {
        "id": sample.id,
        "image": encode_image(sample.image, sample.id),
        "prompt": sample.prompt,
        "target": sample.target,
        "task": sample.task,
        "attributes": {name: sample.attributes.get(name) for name in attributes},
        "options": list(sample.options) if sample.options is not None else None,
        "concept": sample.concept,
        "counterfactual_set": sample.counterfactual_set,
        "split": split,
        "meta": meta,
    }


def _final_metadata(metadata, attributes, sizes, tasks, vocab, unknown) -> dict:
    """The caller's metadata plus what the write measured (sizes, vocabularies, unknowns)."""
    try:
        meta = json.loads(json.dumps(metadata or {}))  # a deep copy, and a JSON check
    except (TypeError, ValueError) as exc:
        raise bad_value("metadata", metadata, f"keep it JSON-serialisable ({exc})") from exc
    declared = meta.get("attributes") or {}
    meta.update(
        format="fairvlm-dataset",
        format_version=FORMAT_VERSION,
        splits=sizes,
        tasks=dict(sorted(tasks.items())),
        attribute_names=attributes,
        attributes={
            name: list(dict.fromkeys([*declared.get(name, []), *sorted(vocab[name])]))
            for name in attributes
        },
        unknown_counts=unknown,
    )
    return meta


def save_dataset(
    splits: Mapping[str, Iterable[Sample]],
    out: str | Path,
    *,
    metadata: dict | None = None,
    attributes: Sequence[str] | None = None,
) -> Path:
    """Store ``splits`` (split name -> samples) as a dataset folder at ``out``, atomically.

    Args:
        splits: samples per split; the split column is set to the split's name.
        out: the dataset folder; an existing fairvlm dataset there is replaced.
        metadata: extra metadata (normalisation, skipped rows, generator config ...),
            read after every sample was consumed so a streaming reader can fill in its
            counts as it goes. Declared vocabularies under ``"attributes"`` are merged
            with the observed values.
        attributes: the attribute names; when None they are collected from the samples
            (which materialises every split). Give them to stream samples.

    Returns:
        ``out`` as a Path.

    Raises:
        DataError: a malformed sample (the message names it), a duplicate id, or ``out``
            is an existing folder that is not a fairvlm dataset.
    """
    from datasets import Dataset, DatasetDict
    from datasets.arrow_writer import ArrowWriter
    from tqdm.auto import tqdm

    out = Path(out)
    check_replaceable(out, METADATA_FILE)
    if not splits:
        raise bad_value("splits", dict(splits), "give at least one split of samples", DataError)
    if attributes is None:
        splits = {name: list(samples) for name, samples in splits.items()}
        names: set[str] = set()
        for samples in splits.values():
            for sample in samples:
                names.update(getattr(sample, "attributes", {}) or {})
        attributes = sorted(names)
    attributes = list(attributes)
    features = dataset_features(attributes)

    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        atomic_dir(out, METADATA_FILE) as data_dir,
        tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.build-") as build,
    ):
        seen: set[str] = set()
        vocab: dict[str, Counter] = {name: Counter() for name in attributes}
        unknown: dict[str, dict[str, int]] = {}
        sizes: dict[str, int] = {}
        tasks: Counter = Counter()
        split_tasks: dict[str, Counter] = {}
        parts = {}
        for split, samples in splits.items():
            if not isinstance(split, str) or not split or "/" in split:
                raise bad_value("split", split, "split names are non-empty strings without '/'")
            arrow_path = Path(build) / f"{len(parts)}.arrow"
            unknown[split] = dict.fromkeys(attributes, 0)
            split_tasks[split] = Counter()
            n = 0
            with ArrowWriter(features=features, path=str(arrow_path), writer_batch_size=100) as w:
                for sample in tqdm(samples, desc=f"writing {split}", unit="sample", disable=None):
                    _check_sample(sample, attributes)
                    if sample.id in seen:
                        raise DataError(
                            f"sample id {sample.id!r} appears twice; ids must be unique in a dataset"
                        )
                    seen.add(sample.id)
                    w.write(_row(sample, attributes, split))
                    for name in attributes:
                        value = sample.attributes.get(name)
                        if value is None:
                            unknown[split][name] += 1
                        else:
                            vocab[name][value] += 1
                    tasks[sample.task] += 1
                    split_tasks[split][sample.task] += 1
                    n += 1
                w.finalize()
            sizes[split] = n
            parts[split] = Dataset.from_file(str(arrow_path))
        # One shard per empty split: datasets would otherwise write none and fail to load it.
        shards = {name: 1 for name, part in parts.items() if len(part) == 0} or None
        DatasetDict(parts).save_to_disk(str(data_dir), num_shards=shards)
        del parts

        meta = _final_metadata(metadata, attributes, sizes, tasks, vocab, unknown)
        meta["split_tasks"] = {k: dict(sorted(v.items())) for k, v in split_tasks.items()}
        # The marker is written last: a folder without it is never a complete dataset.
        (data_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return out


def load_dataset(path: str | Path):
    """Load a dataset folder as a ``datasets.DatasetDict`` (images as ``Image`` features)."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    if not (path / METADATA_FILE).is_file() and not (path / "dataset_dict.json").is_file():
        raise DataError(
            f"path={str(path)!r} is not a dataset folder (no {METADATA_FILE}); create one with "
            "`fairvlm data import` or `fairvlm data synth`"
        )
    ds = load_from_disk(str(path))
    if not isinstance(ds, DatasetDict):
        raise DataError(f"path={str(path)!r} holds a single Dataset; save it as a DatasetDict")
    return ds


def dataset_metadata(path: str | Path) -> dict:
    """The metadata stored with a dataset (vocabularies, normalisation, skipped rows ...)."""
    file = Path(path) / METADATA_FILE
    try:
        return json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise DataError(
            f"path={str(path)!r} has no {METADATA_FILE}: not a complete fairvlm dataset; "
            "re-create it with `fairvlm data import` or `fairvlm data synth`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: not valid JSON ({exc}); re-create the dataset") from exc


def load_samples(path: str | Path, split: str, *, limit: int | None = None) -> list[Sample]:
    """The samples of one split of a stored dataset (the first ``limit`` when given)."""
    ds = load_dataset(path)
    if split not in ds:
        raise bad_value("split", split, f"choose one of {sorted(ds)}", DataError)
    part = ds[split]
    if limit is not None:
        if not isinstance(limit, int) or limit < 0:
            raise bad_value("limit", limit, "give a non-negative integer or None")
        part = part.select(range(min(limit, len(part))))
    return samples_from_dataset(part)


def samples_from_dataset(ds) -> list[Sample]:
    """Convert a ``datasets.Dataset`` with the stored columns into samples.

    Only ``id`` and ``prompt`` are required; missing columns take the Sample defaults.
    Images come back as lazily opened PIL images that keep their stored bytes.
    """
    from datasets import Image

    missing = [c for c in ("id", "prompt") if c not in ds.column_names]
    if missing:
        raise DataError(
            f"dataset columns {ds.column_names} lack {missing}; a fairvlm split needs {list(COLUMNS)}"
        )
    if isinstance(ds.features.get("image"), Image):
        ds = ds.cast_column("image", Image(decode=False))
    samples = []
    for row in ds:
        sid = row["id"]
        image = row.get("image")
        if isinstance(image, dict):
            if image.get("bytes") is not None:
                try:
                    image = open_image_bytes(image["bytes"])
                except (OSError, ValueError) as exc:
                    raise DataError(
                        f"sample {sid!r}: column image holds unreadable bytes ({exc}); "
                        "re-create the dataset"
                    ) from exc
            else:
                image = image.get("path")
        meta = row.get("meta")
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError as exc:
                raise DataError(f"sample {sid!r}: column meta is not valid JSON ({exc})") from exc
        samples.append(
            Sample(
                id=sid,
                image=image,
                prompt=row["prompt"],
                target=row.get("target"),
                task=row.get("task") or "vqa",
                attributes=dict(row.get("attributes") or {}),
                options=row.get("options"),
                concept=row.get("concept"),
                counterfactual_set=row.get("counterfactual_set"),
                split=row.get("split"),
                meta=meta or {},
            )
        )
    return samples


__all__ = [
    "COLUMNS",
    "METADATA_FILE",
    "dataset_features",
    "dataset_metadata",
    "encode_image",
    "load_dataset",
    "load_samples",
    "open_image_bytes",
    "samples_from_dataset",
    "save_dataset",
]
