"""Per-epoch re-estimation: the state shared by the callback, the sampler and the dataset.

Before every epoch :class:`ASDCallback` (a ``transformers.TrainerCallback``) asks
:class:`ASDState` to re-estimate the skew with the current model; the state then sets
the SFLoss weights on the training dataset, draws the epoch's resampling, and the
callback appends the epoch's skew summary (``asd/max_skew``, ``asd/min_skew``,
``asd/ndkl`` overall and per attribute, drop/copy counts ...) to the Trainer's log
history, which ``fairvlm train`` saves as ``training_log.jsonl`` (one row per epoch:
what the report plots). A last estimate after training is logged too (``log_final``).

:class:`ASDSamplerFactory` is the ``MethodSetup.sampler`` of every ASD variant: it binds
the dataset to the state and returns a :class:`BiasAwareSampler` whose epoch comes from
the state. The state computes each epoch once, so the sampler also triggers the estimate
itself when no callback ran before the epoch. ``ASDCallback()`` without a state finds it
through the DataLoader's sampler: ``train(..., callbacks=[ASDCallback()])``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from transformers import TrainerCallback

from fairvlm.mitigation.asd.sampler import BiasAwareSampler, Resampling, resample
from fairvlm.mitigation.asd.skew import EpochSkew, SkewEstimator
from fairvlm.mitigation.asd.weights import sfloss_weights


class ASDState:
    """What one ASD run knows: the estimator, the dataset, and each epoch's decisions.

    Args:
        config: the run's ``ASDConfig`` (its variant says what is on).
        estimator: scores the pools (``None`` for an untracked ``naive`` run).
        seed: seeds the resampling draws (with the epoch).
    """

    def __init__(self, config: Any, estimator: SkewEstimator | None, seed: int = 0) -> None:
        self.config = config
        self.estimator = estimator
        self.seed = seed
        self.dataset: Any = None
        self.history: list[dict[str, Any]] = []
        self.epochs: dict[int, tuple[EpochSkew, Resampling | None]] = {}
        self.finished = False

    def bind(self, dataset: Any) -> None:
        """The training dataset whose weights the state sets (a ``SampleDataset``)."""
        self.dataset = dataset

    def refresh(self, epoch: int) -> dict[str, Any] | None:
        """Estimate epoch ``epoch`` once: weights, resampling, log record.

        Returns the epoch's log record the first time, ``None`` afterwards (or when the
        variant estimates nothing).
        """
        if self.estimator is None or epoch in self.epochs:
            return None
        est = self.estimator.estimate(epoch)
        record: dict[str, Any] = est.summary()
        drawn = None
        if self.config.resamples:
            rng = np.random.default_rng([self.seed, epoch, 0])
            drawn = resample(
                est.skews, self.config.tau1, self.config.tau2, rng, self.config.accumulator
            )
            record.update(drawn.stats())
        if self.config.reweights:
            epoch_samples = None
            if self.config.normalize_weights:
                epoch_samples = np.arange(len(est.skews)) if drawn is None else drawn.indices
            weights = sfloss_weights(est.skews, self.config.weight_clip, epoch_samples)
            if self.dataset is not None:
                self.dataset.set_weights(weights)
            record.update(
                {
                    "asd/weight_min": float(weights.min()),
                    "asd/weight_max": float(weights.max()),
                    "asd/weight_mean": float(weights.mean()),
                }
            )
        if self.estimator.missing:
            record["asd/missing_pool_values"] = float(
                sum(len(m["values"]) for m in self.estimator.missing)
            )
        self.epochs[epoch] = (est, drawn)
        self.history.append(record)
        return record

    def indices(self, epoch: int) -> np.ndarray | None:
        """The epoch's resampled multiset (``None``: a plain permutation)."""
        self.refresh(epoch)
        entry = self.epochs.get(epoch)
        return None if entry is None or entry[1] is None else entry[1].indices

    def final(self, epoch: int) -> dict[str, Any] | None:
        """The skew after training (logged once, no weights or resampling drawn)."""
        if self.estimator is None or epoch in self.epochs or self.finished:
            return None
        self.finished = True
        record = {**self.estimator.estimate(epoch).summary(), "asd/final": 1.0}
        self.history.append(record)
        return record


def _epoch_of(state: Any) -> int:
    # state.epoch is the float number of epochs done; at an epoch boundary it is whole.
    return int(math.floor((state.epoch or 0.0) + 1e-6))


def find_state(loader: Any) -> ASDState | None:
    """The :class:`ASDState` behind a training DataLoader's ASD sampler (or None)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    for obj in (
        getattr(loader, "sampler", None),
        getattr(batch_sampler, "sampler", None),
        getattr(getattr(batch_sampler, "batch_sampler", None), "sampler", None),
    ):
        if isinstance(getattr(obj, "state", None), ASDState):
            return obj.state
    return None


class ASDCallback(TrainerCallback):
    """Re-estimates the skew before each epoch and logs it into the Trainer's history.

    Args:
        asd: the run's state (the ASD methods add this callback with it themselves);
            ``None``: found through the training DataLoader's ASD sampler, for a Trainer
            built by hand. A second callback on the same state logs nothing.
        log_final: also estimate and log the skew after training.
    """

    def __init__(self, asd: ASDState | None = None, log_final: bool = True) -> None:
        self.asd = asd
        self.log_final = log_final

    def _log(self, state: Any, record: dict[str, Any] | None) -> None:
        if record is not None:
            state.log_history.append({**record, "epoch": state.epoch, "step": state.global_step})

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        loader = kwargs.get("train_dataloader")
        if self.asd is None:
            self.asd = find_state(loader)
            if self.asd is None:
                return  # not an ASD run
        if self.asd.dataset is None and loader is not None:
            self.asd.bind(getattr(loader, "dataset", None))
        self._log(state, self.asd.refresh(_epoch_of(state)))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.log_final and self.asd is not None:
            self._log(state, self.asd.final(math.ceil((state.epoch or 0.0) - 1e-6)))


class ASDSamplerFactory:
    """``MethodSetup.sampler`` of the ASD variants: ``factory(dataset, seed) -> Sampler``."""

    def __init__(self, asd: ASDState) -> None:
        self.asd = asd
        self.sampler: BiasAwareSampler | None = None

    def __call__(self, dataset: Any, seed: int) -> BiasAwareSampler:
        self.asd.bind(dataset)
        self.sampler = BiasAwareSampler(
            len(dataset), self.asd.indices, seed=self.asd.seed, state=self.asd
        )
        return self.sampler


__all__ = ["ASDCallback", "ASDSamplerFactory", "ASDState", "find_state"]
