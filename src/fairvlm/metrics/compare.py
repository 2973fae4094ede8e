"""Paired comparison of audit folders: did a change of the model move a metric beyond noise?

Two audits of the same samples (same split, same sample ids) are compared metric by
metric: for each task, each group metric and its overall value, and each attribute's
``gap``, ``es_fairllava`` and ``es_fairclip``, the difference ``other - ref``, a
**paired** bootstrap CI of that difference and a two-sided p-value. The statistics are
:mod:`fairvlm.metrics.paired` (how the replicates are drawn, the p-value, what is not
compared); this module reads the folders, checks they match, runs Holm's step-down
correction (:func:`holm`) over every p-value of one call (all comparisons, tasks,
metrics, overall values and attribute quantities; both the raw ``p_value`` and the
adjusted ``p_holm`` are written) and writes ``comparison.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fairvlm.atomic import atomic_write_text, check_output_dir, write_marker
from fairvlm.errors import DataError, bad_value
from fairvlm.metrics.compare_table import entries, format_comparison
from fairvlm.metrics.config import MetricsConfig
from fairvlm.metrics.io import read_records
from fairvlm.metrics.paired import (
    P_VALUE_DEFINITION,
    compare_pooled,
    compare_records,
    holm,
    paired_p_value,
)
from fairvlm.metrics.results import clean_json

#: The marker kind of a ``fairvlm compare --out`` folder.
COMPARE_KIND = "comparison"
#: The file a comparison writes.
COMPARISON_FILE = "comparison.json"


def _load_audit(path: str | Path, label: str) -> tuple[pd.DataFrame, MetricsConfig, str | None]:
    import yaml

    folder = Path(path)
    file = folder / "config.yaml"
    if not folder.is_dir() or not file.is_file() or not (folder / "records.parquet").is_file():
        raise bad_value(
            label,
            str(path),
            "give an audit folder (records.parquet, config.yaml, metrics.json)",
            DataError,
        )
    doc = yaml.safe_load(file.read_text()) or {}
    audit = doc.get("audit") if isinstance(doc, dict) else None
    if not isinstance(audit, dict):
        raise bad_value(label, str(path), f"{file} is not an audit's config.yaml", DataError)
    cfg = MetricsConfig.from_dict(audit.get("metrics") or {})
    return read_records(folder), cfg, audit.get("split")


def _check_split(reference, ref_split, other, split) -> None:
    if split != ref_split:
        raise DataError(
            f"splits differ: REF {str(reference)!r} audited {ref_split!r}, OTHER "
            f"{str(other)!r} audited {split!r}; compare audits of the same split"
        )


def compare_audit_pairs(
    pairs: Sequence[tuple[str | Path, str | Path]],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[dict, list[str]]:
    """:func:`compare_pooled` of audit folders: ``pairs`` of (REF, OTHER) folders, one per
    stratum. Returns the pooled ``({task: {metric: ...}}, notes)``, unadjusted.

    Raises:
        DataError: a folder that is not an audit, another split, other sample ids.
    """
    loaded: dict = {}  # a reference shared by the strata (the base model's) is read once

    def load(path: str | Path, label: str) -> tuple:
        key = (str(path), label)
        if key not in loaded:
            loaded[key] = _load_audit(path, label)
        return loaded[key]

    records, configs, labels = [], [], []
    for ref, other in pairs:
        ref_records, ref_cfg, ref_split = load(ref, "REF")
        other_records, other_cfg, split = load(other, "OTHER")
        _check_split(ref, ref_split, other, split)
        records.append((ref_records, other_records))
        configs.append((ref_cfg, other_cfg))
        labels.append((f"REF {str(ref)!r}", f"OTHER {str(other)!r}"))
    return compare_pooled(
        records, configs=configs, n_boot=n_boot, level=level, seed=seed, labels=labels
    )


def compare_audits(
    reference: str | Path,
    others: Sequence[str | Path],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    holm_correction: bool = True,
) -> dict:
    """Compare audit folders ``others`` with ``reference`` (module docstring): the
    ``comparison.json`` document, with ``p_holm`` (``None`` without ``holm_correction``)
    and ``significant`` (adjusted p, else raw p, below ``1 - level``) on every entry.

    Raises:
        DataError: a folder that is not an audit, another split, other sample ids.
    """
    if not others:
        raise bad_value("OTHER", [], "give at least one audit folder to compare", DataError)
    ref_records, ref_cfg, ref_split = _load_audit(reference, "REF")
    names = [Path(o).name for o in others]
    if len(set(names)) < len(names):
        names = [str(o) for o in others]
    if len(set(names)) < len(names):
        raise bad_value("OTHER", [str(o) for o in others], "give each audit folder once", DataError)
    comparisons: dict = {}
    notes: dict = {}
    for name, other in zip(names, others, strict=True):
        records, cfg, split = _load_audit(other, "OTHER")
        _check_split(reference, ref_split, other, split)
        comparisons[name], notes[name] = compare_records(
            ref_records, records, ref_config=ref_cfg, other_config=cfg, n_boot=n_boot,
            level=level, seed=seed, labels=(f"REF {str(reference)!r}", f"OTHER {str(other)!r}"),
        )  # fmt: skip
    leaves = list(entries(comparisons))
    adjusted = holm([e["p_value"] for e in leaves]) if holm_correction else [None] * len(leaves)
    alpha = 1.0 - level
    for e, adj in zip(leaves, adjusted, strict=True):
        e["p_holm"] = adj
        p = adj if holm_correction else e["p_value"]
        e["significant"] = bool(p is not None and np.isfinite(p) and p < alpha)
    return clean_json(
        {
            "reference": str(reference),
            "n_boot": n_boot,
            "level": level,
            "seed": seed,
            "holm": holm_correction,
            "p_value_definition": P_VALUE_DEFINITION,
            "comparisons": comparisons,
            "others": dict(zip(names, map(str, others), strict=True)),
            "notes": notes,
        }
    )


def write_comparison(doc: dict, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write ``out_dir/comparison.json`` atomically; ``out_dir`` follows the marker rule
    (:func:`fairvlm.atomic.check_output_dir`, kind ``comparison``)."""
    out = Path(out_dir)
    check_output_dir(out, COMPARE_KIND, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, COMPARE_KIND)
    path = out / COMPARISON_FILE
    atomic_write_text(path, json.dumps(clean_json(doc), indent=2, allow_nan=False) + "\n")
    return path


__all__ = [
    "COMPARE_KIND",
    "COMPARISON_FILE",
    "P_VALUE_DEFINITION",
    "compare_audit_pairs",
    "compare_audits",
    "compare_pooled",
    "compare_records",
    "format_comparison",
    "holm",
    "paired_p_value",
    "write_comparison",
]
