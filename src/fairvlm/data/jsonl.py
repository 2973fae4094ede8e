"""JSONL + image folder, both directions.

Layout: ``DIR/data.jsonl`` with one record per line, images at paths relative to DIR::

    {"id": "s0", "image": "images/s0.png", "prompt": "...", "target": "...",
     "task": "vqa", "attributes": {"sex": "female", "age_group": null},
     "options": ["a", "b"], "concept": null, "counterfactual_set": null,
     "split": "test", "meta": {}}

Only ``id`` and ``prompt`` are required. ``null`` attributes are unknown. Reading keeps
each image's relative path in ``meta["source_image"]`` so that writing the samples back
reproduces the same files at the same paths.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from fairvlm.atomic import atomic_dir
from fairvlm.data.imagefiles import SOURCE_IMAGE, ImageFolderWriter
from fairvlm.data.readers.base import (
    ReadResult,
    RowCollector,
    RowError,
    check_image,
    new_metadata,
)
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError
from fairvlm.registry import AUDIT_TASKS

JSONL_FILE = "data.jsonl"
FIELDS = ("target", "concept", "counterfactual_set")


def _field(record: dict, name: str, kind: type | tuple, default=None):
    value = record.get(name, default)
    if value is not None and not isinstance(value, kind):
        raise RowError(name, f"{name}={value!r} has the wrong type; expected {kind}")
    return value


def sample_from_record(
    record: dict, root: Path, default_split: str, allow_outside: bool = False
) -> Sample:
    """One JSONL/LLaVA record's common fields -> Sample (RowError on a bad field)."""
    if not isinstance(record, dict):
        raise RowError("<record>", "the line is not a JSON object")
    sid = record.get("id")
    if isinstance(sid, int) and not isinstance(sid, bool):
        sid = str(sid)
    if not isinstance(sid, str) or not sid:
        raise RowError("id", f"id={sid!r} is missing or not a string")
    attributes = _field(record, "attributes", dict, {}) or {}
    for name, value in attributes.items():
        if value is not None and not isinstance(value, str):
            raise RowError("attributes", f"attribute {name}={value!r} is not a string or null")
    task = _field(record, "task", str, "vqa")
    if task not in AUDIT_TASKS:
        raise RowError(
            "task", f"unknown task category {task!r}; expected one of {AUDIT_TASKS.names()}"
        )
    options = _field(record, "options", list)
    if options is not None and not all(isinstance(o, str) for o in options):
        raise RowError("options", f"options={options!r} is not a list of strings")
    meta = dict(_field(record, "meta", dict, {}) or {})
    image = _field(record, "image", str)
    path = None
    if image:
        path = str(check_image(root / image, "image", root, allow_outside))
        meta[SOURCE_IMAGE] = image
    return Sample(
        id=sid,
        image=path,
        prompt=_field(record, "prompt", str, ""),
        target=_field(record, "target", str),
        task=task,
        attributes=dict(attributes),
        options=options,
        concept=_field(record, "concept", str),
        counterfactual_set=_field(record, "counterfactual_set", str),
        split=_field(record, "split", str) or default_split,
        meta=meta,
    )


def group_by_split(samples: Iterable[Sample], default: str) -> dict[str, list[Sample]]:
    """Samples per split, in first-seen order."""
    splits: dict[str, list[Sample]] = {}
    for sample in samples:
        splits.setdefault(sample.split or default, []).append(sample)
    return splits or {default: []}


def read_jsonl(
    src: str | Path,
    *,
    skip_bad: bool = False,
    split: str = "test",
    allow_outside_paths: bool = False,
) -> ReadResult:
    """Read ``data.jsonl`` (or any ``.jsonl`` file) and its image folder.

    Args:
        src: the folder holding ``data.jsonl``, or the ``.jsonl`` file.
        skip_bad: skip (and count) malformed lines instead of raising.
        split: the split of records without a ``split`` field.
        allow_outside_paths: accept image paths that leave the JSONL's folder.
    """
    src = Path(src)
    file = src / JSONL_FILE if src.is_dir() else src
    if not file.is_file():
        raise DataError(f"src={str(src)!r} has no {JSONL_FILE}; point SRC at the JSONL file")
    metadata = new_metadata("jsonl", src, split=split)
    collector = RowCollector(metadata, skip_bad)
    samples = []
    with file.open(encoding="utf-8") as lines:
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RowError("<json>", f"invalid JSON ({exc})") from None
                samples.append(sample_from_record(record, file.parent, split, allow_outside_paths))
            except RowError as exc:
                collector.bad(file, i, exc.column, exc.reason)
    attributes = sorted({name for s in samples for name in s.attributes})
    return ReadResult(group_by_split(samples, split), attributes, metadata)


def sample_record(sample: Sample, image: str | None) -> dict:
    """A sample as a JSONL record, its image at relative path ``image``."""
    meta = {k: v for k, v in sample.meta.items() if k != SOURCE_IMAGE}
    return {
        "id": sample.id,
        "image": image,
        "prompt": sample.prompt,
        "target": sample.target,
        "task": sample.task,
        "attributes": dict(sample.attributes),
        "options": sample.options,
        "concept": sample.concept,
        "counterfactual_set": sample.counterfactual_set,
        "split": sample.split,
        "meta": meta,
    }


def iter_split_samples(samples: Mapping[str, Iterable[Sample]] | Iterable[Sample]):
    """Samples of a split mapping (split set from the key) or of a flat iterable."""
    if isinstance(samples, Mapping):
        for split, part in samples.items():
            for sample in part:
                if sample.split != split:
                    sample = dataclasses.replace(sample, split=split)
                yield sample
    else:
        yield from samples


def write_jsonl(
    samples: Mapping[str, Iterable[Sample]] | Iterable[Sample], out: str | Path
) -> Path:
    """Write samples as ``OUT/data.jsonl`` + image files, atomically; returns OUT."""
    from tqdm.auto import tqdm

    with atomic_dir(out, JSONL_FILE) as tmp:
        images = ImageFolderWriter(tmp)
        lines = []
        for sample in tqdm(iter_split_samples(samples), desc="writing jsonl", disable=None):
            record = sample_record(sample, images.write(sample))
            lines.append(json.dumps(record, ensure_ascii=False))
        (tmp / JSONL_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return Path(out)
