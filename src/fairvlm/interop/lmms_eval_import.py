"""lmms-eval sample logs as a fairvlm audit folder (``fairvlm import-records lmms-eval``).

lmms-eval's ``--log_samples`` writes ``<date>_samples_<task>.jsonl`` per task (one line
per doc: ``doc_id``, ``target``, ``input``, ``filtered_resps`` ...; the doc itself is
left out) and ``<date>_results.json`` beside them (the version, the model and its
arguments, each task's config). A task exported by ``fairvlm export lmms-eval`` is
``fairvlm_<name>_<task>`` and its doc ids index the task's samples in audit order, so
each line joins back to its sample through the same :func:`~fairvlm.audit.plan.plan_audit`
the export ran; its target and prompt (``input``) must be the sample's. The lines are parsed here: lmms-eval is never imported.

The folder written is an audit folder like ``run_audit``'s: ``records.parquet`` (the
records contract; closed tasks are scored answers, as ``closed_mode: score``: lmms-eval's
multiple choice returns one log-likelihood per option and no generated text),
``config.yaml`` (the audit identity, with the data's content fingerprints, plus the
``lmms_eval`` provenance) and ``metrics.json``. ``option_mean_logprob``, ``latency_s``
and ``batch_index`` are left empty: the logs do not hold them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from fairvlm.atomic import OUTPUT_MARKER, atomic_dir, check_output_dir, check_writable, write_marker
from fairvlm.audit.config import AuditConfig
from fairvlm.audit.plan import plan_audit
from fairvlm.audit.runner import (
    AUDIT_KIND,
    CONFIG_FILE,
    METRICS_FILE,
    audit_identity,
    config_document,
)
from fairvlm.audit.store import ATTR_PREFIX, RECORDS_FILE, record_schema
from fairvlm.audit.tasks import ClosedTask, p_yes
from fairvlm.errors import DataError
from fairvlm.fingerprint import samples_fingerprint
from fairvlm.interop.lmms_eval_export import EXPORT_TASKS, GENERATE
from fairvlm.metrics import compute_metrics, write_metrics
from fairvlm.metrics.clinical import normalize_label
from fairvlm.registry import AUDIT_TASKS

_LOG_NAME = re.compile(r"^(?:(?P<date>.+)_)?samples_(?P<task>.+)\.jsonl$")
_TASK_NAME = re.compile(rf"^fairvlm_(?P<name>.+)_(?P<task>{'|'.join(EXPORT_TASKS)})$")
_PAIR = re.compile(r"^\(\s*'?([^,']+)'?\s*,")  # "(-1.5, False)": a pair lmms-eval stringified


def _examples(items: Sequence[Any]) -> str:
    return ", ".join(map(str, items[:3])) + (", ..." if len(items) > 3 else "")


class SampleLog:
    """One ``samples_<task>.jsonl`` file: its lmms-eval task, lines and provenance."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        match = _LOG_NAME.match(self.path.name)
        if match is None or not self.path.is_file():
            raise DataError(
                f"SAMPLES_JSONL={str(path)!r} is not an lmms-eval sample log: give the "
                "<date>_samples_<task>.jsonl files lmms-eval --log_samples wrote"
            )
        self.lmms_task = match["task"]
        task = _TASK_NAME.match(self.lmms_task)
        if task is None:
            raise DataError(
                f"{self.path}: task {self.lmms_task!r} is not a fairvlm export task "
                f"(fairvlm_<name>_<task>, task one of {list(EXPORT_TASKS)}); import the "
                "logs of tasks written by `fairvlm export lmms-eval`"
            )
        self.task = task["task"]
        self.lines = self._read()
        self.results = self._results(match["date"])

    def _read(self) -> list[dict]:
        lines = []
        with self.path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{self.path}, line {number}: not JSON ({exc}); this is not an "
                        "lmms-eval sample log"
                    ) from None
                if (
                    not isinstance(line, dict)
                    or "doc_id" not in line
                    or not ("filtered_resps" in line or "resps" in line)
                ):
                    raise DataError(
                        f"{self.path}, line {number}: no doc_id and filtered_resps; this is "
                        "not an lmms-eval sample log"
                    )
                lines.append(line)
        if not lines:
            raise DataError(f"{self.path}: no samples; rerun lmms-eval with --log_samples")
        return lines

    def _results(self, date: str | None) -> dict:
        """The run's ``<date>_results.json`` beside the log, ``{}`` when there is none."""
        file = self.path.with_name(f"{date}_results.json") if date else None
        if file is None or not file.is_file():
            return {}
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: unreadable lmms-eval results ({exc})") from None
        return doc if isinstance(doc, dict) else {}

    def provenance(self) -> dict[str, Any]:
        """The lmms-eval version, model, model args and task of this log (``version``:
        what lmms-eval wrote, the ``branch@commit`` of the folder it ran in)."""
        config = self.results.get("config") or {}
        try:  # the release installed here: lmms-eval logs only a git branch@commit
            installed = metadata.version("lmms-eval")
        except metadata.PackageNotFoundError:
            installed = None
        return {
            "file": str(self.path),
            "task": self.lmms_task,
            "version": self.results.get("lmms_eval_version"),
            "installed_version": installed,
            "model": config.get("model"),
            "model_args": config.get("model_args"),
            "model_backend": config.get("model_backend"),
            "date": self.results.get("date"),
        }

    def exported_fingerprint(self) -> str | None:
        """The data fingerprint the export wrote into the task's metadata, if logged."""
        task_config = (self.results.get("configs") or {}).get(self.lmms_task) or {}
        return ((task_config.get("metadata") or {}).get("fairvlm") or {}).get("fingerprint")


def _number(value: Any, where: str) -> float:
    """A log-likelihood as lmms-eval logs it: a number, ``[ll, greedy]`` or their string."""
    if isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, str) and _PAIR.match(value):
        value = _PAIR.match(value).group(1)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {value!r} is not a log-likelihood") from None


def _loglikelihoods(line: dict, n: int, where: str) -> list[float]:
    resps = line.get("filtered_resps", line.get("resps"))
    if not isinstance(resps, list) or len(resps) != n:
        got = len(resps) if isinstance(resps, list) else type(resps).__name__
        raise DataError(
            f"{where}: {got} responses for {n} options; the task does not match the data "
            "(export and run it again)"
        )
    return [_number(r, where) for r in resps]


def _text(line: dict) -> str:
    resp = line.get("filtered_resps", line.get("resps"))
    while isinstance(resp, list) and resp:
        resp = resp[0]
    return "" if resp is None else str(resp).strip()  # fairvlm's decode strips too


def _task_rows(log: SampleLog, runner: Any, samples: list, cfg: AuditConfig) -> list[dict]:
    """The task fields of each sample, in audit order, from the log's lines."""
    where = str(log.path)
    by_id: dict[int, dict] = {}
    for line in log.lines:
        doc_id = line["doc_id"]
        if (
            not isinstance(doc_id, int)
            or isinstance(doc_id, bool)
            or not (0 <= doc_id < len(samples))
        ):
            raise DataError(
                f"{where}: unknown doc_id {doc_id!r}: task {log.task!r} of the data has "
                f"{len(samples)} samples (doc ids 0-{len(samples) - 1}); import logs of "
                "this data's export"
            )
        if doc_id in by_id:
            raise DataError(f"{where}: doc_id {doc_id} appears twice; give each log once")
        by_id[doc_id] = line
    missing = [i for i in range(len(samples)) if i not in by_id]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} of the {len(samples)} samples of task {log.task!r} have "
            f"no line (doc ids {_examples(missing)}); run lmms-eval on the whole task "
            "(no --limit)"
        )
    rows = []
    for i, sample in enumerate(samples):
        line, at = by_id[i], f"{where}, doc_id {i}"
        target = sample.target or ""
        if "target" in line and str(line["target"]) != target:
            raise DataError(
                f"{at}: target {line['target']!r}, but sample {sample.id!r} of the data has "
                f"{target!r}; the logs come from other data: export this data and run again"
            )
        if isinstance(line.get("input"), str) and line["input"] != sample.prompt:
            raise DataError(
                f"{at}: prompt {line['input']!r}, but sample {sample.id!r} of the data has "
                f"{sample.prompt!r}; the logs come from other data or another export: "
                "export this data and run again"
            )
        row = dict.fromkeys(("output", "options", "option_logprob", "pred", "p_yes"))
        if log.task in GENERATE:
            row["output"] = _text(line)
        else:
            if isinstance(runner, ClosedTask):
                options = list(sample.options) if sample.options else runner.fallback_options
            else:
                options = list(cfg.probe_options)
            lp = _loglikelihoods(line, len(options), at)
            best = max(range(len(lp)), key=lambda k: lp[k] if math.isfinite(lp[k]) else -math.inf)
            row.update(options=list(options), option_logprob=lp, output=options[best])
            row["pred"] = normalize_label(options[best]) if log.task != "probe" else options[best]
            if log.task == "probe":
                row["p_yes"] = p_yes(lp[0], lp[1])
        rows.append(row)
    return rows


def _model_label(provenance: dict) -> str:
    """The model as a native audit names it: the ``pretrained=`` of the model args."""
    args = provenance.get("model_args") or ""
    match = re.search(r"(?:^|,)\s*pretrained=([^,]+)", str(args))
    if match:
        return match.group(1).strip()
    return str(provenance.get("model") or "lmms-eval")


def import_lmms_eval(
    sample_logs: Sequence[str | Path],
    data: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    overwrite: bool = False,
) -> Path:
    """Write the audit folder ``out`` of lmms-eval sample logs of ``data`` (module doc).

    Raises:
        DataError: a file that is not an lmms-eval sample log, a task that is not a
            fairvlm export task or not in the data, logs of other data (fingerprint,
            targets, prompts), unknown doc ids, missing samples.
    """
    if not sample_logs:
        raise DataError("SAMPLES_JSONL: give at least one lmms-eval samples_*.jsonl file")
    out = Path(out)
    check_output_dir(out, AUDIT_KIND, overwrite)  # before any work
    check_writable(out)
    logs: dict[str, SampleLog] = {}
    for path in sample_logs:
        log = SampleLog(path)
        if log.task in logs:
            raise DataError(
                f"{log.path} and {logs[log.task].path} are both logs of task {log.task!r}; "
                "import one run's logs"
            )
        logs[log.task] = log
    tasks = [t for t in AUDIT_TASKS.names() if t in logs]  # the order a native audit runs
    cfg = AuditConfig.from_dict(
        {"tasks": tasks, "split": split, "closed_mode": "score", "progress": False}
    )
    plan = plan_audit(str(data), cfg)
    provenance = {t: logs[t].provenance() for t in tasks}
    table_rows = []
    for task in tasks:
        runner, samples = plan.tasks[task]
        exported = logs[task].exported_fingerprint()
        if exported is not None and exported != samples_fingerprint(samples):
            raise DataError(
                f"{logs[task].path}: task {task!r} was exported from other data than "
                f"data={str(data)!r} (its fingerprint differs); import it with the data it "
                "was exported from, or export this data and run again"
            )
        rows = _task_rows(logs[task], runner, samples, cfg)
        for sample, fields in zip(samples, rows, strict=True):
            row = {
                "sample_id": sample.id,
                "task": task,
                "split": sample.split or split,
                "prompt": sample.prompt,
                "target": sample.target,
                "concept": sample.concept,
                "counterfactual_set": sample.counterfactual_set,
                **fields,
            }
            for name in plan.attributes:
                row[ATTR_PREFIX + name] = sample.attributes.get(name)
            table_rows.append(row)
    model = _model_label(provenance[tasks[0]])
    identity = audit_identity(plan, cfg, model, None, None)
    doc = config_document(cfg, identity, model, None, plan, 1)
    doc["lmms_eval"] = provenance
    table = pa.Table.from_pylist(table_rows, schema=record_schema(plan.attributes))
    metrics = compute_metrics(
        table.to_pandas(), model=model, data=plan.data_label, config=cfg.metrics
    )
    if out.exists() and not overwrite:
        check_output_dir(out, AUDIT_KIND)
    with atomic_dir(out, OUTPUT_MARKER, overwrite=True) as tmp:
        pq.write_table(table, tmp / RECORDS_FILE)
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        write_metrics(metrics, tmp / METRICS_FILE)
        write_marker(tmp, AUDIT_KIND)
    return out


__all__ = ["SampleLog", "import_lmms_eval"]
