"""``write_report(run_dir, out_html)``: one self-contained HTML file per run.

Everything is inline: CSS in a ``<style>``, every plot and image a ``data:`` PNG, no
script, and a Content-Security-Policy that forbids any other source, so opening the
file makes no network request. Sections per study: the comparison table (cells
significantly better than the study's reference row marked), per-group bar charts per
metric, the fairness-utility scatter with its Pareto front, training curves, and sample
outputs side by side per group.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from fairvlm.atomic import atomic_write_text
from fairvlm.report import collect, plots
from fairvlm.report.text import (
    HEADLINE_KINDS,
    PAIR_EXPLAINED,
    all_notes,
    fmt_diff,
    fmt_pair,
    fmt_value,
    format_sizes,
    legend,
)

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;margin-top:36px}
h3{font-size:15px;margin-top:22px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
td.better{background:#d9f2d9;font-weight:bold}td.better::after{content:" \\2605"}
.ci{color:#777;font-size:11px}.pair{color:#555;font-size:10px}.plots img{margin:4px;border:1px solid #eee}
.samples td{vertical-align:top;white-space:normal;text-align:left;max-width:260px}
.note{color:#666;font-size:12px}
"""
_GOAL_TEXT = {"max": "higher is better", "min": "lower is better", "zero": "closer to 0 is better"}


def _img(png: bytes, alt: str, cls: str = "plot") -> str:
    data = base64.b64encode(png).decode()
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(study: dict) -> str:
    cols = study["columns"]
    ref = study.get("reference", "base")
    delta_th = f'<th title="change versus {html.escape(ref)}, paired CI">&Delta; vs {html.escape(ref)}</th>'
    head = "".join(
        f'<th title="{html.escape(_GOAL_TEXT.get(c["goal"], ""))}">{html.escape(c["label"])}</th>'
        + (delta_th if c["kind"] in HEADLINE_KINDS else "")
        for c in cols
    )
    body = []
    for row in study["rows"]:
        flag = ' <span class="note">(collapsed: at chance)</span>' if row.get("collapsed") else ""
        cells = [f"<td>{html.escape(row['method'])}{flag}</td>"]
        for c in cols:
            v = row["values"][c["key"]]
            vs = v.get("vs_reference")
            ci = v.get("ci")
            text = fmt_value(v["value"])
            if ci and v["value"] is not None:
                text += f'<br><span class="ci">[{ci[0]:.3f}, {ci[1]:.3f}]</span>'
            if v.get("pair"):
                text += f'<br><span class="pair">{html.escape(fmt_pair(v["pair"]))}</span>'
            cells.append(f'<td class="{"better" if (vs or {}).get("better") else ""}">{text}</td>')
            if c["kind"] in HEADLINE_KINDS:
                cells.append(f'<td class="delta">{_delta(vs, row["method"] == ref)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    has_pair = any(v.get("pair") for r in study["rows"] for v in r["values"].values())
    pair_note = f'<p class="note">{html.escape(PAIR_EXPLAINED)}</p>' if has_pair else ""
    notes = "".join(
        f'<p class="note">{html.escape(n)}</p>' for n in format_sizes(study.get("groups") or {})
    ) + "".join(f'<p class="note">note: {html.escape(n)}</p>' for n in all_notes(study))
    return (
        f'<table class="summary" id="summary-{html.escape(study["name"])}">'
        f"<tr><th>method</th>{head}</tr>{''.join(body)}</table>"
        f'<p class="note">95% bootstrap CIs in brackets; &Delta;: the change versus '
        f"{html.escape(ref)} with its paired 95% CI; &#9733; {html.escape(legend(study))} "
        "(gap, NDKL, mention rate: lower is better; skews: closer to 0; utility and ES: "
        f"higher).</p>{pair_note}{notes}"
    )


def _delta(vs: dict | None, is_reference: bool) -> str:
    if is_reference:
        return '<span class="note">reference</span>'
    text = fmt_diff(vs)
    if " [" not in text:
        return text
    diff, ci = text.split(" [", 1)
    return f'{diff}<br><span class="ci">[{ci}</span>'


def _group_charts(run_dir: Path, study: dict, metrics: dict[str, dict]) -> str:
    """One bar chart per (metric, attribute): a bar per method in each group; ranking
    metrics (skews, NDKL) get one chart with a bar per method for each attribute."""
    out = []
    seen = set()
    for c in study["columns"]:
        if c["field"] != "overall":
            continue
        if c["kind"] == "skew":
            series = {
                m: collect.attribute_values(metrics[m], c["task"], c["metric"]) for m in metrics
            }
            charts = [("attribute", series)]
        else:
            charts = [
                (
                    attr,
                    {
                        m: collect.group_values(metrics[m], c["task"], c["metric"], attr)
                        for m in metrics
                    },
                )
                for attr in study.get("attributes") or []
            ]
        for attr, series in charts:
            groups = sorted({g for s in series.values() for g in s})
            if not groups or (c["task"], c["metric"], attr) in seen:
                continue
            seen.add((c["task"], c["metric"], attr))
            counts: dict[str, tuple] = {}
            for m in metrics:  # the same samples in every audit: the first count found
                for g, nc in collect.group_counts(metrics[m], c["task"], c["metric"], attr).items():
                    counts.setdefault(g, nc)
            ticks = [_tick(g, *counts.get(g, (None, False))) for g in groups]
            png = plots.group_bars(
                f"{c['metric']} ({c['task']}) by {attr}", groups, series, c["metric"], ticks
            )
            out.append(_img(png, f"{c['metric']} by {attr}"))
    return "".join(out)


def _tick(group: str, n: int | None, small: bool) -> str:
    """A bar chart's group label: the name, its n, and whether the gap leaves it out."""
    if n is None:
        return group
    return f"{group}\nn={n}" + ("\nsmall: not in gap" if small else "")


def _abs_ci(ci: list[float] | None) -> list[float] | None:
    """The interval of ``|x|`` for ``x`` in ``ci``."""
    if not ci:
        return None
    lo, hi = ci
    return [0.0, max(-lo, hi)] if lo <= 0 <= hi else sorted([abs(lo), abs(hi)])


def _scatter(study: dict) -> str:
    """Utility against each fairness measure of the study (its gap, or |MinSkew| and the
    mention rate when the study has social metrics), with their CIs as error bars,
    Pareto front marked."""
    cols = study["columns"]
    util = next((c for c in cols if c["kind"] == "utility"), None)
    social = [c for c in cols if c["key"].endswith((".min_skew", ".mention_rate"))]
    fairness = social or [c for c in cols if c["kind"] == "gap"][:1]
    out = []
    for fair in fairness if util else []:
        names, points, collapsed, cis = [], [], [], []
        for row in study["rows"]:
            fv, uv = row["values"][fair["key"]], row["values"][util["key"]]
            x, y = fv["value"], uv["value"]
            if x is None or y is None:
                continue
            names.append(row["method"])
            zero = fair["goal"] == "zero"
            points.append((abs(x) if zero else x, y))
            collapsed.append(bool(row.get("collapsed")))
            cis.append((_abs_ci(fv.get("ci")) if zero else fv.get("ci"), uv.get("ci")))
        if not points:
            continue
        xlabel = f"|{fair['label']}|" if fair["goal"] == "zero" else fair["label"]
        png = plots.pareto_scatter(
            f"{study['name']}: {fair['label']} vs {util['label']}",
            names,
            points,
            f"{xlabel} (lower is fairer)",
            util["label"],
            collapsed=collapsed,
            cis=cis,
        )
        out.append(_img(png, f"fairness-utility scatter ({fair['label']})"))
        front = ", ".join(names[i] for i in plots.front_of(points, collapsed))
        apart = ", ".join(n for n, c in zip(names, collapsed, strict=True) if c)
        out.append(
            f'<p class="note">{html.escape(fair["label"])}: Pareto front {html.escape(front)}'
            + (f"; collapsed (at chance, drawn apart): {html.escape(apart)}" if apart else "")
            + "</p>"
        )
    return "".join(out)


def _curves(run_dir: Path, study: dict) -> str:
    """One plot per family (LM loss, MI estimate, head accuracy, skew), a line per
    method (and per key when a method logs several, e.g. MI per attribute)."""
    families: dict[str, dict[str, tuple]] = {}
    for row in study["rows"]:
        for family, lines in collect.training_curves(run_dir, row).items():
            for key, xy in lines.items():
                name = row["method"] if len(lines) == 1 else f"{row['method']}: {key}"
                families.setdefault(family, {})[name] = xy
    out = []
    for family, lines in families.items():
        xlabel = "epoch" if family == "skew" else "step"
        png = plots.curves(f"{study['name']}: {family}", lines, family, xlabel=xlabel)
        out.append(_img(png, f"{family} curves"))
    return "".join(out) or '<p class="note">No fine-tuned method in this study.</p>'


def _samples(run_dir: Path, study: dict, per_group: int) -> str:
    rows = study["rows"]
    records = {r["method"]: collect.read_records(run_dir, r) for r in rows}
    base = records.get(rows[0]["method"]) if rows else None
    attr = (study.get("attributes") or [None])[0]
    task, picked = collect.pick_samples(base, attr, per_group)
    if not task:
        return '<p class="note">No audit records to show.</p>'
    ids = {sid for group in picked.values() for sid in group}
    images = collect.sample_images(
        collect.resolve(run_dir, study.get("data")), study.get("split", "test"), ids
    )
    outputs = {m: collect.outputs_by_sample(df, task) for m, df in records.items()}
    head = "".join(f"<th>{html.escape(m)}</th>" for m in outputs)
    body = []
    for group, sids in picked.items():
        for sid in sids:
            img = images.get(sid)
            pic = _img(plots.image_png(img), f"sample {sid}", "sample") if img else "(no image)"
            ref = (outputs.get(rows[0]["method"], {}).get(sid) or {}).get("target")
            cells = [
                f"<td><b>{html.escape(str(attr or ''))}={html.escape(group)}</b><br>{pic}"
                f"<br><span class='note'>{html.escape(sid)}</span></td>",
                f"<td>{html.escape(str(ref) if ref is not None else '-')}</td>",
            ]
            for m in outputs:
                text = (outputs[m].get(sid) or {}).get("output")
                cells.append(f"<td>{html.escape(str(text) if text is not None else '-')}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<p class='note'>Task <b>{html.escape(task)}</b>: the same test images, output of "
        "each model (before = base, after = each method).</p>"
        f'<table class="samples"><tr><th>sample</th><th>reference</th>{head}</tr>'
        + "".join(body)
        + "</table>"
    )


def render_report(run_dir: str | Path, samples_per_group: int | None = None) -> str:
    """The report's HTML text (see :func:`write_report`)."""
    run_dir = Path(run_dir)
    summary = collect.load_summary(run_dir)
    per_group = samples_per_group or int(summary.get("samples_per_group", 2))
    title = f"fairvlm report: {summary.get('experiment', run_dir.name)}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>seed {summary.get('seed')} &middot; fairvlm "
        f"{html.escape(str(summary.get('version', '')))} &middot; {len(summary['studies'])} "
        "studies. Everything on this page is inline; it loads nothing.</p>",
    ]
    for study in summary["studies"]:
        metrics: dict[str, Any] = {
            r["method"]: collect.load_metrics(run_dir, r) for r in study["rows"]
        }
        name = html.escape(study["name"])
        parts += [
            f"<h2 id='study-{name}'>{name}</h2>",
            "<h3>Comparison</h3>",
            _table(study),
            f"<h3>Per-group metrics</h3><div class='plots' id='groups-{name}'>",
            _group_charts(run_dir, study, metrics) or "<p class='note'>No group metrics.</p>",
            f"</div><h3>Fairness vs utility</h3><div class='plots' id='pareto-{name}'>",
            _scatter(study),
            f"</div><h3>Training curves</h3><div class='plots' id='curves-{name}'>",
            _curves(run_dir, study),
            f"</div><h3>Sample outputs</h3><div id='samples-{name}'>",
            _samples(run_dir, study, per_group),
            "</div>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out_html: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a run folder (default ``RUN/report.html``).

    Raises:
        DataError: ``run_dir`` has no summary.json.
    """
    text = render_report(run_dir)
    out = Path(out_html) if out_html else Path(run_dir) / "report.html"
    atomic_write_text(out, text)
    return out
