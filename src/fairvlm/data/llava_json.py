"""LLaVA-style conversation JSON, both directions.

A JSON list of records as LLaVA's training code reads them::

    {"id": "s0", "image": "images/s0.png",
     "conversations": [{"from": "human", "value": "<image>\\nWhat is the diagnosis?"},
                       {"from": "gpt", "value": "melanoma"}],
     "task": "vqa", "attributes": {"sex": "female"}, "options": [...], "concept": null,
     "counterfactual_set": null, "split": "test", "meta": {}}

The fairvlm fields next to ``conversations`` are optional (LLaVA ignores them). The
first human turn is the prompt (``<image>`` token removed), the first gpt turn the
target; further turns are kept in ``meta["llava_extra_turns"]`` and an ``<image>``
token at the end of the prompt in ``meta["llava_image_at_end"]``, so that writing the
samples back reproduces the conversations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from fairvlm.atomic import atomic_dir
from fairvlm.data.imagefiles import ImageFolderWriter
from fairvlm.data.jsonl import group_by_split, iter_split_samples, sample_from_record, sample_record
from fairvlm.data.readers.base import ReadResult, RowCollector, RowError, new_metadata
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError

LLAVA_FILE = "llava.json"
IMAGE_TOKEN = "<image>"
EXTRA_TURNS = "llava_extra_turns"
IMAGE_AT_END = "llava_image_at_end"


def _turn(turns: list, index: int, speaker: str) -> str:
    turn = turns[index]
    if (
        not isinstance(turn, dict)
        or turn.get("from") != speaker
        or not isinstance(turn.get("value"), str)
    ):
        raise RowError(
            "conversations", f"turn {index} is not a {speaker!r} turn with a string value"
        )
    return turn["value"]


def record_to_sample(
    record: dict, root: Path, default_split: str, allow_outside: bool = False
) -> Sample:
    """One LLaVA record -> Sample (RowError on a malformed conversation)."""
    turns = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(turns, list) or not turns:
        raise RowError("conversations", "missing or empty conversations list")
    human = _turn(turns, 0, "human")
    at_end = human.endswith(IMAGE_TOKEN) and not human.startswith(IMAGE_TOKEN)
    prompt = human.replace(IMAGE_TOKEN + "\n", "").replace("\n" + IMAGE_TOKEN, "")
    prompt = prompt.replace(IMAGE_TOKEN, "")
    target = _turn(turns, 1, "gpt") if len(turns) > 1 else None
    fields = {k: v for k, v in record.items() if k != "conversations"}
    fields = {**fields, "prompt": prompt, "target": target}
    sample = sample_from_record(fields, root, default_split, allow_outside)
    if len(turns) > 2:
        sample.meta[EXTRA_TURNS] = turns[2:]
    if at_end:
        sample.meta[IMAGE_AT_END] = True
    return sample


def read_llava_json(
    src: str | Path,
    *,
    skip_bad: bool = False,
    split: str = "test",
    image_folder: str | Path | None = None,
    allow_outside_paths: bool = False,
) -> ReadResult:
    """Read a LLaVA conversation JSON file (or a folder holding ``llava.json``).

    Args:
        src: the JSON file, or a folder with ``llava.json``.
        skip_bad: skip (and count) malformed records instead of raising.
        split: the split of records without a ``split`` field.
        image_folder: the folder image paths are relative to (default: the JSON's folder).
        allow_outside_paths: accept image paths that leave the source folder.
    """
    src = Path(src)
    file = src / LLAVA_FILE if src.is_dir() else src
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(
            f"src={str(src)!r} has no {LLAVA_FILE}; point SRC at the JSON file"
        ) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}, row 0, column '<json>': invalid JSON ({exc})") from exc
    if not isinstance(records, list):
        raise DataError(f"{file}: expected a JSON list of conversation records")
    root = Path(image_folder) if image_folder else file.parent
    metadata = new_metadata("llava", src, split=split)
    collector = RowCollector(metadata, skip_bad)
    samples = []
    for i, record in enumerate(records, start=1):
        try:
            samples.append(record_to_sample(record, root, split, allow_outside_paths))
        except RowError as exc:
            collector.bad(file, i, exc.column, exc.reason)
    attributes = sorted({name for s in samples for name in s.attributes})
    return ReadResult(group_by_split(samples, split), attributes, metadata)


def sample_to_record(sample: Sample, image: str | None) -> dict:
    """A sample as a LLaVA record, its image at relative path ``image``."""
    record = sample_record(sample, image)
    meta = record["meta"]
    extra = meta.pop(EXTRA_TURNS, [])
    at_end = meta.pop(IMAGE_AT_END, False)
    prompt = record.pop("prompt")
    if image is not None:
        prompt = f"{prompt}\n{IMAGE_TOKEN}" if at_end else f"{IMAGE_TOKEN}\n{prompt}"
    turns = [{"from": "human", "value": prompt}]
    target = record.pop("target")
    if target is not None:
        turns.append({"from": "gpt", "value": target})
    out = {"id": record.pop("id"), "image": record.pop("image"), "conversations": turns + extra}
    if out["image"] is None:
        del out["image"]
    return {**out, **record}


def write_llava_json(
    samples: Mapping[str, Iterable[Sample]] | Iterable[Sample], out: str | Path
) -> Path:
    """Write samples as ``OUT/llava.json`` + image files, atomically; returns OUT."""
    from tqdm.auto import tqdm

    with atomic_dir(out, LLAVA_FILE) as tmp:
        images = ImageFolderWriter(tmp)
        records = [
            sample_to_record(sample, images.write(sample))
            for sample in tqdm(iter_split_samples(samples), desc="writing llava json", disable=None)
        ]
        (tmp / LLAVA_FILE).write_text(
            json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    return Path(out)
