"""What ``fairvlm data inspect`` reports: sizes, attribute distributions, unknowns,
counterfactual-set completeness and the concept x attribute table, per split.
Images are not decoded: only the text columns are read.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fairvlm.data.counterfactual import check_completeness
from fairvlm.data.schema import Sample
from fairvlm.data.storage import METADATA_FILE, dataset_metadata, load_dataset

_TEXT_COLUMNS = ("id", "task", "attributes", "concept", "counterfactual_set")
#: At most this many incomplete set ids are printed (all are in the --json output).
MAX_PRINTED_SETS = 20


def summarize_dataset(path: str | Path) -> dict:
    """A JSON-ready summary of the dataset at ``path``."""
    path = Path(path)
    ds = load_dataset(path)
    meta = dataset_metadata(path) if (path / METADATA_FILE).is_file() else {}
    summary: dict = {"path": str(path), "splits": {}, "skipped": meta.get("skipped", {})}
    if "source" in meta:
        summary["source"] = meta["source"]
    for split, part in ds.items():
        columns = [c for c in _TEXT_COLUMNS if c in part.column_names]
        rows = part.select_columns(columns).to_list()
        names = sorted({a for r in rows for a in (r.get("attributes") or {})})
        attrs: dict = {}
        for name in names:
            values = Counter((r.get("attributes") or {}).get(name) for r in rows)
            unknown = values.pop(None, 0)
            attrs[name] = {"distribution": dict(sorted(values.items())), "unknown": unknown}
        info: dict = {
            "n": len(rows),
            "tasks": dict(sorted(Counter(r.get("task") for r in rows).items())),
            "attributes": attrs,
        }
        if any(r.get("concept") for r in rows):
            table: dict = {}
            for name in names:
                cells = Counter(
                    (r.get("concept"), (r.get("attributes") or {}).get(name)) for r in rows
                )
                table[name] = {}
                for (concept, value), n in sorted(cells.items(), key=lambda kv: str(kv[0])):
                    key = "unknown" if value is None else value
                    table[name].setdefault(str(concept), {})[key] = n
            info["concept_by_attribute"] = table
        if any(r.get("counterfactual_set") for r in rows):
            samples = [
                Sample(
                    id=r["id"],
                    image=None,
                    prompt="",
                    attributes=dict(r.get("attributes") or {}),
                    counterfactual_set=r.get("counterfactual_set"),
                )
                for r in rows
            ]
            info["counterfactual_sets"] = check_completeness(samples, names).to_dict()
        summary["splits"][split] = info
    return summary


def format_summary(summary: dict) -> str:
    """The summary as readable text."""
    out = [f"dataset {summary['path']}"]
    if "source" in summary:
        out.append(
            f"source: {summary['source'].get('format')} from {summary['source'].get('path')}"
        )
    skipped = summary.get("skipped") or {}
    if skipped.get("count"):
        out.append(f"skipped rows: {skipped['count']} {skipped.get('by_reason', {})}")
    for split, info in summary["splits"].items():
        out.append(f"\n[{split}] {info['n']} samples; tasks {info['tasks']}")
        for name, attr in info["attributes"].items():
            dist = ", ".join(f"{v}={n}" for v, n in attr["distribution"].items())
            out.append(f"  {name}: {dist}; unknown={attr['unknown']}")
        for name, table in info.get("concept_by_attribute", {}).items():
            values = sorted({v for row in table.values() for v in row})
            width = max([len(c) for c in table] + [7])
            out.append(f"  concept x {name}:")
            out.append("    " + "concept".ljust(width) + "".join(f"{v:>10}" for v in values))
            for concept, row in table.items():
                counts = "".join(f"{row.get(v, 0):>10}" for v in values)
                out.append("    " + concept.ljust(width) + counts)
        cf = info.get("counterfactual_sets")
        if cf:
            line = f"  counterfactual sets: {cf['n_sets']}, complete {len(cf['complete'])}"
            out.append(line + f", incomplete {len(cf['incomplete'])}")
            for set_id, problem in list(cf["incomplete"].items())[:MAX_PRINTED_SETS]:
                out.append(
                    f"    incomplete {set_id}: missing {problem['missing']}, "
                    f"unknown members {problem['unknown']}"
                )
            if len(cf["incomplete"]) > MAX_PRINTED_SETS:
                out.append(f"    ... {len(cf['incomplete']) - MAX_PRINTED_SETS} more (see --json)")
    return "\n".join(out)
