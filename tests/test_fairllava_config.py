"""FairLLaVAConfig: validation, presets, and bad input caught before any model work."""

from __future__ import annotations

import pytest
from training_support import group_samples, train_cfg

from fairvlm.cli import main
from fairvlm.errors import ConfigError
from fairvlm.mitigation.fairllava import PRESETS, FairLLaVAConfig
from fairvlm.representation import layer_entry
from fairvlm.training import train


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"lambdas": {"sex": -0.1}}, "lambdas.sex"),
        ({"lambdas": {"sex": 0.1}, "depth": 0.0}, "depth"),
        ({"lambdas": {"sex": 0.1}, "depth": 1.5}, "depth"),
        ({"lambdas": {}}, "lambdas"),
        ({"lambdas": {"sex": 0.1}, "tokens": "pixels"}, "tokens"),
        ({"lambdas": {"sex": 0.1}, "pooling": "max"}, "pooling"),
        ({"lambdas": {"sex": 0.1}, "head_updates": 0}, "head_updates"),
        ({"lambdas": {"sex": 0.1}, "fairness_lambda": -1}, "fairness_lambda"),
        ({"lambdas": {"sex": 0.1}, "unknown_knob": 1}, "unknown_knob"),
        ({"preset": "chexpert"}, "preset"),
    ],
)
def test_bad_fields_name_the_field(options, field):
    with pytest.raises(ConfigError, match=field):
        FairLLaVAConfig.from_dict(options)


def test_presets_are_the_published_settings_and_rename_maps_attributes():
    cfg = FairLLaVAConfig.from_dict(
        {
            "preset": "mimic_cxr",
            "rename": {"race": "skin_tone", "age": "age_group"},
            "lambdas": {"sex": 0.3},
        }
    )
    assert cfg.lambdas == {"age_group": 0.6, "sex": 0.3, "skin_tone": 0.2}
    rep = cfg.representation
    assert (cfg.w_club, cfg.fairness_lambda, rep.depth, rep.tokens) == (1.0, 1.0, 0.5, "image")
    assert (rep.pooling, rep.normalise, cfg.head_scale, cfg.head_updates) == (
        "random",
        True,
        1.0,
        1,
    )
    ham = FairLLaVAConfig.from_dict({"preset": "ham10000", "rename": {"age": "age_group"}})
    assert ham.lambdas == {"age_group": 0.4, "sex": 0.15}
    assert (ham.w_club, ham.fairness_lambda, ham.representation.depth) == (0.2, 0.5, 0.8)
    assert PRESETS["mimic_cxr"]["lambdas"]["age"] == 0.6
    with pytest.raises(ConfigError, match="rename.ethnicity"):
        FairLLaVAConfig.from_dict({"preset": "mimic_cxr", "rename": {"ethnicity": "race"}})


def test_layer_entry_follows_hidden_states_indexing():
    # hidden_states has n_layers + 1 entries; int((n + 1) * depth), at most n
    assert layer_entry(32, 0.5) == 16
    assert layer_entry(32, 0.8) == 26
    assert layer_entry(2, 0.5) == 1
    assert layer_entry(2, 1.0) == 2
    with pytest.raises(ConfigError, match="depth"):
        layer_entry(2, 0.0)


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("fairllava", {"lambdas": {"race": 0.2}}, "'race' is not in the data"),
        ("fairllava", {"lambdas": {"skin_tone": -0.2}}, "lambdas.skin_tone"),
        ("fairllava", {"lambdas": {"skin_tone": 0.2}, "depth": 1.2}, "depth"),
        ("reweight", {"attributes": ["race"]}, "'race' is not in the data"),
        ("adversarial", {"lambdas": {"race": 1.0}}, "'race' is not in the data"),
    ],
)
def test_bad_input_fails_before_the_model_is_touched(tmp_path, method, options, message):
    # the model path does not exist: a config/data error must come first
    with pytest.raises(ConfigError, match=message):
        train(tmp_path / "no-model", group_samples(8), method, train_cfg(options), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_single_valued_attribute_is_refused(tmp_path):
    samples = group_samples(8)
    for s in samples:
        s.attributes["site"] = "clinic-a"
    with pytest.raises(ConfigError, match="'site' has 1 known value"):
        train(
            tmp_path / "no-model",
            samples,
            "fairllava",
            train_cfg({"lambdas": {"site": 0.5}}),
            tmp_path / "o",
        )


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    from fairvlm.data import save_dataset

    save_dataset({"finetune": group_samples(8)}, tmp_path / "data")
    code = main(
        [
            "train",
            str(tmp_path / "no-model"),
            str(tmp_path / "data"),
            "--method",
            "fairllava",
            "--out",
            str(tmp_path / "out"),
            "--set",
            "lambdas.race=0.2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "attribute 'race' is not in the data" in err and "skin_tone" in err
    code = main(
        ["train", "m", str(tmp_path / "data"), "--method", "nope", "--out", str(tmp_path / "o")]
    )
    assert (
        code == 2 and "method='nope' is not a registered training method" in capsys.readouterr().err
    )
