"""The audit plan: the data loaded, every task's samples chosen and validated, the batches
fixed. Everything here runs before any model work, so bad input fails fast."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.audit.config import AuditConfig
from fairvlm.audit.tasks import AuditTask, make_task
from fairvlm.data.schema import Sample
from fairvlm.data.storage import dataset_metadata, load_samples, samples_from_dataset
from fairvlm.errors import DataError, bad_value
from fairvlm.registry import AUDIT_TASKS


@dataclass
class Unit:
    """One batch of one task: the unit of work, of resume and of sharding."""

    task: AuditTask
    batch_index: int
    samples: list[Sample]


@dataclass
class AuditPlan:
    """What an audit will do.

    Attributes:
        data_label: the data as written into metrics.json ("<in-memory>" for samples).
        split: the split audited.
        attributes: the sensitive attributes written as ``attr.<name>`` columns.
        tasks: task name -> (task object, its samples in audit order).
    """

    data_label: str
    split: str
    attributes: list[str]
    tasks: dict[str, tuple[AuditTask, list[Sample]]] = field(default_factory=dict)

    def units(self, batch_size: int) -> list[Unit]:
        """Fixed batches of every task, in order. Batches never depend on what is already
        done, so a resumed or sharded audit computes exactly the batches of a single run."""
        out = []
        for task, samples in self.tasks.values():
            for b, start in enumerate(range(0, len(samples), batch_size)):
                out.append(Unit(task, b, samples[start : start + batch_size]))
        return out

    def order(self) -> list[tuple[str, str]]:
        """Every (task, sample_id) of the audit, in the order of ``records.parquet``."""
        return [(name, s.id) for name, (_, samples) in self.tasks.items() for s in samples]


def load_split(data: Any, split: str) -> tuple[list[Sample], str]:
    """The samples of ``split`` and a label of the data.

    ``data`` is a dataset folder (``save_dataset``), a ``datasets.DatasetDict`` or a
    sequence of :class:`Sample` (taken as they are).
    """
    if isinstance(data, str | Path):
        if not Path(data).exists():
            raise bad_value(
                "data", str(data), "give an existing dataset folder (`fairvlm data`)", DataError
            )
        sizes = dataset_metadata(data).get("splits") or {}
        if sizes.get(split, None) == 0:  # known empty: no need to open it
            return [], str(data)
        return load_samples(data, split), str(data)
    if hasattr(data, "keys") and hasattr(data, "column_names"):  # a DatasetDict
        if split not in data:
            raise bad_value("split", split, f"choose one of {sorted(data)}", DataError)
        return samples_from_dataset(data[split]), "<datasets.DatasetDict>"
    samples = list(data)
    bad = [type(s).__name__ for s in samples if not isinstance(s, Sample)]
    if bad:
        raise bad_value(
            "data", f"a sequence holding {bad[0]}", "give a dataset folder or Samples", DataError
        )
    return samples, "<in-memory>"


def plan_audit(data: Any, config: AuditConfig) -> AuditPlan:
    """Load, select and validate; raises :class:`DataError` before any model work.

    Errors: an empty split; a task the split has no samples for; a sample lacking what
    its task needs (e.g. vqa without targets, probe without concepts, no image); an
    attribute of ``config.attributes`` that the data does not have.
    """
    samples, label = load_split(data, config.split)
    if not samples:
        raise bad_value(
            "split",
            config.split,
            f"{label} has no samples in this split: audit a split that has samples",
            DataError,
        )
    present = list(dict.fromkeys(a for s in samples for a in s.attributes))
    if config.attributes is not None:
        unknown = [a for a in config.attributes if a not in present]
        if unknown:
            raise bad_value(
                "attributes",
                unknown,
                f"the data's attributes are {present}: audit some of those",
                DataError,
            )
    counts = Counter(s.task for s in samples)
    names = config.tasks or [t for t in AUDIT_TASKS.names() if counts[t]]
    plan = AuditPlan(label, config.split, list(config.attributes or present))
    for name in names:
        task = make_task(name, config)
        chosen = task.select(samples)
        if not chosen:
            source = config.sources.get(name, name)
            hint = (
                f"; or set sources={{{name!r}: <one of {sorted(counts)}>}} to audit it on "
                "those samples"
                if name in ("probe", "describe")
                else ""
            )
            raise DataError(
                f"task {name!r}: split {config.split!r} of {label} has no samples with "
                f"task={source!r} (it has {dict(counts)}); drop the task{hint}"
            )
        task.validate(chosen, config.split)
        task.prepare(chosen)
        plan.tasks[name] = (task, chosen)
    return plan


__all__ = ["AuditPlan", "Unit", "load_split", "plan_audit"]
