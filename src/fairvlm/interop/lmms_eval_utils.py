"""The ``utils.py`` of an exported lmms-eval task folder (``fairvlm export lmms-eval``).

The exporter copies this file, as it is, next to the task YAMLs, which name its
functions (``!function utils.doc_to_text`` ...). It imports only the standard library
and Pillow, so lmms-eval (or a test) loads it without fairvlm or lmms-eval installed.
A doc is one exported sample: ``sample_id``, ``fairvlm_task``, ``image`` (a path
relative to this file), ``prompt`` (the user-visible prompt fairvlm's adapter wraps in
the model's chat template), ``target``, ``options`` (the answers scored by closed tasks
and probes), ``attributes``.

The per-sample metrics returned here are lmms-eval's own summary only; the group
metrics come from ``fairvlm import-records lmms-eval`` over the sample logs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image

#: The folder this file was copied into: image paths of the docs are relative to it.
HERE = Path(__file__).resolve().parent


def doc_to_visual(doc: dict) -> list[Image.Image]:
    """The sample's image, as one RGB image."""
    with Image.open(HERE / doc["image"]) as img:
        return [img.convert("RGB")]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The prompt fairvlm audits the sample with (lmms-eval's model adds the template)."""
    return doc["prompt"]


def doc_to_target(doc: dict) -> str:
    """The reference answer or report ("" for samples without one: probes, describe)."""
    return doc.get("target") or ""


def doc_to_choice(doc: dict) -> list[str]:
    """The options a closed task or probe scores, in fairvlm's order."""
    return list(doc["options"])


def _loglikelihood(result: Any) -> float:
    """One option's score: lmms-eval passes ``(ll, is_greedy)``, or (0.7) its string."""
    if isinstance(result, str):
        result = result.strip("()[] ").split(",")
    return float(result[0] if isinstance(result, list | tuple) else result)


def _best(lls: list[float]) -> int:
    return max(range(len(lls)), key=lambda i: lls[i])


def process_results(doc: dict, results: list[Any]) -> dict[str, float]:
    """lmms-eval's per-sample summary: option accuracy (vqa, concept), P(yes) (probe),
    the output's length in words (report, describe)."""
    task = doc["fairvlm_task"]
    if task == "probe":  # one result per option, yes first
        yes, no = (_loglikelihood(r) for r in results[:2])
        p = 1.0 / (1.0 + math.exp(no - yes)) if math.isfinite(yes - no) else float("nan")
        return {"p_yes": p}
    if task in ("vqa", "concept"):
        lls = [_loglikelihood(r) for r in results]
        picked = doc["options"][_best(lls)]
        return {"option_accuracy": float(picked.strip().lower() == doc_to_target(doc).lower())}
    return {"output_words": float(len(str(results[0]).split()))}
