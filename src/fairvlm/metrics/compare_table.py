"""The console table of a comparison (``fairvlm compare``): one line per compared quantity,
with a verdict in words; kept apart from the statistics in :mod:`fairvlm.metrics.paired`."""

from __future__ import annotations

import math

from fairvlm.registry import AUDIT_TASKS


def entries(comparisons: dict):
    """Every leaf entry of ``comparisons``, in a fixed order."""
    for tasks in comparisons.values():
        for metrics in tasks.values():
            for m in metrics.values():
                yield m["overall"]
                for fields in m["by_attribute"].values():
                    yield from fields.values()


def _verdict(e: dict, goal: str | None, level: float) -> str:
    if e["diff"] is None or e["p_value"] is None:
        return "undefined"
    if not e["significant"]:
        return "no significant change"
    up = e["diff"] > 0
    word = "higher" if up else "lower"
    if goal in ("max", "min"):
        better = up == (goal == "max")
        word += ", better" if better else ", worse"
    return f"significantly {word}"


def format_comparison(doc: dict) -> str:
    """The table of a comparison: one line per compared quantity, with a verdict in words."""
    level = doc["level"]
    holm_on = doc["holm"]
    pcol = "p_holm" if holm_on else "p"
    lines = [
        f"{'vs reference':<14} {'task':<9} {'metric':<20} {'value':<26} {'ref':>8} {'other':>8} "
        f"{'diff':>8} {f'{level:.0%} CI':>18} {pcol:>7}  verdict"
    ]
    for name, tasks in doc["comparisons"].items():
        for task, metrics in tasks.items():
            goals = AUDIT_TASKS.get(task).goals if task in AUDIT_TASKS else {}
            for metric, m in metrics.items():
                rows = [("overall", m["overall"], goals.get(metric))]
                for attr, fields in m["by_attribute"].items():
                    for f, e in fields.items():
                        goal = "min" if f == "gap" else goals.get(metric)
                        rows.append((f"{attr} {f}", e, goal))
                for what, e, goal in rows:
                    p = e["p_holm"] if holm_on else e["p_value"]
                    lines.append(
                        f"{name[:14]:<14} {task:<9} {metric[:20]:<20} {what[:26]:<26} "
                        f"{_f(e['ref']):>8} {_f(e['other']):>8} {_f(e['diff']):>8} "
                        f"{_ci(e['ci']):>18} {_f(p, 3):>7}  {_verdict(e, goal, level)}"
                    )
    n_sig = sum(e["significant"] for e in entries(doc["comparisons"]))
    n_all = sum(1 for _ in entries(doc["comparisons"]))
    how = "Holm-adjusted p" if holm_on else "unadjusted p"
    lines.append(
        f"{n_sig} of {n_all} changes are significant at the {level:.0%} level ({how} < "
        f"{1 - level:.3g}; paired bootstrap, {doc['n_boot']} replicates)"
    )
    floor = 2.0 / (doc["n_boot"] + 1)  # the smallest p that n_boot replicates can give
    needed = (1 - level) / n_all if holm_on and n_all else 1 - level
    if floor >= needed:
        lines.append(
            f"note: with {doc['n_boot']} replicates no p-value can go below {floor:.3g}, and "
            f"significance needs p < {needed:.3g}: use --n-boot {math.ceil(2 / needed)} or more"
        )
    for name, notes in doc.get("notes", {}).items():
        lines += [f"{name}: note: {n}" for n in notes]
    return "\n".join(lines)


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ci(ci) -> str:
    lo, hi = (ci or [None, None])[:2]
    return "-" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"


__all__ = ["entries", "format_comparison"]
