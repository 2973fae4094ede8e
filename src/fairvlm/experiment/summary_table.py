"""The console form of summary.json: one table per study, a cell marked ``*`` when it is
significantly better than the study's reference row; each utility and gap column is
followed by its change versus the reference (``Δ``: the difference and its paired CI);
under it the legend, the signed difference of the groups that make each gap, the group
sizes and the notes."""

from __future__ import annotations

from typing import Any

from fairvlm.report.text import (
    HEADLINE_KINDS,
    all_notes,
    fmt_diff,
    fmt_pair,
    fmt_value,
    format_sizes,
    legend,
)


def format_table(summary: dict[str, Any], ci: bool = True) -> str:
    """The comparison tables of summary.json as plain text (see the module doc)."""
    blocks = []
    for study in summary.get("studies", []):
        cols = study["columns"]
        ref = study.get("reference", "base")
        header = ["method"]
        for c in cols:
            header.append(c["label"])
            if c["kind"] in HEADLINE_KINDS:
                header.append(f"Δ vs {ref}")
        lines = []
        for row in study["rows"]:
            cells = [row["method"] + (" (collapsed)" if row.get("collapsed") else "")]
            for c in cols:
                v = row["values"][c["key"]]
                vs = v.get("vs_reference")
                mark = "*" if (vs or {}).get("better") else " "
                cells.append(fmt_value(v["value"], v["ci"] if ci else None) + mark)
                if c["kind"] in HEADLINE_KINDS:
                    cells.append("(reference)" if row["method"] == ref else fmt_diff(vs))
            lines.append(cells)
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        text = [f"== {study['name']} ({study.get('split', 'test')} split) ==", fmt.format(*header)]
        text += [fmt.format(*r) for r in lines]
        text.append(f"* = {legend(study)}")
        text += [
            f"{c['label']}, signed (pair fixed in its CI): "
            + "; ".join(
                f"{r['method']} {fmt_pair(r['values'][c['key']].get('pair'))}"
                for r in study["rows"]
            )
            for c in cols
            if c["kind"] == "gap"
        ]
        text += format_sizes(study.get("groups") or {})
        text += [f"note: {n}" for n in all_notes(study)]
        blocks.append("\n".join(text))
    return "\n\n".join(blocks)
