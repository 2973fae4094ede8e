"""The FairLLaVA loss term (METHODS.md section 1).

Per attribute ``a`` with known values: the penalty ``lambda_a * sqrt(MI_a^2 + 1e-6)``,
where ``MI_a`` is the CLUB estimate computed with the head's parameters DETACHED (a
functional call with detached weights: its gradient reaches only z, hence only the
backbone's trainable parameters), plus the head's own cross-entropy on ``z.detach()``
(its gradient reaches only the head). ``FairTrainer`` adds ``w_ce * CE_LM``::

    L = w_ce * CE_LM + fairness_lambda * (sum_a lambda_a * sqrt(MI_a^2 + 1e-6)
                                          + w_club * sum_a CE(q_a(z.detach()), a))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from fairvlm.mitigation.fairllava.config import FairLLaVAConfig
from fairvlm.representation import (
    CLUBHead,
    LayerReader,
    attribute_targets,
    club_mi,
    head_accuracy,
    head_ce,
)
from fairvlm.training.dataset import AttributeSpace
from fairvlm.training.trainer import LossTerm, TermInputs, TermOutput

#: Inside the square root of the smooth |MI|.
SMOOTH_EPS = 1e-6


def smooth_abs(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x^2 + 1e-6)``: |x| with a gradient at 0."""
    return torch.sqrt(x * x + SMOOTH_EPS)


def detached_call(module: nn.Module, *args: Any) -> torch.Tensor:
    """``module(*args)`` with every parameter detached: no gradient reaches ``module``."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    return functional_call(module, params, args)


class FairLLaVATerm(LossTerm):
    """CLUB heads + MI penalty on the layer chosen by ``config.representation``."""

    name = "fairllava"

    def __init__(self, config: FairLLaVAConfig, space: AttributeSpace, hidden_size: int) -> None:
        super().__init__()
        self.config = config
        self.space = space
        self.reader = LayerReader(config.representation)
        n_labels = len(space.labels) if config.conditional else 1
        self.heads = nn.ModuleDict(
            {
                a: CLUBHead(
                    hidden_size, space.size(a), config.head_width, config.head_scale, n_labels
                )
                for a in config.attributes
            }
        )

    def attach(self, adapter: Any) -> None:
        self.reader.attach(adapter)

    def remove(self) -> None:
        self.reader.remove()

    def prepare(self, batch: Any) -> None:
        self.reader.prepare(batch)

    def _extra_head_updates(
        self, head: CLUBHead, z: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor | None
    ) -> None:
        """``head_updates - 1`` plain SGD steps of the head on its CE of ``z.detach()``.

        Stateless SGD keeps resume exact; gradients are averaged over processes so that
        the heads stay identical under DDP.
        """
        params = [p for p in head.parameters() if p.requires_grad]
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        for _ in range(self.config.head_updates - 1):
            with torch.enable_grad():
                ce = head_ce(head(z, labels), targets)
                grads = torch.autograd.grad(ce, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    if g is None:
                        continue
                    if dist:
                        torch.distributed.all_reduce(g)
                        g /= torch.distributed.get_world_size()
                    p -= self.config.head_lr * g

    def forward(self, inputs: TermInputs) -> TermOutput:
        cfg = self.config
        z, valid = self.reader.read()
        z_detached = z.detach()
        labels = inputs.labels if cfg.conditional else None
        if labels is not None:
            valid = valid & (labels >= 0)
        penalty = z.sum() * 0.0
        club_ce = z.sum() * 0.0
        logs: dict[str, Any] = {}
        for name, head in self.heads.items():
            targets = attribute_targets(inputs.attributes, self.space.names, name, valid)
            if cfg.head_updates > 1 and self.training:
                self._extra_head_updates(head, z_detached, targets, labels)
            mi = club_mi(detached_call(head, z, labels), targets, labels)
            penalty = penalty + cfg.lambdas[name] * smooth_abs(mi)
            head_logits = head(z_detached, labels)
            ce = head_ce(head_logits, targets)
            club_ce = club_ce + ce
            logs[f"mi/{name}"] = mi.detach()
            logs[f"head_ce/{name}"] = ce.detach()
            acc = head_accuracy(head_logits.detach(), targets)
            if acc == acc:  # not nan
                logs[f"head_acc/{name}"] = acc
        loss = cfg.fairness_lambda * (penalty + cfg.w_club * club_ce)
        logs["penalty"] = penalty.detach()
        return TermOutput(loss=loss, logs=logs)
