"""Group sizes of a study's table and the notes on small groups (left out of the gaps)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fairvlm.report.collect import metric_entry


def group_sizes(metrics: dict, columns: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """``{task: {attribute: {group: {"n", "small"}}}}`` of the table's gap columns (their
    summary.json form), read from an audit's metrics.json (the first gap column of each
    task and attribute)."""
    out: dict[str, dict[str, dict]] = {}
    for col in columns:
        task, attr = col["task"], col["attribute"]
        if col["field"] != "gap" or attr in out.get(task, {}):
            continue
        entry = metric_entry(metrics, task, col["metric"]) or {}
        groups = ((entry.get("by_attribute") or {}).get(attr) or {}).get("groups")
        if groups:
            out.setdefault(task, {})[attr] = {
                g: {"n": d.get("n"), "small": bool(d.get("small"))} for g, d in groups.items()
            }
    return out


def small_group_notes(all_metrics: Iterable[dict | None], columns: Sequence[dict]) -> list[str]:
    """The audits' notes on small groups left out of the gaps, for the table's attributes
    (each once, with its task)."""
    attrs = {(c["task"], c["attribute"]) for c in columns if c["attribute"]}
    out: list[str] = []
    for metrics in all_metrics:
        for task, entry in ((metrics or {}).get("tasks") or {}).items():
            for note in entry.get("notes") or []:
                attr = note.split(":", 1)[0]
                text = f"{task}: {note}"
                if (task, attr) in attrs and "left out of its gaps" in note and text not in out:
                    out.append(text)
    return out
