"""The fairness-utility sweep: audit a steered model over scales x layer sets.

Output folder::

    sweep.yaml          the SweepConfig, the vector's metadata, the model and the data
    runs/base/          the unsteered audit (records.parquet, metrics.json, config.yaml)
    runs/L<l+m>_S<a>/   one audit per (layer set, scale)
    table.csv/.json/.md one row per run: every task metric's overall value and CI, and
                        the change against the unsteered audit

Every run is a plain ``fairvlm.audit.run_audit`` folder, so an interrupted sweep resumes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.atomic import (
    atomic_write_text,
    check_output_dir,
    check_writable,
    output_lock,
    write_marker,
)
from fairvlm.audit import AuditConfig, plan_audit, run_audit
from fairvlm.config import Config
from fairvlm.errors import bad_value
from fairvlm.mitigation.steering.vector import (
    SteeringVector,
    check_operator,
    check_positions,
    check_scale,
)
from fairvlm.models import load_vlm
from fairvlm.registry import AUDIT_TASKS

#: The kind in a sweep folder's marker (``fairvlm.atomic``).
SWEEP_KIND = "sweep"
#: The audit tasks of a sweep unless its audit names others: mentions and recognition.
SWEEP_TASKS = ("describe", "concept")


def headline() -> list[tuple[str, str]]:
    """The table's headline columns, when present: every task's default fairness metrics,
    then its utility ones (from the audit task registry)."""
    fairness = [(t.name, m) for t in AUDIT_TASKS for m in t.fairness]
    return fairness + [(t.name, m) for t in AUDIT_TASKS for m in t.utility]


@dataclass
class SweepConfig(Config):
    """What a sweep runs.

    Attributes:
        scales: steering strengths; a scale that leaves the model unchanged (0 with
            ``add`` / ``ablate``) is the unsteered audit, run once.
        layers: layer sets, each applied jointly (``[[4], [8], [4, 8]]``); ``None`` = one
            set, all of the vector's layers.
        operator, positions: how the vector is applied (``None``: the vector's defaults).
        audit: ``fairvlm.audit.AuditConfig`` fields (tasks, split, limit, batch size ...);
            ``tasks`` defaults to :data:`SWEEP_TASKS`, on the test split.
    """

    scales: list[float] = field(default_factory=lambda: [0.0, 2.0, 4.0])
    layers: list[list[int]] | None = None
    operator: str | None = None
    positions: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        self.audit = {"tasks": list(SWEEP_TASKS), **self.audit}
        if not self.scales:
            raise bad_value(
                "scales", self.scales, "give a non-empty list of numbers, e.g. [0, 2, 4]"
            )
        self.scales = list(dict.fromkeys(check_scale(s) for s in self.scales))
        if self.layers is not None:
            if not self.layers or not all(self.layers):
                raise bad_value("layers", self.layers, "give layer sets, e.g. [[4], [8], [4, 8]]")
            self.layers = [sorted(set(s)) for s in self.layers]
        if self.operator is not None:
            check_operator(self.operator)
        if self.positions is not None:
            check_positions(self.positions)


def parse_layer_sets(text: str) -> list[list[int]]:
    """``"4,8,4+8"`` -> ``[[4], [8], [4, 8]]``."""
    try:
        return [[int(x) for x in part.split("+")] for part in text.split(",") if part.strip()]
    except ValueError:
        raise bad_value(
            "layers", text, "use integers, ',' between sets, '+' within one: 4,8,4+8"
        ) from None


def _is_identity(operator: str, scale: float) -> bool:
    return scale == 0.0 and operator in ("add", "ablate")


def _run_name(layers: Sequence[int], scale: float) -> str:
    return f"L{'+'.join(map(str, layers))}_S{scale:g}"


def _flatten(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{task.metric: overall, task.metric.ci_lo / ci_hi}`` of a ``metrics.json``."""
    row: dict[str, Any] = {}
    for task, entry in (metrics.get("tasks") or {}).items():
        for name, m in (entry.get("metrics") or {}).items():
            if not isinstance(m, Mapping) or "overall" not in m:
                continue
            value = m["overall"]
            if isinstance(value, int | float) or value is None:
                row[f"{task}.{name}"] = value
                ci = m.get("ci") or [None, None]
                row[f"{task}.{name}.ci_lo"], row[f"{task}.{name}.ci_hi"] = ci[0], ci[1]
    return row


def _add_changes(rows: list[dict[str, Any]], base: dict[str, Any]) -> None:
    """Relative drop of fairness rates and absolute change of the other headline metrics."""
    for row in rows:
        for task, name in headline():
            key = f"{task}.{name}"
            if row.get(key) is None or base.get(key) is None:
                continue
            if name == "mention_rate":
                row[f"{key}.drop"] = 1.0 - row[key] / base[key] if base[key] else math.nan
            else:
                row[f"{key}.delta"] = row[key] - base[key]


def _markdown(rows: list[dict[str, Any]]) -> str:
    cols = ["run", "layers", "scale"]
    for task, name in headline():
        key = f"{task}.{name}"
        if any(key in r for r in rows):
            cols.append(key)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if c.count(".") == 1 and isinstance(v, float):
                lo, hi = r.get(f"{c}.ci_lo"), r.get(f"{c}.ci_hi")
                ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
                cells.append(f"{v:.3f}{ci}")
            else:
                cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
    """``table.csv``, ``table.json`` and ``table.md`` in ``out``, atomically."""
    import pandas as pd

    df = pd.DataFrame(rows)
    atomic_write_text(out / "table.csv", df.to_csv(index=False))
    atomic_write_text(out / "table.json", json.dumps(rows, indent=2, default=str))
    atomic_write_text(out / "table.md", _markdown(rows))


def run_sweep(
    model_or_adapter: Any,
    data: Any,
    vector: SteeringVector | str | Path,
    config: SweepConfig | Mapping[str, Any] | None = None,
    out_dir: str | Path = "sweep",
    *,
    adapter: str | Path | None = None,
    dtype: str | None = None,
    device: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    base_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Audit ``vector`` over ``config.scales`` x ``config.layers``; write the table.

    Every check (configs, the layer sets against the vector, the vector against the
    model, the data) runs before the first audit. ``base_dir``: the folder of the
    unsteered audit (default ``out_dir/runs/base``); sweeps of several vectors on one
    model and data can share it (a finished audit there is reused, not recomputed).

    Returns:
        The table rows (also written to ``out_dir/table.*``); the first row is the
        unsteered audit.
    """
    cfg = config if isinstance(config, SweepConfig) else SweepConfig.from_dict(config)
    vec = vector if isinstance(vector, SteeringVector) else SteeringVector.load(vector)
    audit_cfg = AuditConfig.from_dict(cfg.audit)
    layer_sets = cfg.layers if cfg.layers is not None else [vec.layers]
    for s in layer_sets:
        vec.select(s)
    plan_audit(data, audit_cfg)  # bad data fails here, before any model work
    out = Path(out_dir)
    if not (out / "sweep.yaml").is_file():  # a sweep from before the marker resumes
        check_output_dir(out, SWEEP_KIND, overwrite)  # never write beside a user's files
    check_writable(out, "out_dir")
    with output_lock(out):  # one sweep per folder
        return _sweep(model_or_adapter, data, vec, cfg, out, overwrite, base_dir,
                      load={"adapter": adapter, "dtype": dtype, "device": device, **(model_args or {})})  # fmt: skip


def _sweep(
    model_or_adapter: Any,
    data: Any,
    vec: SteeringVector,
    cfg: SweepConfig,
    out: Path,
    overwrite: bool,
    base_dir: str | Path | None,
    load: dict[str, Any],
) -> list[dict[str, Any]]:
    import yaml

    audit_cfg = AuditConfig.from_dict(cfg.audit)
    layer_sets = cfg.layers if cfg.layers is not None else [vec.layers]
    operator = cfg.operator or vec.operator
    positions = cfg.positions or vec.positions
    adapter = load["adapter"]
    vlm = model_or_adapter
    if isinstance(vlm, str | os.PathLike):
        vlm = load_vlm(vlm, **load)
    for s in layer_sets:
        vec.check_fits(vlm, s)

    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_marker(out, SWEEP_KIND)
    atomic_write_text(
        out / "sweep.yaml",
        yaml.safe_dump(
            {
                "sweep": cfg.to_dict(),
                "operator": operator,
                "positions": positions,
                "vector": vec.metadata(),
                "model": str(getattr(vlm, "name_or_path", "")),
                "adapter": None if adapter is None else str(adapter),
                "data": str(data) if isinstance(data, str | os.PathLike) else type(data).__name__,
            },
            sort_keys=False,
        ),
    )
    runs: list[tuple[str, list[int] | None, float | None, Any]] = [("base", None, None, None)]
    for layers in layer_sets:
        for scale in cfg.scales:
            if _is_identity(operator, scale):
                continue
            kwargs = {
                "scale": scale,
                "operator": operator,
                "positions": positions,
                "layers": layers,
            }
            runs.append((_run_name(layers, scale), layers, scale, (vec, kwargs)))
    rows = []
    for name, layers, scale, steer in runs:
        where = Path(base_dir) if name == "base" and base_dir is not None else out / "runs" / name
        folder = run_audit(vlm, data, audit_cfg, where, steer=steer, overwrite=overwrite)
        metrics = json.loads((folder / "metrics.json").read_text())
        rows.append(
            {
                "run": name,
                "layers": "+".join(map(str, layers)) if layers else "",
                "scale": 0.0 if scale is None else scale,
                "operator": operator if steer else "",
                "positions": positions if steer else "",
                **_flatten(metrics),
            }
        )
    _add_changes(rows, rows[0])
    write_table(rows, out)
    return rows


__all__ = [
    "SWEEP_KIND",
    "SWEEP_TASKS",
    "headline",
    "SweepConfig",
    "parse_layer_sets",
    "run_sweep",
    "write_table",
]
