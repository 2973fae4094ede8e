"""Experiment YAML: strict validation with the key path and line, before any work."""

from __future__ import annotations

import textwrap

import pytest

from fairvlm.errors import ConfigError
from fairvlm.experiment.config import load_experiment
from fairvlm.yamlpos import load_yaml_with_marks, path_text


def load(text: str, tmp_path, quick: bool = False):
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return load_experiment(path, quick=quick)


def error_of(text: str, tmp_path, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load(text, tmp_path, **kw)
    return str(info.value)


def test_marks_give_lines_of_nested_keys_and_items():
    text = "a:\n  b:\n    - x\n    - c: 1\n      d: [1, 2]\n"
    data, marks = load_yaml_with_marks(text, "f.yaml")
    assert data == {"a": {"b": ["x", {"c": 1, "d": [1, 2]}]}}
    assert marks.line(("a", "b", 1, "d")) == 5
    assert marks.line(("a", "b", 0)) == 3
    assert marks.line(("a", "b", 1, "missing")) == 4  # nearest written ancestor
    assert path_text(("a", "b", 1, "d")) == "a.b[1].d"
    assert marks.where(("a", "b", 1, "c")) == "f.yaml:4: a.b[1].c"


def test_duplicate_key_is_an_error():
    with pytest.raises(ConfigError, match=r"f.yaml:3: a.b is written twice"):
        load_yaml_with_marks("a:\n  b: 1\n  b: 2\n", "f.yaml")


def test_unknown_top_level_key_names_key_and_line(tmp_path):
    msg = error_of(
        """\
        name: x
        seeed: 3
        data: {synth: clinical}
        """,
        tmp_path,
    )
    assert "exp.yaml:2: seeed" in msg and "unknown key 'seeed'" in msg


def test_unknown_method_names_line(tmp_path):
    msg = error_of(
        """\
        studies:
          clinical:
            data: {synth: clinical}
            methods:
              - lora
              - method: fairllama
        """,
        tmp_path,
    )
    assert "exp.yaml:6: studies.clinical.methods[1].method" in msg
    assert "'fairllama' is not a method" in msg


def test_unknown_key_inside_method_entry(tmp_path):
    msg = error_of(
        """\
        data: {synth: social}
        methods:
          - method: asd
            confg: {}
        """,
        tmp_path,
    )
    assert "exp.yaml:4:" in msg and "methods[0].confg" in msg


def test_missing_data_path_names_key_and_line(tmp_path):
    msg = error_of(
        """\
        studies:
          real:
            data:
              path: does/not/exist
            model: {path: also/missing}
        """,
        tmp_path,
    )
    assert "exp.yaml:4: studies.real.data.path" in msg and "does not exist" in msg


def test_data_path_must_be_a_dataset(tmp_path):
    (tmp_path / "folder").mkdir()
    msg = error_of("data: {path: folder}\n", tmp_path)
    assert "exp.yaml:1: " in msg and "fairvlm_metadata.json" in msg


def test_bad_compositions_and_duplicate_rows(tmp_path):
    msg = error_of("data: {synth: clinical}\nmethods: [lora+fairllava]\n", tmp_path)
    assert "exp.yaml:2:" in msg and "at most one fine-tuning method" in msg
    msg = error_of("data: {synth: clinical}\nmethods:\n  - lora\n  - lora\n", tmp_path)
    assert "exp.yaml:4:" in msg and "row name 'lora' is taken" in msg
    msg = error_of("data: {synth: clinical}\nmethods: [{method: lora, name: base}]\n", tmp_path)
    assert "row name 'base' is taken" in msg


def test_part_config_keys_are_checked(tmp_path):
    msg = error_of(
        """\
        data: {synth: social}
        methods:
          - method: steering-contrastive
            config: {train: {steps: 3}}
        """,
        tmp_path,
    )
    assert "exp.yaml:4:" in msg and "config.train" in msg and "build" in msg


def test_data_needs_exactly_one_source(tmp_path):
    msg = error_of("data: {overrides: {a: 1}}\n", tmp_path)
    assert "exp.yaml:1: " in msg and "exactly one of synth" in msg
    msg = error_of("data: {synth: cardiology}\n", tmp_path)
    assert "'cardiology' is not a benchmark" in msg


def test_bad_train_value_is_located(tmp_path, tiny_llava):
    msg = error_of(
        f"""\
        data: {{synth: clinical}}
        model: {{path: {tiny_llava}}}
        methods:
          - method: lora
            config:
              train:
                lr: -1.0
        """,
        tmp_path,
    )
    assert "exp.yaml:7: methods[0].config.train.lr: " in msg and "lr=-1.0" in msg  # its own line
    msg = error_of(
        f"""\
        data: {{synth: clinical}}
        model: {{path: {tiny_llava}}}
        train: {{stepz: 3}}
        """,
        tmp_path,
    )
    assert "exp.yaml:3: train.stepz" in msg or "exp.yaml:3:" in msg


def test_quick_requires_section(tmp_path):
    msg = error_of("data: {synth: clinical}\n", tmp_path, quick=True)
    assert "no quick: section" in msg


def test_cli_run_reports_located_error_before_work(tmp_path, capsys):
    from fairvlm.cli import main

    exp = tmp_path / "bad.yaml"
    exp.write_text("data: {synth: clinical}\nmethods:\n  - lora\n  - steering-magic\n")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:4: methods[1].method" in err and "'steering-magic'" in err
    assert not out.exists()  # nothing was started


def test_composition_inherits_part_configs(tmp_path, tiny_llava):
    exp = load(
        f"""\
        data: {{synth: social}}
        model: {{path: {tiny_llava}}}
        methods:
          - method: asd
            config: {{train: {{steps: 7}}}}
          - method: steering-contrastive
            config: {{apply: {{scale: 3.0}}}}
          - method: asd+steering-contrastive
            config: {{steering-contrastive: {{apply: {{scale: 1.5}}}}}}
        """,
        tmp_path,
    )
    comp = exp.studies["exp"].methods[2]
    assert comp.train_method == "asd" and comp.steer_method == "steering-contrastive"
    assert comp.part_config("asd") == {"train": {"steps": 7}}  # inherited from its row
    assert comp.part_config("steering-contrastive") == {"apply": {"scale": 1.5}}  # own


def test_composition_shares_the_training_stage(tmp_path, tiny_llava):
    from fairvlm.experiment.plan import plan_experiment

    exp = load(
        f"""\
        data: {{synth: social}}
        model: {{path: {tiny_llava}}}
        methods: [asd, steering-contrastive, asd+steering-contrastive]
        """,
        tmp_path,
    )
    (plan,) = plan_experiment(exp, tmp_path / "run")
    ids = [s.id for s in plan.stages]
    assert ids == [
        "exp/data",
        "exp/audit/base",
        "exp/train/asd",
        "exp/audit/asd",
        "exp/steer/steering-contrastive",
        "exp/audit/steering-contrastive",
        "exp/steer/asd+steering-contrastive",
        "exp/audit/asd+steering-contrastive",
    ]
    comp = plan.stages[-1]
    assert comp.deps == ["exp/data", "exp/train/asd", "exp/steer/asd+steering-contrastive"]
    assert plan.stages[-2].config["train"] == "exp/train/asd"  # the vector is built on it


def test_jobs_must_be_a_positive_integer(tmp_path):
    ok = load("jobs: 2\nthreads: 1\ndata: {synth: clinical}\n", tmp_path)
    assert (ok.jobs, ok.threads) == (2, 1)
    assert load("data: {synth: clinical}\n", tmp_path).jobs == 1
    msg = error_of("name: x\njobs: 0\ndata: {synth: clinical}\n", tmp_path)
    assert "exp.yaml:2: jobs" in msg and "positive integer" in msg


@pytest.mark.parametrize(
    ("audit", "expected"),
    [
        ("{limit: 8}", {"limit": 8, "limit_mode": "stratified", "seed": 0}),
        ("{limit: 8, config: {limit_mode: first}}", {"limit": 8, "limit_mode": "first", "seed": 0}),
        ("{tasks: [probe]}", {"tasks": ["probe"], "seed": 0}),  # no limit: no draw to hash
    ],
)
def test_a_limited_audit_stage_hashes_its_limit_mode(audit, expected, tmp_path, tiny_llava):
    """Stages cached when a limit took the first samples are stale under the new default."""
    from fairvlm.experiment.plan import plan_experiment

    exp = load(
        f"data: {{synth: social}}\nmodel: {{path: {tiny_llava}}}\naudit: {audit}\nmethods: [asd]\n",
        tmp_path,
    )
    (plan,) = plan_experiment(exp, tmp_path / "run")
    base = next(s for s in plan.stages if s.id == "exp/audit/base")
    assert base.config["audit"] == expected


def test_summary_reference_names_a_row_of_the_study(tmp_path):
    text = """\
        data: {synth: clinical}
        methods: [lora, {method: reweight, name: fl, config: {method: {attributes: [skin_tone]}}}]
        summary:
          attributes: [skin_tone]
          reference: %s
        """
    assert load(text % "fl", tmp_path).studies["exp"].summary.reference == "fl"
    assert (
        load(text.replace("          reference: %s\n", ""), tmp_path)
        .studies["exp"]
        .summary.reference
        == "base"
    )
    msg = error_of(text % "reweight", tmp_path)
    assert "exp.yaml:5: summary.reference: " in msg and "\n" not in msg
    assert "'reweight' is not a row of this study: use one of ['base', 'lora', 'fl']" in msg
