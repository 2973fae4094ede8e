"""Experiments: one YAML -> data, base model, audits, mitigations, comparison, report.

Stages are cached by config hash in their own folders, so a rerun resumes where a
killed run stopped (``fairvlm run EXPERIMENT.yaml --out DIR``)."""

from fairvlm.experiment.config import known_methods, load_experiment
from fairvlm.experiment.runner import RunResult, run_experiment
from fairvlm.experiment.specs import (
    AuditSpec,
    DataSpec,
    ExperimentConfig,
    MethodSpec,
    ModelSpec,
    StudySpec,
)
from fairvlm.experiment.stages import Stage, StageContext, StageGraph, config_hash
from fairvlm.experiment.summary import choose_columns
from fairvlm.experiment.summary_table import format_table

__all__ = [
    "AuditSpec",
    "DataSpec",
    "ExperimentConfig",
    "MethodSpec",
    "ModelSpec",
    "RunResult",
    "Stage",
    "StageContext",
    "StageGraph",
    "StudySpec",
    "choose_columns",
    "config_hash",
    "format_table",
    "known_methods",
    "load_experiment",
    "run_experiment",
]
