"""The HTML report and the comparison table, on a run folder fabricated by hand.

(The browser test in test_report_browser.py renders the report of a real quick demo.)
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairvlm.data import Sample, save_dataset
from fairvlm.errors import DataError
from fairvlm.experiment.summary import choose_columns, study_summary
from fairvlm.experiment.summary_table import format_table
from fairvlm.report import pareto_front, render_report, write_report

GROUPS = ("dark", "light")


def acc_entry(groups: dict[str, float], overall: float) -> dict:
    gap = max(groups.values()) - min(groups.values())
    high, low = max(groups, key=groups.get), min(groups, key=groups.get)
    return {
        "overall": overall,
        "ci": [overall - 0.05, overall + 0.05],
        "by_attribute": {
            "skin_tone": {
                "groups": {
                    g: {"value": v, "n": 20, "ci": [v - 0.1, v + 0.1], "small": False}
                    for g, v in groups.items()
                },
                "gap": gap,
                "gap_ci": [gap - 0.02, gap + 0.02],
                "gap_pair": {"groups": [high, low], "diff": gap, "ci": [gap - 0.1, gap + 0.1]},
                "es_fairllava": overall / (1 + gap),
                "es_fairclip": overall / (1 + sum(abs(v - overall) for v in groups.values())),
            }
        },
    }


def fake_metrics(dark: float, light: float, rouge: float, min_skew: float) -> dict:
    overall = (dark + light) / 2
    return {
        "model": "m",
        "data": "d",
        "tasks": {
            "vqa": {
                "n": 40,
                "metrics": {"accuracy": acc_entry({"dark": dark, "light": light}, overall)},
            },
            "report": {
                "n": 40,
                "metrics": {"rouge_l": acc_entry({"dark": rouge, "light": rouge}, rouge)},
            },
            "probe": {
                "n": 40,
                "metrics": {
                    # the "ranking" shape of fairvlm.metrics: one value per attribute, no CI
                    "min_skew": {
                        "kind": "ranking",
                        "overall": min_skew,
                        "k": 10,
                        "by_attribute": {"skin_tone": min_skew, "sex": min_skew / 2},
                    },
                    "max_skew": {
                        "kind": "ranking",
                        "overall": -min_skew,
                        "k": 10,
                        "by_attribute": {"skin_tone": -min_skew, "sex": 0.1},
                    },
                },
            },
        },
    }


METHODS = {
    "base": fake_metrics(0.60, 0.90, 0.30, -1.5),
    "lora": fake_metrics(0.70, 0.95, 0.40, -0.9),
    "fairllava": fake_metrics(0.80, 0.85, 0.35, 0.2),
}


def fake_versus(columns) -> dict:
    """A comparison with the reference as :func:`compare_to_reference` gives it: lora's
    accuracy significantly higher (marked), fairllava's significantly lower (not marked),
    fairllava's gap lower but not significant (not marked)."""

    def vs(diff: float, p_holm: float, better: bool) -> dict:
        ci = [diff - 0.02, diff + 0.02]
        return {"diff": diff, "ci": ci, "p_value": p_holm / 4, "p_holm": p_holm,
                "significant": p_holm < 0.05, "better": better}  # fmt: skip

    cells = {m: dict.fromkeys(c.key for c in columns) for m in ("lora", "fairllava")}
    cells["lora"]["vqa.accuracy"] = vs(0.075, 0.01, True)
    cells["fairllava"]["vqa.accuracy"] = vs(-0.05, 0.02, False)
    cells["fairllava"]["vqa.accuracy.gap.skin_tone"] = vs(-0.25, 0.3, False)
    return {"n_boot": 1000, "level": 0.95, "seed": 0, "n_tests": 3, "notes": [], "cells": cells}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as `fairvlm run` writes it: summary.json, audits, a training log, data."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            id=f"t{i}",
            image=Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)),
            prompt="Describe the lesion.",
            target=f"ref {i}",
            task="report",
            split="test",
            attributes={"skin_tone": GROUPS[i % 2]},
        )
        for i in range(6)
    ]
    save_dataset({"test": samples}, root / "clinical/data/dataset")
    rows = []
    for method, metrics in METHODS.items():
        audit = root / f"clinical/audit/{method}"
        audit.mkdir(parents=True)
        (audit / "metrics.json").write_text(json.dumps(metrics))
        pd.DataFrame(
            {
                "sample_id": [s.id for s in samples],
                "task": "report",
                "split": "test",
                "prompt": "Describe the lesion.",
                "target": [s.target for s in samples],
                "output": [f"{method} says {s.id}" for s in samples],
                "attr.skin_tone": [s.attributes["skin_tone"] for s in samples],
            }
        ).to_parquet(audit / "records.parquet")
        train = None
        if method != "base":
            train = f"clinical/train/{method}"
            (root / train).mkdir(parents=True)
            log = [{"step": s, "loss": 3.0 / s, "epoch": s / 10} for s in (1, 2, 3)]
            if method == "fairllava":
                for i, entry in enumerate(log):
                    entry["mi/skin_tone"] = 0.3 - 0.1 * i
            (root / train / "training_log.jsonl").write_text(
                "".join(json.dumps(e) + "\n" for e in log)
            )
        rows.append(
            {
                "method": method,
                "audit": f"clinical/audit/{method}",
                "train": train,
                "steer": None,
                "metrics": metrics,
            }
        )
    study = study_summary(
        "clinical",
        METHODS["base"],
        rows,
        attributes=["skin_tone"],
        utility=None,
        extra={"data": "clinical/data/dataset", "split": "test"},
        versus=fake_versus,
    )
    summary = {
        "experiment": "fake",
        "seed": 0,
        "version": "0",
        "samples_per_group": 2,
        "studies": [study],
    }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def test_columns_and_better_marks(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    study = summary["studies"][0]
    keys = [c["key"] for c in study["columns"]]
    assert keys == [
        "vqa.accuracy",
        "vqa.accuracy.gap.skin_tone",
        "vqa.accuracy.es.skin_tone",
        "report.rouge_l",
        "report.rouge_l.gap.skin_tone",
        "report.rouge_l.es.skin_tone",
        "probe.max_skew",
        "probe.min_skew",
    ]
    # only a significant change in the column's direction is marked; the best value
    # without significance (fairllava's gap) is not
    assert study["better"] == {"vqa.accuracy": ["lora"]}
    lora = next(r for r in study["rows"] if r["method"] == "lora")
    assert lora["values"]["vqa.accuracy.gap.skin_tone"]["value"] == pytest.approx(0.25)
    assert lora["values"]["vqa.accuracy.es.skin_tone"]["value"] == pytest.approx(0.825 / 1.25)
    text = format_table(summary)
    assert "0.825 [0.775, 0.875]*" in text and "0.825 [0.775, 0.875] " in text
    assert "* = significantly better than base at 95% after Holm" in text
    # each utility and gap column is followed by its change versus base, with its paired CI
    header, base_line, lora_line = text.splitlines()[1:4]
    assert header.split()[:6] == ["method", "accuracy", "(vqa)", "Δ", "vs", "base"]
    assert header.count("Δ vs base") == 4  # accuracy, its gap, rouge_l, its gap
    assert "(reference)" in base_line
    assert "0.825 [0.775, 0.875]*  +0.075 [+0.055, +0.095]" in lora_line
    assert "fairllava" in text and "-0.250 [-0.270, -0.230]" in text
    # the signed difference of the two groups that make each gap, with its CI
    assert (
        "gap skin_tone (vqa), signed (pair fixed in its CI): base light - dark +0.300 "
        "[+0.200, +0.400]; lora light - dark +0.250 [+0.150, +0.350]; fairllava light - dark "
        "+0.050 [-0.050, +0.150]" in text
    )


def test_utility_selection_and_missing_columns():
    cols = choose_columns(METHODS["base"], attributes=[], utility=["report.rouge_l"])
    assert [c.key for c in cols] == ["report.rouge_l", "probe.max_skew", "probe.min_skew"]


def test_pareto_front_by_hand():
    # (fairness x lower better, utility y higher better)
    pts = [(0.30, 0.75), (0.05, 0.82), (0.25, 0.90), (0.25, 0.70), (0.40, 0.90)]
    assert pareto_front(pts) == [1, 2]


def test_report_is_self_contained_with_all_sections(run_dir, tmp_path):
    out = write_report(run_dir, tmp_path / "r.html")
    text = out.read_text()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<script" not in text and "url(" not in text
    # group bars (2 utility metrics x skin_tone, 2 skews by attribute), one scatter
    # (|MinSkew| vs accuracy), curves: LM loss (lora + fairllava), MI (fairllava)
    assert text.count('class="plot"') == 4 + 1 + 2
    assert 'alt="fairness-utility scatter (min skew)"' in text
    assert text.count('class="sample"') == 4  # 2 per group x 2 groups
    # lora's accuracy (significantly better than base) is marked, the samples show each
    # method's output
    assert len(re.findall(r'<td class="better">0\.825', text)) == 1
    assert "&#9733; significantly better than base at 95% after Holm" in text
    assert text.count("&Delta; vs base</th>") == 4
    assert "n per group (vqa, skin_tone): dark 20, light 20</p>" in text
    assert '<span class="pair">light - dark +0.050 [-0.050, +0.150]</span>' in text
    assert "The max - min CI can exclude its own estimate" in text
    assert '<td class="delta">+0.075<br><span class="ci">[+0.055, +0.095]</span></td>' in text
    assert "fairllava says t0" in text and "base says t1" in text and "ref 0" in text


def test_report_images_decode(run_dir):
    import base64
    import io

    text = render_report(run_dir)
    blobs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    sizes = {Image.open(io.BytesIO(base64.b64decode(b))).size for b in blobs}
    assert len(blobs) == 11 and all(w > 50 and h > 50 for w, h in sizes)


def test_report_needs_summary(tmp_path):
    with pytest.raises(DataError, match="no summary.json"):
        write_report(tmp_path, tmp_path / "r.html")


def test_cli_report(run_dir, tmp_path, capsys):
    from fairvlm.cli import main

    out = tmp_path / "cli.html"
    assert main(["report", str(run_dir), "--out", str(out), "--table"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out}" in printed and "== clinical (test split) ==" in printed
    assert out.read_text().startswith("<!DOCTYPE html>")
