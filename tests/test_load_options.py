"""``load_vlm(..., **from_pretrained_kwargs)``: Hugging Face load options pass through, the
ones fairvlm sets itself are refused, and what needs CUDA fails clearly without it."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from fairvlm.errors import FairVLMError, ModelError
from fairvlm.models import load_vlm
from fairvlm.models import loading as loading_mod


def test_attn_implementation_reaches_the_config(tiny_llava):
    vlm = load_vlm(tiny_llava, device="cpu", attn_implementation="eager")
    assert vlm.model.config._attn_implementation == "eager"
    assert vlm.model.config.text_config._attn_implementation == "eager"


def test_device_map_cpu_loads_on_cpu_in_float32(tiny_llava):
    vlm = load_vlm(tiny_llava, device_map="cpu", low_cpu_mem_usage=True)
    assert vlm.device.type == "cpu"
    assert vlm.dtype == torch.float32


def test_torch_dtype_stands_for_dtype(tiny_llava):
    vlm = load_vlm(tiny_llava, device="cpu", torch_dtype="bfloat16")
    assert vlm.dtype == torch.bfloat16


def test_revision_reaches_model_config_and_processor(tiny_llava, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    seen: dict[str, object] = {}

    def spy(name, original):
        def wrapped(*args, **kwargs):
            seen[name] = kwargs.get("revision")
            return original(*args, **kwargs)

        return wrapped

    model_cls = type(load_vlm(tiny_llava, device="meta").base_model)
    monkeypatch.setattr(AutoConfig, "from_pretrained", spy("config", AutoConfig.from_pretrained))
    monkeypatch.setattr(
        AutoTokenizer, "from_pretrained", spy("tokenizer", AutoTokenizer.from_pretrained)
    )
    original = model_cls.from_pretrained.__func__
    monkeypatch.setattr(
        model_cls,
        "from_pretrained",
        classmethod(lambda cls, *a, **kw: spy("model", original)(cls, *a, **kw)),
    )
    load_vlm(tiny_llava, device="cpu", revision="main")
    assert seen == {"config": "main", "tokenizer": "main", "model": "main"}


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"use_safetensors": False}, ["use_safetensors", "safetensors only"]),
        ({"torch_dtype": "float16", "dtype": "float32"}, ["torch_dtype", "dtype only"]),
        ({"device_map": "cpu", "device": "cpu"}, ["device_map", "not both"]),
        ({"device": "meta", "low_cpu_mem_usage": True}, ["low_cpu_mem_usage", "meta"]),
    ],
)
def test_options_fairvlm_sets_itself_are_refused(tiny_llava, kwargs, needles):
    with pytest.raises(FairVLMError) as err:
        load_vlm(tiny_llava, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("key", ["trust_remote_code", "dtype", "device", "adapter"])
def test_load_vlm_arguments_are_not_options(key):
    # a mapping of options (``--model-arg``) must not bind load_vlm's own arguments
    with pytest.raises(
        FairVLMError, match=rf"^--model-arg={key!r} is not valid: use load_vlm.s {key} argument"
    ):
        loading_mod.check_load_options({key: True}, "--model-arg")


def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(
    "quant",
    [{"load_in_4bit": True}, {"load_in_8bit": True}, "bnb4"],
)
def test_bitsandbytes_without_cuda_is_a_clear_error(tiny_llava, monkeypatch, quant):
    _no_cuda(monkeypatch)
    if quant == "bnb4":
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True)
    with pytest.raises(ModelError) as err:
        load_vlm(tiny_llava, quantization_config=quant)
    message = str(err.value)
    assert message.startswith("quantization_config: ")
    assert "bit quantization needs a CUDA GPU" in message
    assert "pip install bitsandbytes" in message


def test_bitsandbytes_missing_on_a_cuda_machine_names_the_install(tiny_llava, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else find(n, *a)
    )
    with pytest.raises(ModelError, match=r"needs the bitsandbytes package.*pip install"):
        load_vlm(tiny_llava, quantization_config={"load_in_4bit": True})


def test_flash_attention_without_cuda_or_package_is_a_clear_error(tiny_llava, monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(ModelError, match=r"^attn_implementation: flash_attention_2 needs a CUDA"):
        load_vlm(tiny_llava, attn_implementation="flash_attention_2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "flash_attn" else find(n, *a)
    )
    with pytest.raises(ModelError, match=r"needs the flash-attn package.*pip install flash-attn"):
        load_vlm(tiny_llava, attn_implementation="flash_attention_2")


def test_options_without_quantization_pass_the_cuda_check():
    loading_mod.check_cuda_options({"quantization_config": None, "attn_implementation": "sdpa"})


# -- the CLI: --model-arg KEY=VALUE -------------------------------------------------------


def test_model_args_are_yaml_or_json_values():
    from fairvlm.commands.model_args import parse_model_args

    parsed = parse_model_args(
        [
            'quantization_config={"load_in_4bit": true, "bnb_4bit_quant_type": "nf4"}',
            "attn_implementation=sdpa",
            "low_cpu_mem_usage=true",
            "revision=v1.0",
        ]
    )
    assert parsed == {
        "quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
        "attn_implementation": "sdpa",
        "low_cpu_mem_usage": True,
        "revision": "v1.0",
    }


@pytest.mark.parametrize("item", ["attn_implementation", "=sdpa", " =x"])
def test_a_malformed_model_arg_is_a_one_line_error(tiny_llava, item, capsys):
    from fairvlm.cli import main

    assert main(["info", str(tiny_llava), "--model-arg", item]) == 2
    line = capsys.readouterr().err.strip()
    assert line == (
        f"fairvlm info: error: --model-arg={item!r} is not valid: write KEY=VALUE, "
        "e.g. attn_implementation=sdpa"
    )


def test_a_model_arg_naming_a_fairvlm_flag_is_refused(tiny_llava, capsys):
    from fairvlm.cli import main

    assert main(["info", str(tiny_llava), "--model-arg", "dtype=float16"]) == 2
    assert "--model-arg='dtype' is not valid: use load_vlm's dtype argument (--dtype)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "{model}"],
        ["audit", "{model}", "{data}", "--out", "{out}"],
        [
            "steer",
            "build",
            "{model}",
            "{data}",
            "--method",
            "contrastive",
            "--out",
            "{out}.safetensors",
        ],
    ],
)
def test_every_model_command_passes_model_args_to_load_vlm(
    argv, tiny_llava, tmp_path, monkeypatch, capsys
):
    import fairvlm.models
    from fairvlm.cli import main
    from fairvlm.data import save_dataset

    data = save_dataset({"test": _samples()}, tmp_path / "d")
    seen = {}

    def spy(path, **kwargs):
        seen.update(kwargs)
        raise ModelError("stop here")

    monkeypatch.setattr(fairvlm.models, "load_vlm", spy)
    fields = {"model": str(tiny_llava), "data": str(data), "out": str(tmp_path / "o")}
    argv = [a.format(**fields) for a in argv]
    extra = ["--model-arg", "attn_implementation=eager", "--model-arg", "revision=main"]
    assert main(argv + extra) == 2
    assert "stop here" in capsys.readouterr().err
    assert seen["attn_implementation"] == "eager" and seen["revision"] == "main"


def _samples():
    from audit_support import audit_samples

    return audit_samples(2, tasks=["vqa"])


def test_an_audit_is_identified_by_its_load_options(tiny_llava, tmp_path):
    from fairvlm.audit import AuditConfig, run_audit
    from fairvlm.errors import ConfigError

    cfg = AuditConfig(tasks=["vqa"], progress=False, metrics={"n_boot": 0})
    out = tmp_path / "a"
    run_audit(str(tiny_llava), _samples(), cfg, out, model_args={"attn_implementation": "eager"})
    run_audit(str(tiny_llava), _samples(), cfg, out, model_args={"attn_implementation": "eager"})
    with pytest.raises(ConfigError, match=r"model_args=\{'attn_implementation': 'eager'\}"):
        run_audit(str(tiny_llava), _samples(), cfg, out, model_args={"attn_implementation": "sdpa"})
    plain = tmp_path / "b"  # without load options the identity has no such key
    run_audit(str(tiny_llava), _samples(), cfg, plain)
    assert "model_args" not in (plain / "config.yaml").read_text()


def test_audit_relaunch_forwards_model_args():
    import argparse

    from fairvlm.commands import audit

    parser = argparse.ArgumentParser()
    audit.add_arguments(parser)
    args = parser.parse_args(
        ["M", "D", "--out", "O", "--model-arg", "attn_implementation=sdpa", "--model-arg", "a=1"]
    )
    argv = audit._relaunch_args(args)
    assert argv[-4:] == ["--model-arg", "attn_implementation=sdpa", "--model-arg", "a=1"]


# -- VLMAdapter.from_model: a model loaded elsewhere ------------------------------------


def test_from_model_wraps_a_loaded_model_with_its_family(tiny_llava):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from fairvlm.models import VLMAdapter

    model = LlavaForConditionalGeneration.from_pretrained(tiny_llava, attn_implementation="eager")
    processor = AutoProcessor.from_pretrained(tiny_llava)
    vlm = VLMAdapter.from_model(model, processor)
    assert (vlm.family, vlm.name_or_path) == ("llava", str(tiny_llava))
    assert vlm.model is model and vlm.tokenizer.padding_side == "left"
    assert vlm.num_layers == model.config.text_config.num_hidden_layers


def test_from_model_refuses_an_unsupported_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    from fairvlm.models import VLMAdapter

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16))
    with pytest.raises(ModelError, match=r"^model_type='gpt2' .* is not a supported VLM family"):
        VLMAdapter.from_model(model, processor=None)


# -- experiment YAML: model: {args: {...}} ------------------------------------------------


def _experiment(tmp_path, model_line):
    from fairvlm.experiment.config import load_experiment
    from fairvlm.experiment.plan import plan_experiment

    path = tmp_path / "exp.yaml"
    path.write_text(f"data: {{synth: social}}\nmodel: {model_line}\nmethods: [lora]\n")
    (plan,) = plan_experiment(load_experiment(path), tmp_path / "run")
    return {s.id: s.config for s in plan.stages}


def test_experiment_model_args_reach_every_loading_stage(tmp_path, tiny_llava):
    stages = _experiment(tmp_path, f"{{path: {tiny_llava}, args: {{attn_implementation: eager}}}}")
    for sid in ("exp/audit/base", "exp/train/lora", "exp/audit/lora"):
        assert stages[sid]["model_args"] == {"attn_implementation": "eager"}, sid
    assert "model_args" not in stages["exp/data"]


def test_experiment_without_model_args_plans_as_before(tmp_path, tiny_llava):
    stages = _experiment(tmp_path, f"{{path: {tiny_llava}}}")
    assert not any("model_args" in config for config in stages.values())


def test_experiment_model_args_must_be_a_mapping(tmp_path, tiny_llava):
    with pytest.raises(FairVLMError, match=r"model\.args.*expected a mapping of from_pretrained"):
        _experiment(tmp_path, f"{{path: {tiny_llava}, args: [eager]}}")


def test_experiment_model_args_are_passed_to_load_vlm(tmp_path, tiny_llava, monkeypatch):
    import fairvlm.experiment.hooks as hooks

    seen = {}

    def spy(model, **kwargs):
        seen.update(kwargs)
        raise ModelError("stop here")

    monkeypatch.setattr(hooks, "load_vlm", spy)
    with pytest.raises(ModelError, match="stop here"):
        hooks.load_model(
            str(tiny_llava),
            adapter=None,
            dtype=None,
            device="cpu",
            model_args={"attn_implementation": "eager"},
        )
    assert seen == {"dtype": None, "device": "cpu", "adapter": None, "attn_implementation": "eager"}


def test_meta_device_takes_attn_implementation(tiny_llava):
    vlm = load_vlm(tiny_llava, device="meta", attn_implementation="eager")
    assert vlm.model.config._attn_implementation == "eager"
    assert vlm.device.type == "meta"


def test_train_passes_model_args_to_load_vlm(tiny_llava, tmp_path, monkeypatch, capsys):
    import fairvlm.training.run as run_mod
    from fairvlm.cli import main
    from fairvlm.data import save_dataset

    data = save_dataset({"finetune": _samples()}, tmp_path / "d")
    seen = {}

    def spy(path, **kwargs):
        seen.update(kwargs)
        raise ModelError("stop here")

    monkeypatch.setattr(run_mod, "load_vlm", spy)
    argv = ["train", str(tiny_llava), str(data), "--method", "lora", "--out", str(tmp_path / "o")]
    argv += ["--set", "probe_split=null"]
    assert main([*argv, "--model-arg", 'quantization_config={"load_in_8bit": false}']) == 2
    assert "stop here" in capsys.readouterr().err
    assert seen["quantization_config"] == {"load_in_8bit": False}


def test_a_quantized_model_is_placed_at_load_not_moved(tiny_llava, monkeypatch):
    # what a CUDA machine with bitsandbytes sees; the load itself is spied on and done
    # without quantization, on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: find("json") if n == "bitsandbytes" else find(n, *a),
    )
    model_cls = type(load_vlm(tiny_llava, device="meta").base_model)
    original = model_cls.from_pretrained.__func__
    seen = {}

    def spy(cls, src, **kwargs):
        seen.update(kwargs)
        kwargs.pop("quantization_config")
        return original(cls, src, **{**kwargs, "device_map": "cpu"})

    monkeypatch.setattr(model_cls, "from_pretrained", classmethod(spy))
    vlm = load_vlm(tiny_llava, device="cuda", quantization_config={"load_in_8bit": True})
    assert seen["device_map"] == {"": "cuda"}
    assert seen["quantization_config"] == {"load_in_8bit": True}
    assert vlm.device.type == "cpu"  # not moved after loading (.to would have put it on cuda)
