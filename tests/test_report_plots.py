"""The report's plots, read back from the matplotlib figures they draw."""

from __future__ import annotations

import pytest

from fairvlm.report import plots


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw, kept open instead of written as PNG."""
    drawn: list = []
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or b"")
    yield drawn
    for fig in drawn:
        plots._pyplot().close(fig)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_legends_keep_at_most_eight_entries(figures):
    names = [f"m{i}" for i in range(11)]
    series = {m: {"a": (0.5, None), "b": (0.6, None)} for m in names}
    plots.group_bars("t", ["a", "b"], series, "acc")
    plots.curves("t", {m: ([1, 2], [0.1, 0.2]) for m in names}, "loss")
    for fig in figures:
        assert _legend(fig.axes[0]) == [*names[:7], "other (4)"]
    plots.curves("t", {m: ([1, 2], [0.1, 0.2]) for m in names[:8]}, "loss")
    assert _legend(figures[-1].axes[0]) == names[:8]  # eight fit: no "other"
    assert plots.styles(names)[7:] == [("0.6", "other (4)")] + [("0.6", "_nolegend_")] * 3


def test_a_zero_value_is_a_visible_bar(figures):
    series = {"base": {"a": (0.0, None), "b": (0.4, None)}, "lora": {"a": (0.2, None)}}
    plots.group_bars("t", ["a", "b"], series, "gap", ["a\nn=20", "b\nn=3\nsmall: not in gap"])
    ax = figures[0].axes[0]
    zero_marks = [t for t in ax.texts if t.get_text() == "0"]
    assert len(zero_marks) == 1  # base in group a; lora has no value in b (nothing drawn)
    lines = ax.collections  # the thick line at 0 of that bar
    assert any(seg[0][1] == 0 == seg[1][1] for c in lines for seg in c.get_segments())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nn=20", "b\nn=3\nsmall: not in gap"]


def test_scatter_draws_cis_and_keeps_collapsed_points_off_the_front(figures):
    points = [(0.30, 0.80), (0.05, 0.50), (0.20, 0.85)]
    cis = [([0.2, 0.4], [0.75, 0.85]), ([0.0, 0.1], None), (None, None)]
    plots.pareto_scatter("t", ["base", "const", "fl"], points, "gap", "acc",
                         collapsed=[False, True, False], cis=cis)  # fmt: skip
    ax = figures[0].axes[0]
    assert sorted(_legend(ax)) == ["Pareto front", "collapsed (at chance)"]
    step = next(ln for ln in ax.get_lines() if ln.get_label() == "Pareto front")
    assert list(step.get_xdata()) == [0.20]  # fl alone: base is dominated, const apart
    # error bars: base's x and y, const's x (fl has none)
    bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    spans = sorted(tuple(map(tuple, seg)) for c in bars for seg in c.get_segments())
    assert ((0.2, 0.8), (0.4, 0.8)) in spans and ((0.3, 0.75), (0.3, 0.85)) in spans
    assert ((0.0, 0.5), (0.1, 0.5)) in spans and len(spans) == 3
