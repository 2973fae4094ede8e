"""A fairvlm dataset as an lmms-eval task folder (``fairvlm export lmms-eval``).

Layout of ``OUT``::

    fairvlm_<name>_<task>.yaml    one lmms-eval task per fairvlm task
    fairvlm_<name>_<task>.jsonl   its docs, in audit order (the doc_id is the line index)
    utils.py                      doc_to_visual / doc_to_text / doc_to_target / ... (a copy
                                  of fairvlm.interop.lmms_eval_utils)
    images/                       the sample images, at paths relative to OUT
    fairvlm_lmms_eval.json        what was exported (written last: marks a complete folder)

The samples of each task, their order and their options are the audit's own
(:func:`fairvlm.audit.plan.plan_audit`), so the sample logs of a run map back to the
same records a native audit writes. Closed tasks (vqa, concept) and the probe are
``multiple_choice`` (one log-likelihood per option); report and describe are
``generate_until`` (greedy). The YAMLs hold the absolute path of their JSONL (lmms-eval
reads ``data_files`` relative to where it runs): moving ``OUT`` means exporting again.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from fairvlm.atomic import atomic_dir, check_name
from fairvlm.audit.config import AuditConfig
from fairvlm.audit.plan import plan_audit
from fairvlm.audit.tasks import ClosedTask, ProbeTask
from fairvlm.data.imagefiles import ImageFolderWriter
from fairvlm.errors import bad_value
from fairvlm.fingerprint import samples_fingerprint
from fairvlm.interop import lmms_eval_utils

#: The file that marks a complete export (and says what it holds).
EXPORT_FILE = "fairvlm_lmms_eval.json"
#: The fairvlm tasks an export can hold, by lmms-eval output type.
MULTIPLE_CHOICE = ("vqa", "concept", "probe")
GENERATE = ("report", "describe")
EXPORT_TASKS = MULTIPLE_CHOICE + GENERATE
#: The metric each task's ``process_results`` returns (lmms-eval's own summary).
_METRICS = {
    "vqa": ("option_accuracy", True),
    "concept": ("option_accuracy", True),
    "probe": ("p_yes", True),
    "report": ("output_words", True),
    "describe": ("output_words", True),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def task_name(name: str, task: str) -> str:
    """The lmms-eval task name of fairvlm task ``task`` of export ``name``."""
    return f"fairvlm_{name}_{task}"


def check_export_name(name: object, flag: str = "--name") -> str:
    """``name`` as a task-name component: letters, digits, ``-`` and ``_``."""
    text = check_name(name, flag)
    if not _NAME.match(text):
        raise bad_value(
            flag,
            text,
            "it becomes part of the lmms-eval task names and file names: use letters, "
            "digits, - and _ (starting with a letter or digit)",
        )
    return text


class _Function(str):
    """A YAML ``!function utils.NAME`` value (lmms-eval resolves it in utils.py)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Function, lambda d, v: d.represent_scalar("!function", f"utils.{v}"))


def _doc(sample: Any, task: str, image: str | None, options: list[str] | None) -> dict:
    return {
        "sample_id": sample.id,
        "fairvlm_task": task,
        "image": image,
        "prompt": sample.prompt,
        "target": sample.target,
        "options": options,
        "concept": sample.concept,
        "attributes": dict(sample.attributes),
    }


def _task_yaml(
    name: str, task: str, split: str, docs_file: Path, cfg: AuditConfig, fingerprint: str
) -> dict:
    metric, higher = _METRICS[task]
    doc: dict[str, Any] = {
        "task": task_name(name, task),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {split: str(docs_file)}},
        "test_split": split,
        "doc_to_visual": _Function("doc_to_visual"),
        "doc_to_text": _Function("doc_to_text"),
        "doc_to_target": _Function("doc_to_target"),
    }
    if task in MULTIPLE_CHOICE:
        # the continuation is the option itself, as fairvlm scores it (no leading space)
        doc.update(
            output_type="multiple_choice", doc_to_choice=_Function("doc_to_choice"),
            target_delimiter="",
        )  # fmt: skip
    else:
        doc.update(
            output_type="generate_until",
            generation_kwargs={
                "max_new_tokens": cfg.max_new_tokens,
                "do_sample": False,
                "temperature": 0,
            },
        )
    doc["process_results"] = _Function("process_results")
    doc["metric_list"] = [{"metric": metric, "aggregation": "mean", "higher_is_better": higher}]
    doc["metadata"] = {"version": 1, "fairvlm": {"task": task, "fingerprint": fingerprint}}
    return doc


def export_lmms_eval(
    data: str | Path,
    out: str | Path,
    *,
    tasks: list[str] | None = None,
    split: str = "test",
    name: str | None = None,
    max_new_tokens: int | None = None,
) -> dict:
    """Write the lmms-eval task folder of dataset ``data`` to ``out`` (module doc),
    atomically; returns the manifest (``fairvlm_lmms_eval.json``).

    Args:
        data: a dataset folder.
        out: the task folder (replaced only when it is an export, or empty).
        tasks: fairvlm tasks among :data:`EXPORT_TASKS`; ``None``: those the split has.
        split: the split exported.
        name: the ``<name>`` of the task names (default: the data folder's name).
        max_new_tokens: generation budget of report / describe (default: the audit's).

    Raises:
        ConfigError: a task that cannot be exported, a name that is not a plain one.
        DataError: what an audit of the same data would refuse (no samples, no targets ...).
    """
    name = check_export_name(Path(data).name if name is None else name)
    wanted = tasks
    if wanted is not None:
        unknown = [t for t in wanted if t not in EXPORT_TASKS]
        if unknown or not wanted:
            raise bad_value("--tasks", ",".join(wanted), f"use some of {list(EXPORT_TASKS)}")
    fields: dict[str, Any] = {"tasks": wanted, "split": split, "progress": False}
    if max_new_tokens is not None:
        fields["max_new_tokens"] = max_new_tokens
    cfg = AuditConfig.from_dict(fields)
    plan = plan_audit(str(data), cfg)
    others = [t for t in plan.tasks if t not in EXPORT_TASKS]
    if others:
        raise bad_value(
            "--tasks", others, f"only {list(EXPORT_TASKS)} can be exported: pass --tasks"
        )
    out = Path(out)
    manifest: dict[str, Any] = {
        "data": str(data),
        "name": name,
        "split": split,
        "max_new_tokens": cfg.max_new_tokens,
        "probe_options": list(cfg.probe_options),
        "tasks": {},
    }
    with atomic_dir(out, EXPORT_FILE) as tmp:
        images = ImageFolderWriter(tmp)
        for task, (runner, samples) in plan.tasks.items():
            lines = []
            for s in samples:
                options = None
                if isinstance(runner, ClosedTask):
                    options = list(s.options) if s.options else list(runner.fallback_options)
                elif isinstance(runner, ProbeTask):
                    options = list(cfg.probe_options)
                lines.append(json.dumps(_doc(s, task, images.write(s), options)))
            docs = f"{task_name(name, task)}.jsonl"
            (tmp / docs).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            fingerprint = samples_fingerprint(samples)
            spec = _task_yaml(name, task, split, out.resolve() / docs, cfg, fingerprint)
            (tmp / f"{task_name(name, task)}.yaml").write_text(
                yaml.dump(spec, Dumper=_Dumper, sort_keys=False), encoding="utf-8"
            )
            manifest["tasks"][task] = {
                "lmms_eval_task": task_name(name, task),
                "n_samples": len(samples),
                "fingerprint": fingerprint,
            }
        shutil.copyfile(lmms_eval_utils.__file__, tmp / "utils.py")
        (tmp / EXPORT_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


__all__ = ["EXPORT_FILE", "EXPORT_TASKS", "check_export_name", "export_lmms_eval", "task_name"]
