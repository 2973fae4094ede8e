"""The optimisation-based, data-free steering vector (METHODS.md section 3).

From one image (or a few) and a list of attribute words: ``L`` = log-probability that the
description names an attribute next, ``L = log sum_c P(c | image, prompt, prefix)`` over
the words, alone and after an article ("A young", "An old"), each teacher-forced after
the model's own answer up to its first attribute word (the prefix, see
:class:`GradientConfig`). One FGSM step that lowers it, ``x' = x - eps * sign(grad_x L)``,
on the pixel values, on the vision features (the projector's input) or on the
projector's output (the image tokens the language model reads). The vector at layer
``l`` is ``r_l = h_l(x') - h_l(x)``, pooled over the image-token positions (by default;
or at the token before the words), averaged over the images. It points away from
attribute words: ``add`` with a positive scale steers away from them.

The original's eps, layer and positions are unpublished; the defaults below are ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from fairvlm.config import Config, check_positive_int, is_int
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError, ModelError, bad_value
from fairvlm.metrics.text import keyword_regex
from fairvlm.mitigation.steering.activations import pool_positions, record_layers, resolve_layers
from fairvlm.mitigation.steering.common import (
    check_layers_field,
    load_samples_of,
    vector_origin,
)
from fairvlm.mitigation.steering.vector import SteeringVector

#: Where the FGSM step is taken.
TARGETS = ("pixels", "vision", "projector")
#: Positions the activation difference is pooled over.
GRADIENT_POSITIONS = ("image_mean", "prompt_mean", "last_prompt")
#: Attribute words whose probability the step lowers (gender, race, age).
DEFAULT_WORDS: tuple[str, ...] = (
    "man", "woman", "male", "female", "boy", "girl",
    "white", "black", "asian", "young", "old", "elderly",
)  # fmt: skip


@dataclass
class GradientConfig(Config):
    """How a gradient (single-step) vector is built.

    Attributes:
        eps: FGSM step size, relative to the root-mean-square of the perturbed tensor
            (pixel values are normalised, activations are not: a relative step means the
            same thing on every target). Default 0.1.
        layers: decoder layers (negative = from the end); ``None`` = the middle layer.
        positions: where ``h(x') - h(x)`` is pooled: ``image_mean`` (default),
            ``prompt_mean`` or ``last_prompt`` (the token before the words: the
            prefix's last token, or the prompt's).
        target: ``pixels`` (default), ``vision`` (the vision features entering the
            projector) or ``projector`` (its output).
        words: attribute words (non-empty); default :data:`DEFAULT_WORDS`.
        prompt: the describing prompt.
        prefix: the answer text the words are scored after: ``auto`` (default) = the
            model's own greedy answer up to its first attribute word (a model that
            answers "A young woman ..." decides on the attribute after "A"; the words
            as the very first token would be a question it never faces); ``""`` = right
            after the prompt; any other text = that text.
        articles: each word is also scored after each of these ("A young woman", "An old
            man": the article already commits to the word, so P(attribute) includes it);
            an ``auto`` prefix ending in one drops it. ``[]``: the words alone.
        n_images: dataset mode: how many images are used (a seeded draw of the split).
        split, task: dataset mode: where the images come from (task ``None``: any).
        seed: the image draw.
    """

    eps: float = 0.1
    layers: list[int] | None = None
    positions: str = "image_mean"
    target: str = "pixels"
    words: list[str] = field(default_factory=lambda: list(DEFAULT_WORDS))
    prompt: str = "Describe the person."
    prefix: str = "auto"
    articles: list[str] = field(default_factory=lambda: ["a", "an", "the"])
    n_images: int = 4
    split: str = "train"
    task: str | None = None
    seed: int = 0

    def validate(self) -> None:
        if (
            isinstance(self.eps, bool)
            or not isinstance(self.eps, int | float)
            or not (math.isfinite(self.eps) and self.eps > 0)
        ):
            raise bad_value("eps", self.eps, "use a positive step size, e.g. 0.1")
        self.eps = float(self.eps)
        check_layers_field(self.layers)
        if self.positions not in GRADIENT_POSITIONS:
            raise bad_value("positions", self.positions, f"use one of {list(GRADIENT_POSITIONS)}")
        if self.target not in TARGETS:
            raise bad_value("target", self.target, f"use one of {list(TARGETS)}")
        self.words = [str(w).strip() for w in self.words or []]
        if not self.words or not all(self.words):
            raise bad_value(
                "words",
                self.words,
                f"give a non-empty list of non-empty attribute words, e.g. {list(DEFAULT_WORDS)[:4]}",
            )
        self.words = list(dict.fromkeys(self.words))
        self.articles = [str(a).strip().lower() for a in self.articles or []]
        if not all(self.articles):
            raise bad_value("articles", self.articles, "give non-empty words, or [] for none")
        if not isinstance(self.prefix, str):
            raise bad_value("prefix", self.prefix, "use 'auto', '' or an answer prefix text")
        if not self.prompt.strip():
            raise bad_value("prompt", self.prompt, "give a describing prompt")
        check_positive_int("n_images", self.n_images)
        if not is_int(self.seed):
            raise bad_value("seed", self.seed, "use an integer")


# -- where the step is taken ------------------------------------------------------------
@contextmanager
def _projector_io(
    adapter: Any, target: str, replace: Callable[[torch.Tensor], torch.Tensor] | None
) -> Iterator[list[torch.Tensor]]:
    """Capture (and with ``replace``, substitute) the projector's input (``vision``) or
    output (``projector``) during the forwards of the block."""
    seen: list[torch.Tensor] = []

    def check(t: Any) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise ModelError(
                f"the {adapter.family} projector's {'input' if target == 'vision' else 'output'} "
                f"is a {type(t).__name__}, not a tensor: use target='pixels'"
            )
        return t

    def pre(module: Any, args: tuple) -> Any:
        seen.append(check(args[0]))
        return None if replace is None else (replace(args[0]), *args[1:])

    def post(module: Any, args: tuple, output: Any) -> Any:
        seen.append(check(output))
        return None if replace is None else replace(output)

    proj = adapter.projector
    handle = (
        proj.register_forward_pre_hook(pre)
        if target == "vision"
        else proj.register_forward_hook(post)
    )
    try:
        yield seen
    finally:
        handle.remove()


def _prefix(adapter: Any, image: Any, cfg: GradientConfig) -> str:
    """The answer text the words are scored after (see ``GradientConfig.prefix``)."""
    if cfg.prefix != "auto":
        return cfg.prefix.strip()

    text = adapter.generate([Sample(id="prefix", image=image, prompt=cfg.prompt)])[0]
    found = keyword_regex(cfg.words).search(text)
    head = text[: found.start()].strip() if found else ""
    *rest, last = head.split(" ") if head else [""]
    if last.lower() in cfg.articles:  # the article already commits to the word: score both
        head = " ".join(rest)
    return head


def _candidates(cfg: GradientConfig, prefix: str) -> list[str]:
    """Each word, alone and after each article; capitalised at the start of a sentence."""
    out = []
    for word in cfg.words:
        for text in (word, *(f"{a} {word}" for a in cfg.articles)):
            if not prefix or prefix[-1] in ".!?":
                text = text[0].upper() + text[1:]
            out.append(text)
    return list(dict.fromkeys(out))


def _shortest(tok: Any, ids: list[int], text: str) -> int | None:
    """The fewest leading ``ids`` that decode to ``text`` (0 for an empty text)."""
    if not text:
        return 0
    return next((k for k in range(1, len(ids) + 1) if tok.decode(ids[:k]).strip() == text), None)


def _word_spans(
    adapter: Any, image: Any, cfg: GradientConfig, prefix: str
) -> tuple[Any, list[tuple[int, int]]]:
    """The teacher-forced batch (one row per candidate: prefix + [article] word as the
    answer) and the span of each candidate among its row's answer tokens, ``[start, stop)``.

    The answer tokens are the prefix's, the word's, then the template's end tokens; the
    spans are found as the shortest answer prefixes decoding to the prefix and to the
    prefix + word (robust to tokenizers that merge the space into the word).
    """
    candidates = _candidates(cfg, prefix)
    answers = [f"{prefix} {c}".strip() for c in candidates]
    rows = [
        Sample(id=f"word-{i}", image=image, prompt=cfg.prompt, target=a)
        for i, a in enumerate(answers)
    ]
    batch = adapter.collate(rows, with_target=True)
    spans = []
    for i, (word, answer) in enumerate(zip(candidates, answers, strict=True)):
        ids = batch["labels"][i][batch["labels"][i] != -100].tolist()
        start, stop = (
            _shortest(adapter.tokenizer, ids, prefix),
            _shortest(adapter.tokenizer, ids, answer),
        )
        if start is None or stop is None or stop <= start:
            raise DataError(
                f"words: {word!r} after the prefix {prefix!r} is not tokenized as the start "
                "of the answer; give other words or another prefix"
            )
        spans.append((start, stop))
    return batch, spans


def _attribute_logprob(
    logits: torch.Tensor, labels: torch.Tensor, spans: list[tuple[int, int]]
) -> torch.Tensor:
    """``log sum_c P(c | prompt, prefix)`` over the teacher-forced candidates (rows)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = labels[:, 1:]
    per_word = []
    for i, (start, stop) in enumerate(spans):
        pos = (targets[i] != -100).nonzero().flatten()[start:stop]
        per_word.append(logp[i, pos, targets[i, pos]].sum())
    return torch.logsumexp(torch.stack(per_word), dim=0)


def _step(x: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    scale = x.detach().float().pow(2).mean().sqrt().clamp_min(1e-12)
    return (x.detach() - eps * float(scale) * grad.sign().to(x.dtype)).detach()


def _read(
    adapter: Any, batch: Any, layers: list[int], cfg: GradientConfig, n_prefix: int, swap: Any
) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """One forward of the prompt (+ prefix): pooled ``h_l``; ``swap`` is ``None`` (and the
    step's tensor is captured and returned), new pixel values, or a projector tensor."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    captured = None
    with record_layers(adapter, layers) as rec, torch.inference_mode():
        if cfg.target == "pixels":
            if swap is not None:
                inputs["pixel_values"] = swap
            adapter.model(**inputs, use_cache=False, logits_to_keep=1)
            captured = batch["pixel_values"]
        else:
            with _projector_io(
                adapter, cfg.target, None if swap is None else lambda _: swap
            ) as seen:
                adapter.model(**inputs, use_cache=False, logits_to_keep=1)
            if len(seen) != 1:
                raise ModelError(f"the projector ran {len(seen)} times in one forward")
            captured = seen[0]
        pooled = {}
        for layer in layers:
            hidden = rec[layer][-1]
            if cfg.positions == "last_prompt":  # the token before the words (the prefix's last)
                labels = batch.get("labels")
                start = (
                    hidden.shape[1] if labels is None else int((labels[0] != -100).int().argmax())
                )
                pos = start + n_prefix - 1
                pooled[layer] = hidden[0, pos].float()
            else:
                pooled[layer] = pool_positions(hidden, batch, cfg.positions, adapter)[0]
    return pooled, None if swap is not None else captured.detach().clone()


def _one_image(adapter: Any, image: Any, layers: list[int], cfg: GradientConfig) -> dict:
    prefix = _prefix(adapter, image, cfg)
    wbatch, spans = _word_spans(adapter, image, cfg, prefix)
    labels = wbatch.pop("labels")
    n_rows = len(spans)
    # the prompt + prefix alone (the end tokens collate appends come after: causal, unread)
    base = Sample(id="gradient-image", image=image, prompt=cfg.prompt, target=prefix or None)
    batch0 = adapter.collate([base], with_target=bool(prefix))
    # 1. clean pass: h_l(x) and the clean tensor the step is taken on
    h_clean, clean = _read(adapter, batch0, layers, cfg, spans[0][0], None)
    leaf = clean.clone().requires_grad_(True)  # a normal tensor, out of inference mode

    def forward_words(x: torch.Tensor) -> torch.Tensor:
        repeated = torch.cat([x] * n_rows)
        if cfg.target == "pixels":
            if repeated.shape != wbatch["pixel_values"].shape:
                raise ModelError("pixel_values of the word batch do not repeat the image's")
            logits = adapter.model(**{**wbatch, "pixel_values": repeated}, use_cache=False).logits
        else:
            with _projector_io(adapter, cfg.target, lambda _: repeated):
                logits = adapter.model(**wbatch, use_cache=False).logits
        return _attribute_logprob(logits, labels, spans)

    # 2. one FGSM step that lowers L
    with torch.enable_grad():
        loss = forward_words(leaf)
        (grad,) = torch.autograd.grad(loss, leaf)
    perturbed = _step(leaf, grad, cfg.eps)
    with torch.inference_mode():
        after = float(forward_words(perturbed))  # the step must have lowered L
    # 3. perturbed pass: h_l(x')
    h_pert, _ = _read(adapter, batch0, layers, cfg, spans[0][0], perturbed)
    return {
        "r": {layer: (h_pert[layer] - h_clean[layer]).cpu() for layer in layers},
        "logprob": float(loss.detach()),
        "logprob_after": after,
        "prefix": prefix,
    }


def _images_from(data: Any, cfg: GradientConfig) -> tuple[list[Any], str]:
    import random

    samples, label = load_samples_of(data, cfg.split)
    samples = [
        s for s in samples if s.image is not None and (cfg.task is None or s.task == cfg.task)
    ]
    if not samples:
        raise DataError(f"no image samples of task={cfg.task!r} in split={cfg.split!r}")
    rng = random.Random(cfg.seed)
    chosen = rng.sample(samples, min(cfg.n_images, len(samples)))
    return [s.image for s in chosen], label


def build_gradient(
    adapter: Any,
    data: Any = None,
    config: GradientConfig | dict | None = None,
    *,
    images: Sequence[Any] | None = None,
    progress: bool = False,
) -> SteeringVector:
    """A single-step gradient steering vector on ``adapter``.

    Args:
        adapter: a :class:`fairvlm.models.VLMAdapter`.
        data: dataset mode: ``n_images`` images drawn from ``split`` of a dataset folder,
            ``DatasetDict`` or samples (ignored when ``images`` is given).
        config: a :class:`GradientConfig` or a mapping of its fields.
        images: PIL images or paths (one is enough: the method is data-free).

    Raises:
        ConfigError: an empty word list (from the config). ModelError: a layer out of
        range. DataError: no image.
    """
    from tqdm.auto import tqdm

    cfg = config if isinstance(config, GradientConfig) else GradientConfig.from_dict(config)
    layers = resolve_layers(cfg.layers, int(adapter.num_layers))
    if images is not None:
        imgs, label = list(images), "<images>"
    elif data is not None:
        imgs, label = _images_from(data, cfg)
    else:
        raise bad_value("images", None, "give at least one image, or a dataset", DataError)
    if not imgs:
        raise bad_value("images", [], "give at least one image", DataError)
    was_training = adapter.model.training
    adapter.model.eval()
    try:
        results = [
            _one_image(adapter, im, layers, cfg)
            for im in tqdm(imgs, desc="gradient steering", disable=not progress)
        ]
    finally:
        adapter.model.train(was_training)
    vectors = {layer: torch.stack([r["r"][layer] for r in results]).mean(0) for layer in layers}
    return SteeringVector(
        vectors,
        **vector_origin(adapter),
        builder="gradient",
        operator="add",
        positions="all",
        scale=1.0,
        config={
            **cfg.to_dict(),
            "layers": layers,
            "data": label,
            "n_images": len(imgs),
            "attribute_logprob": [r["logprob"] for r in results],
            "attribute_logprob_after": [r["logprob_after"] for r in results],
            "prefixes": [r["prefix"] for r in results],
        },
    )


__all__ = ["DEFAULT_WORDS", "GRADIENT_POSITIONS", "TARGETS", "GradientConfig", "build_gradient"]
