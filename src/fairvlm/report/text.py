"""The words and numbers of the summary, as text: shared by the console table
(``fairvlm.experiment.summary_table``) and the report (:mod:`fairvlm.report.html`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt_value(v: float | None, ci: list[float] | None = None, digits: int = 3) -> str:
    """``0.812 [0.780, 0.840]`` (``-`` when missing)."""
    if v is None:
        return "-"
    text = f"{v:.{digits}f}"
    if ci:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return text


#: Column kinds that get a change-versus-reference column beside them.
HEADLINE_KINDS = ("utility", "gap")


def fmt_diff(vs: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``+0.075 [+0.055, +0.095]``: a change versus the reference with its paired CI
    (``-`` when not compared)."""
    if not vs or vs.get("diff") is None:
        return "-"
    text = f"{vs['diff']:+.{digits}f}"
    ci = vs.get("ci")
    if ci and None not in ci:
        text += f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"
    return text


#: Why a gap's CI can exclude the gap, and what the signed pair shows instead.
PAIR_EXPLAINED = (
    "Beside each gap (max - min over groups): the signed difference of the two groups "
    "that make it, with the CI of that pair held fixed. The max - min CI can exclude its "
    "own estimate: every bootstrap replicate takes its own highest and lowest group, and "
    "max - min is never below the difference of any one pair, so with close groups the "
    "replicates sit above the estimate. The fixed pair's CI is centred on its estimate "
    "and crosses 0 when the order of the two groups is not settled."
)


def fmt_pair(pair: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``light - dark +0.108 [+0.025, +0.190]`` (``-`` without a pair)."""
    if not pair or pair.get("diff") is None:
        return "-"
    high, low = pair["groups"]
    return f"{high} - {low} " + fmt_diff(pair, digits)


def collapse_notes(study: Mapping[str, Any]) -> list[str]:
    """One line naming the collapsed rows and which accuracies are at or below chance."""
    cols = {c["key"]: c for c in study["columns"]}
    rows = []
    for row in study["rows"]:
        what = [
            f"{cols[k]['label']} {fmt_value(row['values'][k]['value'])} <= "
            f"{fmt_value(cols[k]['chance'])}"
            for k in row.get("collapsed") or []
        ]
        if what:
            rows.append(f"{row['method']} ({'; '.join(what)})")
    if not rows:
        return []
    return [
        "collapsed, accuracy at or below chance (no better than not looking; never marked "
        f"better, not on the Pareto front): {', '.join(rows)}"
    ]


def legend(study: dict[str, Any]) -> str:
    """What a mark means, in words (the console table and the report)."""
    cmp = study.get("comparison") or {}
    ref = study.get("reference", "base")
    if "n_boot" not in cmp:
        return f"significantly better than {ref} (nothing compared: see the notes)"
    seeds = study.get("seeds") or []
    pooled = f" pooled over {len(seeds)} seeds" if len(seeds) > 1 else ""
    return (
        f"significantly better than {ref} at {cmp['level']:.0%} after Holm (paired "
        f"bootstrap{pooled}, {cmp['n_boot']} replicates, {cmp['n_tests']} tests)"
    )


def all_notes(study: Mapping[str, Any]) -> list[str]:
    """The notes under a study's table: collapsed rows, small groups, the comparison's."""
    cmp = study.get("comparison") or {}
    return [*collapse_notes(study), *study.get("notes", []), *cmp.get("notes", [])]


def format_sizes(sizes: dict[str, Any]) -> list[str]:
    """``n per group (vqa, skin_tone): dark 18, light 3 (small)``: one line per task and
    attribute."""
    return [
        f"n per group ({task}, {attr}): "
        + ", ".join(f"{g} {d['n']}" + (" (small)" if d["small"] else "") for g, d in groups.items())
        for task, by_attr in sizes.items()
        for attr, groups in by_attr.items()
    ]
