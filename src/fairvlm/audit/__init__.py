"""Audit a VLM: tasks (closed VQA, report generation, yes/no probes, open description,
concept recognition), the batched, resumable, shardable runner that writes one record
per (sample, task), and the metrics computed from those records."""

from fairvlm.audit.config import CLOSED_MODES, AuditConfig
from fairvlm.audit.plan import AuditPlan, Unit, load_split, plan_audit
from fairvlm.audit.runner import CONFIG_FILE, METRICS_FILE, BatchInfo, run_audit
from fairvlm.audit.store import (
    ATTR_PREFIX,
    RECORD_COLUMNS,
    RECORDS_FILE,
    RecordStore,
    record_schema,
)
from fairvlm.audit.tasks import (
    TASK_FIELDS,
    AuditTask,
    ClosedTask,
    ConceptTask,
    DescribeTask,
    GenerationTask,
    ProbeTask,
    ReportTask,
    VQATask,
    make_task,
    p_yes,
)

__all__ = [
    "ATTR_PREFIX",
    "CLOSED_MODES",
    "CONFIG_FILE",
    "METRICS_FILE",
    "RECORDS_FILE",
    "RECORD_COLUMNS",
    "TASK_FIELDS",
    "AuditConfig",
    "AuditPlan",
    "AuditTask",
    "BatchInfo",
    "ClosedTask",
    "ConceptTask",
    "DescribeTask",
    "GenerationTask",
    "ProbeTask",
    "RecordStore",
    "ReportTask",
    "Unit",
    "VQATask",
    "load_split",
    "make_task",
    "p_yes",
    "plan_audit",
    "record_schema",
    "run_audit",
]
