"""``FairTrainer``: a ``transformers.Trainer`` with per-sample loss weights, pluggable
extra loss terms and a pluggable sampler.

Only ``compute_loss`` and ``_get_train_sampler`` are overridden, so checkpointing,
resume, gradient accumulation, mixed precision and multi-process training stay the
Trainer's. Extra terms are ``nn.Module``s registered on the model as
``model.fairvlm_terms`` (so their parameters join the one optimizer and the DDP
gradient all-reduce); callbacks save them into each checkpoint and add their scalars
to the Trainer's logs.

The LM loss is the mean over samples of each sample's mean target-token cross-entropy,
times the sample's weight; weights of 1 give the plain per-sample mean.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from fairvlm.atomic import atomic_file
from fairvlm.training.dataset import EXTRA_KEYS, AttributeSpace

#: File name of the extra terms' parameters inside a checkpoint or the output directory.
TERMS_FILE = "heads.safetensors"
#: Attribute of the model holding the extra terms.
TERMS_ATTR = "fairvlm_terms"


@dataclass
class TermInputs:
    """What an extra loss term sees after the forward pass.

    Attributes:
        batch: the model inputs (``input_ids``, ``attention_mask``, ``pixel_values`` ...).
        outputs: the model outputs of this forward pass.
        lm_loss: ``[B]`` per-sample LM loss (unweighted).
        attributes: ``[B, A]`` attribute value indices, ``-1`` unknown.
        labels: ``[B]`` target indices in the label vocabulary, ``-1`` unknown.
        weights: ``[B]`` per-sample loss weights.
        space: the attribute and label vocabularies.
        step: the optimiser step (``state.global_step``).
    """

    batch: Mapping[str, torch.Tensor]
    outputs: Any
    lm_loss: torch.Tensor
    attributes: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    space: AttributeSpace
    step: int


@dataclass
class TermOutput:
    """A term's contribution to the loss and the scalars to log (detached on logging)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)


class LossTerm(nn.Module):
    """An extra loss term. Subclasses set ``name`` and implement :meth:`forward`.

    ``attach(adapter)`` registers what the term needs on the model (forward hooks),
    ``remove()`` undoes it; ``prepare(batch)`` runs before each forward pass.
    """

    name: str = "term"

    def attach(self, adapter: Any) -> None:
        """Register hooks on the adapter's model (none by default)."""

    def remove(self) -> None:
        """Remove the hooks registered by :meth:`attach`."""

    def prepare(self, batch: Mapping[str, torch.Tensor]) -> None:
        """Called with the model inputs before each forward pass."""

    def forward(self, inputs: TermInputs) -> TermOutput:  # pragma: no cover - abstract
        raise NotImplementedError


SamplerFactory = Callable[[Any, int], torch.utils.data.Sampler]


def per_sample_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[B]`` mean next-token cross-entropy over each sample's target tokens (0 if none).

    ``logits`` may cover only the last positions of the sequence (``logits_to_keep``):
    they are aligned with the end of ``labels``.
    """
    labels = labels[:, -logits.shape[1] :]
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    ce = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).view(shift_labels.shape)
    n = (shift_labels != -100).sum(dim=1)
    return ce.sum(dim=1) / n.clamp(min=1)


def _logits_to_keep(labels: torch.Tensor) -> int:
    """How many final positions hold every target token and the one before it."""
    cols = (labels != -100).any(dim=0).nonzero()
    if cols.numel() == 0:
        return 1
    return int(labels.shape[1] - cols.min().item() + 1)


class FairTrainer(Trainer):
    """``Trainer`` with per-sample weights, extra loss terms and a pluggable sampler.

    Args:
        terms: extra loss terms (registered on the model as ``model.fairvlm_terms``).
        sampler: ``factory(dataset, seed) -> Sampler`` for the training data (``None``:
            the Trainer's random sampler).
        lm_weight: weight of the LM loss (FairLLaVA's ``w_ce``).
        space: the attribute/label vocabularies passed to the terms.
        Remaining arguments go to ``transformers.Trainer``.
    """

    # compute_loss returns a per-micro-batch mean: the Trainer must divide it by the
    # number of accumulation steps. transformers >= 5.19 reads this documented class
    # attribute; older releases read model_accepts_loss_kwargs (set in __init__).
    # test_gradient_accumulation_matches_the_full_batch pins both.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: nn.Module,
        *args: Any,
        terms: Sequence[LossTerm] = (),
        sampler: SamplerFactory | None = None,
        lm_weight: float = 1.0,
        space: AttributeSpace | None = None,
        **kwargs: Any,
    ) -> None:
        setattr(model, TERMS_ATTR, nn.ModuleDict({t.name: t for t in terms}))
        self.sampler_factory = sampler
        self.lm_weight = float(lm_weight)
        self.space = space or AttributeSpace()
        self.extra_logs: dict[str, list[float]] = {}
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks += [ExtraScalarsCallback(self), TermsCheckpointCallback()]
        super().__init__(model, *args, callbacks=callbacks, **kwargs)
        self.model_accepts_loss_kwargs = False

    @property
    def terms(self) -> list[LossTerm]:
        return list(getattr(self.model, TERMS_ATTR).values())

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        if self.sampler_factory is None:
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return self.sampler_factory(dataset, seed)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        extras = {k: inputs.pop(k) for k in EXTRA_KEYS if k in inputs}
        labels = inputs.pop("labels")
        terms = self.terms
        for term in terms:
            term.prepare(inputs)
        outputs = model(**inputs, logits_to_keep=_logits_to_keep(labels))
        lm = per_sample_lm_loss(outputs.logits, labels)
        n = lm.shape[0]
        weights = extras.get("fairvlm_weights", torch.ones(n)).to(lm.device, lm.dtype)
        loss = self.lm_weight * (weights * lm).mean()
        logs: dict[str, Any] = {"lm_loss": lm.mean()}
        if terms:
            term_in = TermInputs(
                batch=inputs,
                outputs=outputs,
                lm_loss=lm,
                attributes=extras.get("fairvlm_attributes", torch.full((n, 0), -1)).to(lm.device),
                labels=extras.get("fairvlm_labels", torch.full((n,), -1)).to(lm.device),
                weights=weights,
                space=self.space,
                step=self.state.global_step,
            )
            for term in terms:
                out = term(term_in)
                loss = loss + out.loss
                logs.update({f"{term.name}/{k}": v for k, v in out.logs.items()})
        if model.training:
            self._accumulate(logs)
        return (loss, outputs) if return_outputs else loss

    def _accumulate(self, logs: Mapping[str, Any]) -> None:
        for key, value in logs.items():
            value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            acc = self.extra_logs.setdefault(key, [0.0, 0.0])
            acc[0] += value
            acc[1] += 1.0


class ExtraScalarsCallback(TrainerCallback):
    """Adds the mean of each extra scalar since the last log to the Trainer's logs."""

    def __init__(self, trainer: FairTrainer) -> None:
        self.trainer = trainer

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        acc = self.trainer.extra_logs
        if not acc or logs is None or "loss" not in logs:
            return
        keys = sorted(acc)
        sums = torch.tensor([[acc[k][0], acc[k][1]] for k in keys], dtype=torch.float64)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank logs at the same steps; NCCL needs the tensor on the rank's device
            sums = sums.to(args.device)
            torch.distributed.all_reduce(sums)
            sums = sums.cpu()
        means = {k: float(s / max(c, 1.0)) for k, (s, c) in zip(keys, sums.tolist(), strict=True)}
        logs.update(means)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(means)
        acc.clear()


class TermsCheckpointCallback(TrainerCallback):
    """Saves the extra terms' parameters (CLUB heads ...) into each checkpoint."""

    def on_save(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        if model is None or not state.is_world_process_zero:
            return
        ckpt = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(ckpt):
            save_terms(model, os.path.join(ckpt, TERMS_FILE))


def terms_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The extra terms' state dict (empty when the model has none)."""
    terms = getattr(model, TERMS_ATTR, None)
    if terms is None:
        return {}
    return {k: v.detach().cpu().contiguous() for k, v in terms.state_dict().items()}


def save_terms(model: nn.Module, path: str | os.PathLike) -> None:
    """Write the extra terms' parameters to a safetensors file, atomically."""
    from safetensors.torch import save_file

    with atomic_file(path) as tmp:
        save_file(terms_state(model), str(tmp), metadata={"format": "pt"})


def load_terms(model: nn.Module, path: str | os.PathLike) -> None:
    """Load the extra terms' parameters saved by :func:`save_terms` (strict)."""
    from safetensors.torch import load_file

    terms = getattr(model, TERMS_ATTR, None)
    state = load_file(str(path))
    if terms is None:
        if state:
            raise ValueError(f"{path} holds extra-term parameters but the model has no terms")
        return
    terms.load_state_dict(state, strict=True)
