"""Plugins: a module under tests/ registers one of each kind (method, builder, task,
family); each then works from the CLI, the experiment YAML and Python like a built-in."""

from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest
from audit_support import audit_samples

from fairvlm.cli import main
from fairvlm.registry import AUDIT_TASKS, FAMILIES, STEERING_BUILDERS, TRAINING_METHODS

PLUGIN = "fairvlm_test_plugin"


def _samples(split: str, n: int, seed: int):
    return [
        dataclasses.replace(s, id=f"{split}-{s.id}", split=split)
        for s in audit_samples(n, tasks=["vqa"], seed=seed)
    ]


@pytest.fixture(scope="module")
def plugin_model(tmp_path_factory):
    """A tiny model of the plugin's family, built through the CLI."""
    out = tmp_path_factory.mktemp("plugin") / "model"
    assert main(["tiny", "--plugin", PLUGIN, "plugin_llava", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def plugin_data(tmp_path_factory):
    from fairvlm.data import save_dataset

    root = tmp_path_factory.mktemp("plugin-data")
    splits = {"finetune": _samples("finetune", 8, 0), "test": _samples("test", 6, 1)}
    return save_dataset(splits, root / "data")


def test_a_plugin_registers_one_of_each_kind():
    import fairvlm_test_plugin  # noqa: F401

    assert "demo-scaled" in TRAINING_METHODS and "demo-random" in STEERING_BUILDERS
    assert "length" in AUDIT_TASKS and "plugin_llava" in FAMILIES
    assert TRAINING_METHODS.names()[:5] == [
        "lora",
        "reweight",
        "resample",
        "adversarial",
        "fairllava",
    ]


def test_an_unknown_plugin_is_one_line_with_exit_code_2(capsys):
    assert main(["models", "--plugin", "no_such_plugin_module"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--plugin='no_such_plugin_module' cannot be imported" in err


def test_entry_point_plugins_load_first(monkeypatch):
    from importlib.metadata import EntryPoint

    import fairvlm.plugins as plugins

    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    monkeypatch.setattr(
        plugins,
        "entry_points",
        lambda group: (
            [EntryPoint("demo", PLUGIN, group)] if group == plugins.ENTRY_POINT_GROUP else []
        ),
    )
    assert PLUGIN in plugins.load_plugins()


def test_the_plugin_family_loads_like_a_builtin(plugin_model, capsys):
    from fairvlm.models import load_vlm

    vlm = load_vlm(plugin_model)
    assert vlm.spec.name == "plugin_llava" and type(vlm.model).__name__ == "PluginLlava"
    assert main(["models", "--plugin", PLUGIN, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["family"] == "plugin_llava" and r["model_class"] == "PluginLlava" for r in rows)


def test_plugin_builder_and_task_from_the_cli(plugin_model, plugin_data, tmp_path, capsys):
    vec = tmp_path / "v.safetensors"
    build = ["steer", "build", str(plugin_model), str(plugin_data), "--plugin", PLUGIN]
    assert main([*build, "--method", "demo-random", "--set", "layer=1", "--out", str(vec)]) == 0
    audit = ["audit", str(plugin_model), str(plugin_data), "--plugin", PLUGIN, "--no-progress"]
    config = tmp_path / "audit.yaml"
    config.write_text("sources: {length: vqa}\nmax_new_tokens: 6\nmetrics: {n_boot: 0}\n")
    out = tmp_path / "audit"
    argv = [*audit, "--tasks", "length", "--config", str(config), "--out", str(out)]
    assert main([*argv, "--steer", str(vec), "--steer-scale", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    length = metrics["tasks"]["length"]["metrics"]["length"]
    assert length["n"] == 6 and length["overall"] > 0


def test_plugin_kinds_through_fairvlm_run(plugin_model, plugin_data, tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        textwrap.dedent(
            f"""\
            name: plugins
            plugins: [{PLUGIN}]
            data: {{path: {plugin_data}}}
            model: {{path: {plugin_model}}}
            audit:
              tasks: [vqa, length]
              batch_size: 6
              config: {{sources: {{length: vqa}}, max_new_tokens: 6, progress: false,
                        metrics: {{n_boot: 0}}}}
            train: {{steps: 2, batch_size: 4, progress: false, probe_split: null,
                    lora: {{r: 4, alpha: 8}}}}
            methods:
              - {{method: demo-scaled, config: {{method: {{lm_weight: 0.5}}}}}}
              - {{method: steering-demo-random, config: {{build: {{layer: 1}}, apply: {{scale: 2.0}}}}}}
            """
        )
    )
    out = tmp_path / "run"
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    study = summary["studies"][0]
    assert [r["method"] for r in study["rows"]] == ["base", "demo-scaled", "steering-demo-random"]
    keys = [c["key"] for c in study["columns"]]
    assert "vqa.accuracy" in keys and "length.length" in keys  # the plugin task's column
    for row in study["rows"]:
        assert row["values"]["length.length"]["value"] > 0
    assert (out / "plugins/steer/steering-demo-random/vector.safetensors").is_file()


def test_a_plugin_method_without_its_plugin_is_refused_naming_plugins(plugin_data, tmp_path):
    from fairvlm.errors import ConfigError
    from fairvlm.experiment import load_experiment

    text = f"data: {{path: {plugin_data}}}\nmodel: {{pretrain: {{}}}}\nmethods: [demo-scaledd]\n"
    with pytest.raises(ConfigError, match="did you mean 'demo-scaled'"):
        load_experiment(tmp_path / "exp.yaml", text=text)
