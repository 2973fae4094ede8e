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
from fairvlm.experiment.summary import choose_columns, format_table, study_summary
from fairvlm.report import pareto_front, render_report, write_report

GROUPS = ("dark", "light")


def acc_entry(groups: dict[str, float], overall: float) -> dict:
    gap = max(groups.values()) - min(groups.values())
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


def test_columns_and_best_marks(run_dir):
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
    best = study["best"]
    assert best["vqa.accuracy"] == ["lora", "fairllava"]  # 0.825 each: a tie marks both
    assert best["vqa.accuracy.gap.skin_tone"] == ["fairllava"]  # gap 0.05
    assert best["report.rouge_l"] == ["lora"]
    assert best["probe.min_skew"] == ["fairllava"]  # |0.2| is closest to 0
    assert best["report.rouge_l.gap.skin_tone"] == ["base", "lora", "fairllava"]  # all 0
    lora = next(r for r in study["rows"] if r["method"] == "lora")
    assert lora["values"]["vqa.accuracy.gap.skin_tone"]["value"] == pytest.approx(0.25)
    assert lora["values"]["vqa.accuracy.es.skin_tone"]["value"] == pytest.approx(0.825 / 1.25)
    text = format_table(summary)
    assert "0.825 [0.775, 0.875]" in text and "fairllava" in text


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
    # the best accuracy cell is marked, the samples show each method's output
    assert re.search(r'<td class="best">0\.825', text)
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
