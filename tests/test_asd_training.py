"""ASD with a tiny LLaVA: skew re-estimated before every epoch with the current model
(logged values change as the model trains), weights and resampling taken from that
epoch's skew, the registered methods through ``train``, and bad data refused first."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from training_support import TINY_LORA, train_cfg

from fairvlm.data.schema import Sample
from fairvlm.errors import DataError
from fairvlm.mitigation.asd import sfloss_weights
from fairvlm.mitigation.asd.methods import setup_callbacks
from fairvlm.training import get_method

GENDER_PIXEL = {"female": 40, "male": 220}
RACE_PIXEL = {"light": 230, "brown": 140, "dark": 50}


def cf_samples(concepts=("doctor", "nurse"), races=("light", "dark"), sets=2) -> list[Sample]:
    """Counterfactual sets: the image encodes gender (top half) and race (bottom half).

    The probe answer is stereotyped (doctor: yes for men; nurse: yes for women), so a
    model trained on it changes its ranking, hence the skew.
    """
    rng = np.random.default_rng(0)
    out = []
    for ci, c in enumerate(concepts):
        for k in range(sets):
            for g in ("female", "male"):
                for r in races:
                    px = np.zeros((32, 32, 3), np.uint8)
                    px[:16] = GENDER_PIXEL[g]
                    px[16:] = RACE_PIXEL[r]
                    px[:, :4] = 90 * ci
                    px += rng.integers(0, 12, px.shape, dtype=np.uint8)
                    yes = (g == "male") == (c == "doctor")
                    out.append(
                        Sample(
                            id=f"{c}-{k}-{g}-{r}",
                            image=Image.fromarray(px),
                            prompt=f"Is this person a {c}?",
                            target="yes" if yes else "no",
                            task="probe",
                            attributes={"gender": g, "race": r},
                            concept=c,
                            counterfactual_set=f"{c}-{k}",
                        )
                    )
    return out


def _trainer(adapter, samples, method, options, epochs, tmp_path):
    from transformers import TrainingArguments

    from fairvlm.training import (
        AttributeSpace,
        FairTrainer,
        LoraSettings,
        MethodContext,
        SampleDataset,
        TrainCollator,
        TrainConfig,
        apply_lora,
    )

    apply_lora(adapter, LoraSettings(**TINY_LORA))
    spec = get_method(method)
    cfg = spec.parse(options)
    space = AttributeSpace.from_samples(samples, spec.attributes(cfg))
    setup = spec.build(MethodContext(adapter, samples, space, TrainConfig(), cfg))
    dataset = SampleDataset(samples, space, setup.weights)
    args = TrainingArguments(
        output_dir=str(tmp_path / "ckpt"),
        per_device_train_batch_size=4,
        num_train_epochs=epochs,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    trainer = FairTrainer(
        adapter.model,
        args=args,
        train_dataset=dataset,
        data_collator=TrainCollator(adapter),
        sampler=setup.sampler,
        space=space,
        callbacks=setup_callbacks(setup),
    )
    return trainer, setup, dataset


def test_skew_is_reestimated_each_epoch_and_drives_weights_and_sampling(tiny_llava, tmp_path):
    from fairvlm.models import load_vlm

    samples = cf_samples()
    adapter = load_vlm(tiny_llava)
    trainer, setup, dataset = _trainer(
        adapter, samples, "asd", {"progress": False, "k": 4}, 2, tmp_path
    )
    state = setup.sampler.asd
    trainer.train()

    rows = [r for r in trainer.state.log_history if "asd/max_skew" in r]
    assert [r["asd/epoch"] for r in rows] == [0.0, 1.0, 2.0]  # two epochs + after training
    assert rows[-1]["asd/final"] == 1.0
    cache = state.estimator._cache
    # the model changed, so its scores and the logged skew summaries changed
    assert not np.allclose(cache[0].p_yes, cache[1].p_yes)
    assert not np.allclose(cache[1].p_yes, cache[2].p_yes)
    assert len({r["asd/p_yes_mean"] for r in rows}) == 3
    # ... and so did the skew table and the per-sample skews that set the weights and the
    # resampling (the means over concepts can coincide on pools this small)
    assert cache[0].table.skew != cache[1].table.skew != cache[2].table.skew
    assert not np.array_equal(cache[0].skews, cache[1].skews)
    # the dataset carries the last epoch's SFLoss weights; the sampler its resampling
    est1, drawn1 = state.epochs[1]
    np.testing.assert_allclose(dataset.weights, sfloss_weights(est1.skews))
    assert rows[1]["asd/n_dropped"] == drawn1.dropped.sum()
    assert set(setup.sampler.sampler.last_order) <= set(drawn1.indices.tolist())
    assert len(setup.sampler.sampler.last_order) == len(samples)


def test_registered_methods_train_end_to_end_and_save_their_setup(tiny_llava, tmp_path):
    import yaml

    from fairvlm.training import train

    samples = cf_samples(concepts=("doctor", "nurse"), races=("light", "dark"), sets=1)
    # the nurse set lacks race "brown": reported, not skewed
    samples += cf_samples(concepts=("doctor",), races=("brown",), sets=1)
    for s in samples[-2:]:
        s.id += "-b"
        s.counterfactual_set = "doctor-b"
    with pytest.warns(UserWarning, match="'nurse' has no image with race=brown"):
        result = train(
            tiny_llava,
            samples,
            "asd",
            train_cfg({"progress": False}, steps=2),
            tmp_path / "asd",
            probe_data=[],  # no callbacks passed: the method adds its own ASDCallback
        )
    assert result.global_step == 2
    rows = [r for r in result.log_history if "asd/epoch" in r]
    assert [r["asd/epoch"] for r in rows] == [0.0, 1.0]  # before epoch 0, after training
    assert rows[0]["asd/missing_pool_values"] == 1.0
    saved = yaml.safe_load((tmp_path / "asd" / "config.yaml").read_text())
    assert saved["method_config"]["variant"] == "asd"
    assert saved["setup"]["attributes"] == ["gender", "race"]
    assert saved["setup"]["pool_images"] == 10
    assert saved["setup"]["missing_pool_values"] == [
        {"concept": "nurse", "attribute": "race", "values": ["brown"]}
    ]
    naive = train(
        tiny_llava, samples, "naive", train_cfg(steps=2), tmp_path / "naive", probe_data=[]
    )
    assert naive.global_step == 2


def test_data_without_counterfactual_columns_is_refused_before_the_model(tmp_path):
    from fairvlm.training import train

    plain = [
        Sample(f"p{i}", None, "Is this person a doctor?", "yes", attributes={"gender": "female"})
        for i in range(4)
    ]
    # the model path does not exist: the data error must come first
    with pytest.raises(DataError, match="counterfactual_set, concept, attributes"):
        train(tmp_path / "no-model", plain, "asd-loss-only", train_cfg(steps=1), tmp_path / "o")
