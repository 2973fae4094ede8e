"""Audit tasks: which samples each task takes, what it needs of them, how it asks the model,
and how its records become metrics.

Each task is an :class:`AuditTask` subclass registered in
:data:`fairvlm.registry.AUDIT_TASKS` (``@register_task``): the runner, the metrics, the
experiment summary, the sweep and the report read every task property from there.

A task turns a batch of samples into the model-dependent part of their records
(``prompt, output, options, option_logprob, option_mean_logprob, pred, p_yes``); the
runner adds the sample's own fields, the timing and the batch index.

- ``vqa`` / ``concept`` (closed): the answer is generated and parsed into a label with
  :class:`fairvlm.metrics.LabelParser`, and every option is scored (``closed_mode``).
- ``report`` / ``describe`` (open): greedy generation.
- ``probe``: the two answers ``yes``/``no`` are scored; ``p_yes`` = softmax of their
  summed log-probabilities, the score that ranks images for Skew@K.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from fairvlm.audit.config import AuditConfig
from fairvlm.audit.sampling import stratified_indices
from fairvlm.data.schema import Sample
from fairvlm.errors import DataError
from fairvlm.metrics import records as task_metrics
from fairvlm.metrics.clinical import LabelParser, normalize_label
from fairvlm.registry import AUDIT_TASKS, register_task

#: Fields every record gets from its task (see the records contract).
TASK_FIELDS = (
    "prompt",
    "output",
    "options",
    "option_logprob",
    "option_mean_logprob",
    "pred",
    "p_yes",
)


def _examples(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:3])
    return shown + (", ..." if len(ids) > 3 else "")


class AuditTask:
    """Base class: sample selection and validation; subclasses define :meth:`run` and
    their metrics.

    Attributes:
        name: the task name (a key of :data:`fairvlm.registry.AUDIT_TASKS`).
        kind: ``closed`` (an answer among options), ``open`` (free text) or ``score``
            (option scores only); the report shows open tasks' outputs first.
        needs: sample fields that must be set on every sample of the task.
        draw_by: the sample field holding the task's target class (label, concept); with
            the audited attributes it defines the strata of a ``limit`` draw (``None``:
            the attributes alone, e.g. free-text targets).
        derivable: the audit can write the task's prompt itself, so it may run on
            another task's samples (``AuditConfig.sources``).
        metric_columns: record columns the metrics need (at least one value each).
        compute: ``(TaskRecords, reference_lm) -> {metric: result}`` (``fairvlm.metrics``).
        goals: every metric's direction: ``max``, ``min`` or ``zero`` (closest to 0).
        utility: metrics the comparison table shows as utility by default.
        fairness: metrics the table shows as fairness by default -> their column kind.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "closed"
    needs: ClassVar[tuple[str, ...]] = ()
    draw_by: ClassVar[str | None] = None
    derivable: ClassVar[bool] = False
    metric_columns: ClassVar[tuple[str, ...]] = ()
    compute: ClassVar[Any] = None
    goals: ClassVar[dict[str, str]] = {}
    utility: ClassVar[tuple[str, ...]] = ()
    fairness: ClassVar[dict[str, str]] = {}

    def __init__(self, config: AuditConfig) -> None:
        self.config = config

    # -- before any model work --------------------------------------------------------
    def select(self, samples: Sequence[Sample]) -> list[Sample]:
        """The task's samples of the split (its own, or its source task's, re-prompted)."""
        source = self.config.sources.get(self.name, self.name)
        picked = [s for s in samples if s.task == source]
        if source != self.name:
            picked = [
                dataclasses.replace(s, prompt=self.derived_prompt(s), task=self.name)
                for s in picked
            ]
        if self.config.limit is not None:
            picked = self._limited(picked)
        return picked

    def _limited(self, samples: list[Sample]) -> list[Sample]:
        """The ``limit`` samples kept, in the data's order (``limit_mode``)."""
        cfg = self.config
        if cfg.limit_mode == "first":
            return samples[: cfg.limit]
        names = cfg.attributes or list(dict.fromkeys(a for s in samples for a in s.attributes))
        keys = [
            (
                tuple(s.attributes.get(a) for a in names),
                getattr(s, self.draw_by) if self.draw_by else None,
            )
            for s in samples
        ]
        return [samples[i] for i in stratified_indices(keys, cfg.limit, cfg.seed)]

    def derived_prompt(self, sample: Sample) -> str:
        """The prompt written for a sample of another task (only derivable tasks)."""
        raise NotImplementedError(f"task {self.name} cannot write its own prompt")

    def validate(self, samples: Sequence[Sample], split: str) -> None:
        """Raise :class:`DataError` when a sample lacks what the task needs.

        Checks every sample (cheap: no image is decoded): an image, or an existing file
        for path images; the fields of :attr:`needs`; unique ids.
        """
        no_image = [s.id for s in samples if s.image is None]
        if no_image:
            raise DataError(
                f"task {self.name!r} needs an image on every sample: {len(no_image)} of "
                f"{len(samples)} samples of split {split!r} have none (e.g. "
                f"{_examples(no_image)}); give them images or drop them"
            )
        missing_files = [
            s.id
            for s in samples
            if isinstance(s.image, str | os.PathLike) and not os.path.isfile(s.image)
        ]
        if missing_files:
            raise DataError(
                f"task {self.name!r}: {len(missing_files)} image files do not exist (e.g. "
                f"{_examples(missing_files)}); fix the paths or remove those samples"
            )
        for name in self.needs:
            lacking = [s.id for s in samples if getattr(s, name) in (None, "")]
            if lacking:
                raise DataError(
                    f"task {self.name!r} needs a {name} on every sample: {len(lacking)} of "
                    f"{len(samples)} samples of split {split!r} have none (e.g. "
                    f"{_examples(lacking)}); audit data that has {name}s, or drop "
                    f"{self.name!r} from tasks"
                )
        seen: set[str] = set()
        for s in samples:
            if s.id in seen:
                raise DataError(
                    f"task {self.name!r}: sample id {s.id!r} appears twice; ids must be unique "
                    "(records are keyed by sample id and task)"
                )
            seen.add(s.id)

    def prepare(self, samples: Sequence[Sample]) -> None:
        """Fix whatever depends on the whole sample list (e.g. a label vocabulary)."""

    def settings(self) -> dict[str, Any]:
        """What makes this task's records what they are (compared on resume)."""
        return {"source": self.config.sources.get(self.name, self.name)}

    # -- model work ---------------------------------------------------------------------
    def run(self, vlm: Any, batch: Sequence[Sample]) -> list[dict[str, Any]]:
        """The :data:`TASK_FIELDS` of each sample of ``batch``."""
        raise NotImplementedError

    def _option_batch(self, n_options: int, n_samples: int) -> int:
        if self.config.option_batch_size:
            return self.config.option_batch_size
        if self.config.scoring == "shared":
            return max(1, n_samples)
        return max(1, n_options * n_samples)

    def _score(self, vlm: Any, batch: Sequence[Sample], options: Any, k: int) -> Any:
        return vlm.score_options(
            batch,
            options,
            batch_size=self._option_batch(k, len(batch)),
            scoring=self.config.scoring,
            token_budget=self.config.token_budget,
        )


def _record(prompt: str, **fields: Any) -> dict[str, Any]:
    out = dict.fromkeys(TASK_FIELDS)
    out.update(prompt=prompt, **fields)
    return out


class ClosedTask(AuditTask):
    """Closed question: generation + label parsing, and option scoring (``closed_mode``)."""

    needs = ("target",)
    draw_by = "target"

    def prepare(self, samples: Sequence[Sample]) -> None:
        # One vocabulary for the whole task, so a batch's answers do not depend on which
        # other samples share it (needed for resume and sharding to reproduce records).
        surface: dict[str, str] = {}
        for s in samples:
            for text in [*(s.options or []), s.target]:
                key = normalize_label(text)
                if key is not None:
                    surface.setdefault(key, str(text))
        if len(surface) < 2:
            raise DataError(
                f"task {self.name!r} is closed but its samples offer {len(surface)} answer(s) "
                f"({sorted(surface)}); give samples options, or targets of at least two labels"
            )
        self.labels = sorted(surface)
        self.fallback_options = [surface[k] for k in self.labels]
        synonyms = {k: v for k, v in self.config.metrics.label_synonyms.items() if k in self.labels}
        self.parser = LabelParser(
            self.labels, synonyms, on_multiple=self.config.metrics.on_multiple
        )

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "closed_mode": self.config.closed_mode,
            "max_new_tokens": self.config.closed_max_new_tokens,
        }

    def run(self, vlm: Any, batch: Sequence[Sample]) -> list[dict[str, Any]]:
        mode = self.config.closed_mode
        options = [list(s.options) if s.options else self.fallback_options for s in batch]
        outputs: list[str | None] = [None] * len(batch)
        budget = self.config.closed_max_new_tokens
        k = max(len(o) for o in options)
        scores = None
        if mode == "both":  # one prefill answers and scores each sample
            outputs, scores = vlm.generate_and_score(
                batch,
                options,
                max_new_tokens=budget,
                batch_size=len(batch),
                option_batch_size=self._option_batch(k, len(batch)),
                scoring=self.config.scoring,
                token_budget=self.config.token_budget,
            )
        elif mode == "generate":
            outputs = vlm.generate(batch, max_new_tokens=budget, batch_size=len(batch))
        else:
            scores = self._score(vlm, batch, options, k)
        sums = means = None
        if scores is not None:
            sums, means = scores.sum_logprob, scores.mean_logprob
        rows = []
        for i, (sample, opts) in enumerate(zip(batch, options, strict=True)):
            lp = mlp = None
            if sums is not None:
                lp = [float(v) for v in sums[i, : len(opts)]]
                mlp = [float(v) for v in means[i, : len(opts)]]
            if outputs[i] is not None:
                output, pred = outputs[i], self.parser.parse(outputs[i])
            else:  # scoring only: the answer is the best option
                output = opts[int(np.nanargmax(np.asarray(lp)))]
                pred = normalize_label(output)
            rows.append(
                _record(
                    sample.prompt,
                    output=output,
                    options=list(opts),
                    option_logprob=lp,
                    option_mean_logprob=mlp,
                    pred=pred,
                )
            )
        return rows


_CLASSIFICATION_GOALS = {
    "accuracy": "max",
    "macro_f1": "max",
    "balanced_accuracy": "max",
    "auc": "max",
    "option_accuracy": "max",
    "parse_failures": "min",
    "demographic_parity_difference": "zero",
    "equalized_odds_difference": "zero",
}


class VQATask(ClosedTask):
    """Closed visual question answering (e.g. "What is the diagnosis?")."""

    name = "vqa"
    metric_columns = ("target",)
    compute = staticmethod(task_metrics.vqa_metrics)
    goals = _CLASSIFICATION_GOALS
    utility = ("accuracy",)


class ConceptTask(ClosedTask):
    """Closed concept recognition (which social concept does the image show)."""

    name = "concept"
    metric_columns = ("target",)
    compute = staticmethod(task_metrics.concept_metrics)
    goals = {"accuracy": "max", "parse_failures": "min"}
    utility = ("accuracy",)


class GenerationTask(AuditTask):
    """Open generation: the record's output is the generated text."""

    kind = "open"

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "max_new_tokens": self.config.max_new_tokens}

    def run(self, vlm: Any, batch: Sequence[Sample]) -> list[dict[str, Any]]:
        outputs = vlm.generate(
            batch, max_new_tokens=self.config.max_new_tokens, batch_size=len(batch)
        )
        return [_record(s.prompt, output=o) for s, o in zip(batch, outputs, strict=True)]


class ReportTask(GenerationTask):
    """Report generation, compared with the reference report (BLEU, ROUGE-L, METEOR)."""

    name = "report"
    needs = ("target",)
    metric_columns = ("target", "output")
    compute = staticmethod(task_metrics.report_metrics)
    goals = {"bleu1": "max", "bleu4": "max", "rouge_l": "max", "meteor": "max", "perplexity": "min"}
    utility = ("rouge_l",)


class DescribeTask(GenerationTask):
    """Open description ("Describe the person."): attribute mentions and sentiment."""

    name = "describe"
    draw_by = "concept"
    derivable = True
    metric_columns = ("output",)
    compute = staticmethod(task_metrics.describe_metrics)
    goals = {"mention_rate": "min", "sentiment": "max", "perplexity": "min"}
    fairness = {"mention_rate": "mention"}

    def derived_prompt(self, sample: Sample) -> str:
        return self.config.describe_prompt

    def settings(self) -> dict[str, Any]:
        derived = self.name in self.config.sources
        return {**super().settings(), "prompt": self.config.describe_prompt if derived else None}


class ProbeTask(AuditTask):
    """Yes/no concept probe: P(yes) from the scores of the two answers."""

    name = "probe"
    kind = "score"
    needs = ("concept",)
    draw_by = "concept"
    derivable = True
    metric_columns = ("p_yes", "concept")
    compute = staticmethod(task_metrics.probe_metrics)
    goals = {
        "p_yes": "max",
        "max_skew": "zero",
        "min_skew": "zero",
        "ndkl": "min",
        "bias_at_k": "zero",
        "demographic_parity_difference": "zero",
        "equalized_odds_difference": "zero",
    }
    fairness = {"max_skew": "skew", "min_skew": "skew", "ndkl": "skew"}

    def derived_prompt(self, sample: Sample) -> str:
        if not sample.concept:  # left as it is: validation reports every such sample
            return sample.prompt
        return self.config.probe_template.format(concept=sample.concept)

    def settings(self) -> dict[str, Any]:
        derived = self.name in self.config.sources
        return {
            **super().settings(),
            "options": list(self.config.probe_options),
            "template": self.config.probe_template if derived else None,
        }

    def run(self, vlm: Any, batch: Sequence[Sample]) -> list[dict[str, Any]]:
        options = list(self.config.probe_options)
        scores = self._score(vlm, batch, options, 2)
        rows = []
        for sample, lp, mlp in zip(batch, scores.sum_logprob, scores.mean_logprob, strict=True):
            lp = [float(v) for v in lp[:2]]
            rows.append(
                _record(
                    sample.prompt,
                    output=options[int(lp[1] > lp[0])],
                    options=options,
                    option_logprob=lp,
                    option_mean_logprob=[float(v) for v in mlp[:2]],
                    pred=options[int(lp[1] > lp[0])],
                    p_yes=p_yes(lp[0], lp[1]),
                )
            )
        return rows


def p_yes(logprob_yes: float, logprob_no: float) -> float | None:
    """Softmax of the two summed log-probabilities: ``P(yes) / (P(yes) + P(no))``."""
    if not (math.isfinite(logprob_yes) and math.isfinite(logprob_no)):
        return None
    return 1.0 / (1.0 + math.exp(logprob_no - logprob_yes))


# registered in this order: the order an audit runs the tasks of a split in
for _task in (VQATask, ReportTask, ProbeTask, DescribeTask, ConceptTask):
    register_task(_task)


def make_task(name: str, config: AuditConfig) -> AuditTask:
    """The task object of the registered task ``name`` under ``config``."""
    return AUDIT_TASKS.get(name)(config)


__all__ = [
    "TASK_FIELDS",
    "AuditTask",
    "ClosedTask",
    "ConceptTask",
    "DescribeTask",
    "GenerationTask",
    "ProbeTask",
    "ReportTask",
    "VQATask",
    "make_task",
    "p_yes",
]
