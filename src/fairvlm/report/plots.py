"""Plots of the report, as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Legend entries at most: past it, the rest share one grey "other" entry.
MAX_LEGEND = 8


def styles(names: Sequence[str]) -> list[tuple[str, str]]:
    """(colour, legend label) per name: each its own colour while they fit in
    :data:`MAX_LEGEND`; past it the first ``MAX_LEGEND - 1`` keep theirs and the rest are
    grey, under one ``other (k)`` label (``_nolegend_`` hides the repeats)."""
    if len(names) <= MAX_LEGEND:
        return [(f"C{i % 10}", name) for i, name in enumerate(names)]
    keep = MAX_LEGEND - 1
    rest = len(names) - keep
    own = [(f"C{i}", name) for i, name in enumerate(names[:keep])]
    return own + [("0.6", f"other ({rest})" if i == 0 else "_nolegend_") for i in range(rest)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # no timestamps or software tags in the file, so equal plots give equal bytes
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def image_png(image: Any, max_side: int = 160) -> bytes:
    """A PIL image as PNG bytes, upscaled with nearest neighbour when tiny (pixel art stays
    crisp) or thumbnailed when large."""
    from PIL import Image

    img = image.convert("RGB")
    side = max(img.size)
    if side < max_side:
        k = max(1, max_side // side)
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
    elif side > max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def group_bars(
    title: str,
    groups: Sequence[str],
    series: Mapping[str, Mapping[str, tuple[float | None, Sequence[float] | None]]],
    ylabel: str,
    tick_labels: Sequence[str] | None = None,
) -> bytes:
    """Grouped bar chart: one bar per method within each group, 95 % CI as error bars.

    ``series``: method -> group -> (value, [lo, hi] or None); ``tick_labels``: the groups'
    labels (default their names).
    """
    plt = _pyplot()
    methods = list(series)
    n = max(1, len(methods))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) * max(1, n / 3) + 1.5), 3.0))
    x = np.arange(len(groups))
    for i, (method, (color, label)) in enumerate(zip(methods, styles(methods), strict=True)):
        vals, lo, hi = [], [], []
        for g in groups:
            v, ci = series[method].get(g, (None, None))
            v = np.nan if v is None else float(v)
            vals.append(v)
            ci = ci if ci and None not in ci and not np.isnan(v) else None  # n_boot: 0 has none
            lo.append(v - ci[0] if ci else 0.0)
            hi.append(ci[1] - v if ci else 0.0)
        err = np.clip(np.array([lo, hi]), 0, None)
        has_ci = bool(np.any(err))
        pos = x + (i - (n - 1) / 2) * width
        ax.bar(pos, vals, width, label=label, color=color, yerr=err if has_ci else None, capsize=2)
        # a bar of height 0 is invisible: draw it as a thick line at 0, labelled 0
        for p_, v in zip(pos, vals, strict=True):
            if v == 0:
                ax.hlines(0, p_ - width / 2, p_ + width / 2, colors=color, lw=3, zorder=4)
                ax.annotate("0", (p_, 0), ha="center", va="bottom", fontsize=6,
                            xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ticks = list(tick_labels or groups)
    ax.set_xticks(x, ticks, rotation=20 if len(groups) > 4 else 0)
    tick_lines = max(t.count("\n") + 1 for t in ticks) if ticks else 1
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.axhline(0, color="black", lw=0.6)
    # below the axes: a legend inside would hide bars
    ax.legend(
        fontsize=7,
        ncol=min(4, MAX_LEGEND, n),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 0.07 * (tick_lines - 1)),  # below multi-line labels
        frameon=False,
    )
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the Pareto-optimal points for (lower x = fairer, higher y = more useful),
    sorted by x. A point is dropped when another is at least as good on both and better
    on one."""
    idx = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            (xj <= xi and yj >= yi) and (xj < xi or yj > yi)
            for j, (xj, yj) in enumerate(points)
            if j != i
        )
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: (points[i][0], -points[i][1]))


def front_of(points: Sequence[tuple[float, float]], collapsed: Sequence[bool] | None) -> list[int]:
    """:func:`pareto_front` of the points that are not ``collapsed`` (indices into all)."""
    keep = [i for i in range(len(points)) if not (collapsed and collapsed[i])]
    return [keep[j] for j in pareto_front([points[i] for i in keep])]


def pareto_scatter(
    title: str,
    names: Sequence[str],
    points: Sequence[tuple[float, float]],
    xlabel: str,
    ylabel: str,
    collapsed: Sequence[bool] | None = None,
    cis: Sequence[tuple[Sequence[float] | None, Sequence[float] | None]] | None = None,
) -> bytes:
    """Fairness (x, lower is better) against utility (y, higher is better), Pareto front
    as a step line through the non-dominated methods. ``collapsed`` methods (accuracy at
    chance) are drawn apart, as crosses, and never enter the front. ``cis``: per point
    the (x, y) CIs ``[lo, hi]`` (or None), drawn as error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    front = front_of(points, collapsed)
    on_front = set(front)
    apart = [i for i in range(len(points)) if collapsed and collapsed[i]]
    kept = [i for i in range(len(points)) if i not in apart]
    ax.scatter(
        xs[kept], ys[kept], c=["tab:red" if i in on_front else "tab:gray" for i in kept], zorder=3
    )
    for (x, y), (xci, yci) in zip(points, cis or [], strict=False):
        xe = [[max(0.0, x - xci[0])], [max(0.0, xci[1] - x)]] if xci else None
        ye = [[max(0.0, y - yci[0])], [max(0.0, yci[1] - y)]] if yci else None
        if xe or ye:
            ax.errorbar([x], [y], xerr=xe, yerr=ye, fmt="none", ecolor="0.7", lw=0.8, capsize=2)
    if apart:
        ax.scatter(
            xs[apart], ys[apart], marker="x", c="black", zorder=3, label="collapsed (at chance)"
        )
    # methods at the same point share one label
    labels: dict[tuple[float, float], list[str]] = {}
    for i, name in enumerate(names):
        labels.setdefault((round(xs[i], 6), round(ys[i], 6)), []).append(name)
    for (x, y), group in labels.items():
        ax.annotate(", ".join(group), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if front:
        fx, fy = xs[front], ys[front]
        ax.step(fx, fy, where="post", color="tab:red", alpha=0.6, label="Pareto front")
    if front or apart:
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def curves(
    title: str,
    lines: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ylabel: str,
    xlabel: str = "step",
) -> bytes:
    """Line plot: name -> (x values, y values)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.0))
    for (x, y), (color, label) in zip(lines.values(), styles(list(lines)), strict=True):
        ax.plot(list(x), list(y), marker="o" if len(x) < 15 else None, ms=3, label=label, c=color)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if lines:
        ax.legend(
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18),
            frameon=False,
            ncol=min(3, MAX_LEGEND, len(lines)),
        )
    ax.grid(alpha=0.3)
    return _png(fig)
