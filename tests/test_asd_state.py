"""What each variant of the ablation table switches on, with a stub estimator whose skew
changes every epoch: SFLoss weights (asd, asd-loss-only), resampling (asd,
asd-sampling-only), nothing but the log (naive + track_skew), and one estimate per epoch."""

from __future__ import annotations

import numpy as np
import pytest

from fairvlm.mitigation.asd import (
    ASDCallback,
    ASDConfig,
    ASDSamplerFactory,
    ASDState,
    EpochSkew,
    SkewTable,
    find_state,
    resample,
    sfloss_weights,
)

# the skew of each of 6 samples, per epoch (as if the model changed between epochs)
EPOCH_SKEWS = {
    0: np.array([0.8, -0.6, -0.7, 0.0, 1.5, -0.2]),
    1: np.array([0.1, -0.1, -0.9, 0.3, 0.2, -1.4]),
}


class StubEstimator:
    """Returns ``EPOCH_SKEWS[epoch]``; counts how often each epoch is estimated."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.missing: list[dict] = []

    def estimate(self, epoch: int) -> EpochSkew:
        self.calls.append(epoch)
        skews = EPOCH_SKEWS[epoch]
        table = SkewTable({}, {}, {"gender": {"max_skew": float(skews.max()), "min_skew": None}})
        return EpochSkew(epoch, np.full(6, 0.5), table, skews, ["gender"] * 6)


class StubDataset:
    def __init__(self) -> None:
        self.weights = np.ones(6, np.float32)

    def __len__(self) -> int:
        return 6

    def set_weights(self, weights: np.ndarray) -> None:
        self.weights = np.asarray(weights, np.float32)


def _run(variant: str, epochs: int = 2, **options):
    cfg = ASDConfig(variant=variant, progress=False, **options)
    est = StubEstimator() if cfg.estimates else None
    state = ASDState(cfg, est, seed=3)
    dataset = StubDataset()
    sampler = ASDSamplerFactory(state)(dataset, 0)
    weights, orders = [], []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        weights.append(dataset.weights.copy())
    return state, est, weights, orders


@pytest.mark.parametrize(
    ("variant", "reweights", "resamples"),
    [("asd", True, True), ("asd-loss-only", True, False), ("asd-sampling-only", False, True)],
)
def test_each_variant_switches_on_its_part_with_that_epochs_skew(variant, reweights, resamples):
    state, est, weights, orders = _run(variant)
    assert est.calls == [0, 1]  # re-estimated before every epoch, once each
    for epoch in (0, 1):
        skews = EPOCH_SKEWS[epoch]
        expected_w = sfloss_weights(skews) if reweights else np.ones(6)
        np.testing.assert_allclose(weights[epoch], expected_w, rtol=1e-6)
        drawn = state.epochs[epoch][1]
        if resamples:
            again = resample(skews, 1.0, 1.0, np.random.default_rng([3, epoch, 0]))
            assert drawn.indices.tolist() == again.indices.tolist()
            assert set(orders[epoch]) <= set(drawn.indices.tolist())
            assert state.history[epoch]["asd/n_copies"] == drawn.copies.sum()
        else:
            assert drawn is None and sorted(orders[epoch]) == list(range(6))
    # the logged skew follows the epoch's estimate
    assert [r["asd/max_skew/gender"] for r in state.history] == [1.5, 0.3]
    assert ("asd/weight_mean" in state.history[0]) == reweights
    assert ("asd/n_dropped" in state.history[0]) == resamples


def test_weight_clip_reaches_the_dataset():
    _, _, weights, _ = _run("asd-loss-only", epochs=1, weight_clip=[0.5, 1.5])
    np.testing.assert_allclose(weights[0], np.clip(np.exp(-EPOCH_SKEWS[0]), 0.5, 1.5), rtol=1e-6)


def test_normalized_weights_average_one_over_the_epochs_samples():
    state, _, weights, _ = _run("asd", epochs=1, normalize_weights=True)
    drawn = state.epochs[0][1].indices
    raw = np.exp(-EPOCH_SKEWS[0])
    np.testing.assert_allclose(weights[0], raw / raw[drawn].mean(), rtol=1e-6)
    assert weights[0][drawn].mean() == pytest.approx(1.0, rel=1e-6)
    _, _, loss_only, _ = _run("asd-loss-only", epochs=1, normalize_weights=True)
    assert loss_only[0].mean() == pytest.approx(1.0, rel=1e-6)


def test_naive_trains_plainly_and_only_logs_when_tracking():
    state, est, weights, orders = _run("naive")
    assert est is None and state.history == []
    assert all((w == 1).all() for w in weights)
    assert all(sorted(o) == list(range(6)) for o in orders)
    tracked, est_t, weights_t, orders_t = _run("naive", track_skew=True)
    assert est_t.calls == [0, 1] and len(tracked.history) == 2
    assert all((w == 1).all() for w in weights_t)  # logged, never applied
    # the same seed gives naive the same order whether or not it tracks the skew
    assert orders_t == orders


def test_callback_finds_the_state_and_logs_each_epoch_once():
    cfg = ASDConfig(progress=False)
    est = StubEstimator()
    state = ASDState(cfg, est, seed=0)
    dataset = StubDataset()
    sampler = ASDSamplerFactory(state)(dataset, 0)

    class Loader:
        def __init__(self) -> None:
            self.sampler, self.dataset = sampler, dataset

    class TrainerState:
        epoch, global_step, log_history = 0.0, 0, []

    loader, ts = Loader(), TrainerState()
    assert find_state(loader) is state
    cb = ASDCallback()
    cb.on_epoch_begin(None, ts, None, train_dataloader=loader)
    list(sampler)  # the sampler does not estimate epoch 0 again
    ASDCallback(state).on_epoch_begin(None, ts, None, train_dataloader=loader)  # no double log
    ts.epoch, ts.global_step = 1.0, 2
    cb.on_epoch_begin(None, ts, None, train_dataloader=loader)
    assert est.calls == [0, 1]
    assert [(r["asd/epoch"], r["step"]) for r in ts.log_history] == [(0.0, 0), (1.0, 2)]


def test_an_epoch_that_drops_everything_falls_back_to_the_whole_dataset():
    cfg = ASDConfig(variant="asd-sampling-only", tau1=1e-12, progress=False)

    class AllPositive(StubEstimator):
        def estimate(self, epoch: int) -> EpochSkew:
            out = super().estimate(0)
            out.skews = np.full(6, 2.0)
            return out

    state = ASDState(cfg, AllPositive(), seed=0)
    sampler = ASDSamplerFactory(state)(StubDataset(), 0)
    with pytest.warns(UserWarning, match="dropped every sample"):
        order = list(sampler)
    assert sorted(order) == list(range(6))
