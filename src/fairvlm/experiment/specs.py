"""The parts of a validated experiment, as dataclasses (parsed and checked by
:mod:`fairvlm.experiment.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fairvlm.mitigation.steering.builders import builder_of_method
from fairvlm.registry import TRAINING_METHODS
from fairvlm.yamlpos import KeyPath

#: The row of the un-mitigated base model in every comparison.
BASE = "base"


@dataclass
class DataSpec:
    """Where a study's data comes from: ``synth`` (a built-in benchmark, with ``overrides``
    of its generator config) or ``path`` (a dataset written by ``fairvlm data``)."""

    synth: str | None = None
    path: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelSpec:
    """The base model: ``pretrain`` (a ``PretrainConfig`` mapping; trained on the study's
    data) or ``path`` (a model directory or hub id). ``dtype``/``device`` as ``load_vlm``;
    ``args``: more ``load_vlm`` / ``from_pretrained`` options (``attn_implementation`` ...)."""

    pretrain: dict[str, Any] | None = None
    path: str | None = None
    dtype: str | None = None
    device: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditSpec:
    """How every model of the study is audited (the same for all rows of the table).

    ``options``: the ``AuditConfig`` fields, from ``audit: {config: {...}}`` and the
    shortcuts ``tasks``, ``split``, ``limit``, ``batch_size`` written beside it (a field
    given in both places is refused, never dropped).
    """

    options: dict[str, Any] = field(default_factory=dict)

    @property
    def split(self) -> str:
        """The audited split."""
        return str(self.options.get("split", "test"))


@dataclass
class MethodSpec:
    """One row of the comparison: ``method`` (a name, or parts joined by ``+``), ``name``
    (the row label, default the method), ``config`` (per-part options, see module doc)."""

    method: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    path: KeyPath = ()

    @property
    def parts(self) -> list[str]:
        """The method names this row composes, in the order given."""
        return self.method.split("+")

    @property
    def train_method(self) -> str | None:
        """The fine-tuning part, if any."""
        return next((p for p in self.parts if p in TRAINING_METHODS), None)

    @property
    def steer_method(self) -> str | None:
        """The steering part (``steering-NAME``), if any."""
        return next((p for p in self.parts if builder_of_method(p) is not None), None)

    def part_config(self, part: str) -> dict[str, Any]:
        """The options of one part (``{train, method}`` or ``{build, apply}``)."""
        if len(self.parts) == 1:
            return self.config
        return dict(self.config.get(part) or {})


@dataclass
class SummarySpec:
    """What the comparison table shows: ``attributes`` for gap/ES columns (``None``: all
    audited attributes), ``utility`` metrics as ``task.metric`` (``None``: the defaults),
    ``reference``: the row every other row is compared with (a paired test per cell)."""

    attributes: list[str] | None = None
    utility: list[str] | None = None
    reference: str = BASE


@dataclass
class StudySpec:
    """One dataset, one base model, one audit, several methods."""

    name: str
    data: DataSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    audit: AuditSpec = field(default_factory=AuditSpec)
    train: dict[str, Any] = field(default_factory=dict)
    methods: list[MethodSpec] = field(default_factory=list)
    summary: SummarySpec = field(default_factory=SummarySpec)


@dataclass
class ReportSpec:
    """The HTML report: ``samples_per_group`` outputs shown side by side per group."""

    samples_per_group: int = 2


@dataclass
class ExperimentConfig:
    """A validated experiment (see the module doc). ``raw`` is the merged YAML mapping.

    ``seed`` seeds the synthetic data, the base model's pretraining and every audit (so all
    audits see the same samples and bootstrap draws); ``seeds``, when listed, are the seeds
    of the methods: every training and steering build runs once per seed, and the summary
    aggregates over them (``None``: one run per method, seeded by ``seed``).
    """

    name: str
    seed: int = 0
    seeds: list[int] | None = None
    threads: int = 1
    jobs: int = 1
    studies: dict[str, StudySpec] = field(default_factory=dict)
    report: ReportSpec = field(default_factory=ReportSpec)
    source: str = "<string>"
    raw: dict[str, Any] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
