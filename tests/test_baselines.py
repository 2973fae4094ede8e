"""Baselines: inverse-frequency weights, group-balanced sampler, gradient reversal adversary."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from training_support import group_samples, train_cfg

from fairvlm.data.schema import Sample
from fairvlm.errors import ConfigError
from fairvlm.mitigation.baselines import (
    GroupBalancedSampler,
    GroupConfig,
    group_keys,
    group_weights,
    reverse_gradient,
)
from fairvlm.representation import RepresentationSettings
from fairvlm.training import train


def _samples(groups, targets=None):
    targets = targets or ["x"] * len(groups)
    return [
        Sample(id=str(i), image=None, prompt="p", target=t, attributes={"skin_tone": g})
        for i, (g, t) in enumerate(zip(groups, targets, strict=True))
    ]


def test_inverse_group_frequency_weights_by_hand():
    s = _samples(["light"] * 6 + ["dark"] * 2 + [None])
    w = group_weights(s, ["skin_tone"])
    # 8 known, 2 groups: light 8 / (2 * 6) = 2/3, dark 8 / (2 * 2) = 2, unknown 1
    assert w.tolist() == pytest.approx([2 / 3] * 6 + [2.0] * 2 + [1.0])
    assert w[:8].mean() == pytest.approx(1.0)
    # each group carries the same total weight
    assert w[:6].sum() == pytest.approx(w[6:8].sum())
    clipped = group_weights(s, ["skin_tone"], max_weight=1.5)
    assert clipped[:8].mean() == pytest.approx(1.0) and clipped[6] / clipped[0] == pytest.approx(
        1.5 / (2 / 3)
    )


def test_group_by_label_cells():
    s = _samples(["light", "light", "light", "dark"], ["a", "a", "b", "b"])
    assert group_keys(s, ["skin_tone"], by_label=True) == [
        ("light", "a"),
        ("light", "a"),
        ("light", "b"),
        ("dark", "b"),
    ]
    # 4 known, 3 cells: (light, a) 4 / 6, (light, b) 4 / 3, (dark, b) 4 / 3
    assert group_weights(s, ["skin_tone"], by_label=True).tolist() == pytest.approx(
        [2 / 3, 2 / 3, 4 / 3, 4 / 3]
    )


def test_group_balanced_sampler_balances_and_is_deterministic():
    keys = group_keys(_samples(["light"] * 90 + ["dark"] * 10), ["skin_tone"])
    sampler = GroupBalancedSampler.for_groups(keys, seed=1)
    drawn = [i for _ in range(20) for i in sampler]
    share_dark = sum(i >= 90 for i in drawn) / len(drawn)
    assert share_dark == pytest.approx(0.5, abs=0.05)
    assert list(sampler) == list(GroupBalancedSampler.for_groups(keys, seed=1))
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and len(first) == 100


def test_gradient_reversal_flips_the_sign():
    x = torch.ones(3, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [-0.5, -1.0, -1.5]


def test_group_config_validation():
    with pytest.raises(ConfigError, match="attributes"):
        GroupConfig(attributes=[])
    with pytest.raises(ConfigError, match="max_weight"):
        GroupConfig(attributes=["sex"], max_weight=0.5)
    assert GroupConfig(attributes="sex,skin_tone").attributes == ["sex", "skin_tone"]


def test_resample_draws_the_minority_as_often_as_the_majority(tiny_llava, tmp_path):
    samples = group_samples(40)
    minority = [s for s in samples if s.attributes["skin_tone"] == "dark"][:5]
    data = [s for s in samples if s.attributes["skin_tone"] == "light"] + minority  # 20 vs 5
    seen: Counter = Counter()

    from transformers import TrainerCallback

    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            for batch in train_dataloader:
                seen.update(batch["fairvlm_attributes"][:, 0].tolist())

    cfg = train_cfg({"attributes": ["skin_tone"]}, steps=1, batch_size=5)
    train(tiny_llava, data, "resample", cfg, tmp_path / "o", callbacks=[Spy()], probe_data=[])
    # one epoch of 25 draws; dark (index 0 in the sorted vocabulary) has 5 of 25 samples
    assert sum(seen.values()) == 25
    assert seen[0] / 25 > 0.3


def test_adversary_pushes_the_backbone_away_from_the_attribute(tiny_llava, tmp_path):
    from transformers import TrainingArguments

    from fairvlm.mitigation.baselines import AdversarialConfig, AdversarialTerm
    from fairvlm.models import load_vlm
    from fairvlm.training import (
        AttributeSpace,
        FairTrainer,
        LoraSettings,
        SampleDataset,
        TrainCollator,
        apply_lora,
    )

    samples = group_samples(8)
    vlm = load_vlm(tiny_llava)
    model = apply_lora(vlm, LoraSettings(r=4, alpha=8, dropout=0.0))
    space = AttributeSpace.from_samples(samples)
    cfg = AdversarialConfig(
        lambdas={"skin_tone": 1.0},
        representation=RepresentationSettings(pooling="mean"),
        head_scale=10.0,
    )
    term = AdversarialTerm(cfg, space, vlm.hidden_size)
    term.attach(vlm)
    args = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, remove_unused_columns=False
    )
    trainer = FairTrainer(model, args=args, terms=[term], space=space, lm_weight=0.0)
    data = SampleDataset(samples, space)
    batch = TrainCollator(vlm)([data[i] for i in range(len(samples))])
    model.train()

    def adversary_ce() -> float:
        trainer.extra_logs.clear()
        trainer.compute_loss(model, dict(batch))
        return trainer.extra_logs["adversarial/adv_ce/skin_tone"][0]

    before = adversary_ce()
    trainer.compute_loss(model, dict(batch)).backward()
    heads = [p for n, p in model.named_parameters() if n.startswith("fairvlm_terms")]
    backbone = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith("fairvlm_terms")
    ]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    with torch.no_grad():  # a step of the backbone alone (head fixed) along its gradient
        for p in backbone:
            if p.grad is not None:
                p -= 0.05 * p.grad
    after_backbone = adversary_ce()
    assert after_backbone > before  # reversed gradient: the backbone makes the adversary worse
    with torch.no_grad():
        for p in heads:  # a step of the head alone lowers its CE
            p -= 0.05 * p.grad
    assert adversary_ce() < after_backbone
    term.remove()
