"""The config base: one reader for every config, coercion, did-you-mean, YAML lines, round
trips; the experiment validates every field (data-dependent ones too) before any work."""

from __future__ import annotations

import pytest

from fairvlm.audit import AuditConfig
from fairvlm.config import Config
from fairvlm.errors import ConfigError
from fairvlm.experiment import load_experiment
from fairvlm.mitigation.asd.cmsc import CMSCConfig
from fairvlm.mitigation.steering import ContrastiveConfig, GradientConfig
from fairvlm.mitigation.steering.settings import SteerSettings
from fairvlm.mitigation.steering.sweep import SweepConfig
from fairvlm.models import TinyConfig
from fairvlm.registry import STEERING_BUILDERS, TRAINING_METHODS
from fairvlm.synth import BENCH_CONFIGS
from fairvlm.training import PretrainConfig, TrainConfig

#: Every config class whose defaults are valid on their own.
DEFAULT_CONFIGS = [
    AuditConfig,
    TrainConfig,
    PretrainConfig,
    TinyConfig,
    SweepConfig,
    ContrastiveConfig,
    GradientConfig,
    CMSCConfig,
    SteerSettings,
    *BENCH_CONFIGS.values(),
]


def _config_classes() -> list[type]:
    method_configs = [m.config_class for m in TRAINING_METHODS if m.config_class is not None]
    builder_configs = [b.config_class for b in STEERING_BUILDERS]
    return list(dict.fromkeys([*DEFAULT_CONFIGS, *method_configs, *builder_configs]))


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda c: c.__name__)
def test_every_config_reads_with_the_base_and_suggests_the_closest_field(cls):
    assert issubclass(cls, Config)
    field = cls.field_names()[0]
    with pytest.raises(ConfigError, match=f"did you mean {field!r}"):
        cls.from_dict({field + "x": 1})


@pytest.mark.parametrize("cls", DEFAULT_CONFIGS, ids=lambda c: c.__name__)
def test_to_dict_reads_back_to_an_equal_config(cls):
    cfg = cls()
    assert cls.from_dict(cfg.to_dict()) == cfg


def test_coercion_of_cli_and_yaml_values():
    cfg = TrainConfig.from_dict({"lr": "2e-4", "steps": "5", "lora": {"targets": "q_proj,v_proj"}})
    assert (cfg.lr, cfg.steps, cfg.lora.targets) == (2e-4, 5, ["q_proj", "v_proj"])
    assert AuditConfig(tasks="vqa, probe").tasks == ["vqa", "probe"]  # a direct call too
    assert SweepConfig(scales=2, layers=[4, [4, 8]]).layers == [[4], [4, 8]]
    with pytest.raises(ConfigError, match="progress=.yes. is not valid: use true or false"):
        AuditConfig.from_dict({"progress": "yes"})


def test_nested_errors_name_the_path():
    with pytest.raises(ConfigError, match=r"^train\.lora\.r=0 is not valid"):
        TrainConfig.from_dict({"lora": {"r": 0}}, prefix="train.")
    with pytest.raises(ConfigError, match=r"^metrics\.n_bootx=1 is not valid: not a MetricsConfig"):
        AuditConfig.from_dict({"metrics": {"n_bootx": 1}})


def _error(text: str, tmp_path) -> str:
    (tmp_path / "data").mkdir(exist_ok=True)
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "exp.yaml", text=text)
    return str(info.value)


def test_a_nested_yaml_error_names_its_own_line(tmp_path):
    msg = _error(
        "data: {synth: clinical}\nmodel: {pretrain: {}}\ntrain:\n  lora:\n    r: 0\n", tmp_path
    )
    assert "exp.yaml:5: train.lora.r: lora.r=0 is not valid" in msg


def test_an_audit_value_given_twice_is_refused_not_dropped(tmp_path):
    msg = _error(
        "data: {synth: clinical}\nmodel: {pretrain: {}}\n"
        "audit: {batch_size: 8, config: {batch_size: 4}}\n",
        tmp_path,
    )
    assert "exp.yaml:3" in msg and "batch_size is given twice" in msg
    cfg = load_experiment(
        tmp_path / "exp.yaml",
        text="data: {synth: clinical}\nmodel: {pretrain: {}}\n"
        "audit: {config: {batch_size: 4, split: finetune}}\n",
    )
    options = cfg.studies["exp"].audit.options
    assert (options["batch_size"], options["split"]) == (4, "finetune")  # kept, not 16 / test


def test_steer_settings_and_data_needs_are_checked_before_any_stage(tmp_path):
    base = "data: {synth: social}\nmodel: {pretrain: {}}\n"
    msg = _error(
        base + "methods:\n  - {method: steering-contrastive, config: {apply: {scale: big}}}\n",
        tmp_path,
    )
    assert "exp.yaml:4" in msg and "scale='big' is not valid" in msg
    msg = _error(
        "data: {synth: clinical}\nmodel: {pretrain: {}}\nmethods: [steering-contrastive]\n",
        tmp_path,
    )
    assert "'describe' samples of split 'train'" in msg and "['report', 'vqa']" in msg
    msg = _error(
        "data: {synth: clinical}\nmodel: {pretrain: {}}\naudit: {tasks: [probe]}\n", tmp_path
    )
    assert "audit task 'probe' reads 'probe' samples of split 'test'" in msg
