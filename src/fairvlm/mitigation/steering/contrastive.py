"""The dataset-based (contrastive) steering vector (METHODS.md section 3).

Activations at chosen decoder layers are read on "biased" inputs (whose reference answer
mentions protected attributes) and "neutral" ones, pooled over positions, and aggregated:

- ``mean_diff``: ``v_l = mean(h_l | biased) - mean(h_l | neutral)``;
- ``pca``: the first principal direction of the paired differences ``h_l(b_i) - h_l(n_i)``,
  *uncentred* (a centred PCA would remove their shared shift, which is the signal), with
  its sign fixed to agree with the mean difference and its length the mean difference's
  projection on it.

Either way the vector points from neutral to biased: ``add`` with a negative scale, or
``ablate``, steers away from the bias.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fairvlm.config import Config, check_positive_int, is_int
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError, bad_value
from fairvlm.metrics.social import DEFAULT_LEXICON, mention_flags
from fairvlm.mitigation.steering.activations import (
    READ_POSITIONS,
    pool_positions,
    record_layers,
    resolve_layers,
)
from fairvlm.mitigation.steering.common import (
    check_layers_field,
    chunks,
    load_samples_of,
    vector_origin,
)
from fairvlm.mitigation.steering.vector import SteeringVector

AGGREGATORS = ("mean_diff", "pca")
#: Sample filters of the dataset mode.
FILTERS = ("target_mentions", "target_no_mentions", "any")


@dataclass
class ContrastiveConfig(Config):
    """How a contrastive vector is built.

    Attributes:
        layers: decoder layers to build a direction for (negative = from the end);
            ``None`` = the middle layer.
        position: where activations are read: ``last_prompt`` (default, the token that
            predicts the answer's first token), ``image_mean`` (mean over image tokens),
            ``prompt_mean``, or ``answer_mean`` (mean over the positions predicting the
            reference answer, teacher-forced: use it when both sets share their prompts,
            as describe samples do, so that the answers make the difference).
        answer_tokens: with ``answer_mean``, read only the positions predicting the first
            N answer tokens (``None``: all). Where the answers diverge early ("A young
            woman who is a doctor" / "A person who is a doctor"), a few tokens catch the
            divergence without the rest of the answer (the concept).
        aggregator: ``mean_diff`` or ``pca`` (see the module docstring).
        split, task: dataset mode: the split and the task (``None``: any) samples come from.
        biased, neutral: dataset mode filters: ``target_mentions`` (the reference answer
            names a word of ``lexicon``), ``target_no_mentions``, ``any``.
        lexicon: attribute words of the filters; ``None`` = every word of
            ``fairvlm.metrics.social.DEFAULT_LEXICON`` (gender, race, age).
        limit: at most this many samples per set (a seeded random subset); ``None`` = all.
        batch_size: samples per forward pass.
        seed: the subset draw and the pairing of ``pca``.
    """

    layers: list[int] | None = None
    position: str = "last_prompt"
    answer_tokens: int | None = None
    aggregator: str = "mean_diff"
    split: str = "train"
    task: str | None = "describe"
    biased: str = "target_mentions"
    neutral: str = "target_no_mentions"
    lexicon: list[str] | None = None
    limit: int | None = 256
    batch_size: int = 8
    seed: int = 0

    def validate(self) -> None:
        check_layers_field(self.layers)
        if self.position not in READ_POSITIONS:
            raise bad_value("position", self.position, f"use one of {list(READ_POSITIONS)}")
        if self.aggregator not in AGGREGATORS:
            raise bad_value("aggregator", self.aggregator, f"use one of {list(AGGREGATORS)}")
        for name in ("biased", "neutral"):
            if getattr(self, name) not in FILTERS:
                raise bad_value(name, getattr(self, name), f"use one of {list(FILTERS)}")
        if self.biased == self.neutral:
            raise bad_value("neutral", self.neutral, "use a filter other than `biased`'s")
        if self.lexicon is not None and not self.lexicon:
            raise bad_value(
                "lexicon", self.lexicon, "give attribute words, or null for the default"
            )
        check_positive_int("limit", self.limit, optional=True)
        check_positive_int("answer_tokens", self.answer_tokens, optional=True)
        check_positive_int("batch_size", self.batch_size)
        if not is_int(self.seed):
            raise bad_value("seed", self.seed, "use an integer")


def _mentions(texts: Sequence[str | None], lexicon: list[str] | None) -> list[bool]:
    lex = DEFAULT_LEXICON if lexicon is None else {"attributes": tuple(lexicon)}
    return mention_flags(list(texts), lex).any(axis=1).tolist()


def select_sets(
    samples: Sequence[Sample], cfg: ContrastiveConfig
) -> tuple[list[Sample], list[Sample]]:
    """The biased and neutral samples of the dataset mode (seeded subsets of ``limit``).

    Raises:
        DataError: a set is empty (the message gives the counts), or a filter needs
            targets the samples lack.
    """
    pool_ = [s for s in samples if cfg.task is None or s.task == cfg.task]
    if not pool_:
        raise DataError(
            f"no samples of task={cfg.task!r} in split={cfg.split!r}: choose another task/split"
        )
    if "target_mentions" in (cfg.biased, cfg.neutral) or "target_no_mentions" in (
        cfg.biased,
        cfg.neutral,
    ):
        missing = [s.id for s in pool_ if s.target is None]
        if missing:
            raise DataError(
                f"sample {missing[0]!r} has no target: the mention filters read the reference answer"
            )
        flags = _mentions([s.target for s in pool_], cfg.lexicon)
    else:
        flags = [False] * len(pool_)

    def pick(rule: str) -> list[Sample]:
        if rule == "any":
            return list(pool_)
        want = rule == "target_mentions"
        return [s for s, f in zip(pool_, flags, strict=True) if f == want]

    rng = random.Random(cfg.seed)
    out = []
    for name in ("biased", "neutral"):
        chosen = pick(getattr(cfg, name))
        if not chosen:
            raise DataError(
                f"the {name} set ({name}={getattr(cfg, name)!r}) is empty among the "
                f"{len(pool_)} samples of task={cfg.task!r}, split={cfg.split!r} "
                f"({sum(flags)} mention an attribute): change the filters or the data"
            )
        if cfg.limit is not None and len(chosen) > cfg.limit:
            chosen = rng.sample(chosen, cfg.limit)
        out.append(chosen)
    return out[0], out[1]


def read_activations(
    adapter: Any,
    samples: Sequence[Sample],
    layers: Sequence[int],
    position: str,
    batch_size: int = 8,
    progress: bool = False,
    answer_tokens: int | None = None,
) -> dict[int, torch.Tensor]:
    """``{layer: [N, hidden]}`` float32 activations pooled at ``position``: one forward
    of each batch (prompt, plus the reference answer for ``answer_mean``)."""
    from tqdm.auto import tqdm

    with_target = position == "answer_mean"
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for chunk in tqdm(chunks(list(samples), batch_size), desc="activations", disable=not progress):
        batch = adapter.collate(chunk, with_target=with_target)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with record_layers(adapter, layers) as rec, torch.inference_mode():
            adapter.model(**inputs, use_cache=False, logits_to_keep=1)
        for layer in layers:
            pooled = pool_positions(rec[layer][-1], batch, position, adapter, answer_tokens)
            out[layer].append(pooled.cpu())
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def aggregate(biased: torch.Tensor, neutral: torch.Tensor, how: str) -> torch.Tensor:
    """One direction from ``[Nb, H]`` and ``[Nn, H]`` activations (see the module docstring)."""
    mean_diff = biased.mean(0) - neutral.mean(0)
    if how == "mean_diff":
        return mean_diff
    n = min(len(biased), len(neutral))
    diffs = (biased[:n] - neutral[:n]).double()
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    direction = vh[0]
    ref = diffs.mean(0)
    dot = float(direction @ ref)
    if dot == 0.0:  # no mean shift: fix the sign by the largest component instead
        dot = float(direction[direction.abs().argmax()])
    if dot < 0:
        direction = -direction
    return (direction * abs(float(direction @ ref))).float()


def build_contrastive(
    adapter: Any,
    data: Any = None,
    config: ContrastiveConfig | dict | None = None,
    *,
    biased: Sequence[Sample] | None = None,
    neutral: Sequence[Sample] | None = None,
    progress: bool = False,
) -> SteeringVector:
    """A contrastive steering vector on ``adapter``, from two sample sets or a dataset.

    Args:
        adapter: a :class:`fairvlm.models.VLMAdapter`.
        data: dataset mode: a dataset folder, ``DatasetDict`` or samples, filtered by
            ``config`` (split, task, biased / neutral filters).
        config: a :class:`ContrastiveConfig` or a mapping of its fields.
        biased, neutral: sample-set mode: the two sets (both or neither; then ``data``
            is not used). ``pca`` pairs them by position.

    Raises:
        ModelError: a layer is out of range. DataError: an empty set.
    """
    cfg = config if isinstance(config, ContrastiveConfig) else ContrastiveConfig.from_dict(config)
    layers = resolve_layers(cfg.layers, int(adapter.num_layers))
    if (biased is None) != (neutral is None):
        raise bad_value("biased/neutral", "one set", "give both sample sets, or neither and data")
    if biased is not None:
        b_set, n_set, label = list(biased), list(neutral or []), "<sample sets>"
        for name, s in (("biased", b_set), ("neutral", n_set)):
            if not s:
                raise bad_value(name, [], "give at least one sample", DataError)
    else:
        if data is None:
            raise bad_value("data", None, "give a dataset, or the biased and neutral samples")
        samples, label = load_samples_of(data, cfg.split)
        b_set, n_set = select_sets(samples, cfg)
    if cfg.position == "answer_mean":
        for s in (*b_set, *n_set):
            if s.target is None:
                raise bad_value(
                    "position", cfg.position, f"sample {s.id!r} has no target to read", DataError
                )
    if cfg.position in ("last_prompt", "prompt_mean") and {s.prompt for s in b_set} == {
        s.prompt for s in n_set
    }:
        import warnings

        warnings.warn(
            f"the biased and neutral sets share their prompts: at position={cfg.position!r} "
            "only their images differ; if the answers make the difference, use "
            "position='answer_mean' (e.g. with answer_tokens=3)",
            stacklevel=2,
        )
    if cfg.aggregator == "pca" and min(len(b_set), len(n_set)) < 2:
        raise bad_value("aggregator", "pca", "needs >= 2 pairs; use mean_diff", DataError)
    acts_b, acts_n = (
        read_activations(
            adapter, s, layers, cfg.position, cfg.batch_size, progress, cfg.answer_tokens
        )
        for s in (b_set, n_set)
    )
    vectors = {layer: aggregate(acts_b[layer], acts_n[layer], cfg.aggregator) for layer in layers}
    return SteeringVector(
        vectors,
        **vector_origin(adapter),
        builder="contrastive",
        operator="ablate",
        positions="all",
        scale=1.0,
        config={
            **cfg.to_dict(),
            "layers": layers,
            "data": label,
            "n_biased": len(b_set),
            "n_neutral": len(n_set),
        },
    )


__all__ = [
    "AGGREGATORS",
    "FILTERS",
    "ContrastiveConfig",
    "aggregate",
    "build_contrastive",
    "read_activations",
    "select_sets",
]
