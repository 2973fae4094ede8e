"""The HTML report of an experiment run: comparison table, per-group charts, the
fairness-utility Pareto plot, training curves and sample outputs, all inline."""

from fairvlm.report.html import render_report, write_report
from fairvlm.report.plots import pareto_front

__all__ = ["pareto_front", "render_report", "write_report"]
