"""run_experiment end to end on a tiny model and a small hand-made dataset (real audit and
training stages): caching, targeted reruns, resume after a crash, identical metrics."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from fairvlm.data import Sample, save_dataset
from fairvlm.experiment import run_experiment
from fairvlm.experiment.stages import DONE_FILE


def _samples(split: str, n: int) -> list[Sample]:
    rng = np.random.default_rng(len(split) + n)
    out = []
    for i in range(n):
        tone, label = ("light", "dark")[i % 2], ("benign", "malignant")[(i // 2) % 2]
        img = np.full((32, 32, 3), 200 if tone == "light" else 60, np.uint8)
        img[10:22, 10:22] = (150, 20, 20) if label == "malignant" else (120, 90, 40)
        img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
        out.append(
            Sample(id=f"{split}{i}", image=Image.fromarray(img), prompt="What is the diagnosis?",
                   target=label, task="vqa", options=["benign", "malignant"], split=split,
                   attributes={"skin_tone": tone})
        )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_llava):
    root = tmp_path_factory.mktemp("exp")
    save_dataset({"finetune": _samples("finetune", 16), "test": _samples("test", 12)},
                 root / "data")  # fmt: skip
    text = f"""\
        name: mini
        seed: 0
        data: {{path: data}}
        model: {{path: {tiny_llava}}}
        audit: {{tasks: [vqa], batch_size: 12, config: {{progress: false, metrics: {{n_boot: 50}}}}}}
        train: {{steps: 2, batch_size: 8, progress: false, save_steps: 1, logging_steps: 1,
                probe_split: null, lora: {{r: 4, alpha: 8}}}}
        methods:
          - lora
          - {{method: reweight, config: {{method: {{attributes: [skin_tone]}}}}}}
        """
    (root / "exp.yaml").write_text(textwrap.dedent(text))
    return root


def _tokens(run) -> dict[str, str]:
    return {
        st.id: json.loads((run.out_dir / st.folder / DONE_FILE).read_text())["token"]
        for st in (r.stage for r in run.stages)
    }


def test_run_cache_and_targeted_reruns(experiment, tmp_path):
    yaml_path = experiment / "exp.yaml"
    first = run_experiment(yaml_path, tmp_path / "a", echo=False)
    assert first.ran == ["mini/audit/base", "mini/train/lora", "mini/audit/lora",
                         "mini/train/reweight", "mini/audit/reweight"]  # fmt: skip
    summary = json.loads((tmp_path / "a/summary.json").read_text())
    rows = summary["studies"][0]["rows"]
    assert [r["method"] for r in rows] == ["base", "lora", "reweight"]
    for row in rows:
        metrics = json.loads((tmp_path / "a" / row["audit"] / "metrics.json").read_text())
        acc = metrics["tasks"]["vqa"]["metrics"]["accuracy"]["overall"]
        assert row["values"]["vqa.accuracy"]["value"] == pytest.approx(acc)
    # each row against base: the paired comparison of its audit (n_boot 50 as the audit's)
    study = summary["studies"][0]
    assert study["reference"] == "base" and study["comparison"]["n_boot"] == 50
    assert rows[0]["values"]["vqa.accuracy"]["vs_reference"] is None
    vs = rows[1]["values"]["vqa.accuracy"]["vs_reference"]
    assert vs["diff"] == pytest.approx(
        rows[1]["values"]["vqa.accuracy"]["value"] - rows[0]["values"]["vqa.accuracy"]["value"]
    )
    assert 0 < vs["p_value"] <= vs["p_holm"] <= 1
    assert (tmp_path / "a/report.html").stat().st_size > 10_000

    again = run_experiment(yaml_path, tmp_path / "a", echo=False, report=False)
    assert again.ran == [] and len(again.cached) == 5
    assert _tokens(again) == _tokens(first)

    # another reference row: the table only (every stage is up to date)
    other_ref = experiment / "exp_ref.yaml"
    other_ref.write_text(yaml_path.read_text() + "summary: {reference: lora}\n")
    by_lora = run_experiment(other_ref, tmp_path / "a", echo=False, report=False)
    assert by_lora.ran == []
    study = by_lora.summary["studies"][0]
    lora_rows = {r["method"]: r["values"]["vqa.accuracy"] for r in study["rows"]}
    assert study["reference"] == "lora" and lora_rows["lora"]["vs_reference"] is None
    assert lora_rows["base"]["vs_reference"]["diff"] == pytest.approx(-vs["diff"])

    forced = run_experiment(yaml_path, tmp_path / "a", only=["audit"], force=["lora"],
                            echo=False, report=False)  # fmt: skip
    assert forced.ran == ["mini/audit/lora"]  # train/lora is excluded by --only
    forced = run_experiment(yaml_path, tmp_path / "a", force=["mini/train/lora"], echo=False,
                            report=False)  # fmt: skip
    assert forced.ran == ["mini/train/lora", "mini/audit/lora"]

    # changing one method's options reruns that method's stages only
    text = yaml_path.read_text().replace(
        "{method: reweight, config: {method:",
        "{method: reweight, config: {train: {lr: 2.0e-4}, method:",
    )
    changed = experiment / "exp_changed.yaml"
    changed.write_text(text)
    rerun = run_experiment(changed, tmp_path / "a", echo=False, report=False)
    assert rerun.ran == ["mini/train/reweight", "mini/audit/reweight"]


def test_crash_resumes_and_metrics_are_identical(experiment, tmp_path, monkeypatch):
    import fairvlm.experiment.hooks as hooks

    yaml_path = experiment / "exp.yaml"
    real = hooks.run_audit

    def crash_on_reweight(model, adapter, data, options, out, **kw):
        if "reweight" in str(out):
            raise KeyboardInterrupt  # the run is killed during the last audit
        return real(model, adapter, data, options, out, **kw)

    monkeypatch.setattr(hooks, "run_audit", crash_on_reweight)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(yaml_path, tmp_path / "b", echo=False)
    monkeypatch.setattr(hooks, "run_audit", real)
    resumed = run_experiment(yaml_path, tmp_path / "b", echo=False, report=False)
    assert resumed.ran == ["mini/audit/reweight"]
    assert len(resumed.cached) == 4

    fresh = run_experiment(yaml_path, tmp_path / "c", echo=False, report=False)
    for stage in fresh.stages:
        if stage.stage.kind == "audit":
            a = (tmp_path / "b" / stage.stage.folder / "metrics.json").read_bytes()
            b = (tmp_path / "c" / stage.stage.folder / "metrics.json").read_bytes()
            assert a == b, stage.stage.id


def test_a_dataset_changed_under_the_same_path_makes_its_stages_stale(
    experiment, tiny_llava, tmp_path
):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(experiment / "data", data)
    yaml_path = tmp_path / "exp.yaml"
    yaml_path.write_text(
        f"name: mini\ndata: {{path: {data}}}\nmodel: {{path: {tiny_llava}}}\n"
        "audit: {tasks: [vqa], batch_size: 12, config: {progress: false, metrics: {n_boot: 0}}}\n"
        "methods: []\n"
    )
    assert run_experiment(yaml_path, tmp_path / "r", echo=False, report=False).ran == [
        "mini/audit/base"
    ]
    assert run_experiment(yaml_path, tmp_path / "r", echo=False, report=False).ran == []

    test = _samples("test", 12)
    test[0].target = "malignant" if test[0].target == "benign" else "benign"
    save_dataset({"finetune": _samples("finetune", 16), "test": test}, data)
    rerun = run_experiment(yaml_path, tmp_path / "r", echo=False, report=False)
    assert rerun.ran == ["mini/audit/base"]  # the stage cache, not only the audit, saw it
