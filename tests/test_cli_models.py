"""``fairvlm models``, ``fairvlm tiny`` and ``fairvlm info``."""

from __future__ import annotations

import json

import pytest

from fairvlm.cli import main
from fairvlm.models import supported_families


def test_models_lists_every_family(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["family"] for r in rows] == list(supported_families())
    assert main(["models"]) == 0
    assert "PaliGemmaForConditionalGeneration" in capsys.readouterr().out


def test_tiny_then_info(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["tiny", "llava", str(out), "--num-layers", "3", "--hidden-size", "16"]) == 0
    assert "3 layers" in capsys.readouterr().out
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "llava"
    assert info["num_layers"] == 3
    assert info["hidden_size"] == 16
    assert info["image_tokens_per_image_64px"] == 16
    assert info["projector"] == "model.multi_modal_projector"


@pytest.mark.parametrize("family", supported_families())
def test_info_on_each_tiny_family(family, tiny_vlm_dir, capsys):
    assert main(["info", str(tiny_vlm_dir(family)), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == family
    assert info["num_layers"] == 2
    assert info["image_tokens_per_image_64px"] > 0


def test_bad_input_exits_2_with_message(tmp_path, capsys):
    assert main(["tiny", "blip2", str(tmp_path / "x")]) == 2
    assert "llava_next" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_with_adapter_reports_it(tiny_llava, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model

    from fairvlm.models import load_vlm

    base = load_vlm(tiny_llava)
    lora = get_peft_model(base.model, LoraConfig(r=2, target_modules=["q_proj"]))
    lora.save_pretrained(tmp_path / "lora")
    assert main(["info", str(tiny_llava), "--adapter", str(tmp_path / "lora"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["peft_adapter"] is True and info["device"] == "cpu"
    assert info["parameters"] == sum(p.numel() for p in lora.parameters())
