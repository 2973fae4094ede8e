"""FairLLaVA on a tiny LLaVA: the hooked layer, gradient isolation, trainable parameters,
unknown attributes, the probe diagnostic."""

from __future__ import annotations

import json
import math

import pytest
import torch
from training_support import TINY_LORA, group_samples, train_cfg
from transformers import TrainerCallback, TrainingArguments

from fairvlm.errors import ConfigError
from fairvlm.mitigation.fairllava import FairLLaVAConfig, FairLLaVATerm
from fairvlm.models import load_vlm
from fairvlm.representation import FOOLED, LayerReader, RepresentationSettings, fit_probe
from fairvlm.training import (
    AttributeSpace,
    FairTrainer,
    LoraSettings,
    SampleDataset,
    TrainCollator,
    apply_lora,
    train,
)


def _setup(tiny_llava, tmp_path, samples, **cfg_fields):
    vlm = load_vlm(tiny_llava)
    model = apply_lora(vlm, LoraSettings(**TINY_LORA))
    space = AttributeSpace.from_samples(samples)
    cfg = FairLLaVAConfig.from_dict({"lambdas": {"skin_tone": 1.0, "sex": 1.0}, **cfg_fields})
    term = FairLLaVATerm(cfg, space, vlm.hidden_size)
    term.attach(vlm)
    args = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False
    )
    trainer = FairTrainer(model, args=args, terms=[term], space=space, lm_weight=0.0)
    data = SampleDataset(samples, space)
    batch = TrainCollator(vlm)([data[i] for i in range(len(samples))])
    return vlm, model, term, trainer, batch


def _reader_hooks(vlm) -> int:
    """How many LayerReader hooks sit on the decoder layers."""
    return sum(
        getattr(h, "__func__", None) in (LayerReader._hook, LayerReader._pre_hook)
        for layer in vlm.decoder_layers
        for hooks in (layer._forward_hooks, layer._forward_pre_hooks)
        for h in hooks.values()
    )


def _grads(model):
    lora = {n: p.grad for n, p in model.named_parameters() if "lora_" in n}
    proj = {n: p.grad for n, p in model.named_parameters() if "modules_to_save" in n}
    heads = {n: p.grad for n, p in model.named_parameters() if n.startswith("fairvlm_terms")}
    return lora, proj, heads


def _nonzero(grads):
    return [n for n, g in grads.items() if g is not None and g.abs().sum() > 0]


def test_hook_reads_the_same_layer_as_hidden_states(tiny_llava):
    vlm = load_vlm(tiny_llava)
    samples = group_samples(3)
    batch = vlm.collate(samples)
    reader = LayerReader(
        RepresentationSettings(depth=0.5, tokens="image", pooling="mean", normalise=False)
    )
    reader.attach(vlm)
    assert _reader_hooks(vlm) == 1
    reader.prepare(batch)
    with torch.no_grad():
        out = vlm.model(**batch, output_hidden_states=True)
    z, valid = reader.read()
    entry = reader.entry
    assert entry == 1  # 2 layers: int(3 * 0.5)
    mask = vlm.image_token_mask(batch)
    hs = out.hidden_states[entry]
    expected = (hs * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert valid.all()
    assert torch.allclose(z, expected, atol=1e-5)
    reader.remove()
    assert _reader_hooks(vlm) == 0


def test_penalty_reaches_only_the_backbone(tiny_llava, tmp_path):
    samples = group_samples(8, unknown_sex_every=0)
    _, model, _, trainer, batch = _setup(tiny_llava, tmp_path, samples, w_club=0.0, head_scale=10.0)
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    assert loss.item() > 1e-3  # the penalty is active
    loss.backward()
    lora, proj, heads = _grads(model)
    assert _nonzero(heads) == []
    assert _nonzero(proj)  # the image tokens come from the projector
    # layer 0 (the regularised one) gets gradient; layer 1 is after it and gets none
    assert any(".layers.0." in n for n in _nonzero(lora))
    assert not any(".layers.1." in n for n in _nonzero(lora))


def test_head_cross_entropy_reaches_only_the_heads(tiny_llava, tmp_path):
    samples = group_samples(8)
    _, model, _, trainer, batch = _setup(
        tiny_llava, tmp_path, samples, lambdas={"skin_tone": 0.0, "sex": 0.0}, w_club=1.0
    )
    model.train()
    trainer.compute_loss(model, dict(batch)).backward()
    lora, proj, heads = _grads(model)
    assert _nonzero(lora) == [] and _nonzero(proj) == []
    assert len(_nonzero(heads)) == 4  # weight + bias of both heads


def test_unknown_values_are_masked_from_that_attributes_terms(tiny_llava, tmp_path):
    samples = group_samples(9, unknown_sex_every=3)  # sex unknown for samples 0, 3, 6
    vlm, model, term, trainer, batch = _setup(
        tiny_llava, tmp_path, samples, pooling="mean", head_scale=5.0
    )
    model.train()
    trainer.compute_loss(model, dict(batch))
    logged = {k: v[0] for k, v in trainer.extra_logs.items()}
    # recompute by hand on the known samples only, same layer, same heads
    reader = LayerReader(RepresentationSettings(0.5, "image", "mean", True))
    reader.attach(vlm)
    reader.prepare(batch)
    with torch.no_grad():
        vlm.model(
            **{k: v for k, v in batch.items() if not k.startswith("fairvlm_") and k != "labels"}
        )
        z, _ = reader.read()
        space = term.space
        for name in ("sex", "skin_tone"):
            known = [i for i, s in enumerate(samples) if s.attributes[name] is not None]
            a = [space.values[name].index(samples[i].attributes[name]) for i in known]
            logp = torch.log_softmax(term.heads[name](z[known]), -1)
            n = len(known)
            diag = sum(logp[i, a[i]] for i in range(n)) / n
            off = sum(logp[i, a[j]] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
            ce = -diag
            assert logged[f"fairllava/mi/{name}"] == pytest.approx(float(diag - off), abs=1e-5)
            assert logged[f"fairllava/head_ce/{name}"] == pytest.approx(float(ce), abs=1e-5)
    assert len([s for s in samples if s.attributes["sex"] is None]) == 3
    reader.remove()


class _Snapshot(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }


def test_trainable_parameters_are_lora_projector_heads_and_all_change(tiny_llava, tmp_path):
    snap = _Snapshot()
    samples = group_samples(16)
    result = train(
        tiny_llava,
        samples,
        "fairllava",
        train_cfg({"lambdas": {"skin_tone": 0.5, "sex": 0.1}}, steps=4),
        tmp_path / "out",
        callbacks=[snap],
        probe_data=[],
    )
    names = set(snap.before)
    lora = {n for n in names if ".lora_A." in n or ".lora_B." in n}
    proj = {n for n in names if "multi_modal_projector.modules_to_save" in n}
    heads = {n for n in names if n.startswith("fairvlm_terms.fairllava.heads.")}
    assert names == lora | proj | heads
    assert len(lora) == 2 * 7 * 2 and len(proj) == 4 and len(heads) == 4
    assert not any("vision_tower" in n or "lm_head" in n for n in names)
    from safetensors.torch import load_file

    after = dict(result.adapter.model.named_parameters())
    after.update(
        {
            f"fairvlm_terms.{k}": v
            for k, v in load_file(tmp_path / "out" / "heads.safetensors").items()
        }
    )
    unchanged = [n for n in names if torch.equal(after[n].detach(), snap.before[n])]
    assert unchanged == []
    # losses are finite although a third of the batch has an unknown sex
    assert all(math.isfinite(r["loss"]) for r in result.log_history if "loss" in r)
    assert any("fairllava/mi/sex" in r for r in result.log_history)
    # hooks and heads are gone from the returned model
    assert not hasattr(result.adapter.model, "fairvlm_terms")
    assert _reader_hooks(result.adapter) == 0


def test_adapter_and_projector_reload_with_load_vlm(tiny_llava, tmp_path):
    samples = group_samples(8)
    result = train(
        tiny_llava,
        samples,
        "fairllava",
        train_cfg({"lambdas": {"skin_tone": 0.5}}),
        tmp_path / "o",
        probe_data=[],
    )
    reloaded = load_vlm(tiny_llava, adapter=tmp_path / "o")
    base = load_vlm(tiny_llava)
    batch = base.collate(samples[:3])
    with torch.no_grad():
        trained = result.adapter.model(**batch).logits
        again = reloaded.model(**batch).logits
        untouched = base.model(**batch).logits
    assert torch.allclose(trained, again, atol=1e-5)
    assert not torch.allclose(trained, untouched, atol=1e-3)


def test_fit_probe_decodes_an_encoded_attribute_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(200, 6, generator=gen).numpy()
    y_dep = (z[:, 2] > 0).astype(int)
    y_noise = torch.randint(0, 2, (200,), generator=gen).numpy()
    assert fit_probe(z, y_dep)[1] > 0.9
    assert abs(fit_probe(z, y_noise)[1] - 0.5) < 0.15


def test_the_mlp_probe_decodes_what_no_hyperplane_separates():
    """y = xor(z0 > 0, z1 > 0): the linear probe stays at chance, the MLP decodes it."""
    from fairvlm.representation import ProbeSettings

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(400, 6, generator=gen).numpy()
    y = ((z[:, 0] > 0) ^ (z[:, 1] > 0)).astype(int)
    assert abs(fit_probe(z, y)[1] - 0.5) < 0.1
    mlp = ProbeSettings(kind="mlp", hidden=32, steps=300)
    assert fit_probe(z, y, settings=mlp)[1] > 0.85
    with pytest.raises(ConfigError, match="kind"):
        ProbeSettings(kind="forest")


def test_probe_warns_when_the_estimator_is_fooled(tiny_llava, tmp_path, capsys):
    # the published head (linear, scale 1, lr 1e-4) barely learns in 4 steps while the
    # background colour makes skin tone trivially decodable: MI ~ 0 and probe ~ 100 %
    samples = group_samples(16)
    result = train(
        tiny_llava,
        samples,
        "fairllava",
        train_cfg({"lambdas": {"skin_tone": 0.2}}, lr=1e-4),
        tmp_path / "o",
        probe_data=group_samples(40, seed=1),
    )
    (row,) = result.probe
    assert row["attribute"] == "skin_tone" and row["probe"] == "linear"
    assert abs(row["club_mi"]) < 0.05 and row["balanced_accuracy"] > 0.9
    assert row["fooled"] is True
    assert FOOLED in capsys.readouterr().out
    assert not (tmp_path / "o" / "probe_sweep.json").exists()
    # the MLP probe, chosen in the config, reads the same z and is recorded as such; the
    # sweep adds both probes at every layer and position set
    probe = {"kind": "mlp", "hidden": 16, "sweep": True}
    mlp = train(
        tiny_llava,
        samples,
        "fairllava",
        train_cfg({"lambdas": {"skin_tone": 0.2}}, lr=1e-4, probe=probe),
        tmp_path / "mlp",
        probe_data=group_samples(40, seed=1),
    )
    (row,) = mlp.probe
    assert row["probe"] == "mlp" and row["balanced_accuracy"] > 0.9
    saved = json.loads((tmp_path / "mlp" / "probe.json").read_text())
    assert saved[0]["probe"] == "mlp"
    sweep = json.loads((tmp_path / "mlp" / "probe_sweep.json").read_text())
    cells = {(r["entry"], r["tokens"], r["probe"]) for r in sweep}
    assert cells == {
        (e, t, p) for e in (0, 1, 2) for t in ("image", "text") for p in ("linear", "mlp")
    }
    assert {r["attribute"] for r in sweep} == {"skin_tone"}
    # FairLLaVA's default layer (entry 1, image tokens), mean-pooled by the sweep
    (same,) = [r for r in sweep if (r["entry"], r["tokens"], r["probe"]) == (1, "image", "mlp")]
    assert same["balanced_accuracy"] > 0.9


def test_probe_flags_a_negative_club_estimate(tiny_llava):
    from sklearn.linear_model import LogisticRegression

    from fairvlm.representation import CLUBHead, collect, run_probe

    vlm = load_vlm(tiny_llava)
    samples = group_samples(40, seed=1)
    space = AttributeSpace.from_samples(samples)
    y = AttributeSpace(values={"skin_tone": space.values["skin_tone"]}).encode(samples)[0][:, 0]
    reader = LayerReader(RepresentationSettings(0.5, "image", "mean", True))
    reader.attach(vlm)
    try:
        z, valid = collect(vlm, reader, samples)
        assert valid.all()
        fit = LogisticRegression(max_iter=2000).fit(z, y)
        w, b = torch.tensor(fit.coef_[0]).float(), float(fit.intercept_[0])

        def head(sign: float) -> CLUBHead:
            # logits [0, s (w.z + b)]: s=+1 is the fitted classifier, s=-1 its opposite
            h = CLUBHead(z.shape[1], 2, scale=3.0)
            with torch.no_grad():
                h.net.weight.copy_(torch.stack([torch.zeros_like(w), sign * w]))
                h.net.bias.copy_(torch.tensor([0.0, sign * b]))
            return h

        with pytest.warns(UserWarning, match=FOOLED) as caught:
            (bad,) = run_probe(vlm, reader, samples, space, ["skin_tone"], {"skin_tone": head(-1)})
        (good,) = run_probe(vlm, reader, samples, space, ["skin_tone"], {"skin_tone": head(1)})
    finally:
        reader.remove()
    # an anti-informative head: CLUB far below zero while the probe decodes skin tone
    assert bad.club_mi < -0.3 and bad.balanced_accuracy > 0.9
    assert bad.fooled is True
    assert "negative" in str(caught[0].message)
    # the fitted head itself: a large positive estimate agrees with the probe
    assert good.club_mi > 0.3 and good.balanced_accuracy > 0.9
    assert good.fooled is False
