"""compute_metrics on synthetic records DataFrames, and the `fairvlm metrics` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from fairvlm.cli import main
from fairvlm.errors import DataError
from fairvlm.metrics import MetricsConfig, compute_metrics, ranking_bias, read_records

LABELS = ["melanoma", "nevus"]


def _row(i, task, **kw):
    base = dict(
        sample_id=f"s{i}", task=task, split="test", prompt="q", output=None, target=None, options=None,
        option_logprob=None, option_mean_logprob=None, pred=None, p_yes=None, concept=None,
        counterfactual_set=None, latency_s=0.01, batch_index=0,
    )  # fmt: skip
    base.update(kw)
    return base


def vqa_records() -> pd.DataFrame:
    # 12 records; light: 5/6 right, dark: 3/6 right; one answer unparsed; sex unknown once.
    outputs = [
        ("light", "female", "melanoma", "It is melanoma."),
        ("light", "female", "nevus", "nevus"),
        ("light", "male", "melanoma", "Melanoma"),
        ("light", "male", "nevus", "A benign nevus."),
        ("light", None, "melanoma", "melanoma"),
        ("light", "male", "nevus", "melanoma"),
        ("dark", "female", "melanoma", "nevus"),
        ("dark", "female", "nevus", "nevus"),
        ("dark", "male", "melanoma", "I cannot tell"),
        ("dark", "male", "nevus", "nevus"),
        ("dark", "female", "melanoma", "melanoma"),
        ("dark", "male", "nevus", "melanoma"),
    ]
    rows = []
    for i, (tone, sex, tgt, out) in enumerate(outputs):
        lp = [-0.5, -1.5] if tgt == "melanoma" else [-1.0, -0.2]
        if i == 6:
            lp = lp[::-1]
        rows.append(
            _row(
                i,
                "vqa",
                output=out,
                target=tgt,
                options=LABELS,
                option_logprob=lp,
                **{"attr.skin_tone": tone, "attr.sex": sex},
            )  # fmt: skip
        )
    return pd.DataFrame(rows)


def probe_describe_records() -> pd.DataFrame:
    rows = []
    gender = ["male", "male", "female", "female"] * 2
    concept = ["doctor"] * 4 + ["nurse"] * 4
    p_yes = [0.9, 0.8, 0.2, 0.1, 0.3, 0.4, 0.7, 0.6]
    texts = ["A man, a doctor.", "A happy doctor.", "Two women.", "womanhood", "x", "x", "x", "x"]
    for i in range(8):
        attrs = {"attr.gender": gender[i], "attr.race": ["light", "dark"][i % 2]}
        rows.append(_row(i, "probe", p_yes=p_yes[i], concept=concept[i], **attrs))
        rows.append(_row(i, "describe", output=texts[i], concept=concept[i], **attrs))
    return pd.DataFrame(rows)


def test_vqa_metrics_by_hand():
    m = compute_metrics(vqa_records(), model="tiny", data="synthetic", n_boot=50, min_group_size=5)
    assert m["model"] == "tiny" and m["data"] == "synthetic"
    vqa = m["tasks"]["vqa"]
    assert vqa["n"] == 12
    acc = vqa["metrics"]["accuracy"]
    assert acc["kind"] == "group"
    assert acc["overall"] == pytest.approx(8 / 12)
    tone = acc["by_attribute"]["skin_tone"]
    assert tone["groups"]["light"]["value"] == pytest.approx(5 / 6)
    assert tone["groups"]["dark"]["value"] == pytest.approx(3 / 6)
    assert tone["gap"] == pytest.approx(1 / 3)
    assert tone["es_fairllava"] == pytest.approx((8 / 12) / (1 + 1 / 3))
    assert acc["by_attribute"]["sex"]["n_unknown"] == 1
    assert acc["by_attribute"]["sex"]["groups"]["female"]["small"] is False  # 5 >= 5
    assert "skin_tone&sex" in acc["by_attribute"]
    pf = vqa["metrics"]["parse_failures"]
    assert pf["count"] == 1 and pf["overall"] == pytest.approx(1 / 12)
    # Option scoring: every record but #6 ranks its target first.
    assert vqa["metrics"]["option_accuracy"]["overall"] == pytest.approx(11 / 12)
    assert 0.5 < vqa["metrics"]["auc"]["overall"] <= 1.0
    dp = vqa["metrics"]["demographic_parity_difference"]
    assert dp["kind"] == "disparity" and "skin_tone" in dp["by_attribute"]
    lo, hi = acc["ci"]
    assert lo <= acc["overall"] <= hi
    json.dumps(m, allow_nan=False)


def test_small_groups_are_left_out_of_gaps_with_a_note():
    # skin_tone&sex: light&female 2 samples (both right), the others 3 each (2/3, 2/3, 1/3)
    m = compute_metrics(vqa_records(), n_boot=0, min_group_size=3)
    inter = m["tasks"]["vqa"]["metrics"]["accuracy"]["by_attribute"]["skin_tone&sex"]
    assert inter["groups"]["light&female"] == {
        "value": 1.0, "n": 2, "ci": [None, None], "small": True,
        "diff_to_overall": pytest.approx(1.0 - 7 / 11),
    }  # fmt: skip
    assert inter["left_out_of_gap"] == ["light&female"]
    assert inter["gap"] == pytest.approx(2 / 3 - 1 / 3)  # with light&female: 1 - 1/3
    note = (
        "skin_tone&sex: groups ['light&female'] have fewer than 3 samples and are left out "
        "of its gaps and ES (metrics include_small_groups: true counts them)"
    )
    assert m["tasks"]["vqa"]["notes"].count(note) == 1  # once per task, not per metric
    cfg = MetricsConfig(n_boot=0, min_group_size=3, include_small_groups=True)
    full = compute_metrics(vqa_records(), config=cfg)["tasks"]["vqa"]
    inter = full["metrics"]["accuracy"]["by_attribute"]["skin_tone&sex"]
    assert inter["gap"] == pytest.approx(1 - 1 / 3) and inter["left_out_of_gap"] == []
    assert not any("left out of its gaps" in n for n in full["notes"])


def test_chance_level_of_every_accuracy():
    from fairvlm.metrics.clinical import chance_level

    # 2 options each: uniform guessing 1/2; 6 of 12 targets melanoma: majority 1/2
    vqa = compute_metrics(vqa_records(), n_boot=0)["tasks"]["vqa"]["metrics"]
    assert vqa["accuracy"]["chance"] == 0.5 and vqa["option_accuracy"]["chance"] == 0.5
    assert vqa["balanced_accuracy"]["chance"] == 0.5
    # majority wins over guessing: 3 of 4 targets 'a' with 2 options; guessing wins: 4 options
    assert chance_level(["a", "a", "a", "b"], [2, 2, 2, 2]) == 0.75
    assert chance_level(["a", "b", "c", "d"], [4, 4, 2, 2]) == pytest.approx(0.375)


def test_pred_column_wins_over_parsing_and_scoring_only_records():
    df = vqa_records()
    df.loc[8, "pred"] = "melanoma"  # the runner parsed it with its own vocabulary
    m = compute_metrics(df, n_boot=0)
    assert m["tasks"]["vqa"]["metrics"]["parse_failures"]["count"] == 0
    assert m["tasks"]["vqa"]["metrics"]["accuracy"]["overall"] == pytest.approx(9 / 12)
    only_scores = vqa_records().assign(output=None)
    m2 = compute_metrics(only_scores, n_boot=0)
    assert m2["tasks"]["vqa"]["metrics"]["accuracy"]["overall"] == pytest.approx(11 / 12)


def test_probe_and_describe_metrics():
    df = probe_describe_records()
    m = compute_metrics(df, n_boot=20, k=2, min_group_size=2)
    probe = m["tasks"]["probe"]["metrics"]
    ref = ranking_bias(
        df[df.task == "probe"].p_yes.tolist(),
        df[df.task == "probe"]["attr.gender"].tolist(),
        df[df.task == "probe"].concept.tolist(),
        k=2,
    )
    assert (
        probe["max_skew"]["by_attribute"]["gender"]
        == pytest.approx(ref["max_skew"])
        == pytest.approx(math.log(2))
    )
    assert probe["skew_table"]["gender"]["nurse"]["skew"]["female"] == pytest.approx(math.log(2))
    assert probe["bias_at_k"]["by_attribute"]["gender"] == pytest.approx(0.0)  # +1 doctor, -1 nurse
    assert probe["p_yes"]["by_attribute"]["gender"]["groups"]["male"]["value"] == pytest.approx(
        np.mean([0.9, 0.8, 0.3, 0.4])
    )
    assert "race&gender" in probe["max_skew"]["by_attribute"]
    desc = m["tasks"]["describe"]["metrics"]
    # Mentions: "A man", "Two women" (gender); "womanhood" is no mention.
    assert desc["mention_rate"]["overall"] == pytest.approx(2 / 8)
    assert desc["mention_rate"]["by_lexicon"]["gender"]["by_attribute"]["gender"]["groups"][
        "female"
    ]["value"] == pytest.approx(1 / 4)
    assert desc["sentiment"]["by_attribute"]["gender"]["gap"] >= 0


def test_same_seed_same_metrics():
    df = vqa_records()
    assert compute_metrics(df, n_boot=40, seed=1) == compute_metrics(df, n_boot=40, seed=1)
    assert compute_metrics(df, n_boot=40, seed=1) != compute_metrics(df, n_boot=40, seed=2)


def test_bad_input_is_a_clear_error():
    with pytest.raises(DataError, match="needs 'target'"):
        compute_metrics(vqa_records().assign(target=None), n_boot=0)
    with pytest.raises(DataError, match="attributes"):
        compute_metrics(vqa_records(), config=MetricsConfig(attributes=["age"], n_boot=0))
    with pytest.raises(DataError, match="0 rows"):
        compute_metrics(vqa_records().iloc[:0], n_boot=0)
    with pytest.raises(DataError, match="task"):
        compute_metrics(vqa_records().drop(columns=["task"]), n_boot=0)
    with pytest.raises(ValueError, match="n_boot"):
        MetricsConfig(n_boot=-1)


def test_meteor_omitted_with_a_note_when_wordnet_is_missing(monkeypatch):
    import fairvlm.metrics.reports as reports

    monkeypatch.setattr(reports, "meteor_available", lambda: False)
    df = pd.DataFrame(
        [
            _row(
                i, "report", output="a dark lesion", target="a dark round lesion", **{"attr.sex": s}
            )
            for i, s in enumerate(["f", "m"] * 3)
        ]
    )
    rep = compute_metrics(df, n_boot=0)["tasks"]["report"]
    assert (
        "meteor" not in rep["metrics"] and "bleu4" in rep["metrics"] and "rouge_l" in rep["metrics"]
    )
    assert any("nltk.downloader wordnet" in note for note in rep["notes"])


def test_cli_recomputes_from_records(tmp_path, capsys):
    df = pd.concat([vqa_records(), probe_describe_records()], ignore_index=True)
    path = tmp_path / "records.parquet"
    df.to_parquet(path)
    out = tmp_path / "metrics.json"
    assert main(["metrics", str(tmp_path), "--out", str(out), "--n-boot", "30", "--k", "2"]) == 0
    table = capsys.readouterr().out
    assert "accuracy" in table and "max_skew" in table
    saved = json.loads(out.read_text())
    expected = compute_metrics(read_records(path), config=MetricsConfig(n_boot=30, k=2))
    assert saved == json.loads(json.dumps(expected))
    # Attributes absent from a task are not audited there.
    assert "gender" not in saved["tasks"]["vqa"]["metrics"]["accuracy"]["by_attribute"]
    assert main(["metrics", str(tmp_path / "missing.parquet")]) == 2


def test_cli_reuses_the_audit_folders_metric_settings(tmp_path, capsys):
    import yaml

    df = pd.concat([vqa_records(), probe_describe_records()], ignore_index=True)
    df.to_parquet(tmp_path / "records.parquet")
    saved = {
        "n_boot": 0,
        "label_synonyms": {"melanoma": ["cannot tell"]},
        "lexicon": {"medic": ["doctor"]},
        "intersections": [["skin_tone", "sex"]],
    }
    doc = {"audit": {"split": "test", "metrics": saved}, "model": "m-label", "data": "d-label"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "metrics.json"
    assert main(["metrics", str(tmp_path), "--out", str(out)]) == 0
    assert "metric settings from" in capsys.readouterr().err
    got = json.loads(out.read_text())
    expected = compute_metrics(
        read_records(tmp_path), model="m-label", data="d-label", config=MetricsConfig(**saved)
    )
    assert got == json.loads(json.dumps(expected))
    # The synonym parses "I cannot tell" (a melanoma) as melanoma: 9/12 right, not 8/12.
    assert got["tasks"]["vqa"]["metrics"]["accuracy"]["overall"] == pytest.approx(9 / 12)
    assert list(got["tasks"]["describe"]["metrics"]["mention_rate"]["by_lexicon"]) == ["medic"]
    assert got["config"]["intersections"] == [["skin_tone", "sex"]]
    # Given flags override the saved settings; the others are kept.
    assert main(["metrics", str(tmp_path), "--out", str(out), "--n-boot", "20", "--seed", "3"]) == 0
    got = json.loads(out.read_text())
    assert (got["config"]["n_boot"], got["config"]["seed"]) == (20, 3)
    assert got["config"]["label_synonyms"] == {"melanoma": ["cannot tell"]}
    assert got["tasks"]["vqa"]["metrics"]["accuracy"]["ci"][0] is not None
    # --ignore-config: library defaults (no synonyms, 8/12 right).
    assert (
        main(["metrics", str(tmp_path), "--out", str(out), "--ignore-config", "--n-boot", "0"]) == 0
    )
    got = json.loads(out.read_text())
    assert got["model"] is None and got["config"]["label_synonyms"] == {}
    assert got["tasks"]["vqa"]["metrics"]["accuracy"]["overall"] == pytest.approx(8 / 12)


def test_cli_bad_saved_metrics_config_is_a_clear_error(tmp_path, capsys):
    import yaml

    vqa_records().to_parquet(tmp_path / "records.parquet")
    doc = {"audit": {"metrics": {"n_bootstrap": 5}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc))
    assert main(["metrics", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "audit.metrics" in err and "--ignore-config" in err
