"""The diagnostic the CLUB estimate needs: a fresh probe on the regularised layer.

After training, z is read (same :class:`~fairvlm.representation.RepresentationSettings`
as training) on held-out samples; for each attribute a new ``sklearn`` classifier is
fitted on one half and scored on the other: a logistic regression (``kind: linear``, the
default) or a one-hidden-layer MLP (``kind: mlp``), which also decodes information that
no hyperplane separates (the group may stay decodable non-linearly after adversarial
removal). A CLUB estimate near zero while the probe decodes the
attribute far above chance means the backbone fooled its head instead of removing the
information: the report then says "the estimator is being fooled". A clearly negative
estimate with such a probe is flagged too: CLUB estimates an upper bound of a
non-negative quantity, so a value below zero says its head fits z badly and the estimate
is unreliable.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from fairvlm.config import Config, is_int
from fairvlm.data.schema import Sample
from fairvlm.errors import bad_value
from fairvlm.representation.heads import club_mi
from fairvlm.representation.reader import LayerReader

#: The warning printed and stored when the estimate and the probe disagree.
FOOLED = "the estimator is being fooled"
#: The probes :class:`ProbeSettings` ``kind`` names.
PROBE_KINDS = ("linear", "mlp")


@dataclass
class ProbeSettings(Config):
    """Which fresh probe the diagnostic fits.

    Attributes:
        kind: ``linear`` (logistic regression) or ``mlp`` (standardised z, one ReLU hidden
            layer of ``hidden`` units, Adam for at most ``steps`` epochs: sklearn's
            ``MLPClassifier``).
        hidden, steps: the MLP's width and its most training epochs (unused by ``linear``).
        sweep: also fit the linear and the MLP probe at every layer, on image and on text
            positions (:func:`fairvlm.representation.probe_sweep`); training writes them
            to ``probe_sweep.json``.
    """

    kind: str = "linear"
    hidden: int = 256
    steps: int = 500
    sweep: bool = False

    def validate(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise bad_value("kind", self.kind, f"use one of {PROBE_KINDS}")
        for name in ("hidden", "steps"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise bad_value(name, value, "use a positive integer")
        if not isinstance(self.sweep, bool):
            raise bad_value("sweep", self.sweep, "use true or false")


@dataclass
class ProbeResult:
    """One attribute's diagnosis.

    Attributes:
        accuracy, balanced_accuracy: of the fresh probe on the scored half.
        chance: the majority-class rate of the scored half; ``chance_balanced`` = 1 / K.
        club_mi: the CLUB estimate of the trained head on all held-out z (``None`` when
            the method has no head for this attribute).
        n_fit, n_score: samples the probe was fitted and scored on.
        fooled: the estimate is near 0 or negative but the probe is far above chance.
        pooling, probe: how z was pooled, and the probe's ``kind``.
    """

    attribute: str
    accuracy: float
    balanced_accuracy: float
    chance: float
    chance_balanced: float
    club_mi: float | None
    n_fit: int
    n_score: int
    fooled: bool
    pooling: str
    probe: str = "linear"


@torch.no_grad()
def collect_many(
    adapter: Any,
    readers: Sequence[LayerReader],
    samples: Sequence[Sample],
    batch_size: int = 16,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(z [N, H], valid [N])`` of every attached reader, from one forward pass per batch
    over ``samples`` (eval mode, seeded token draws)."""
    model = adapter.model
    was_training = model.training
    model.eval()
    zs: list[list[np.ndarray]] = [[] for _ in readers]
    valids: list[list[np.ndarray]] = [[] for _ in readers]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(samples), batch_size):
                batch = adapter.collate(samples[start : start + batch_size])
                for reader in readers:
                    reader.prepare(batch)
                adapter.forward_batch(batch)
                for i, reader in enumerate(readers):
                    z, valid = reader.read()
                    zs[i].append(z.cpu().numpy())
                    valids[i].append(valid.cpu().numpy())
    finally:
        model.train(was_training)
    return [(np.concatenate(z), np.concatenate(v)) for z, v in zip(zs, valids, strict=True)]


def collect(
    adapter: Any,
    reader: LayerReader,
    samples: Sequence[Sample],
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(z [N, H], valid [N])`` of ``reader`` on ``samples`` (eval mode, seeded token draws)."""
    return collect_many(adapter, [reader], samples, batch_size, seed)[0]


def _classifier(settings: ProbeSettings, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if settings.kind == "linear":
        return LogisticRegression(max_iter=2000)
    mlp = MLPClassifier(
        hidden_layer_sizes=(settings.hidden,), max_iter=settings.steps, random_state=seed
    )
    return make_pipeline(StandardScaler(), mlp)


def fit_probe(
    z: np.ndarray, y: np.ndarray, seed: int = 0, settings: ProbeSettings | None = None
) -> tuple[float, float, float, int, int]:
    """``(accuracy, balanced accuracy, chance, n_fit, n_score)`` of a fresh probe
    (``settings``, default a logistic regression) fitted on a stratified half of
    ``(z, y)`` and scored on the other half."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    z_fit, z_score, y_fit, y_score = train_test_split(
        z, y, test_size=0.5, random_state=seed, stratify=stratify
    )
    if len(np.unique(y_fit)) < 2:
        pred = np.full_like(y_score, y_fit[0])
    else:
        clf = _classifier(settings or ProbeSettings(), seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(z_fit, y_fit)
        pred = clf.predict(z_score)
    chance = float(np.bincount(y_score).max() / len(y_score))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bal = float(balanced_accuracy_score(y_score, pred))
    return float((pred == y_score).mean()), bal, chance, len(y_fit), len(y_score)


def run_probe(
    adapter: Any,
    reader: LayerReader,
    samples: Sequence[Sample],
    space: Any,
    attributes: Sequence[str],
    heads: Mapping[str, torch.nn.Module] | None = None,
    *,
    labels: Sequence[str] = (),
    seed: int = 0,
    batch_size: int = 16,
    mi_tol: float = 0.05,
    margin: float = 0.2,
    probe: ProbeSettings | None = None,
) -> list[ProbeResult]:
    """Probe every attribute on held-out ``samples``; warn when the estimator is fooled.

    ``fooled`` = ``club_mi < mi_tol`` (nats: near zero, or negative, which an upper-bound
    estimate of a mutual information should never be) and balanced probe accuracy above
    ``1/K + margin``. Attributes with fewer than 2 known values in ``samples`` are skipped.
    ``space`` holds the vocabularies (a ``fairvlm.training.AttributeSpace``); ``probe``:
    which probe (default linear).
    """
    probe = probe or ProbeSettings()
    z, valid = collect(adapter, reader, list(samples), batch_size=batch_size, seed=seed)
    # the caller's space, narrowed to the probed attributes (its class lives above this package)
    attrs, label_idx = replace(
        space, values={a: space.values[a] for a in attributes}, labels=list(labels)
    ).encode(list(samples))
    results = []
    for j, name in enumerate(attributes):
        keep = valid & (attrs[:, j] >= 0)
        y = attrs[keep, j]
        if len(np.unique(y)) < 2 or keep.sum() < 4:
            continue
        acc, bal, chance, n_fit, n_score = fit_probe(z[keep], y, seed, probe)
        mi = None
        if heads is not None and name in heads:
            head = heads[name]
            device = next(head.parameters()).device
            zt = torch.as_tensor(z[keep], device=device)
            lab = (
                torch.as_tensor(label_idx[keep], device=device)
                if getattr(head, "n_labels", 1) > 1
                else None
            )
            with torch.no_grad():
                mi = float(
                    club_mi(
                        head(zt, lab) if lab is not None else head(zt),
                        torch.as_tensor(y, device=device),
                        lab,
                    )
                )
        k = len(space.values[name])
        # A negative estimate is as unreliable as one near zero: the true MI is >= 0.
        fooled = mi is not None and mi < mi_tol and bal > 1.0 / k + margin
        if fooled:
            negative = " (negative, though I(z; a) >= 0: unreliable)" if mi <= -mi_tol else ""
            warnings.warn(
                f"{name}: CLUB estimate {mi:.3f} nats{negative} but a fresh probe decodes it "
                f"at {bal:.0%} balanced accuracy (chance {1 / k:.0%}): {FOOLED}",
                stacklevel=2,
            )
        results.append(
            ProbeResult(
                name,
                acc,
                bal,
                chance,
                1.0 / k,
                mi,
                n_fit,
                n_score,
                fooled,
                reader.settings.pooling,
                probe.kind,
            )  # fmt: skip
        )
    return results


def results_to_dict(results: Sequence[ProbeResult]) -> list[dict[str, Any]]:
    """The results as plain dicts (what ``probe.json`` holds)."""
    return [asdict(r) for r in results]


__all__ = [
    "FOOLED",
    "PROBE_KINDS",
    "ProbeResult",
    "ProbeSettings",
    "collect",
    "collect_many",
    "fit_probe",
    "results_to_dict",
    "run_probe",
]
