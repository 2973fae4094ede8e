"""``train``: load, validate, fine-tune with a method, save what ``load_vlm`` restores.

Output directory::

    OUT/adapter_config.json, adapter_model.safetensors   the PEFT adapter (LoRA + projector)
    OUT/heads.safetensors      extra heads (CLUB heads, adversaries), when the method has any
    OUT/config.yaml            method, training and method config, attribute vocabularies
    OUT/training_log.jsonl     the Trainer's log history (LM loss, MI per attribute ...)
    OUT/probe.json             fresh linear probes on the regularised layer (held-out split)
    OUT/probe_sweep.json       linear and MLP probes at every layer (``train.probe.sweep``)
    OUT/checkpoints/           Trainer checkpoints (resume with ``resume=True``)

``load_vlm(BASE, adapter=OUT)`` restores the fine-tuned model.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fairvlm.atomic import (
    LOCK_FILE,
    atomic_write_text,
    check_output_dir,
    output_lock,
    write_marker,
)
from fairvlm.config import to_plain
from fairvlm.data import load_dataset, load_samples
from fairvlm.errors import ConfigError
from fairvlm.models import load_vlm
from fairvlm.representation import (
    FOOLED,
    LayerReader,
    ProbeSettings,
    probe_sweep,
    results_to_dict,
    run_probe,
    sweep_to_dicts,
)
from fairvlm.training.arguments import training_arguments
from fairvlm.training.checkpoints import last_complete_checkpoint
from fairvlm.training.config import TrainConfig, load_train_config
from fairvlm.training.dataset import AttributeSpace, SampleDataset, TrainCollator
from fairvlm.training.lora import apply_lora, trainable_parameter_names
from fairvlm.training.methods import MethodContext, ProbeSpec, get_method
from fairvlm.training.trainer import TERMS_ATTR, TERMS_FILE, FairTrainer, load_terms, save_terms

CONFIG_FILE = "config.yaml"
LOG_FILE = "training_log.jsonl"
PROBE_FILE = "probe.json"
SWEEP_FILE = "probe_sweep.json"
CHECKPOINTS = "checkpoints"
#: The kind in a training output's marker (``fairvlm.atomic``).
TRAIN_KIND = "train"


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        out_dir: the output directory; ``method``: the method name.
        global_step: optimiser steps done; ``log_history``: the Trainer's logs.
        probe: one dict per probed attribute (see ``fairvlm.representation.ProbeResult``).
        trainable: names of the parameters that trained.
        adapter: the fine-tuned adapter, in memory (hooks and heads removed).
    """

    out_dir: Path
    method: str
    global_step: int
    log_history: list[dict[str, Any]] = field(default_factory=list)
    probe: list[dict[str, Any]] = field(default_factory=list)
    trainable: list[str] = field(default_factory=list)
    adapter: Any = None


def _load_training_samples(data: Any, cfg: TrainConfig) -> list[Any]:
    if isinstance(data, str | os.PathLike):
        return load_samples(data, cfg.split, limit=cfg.limit)
    samples = list(data)
    return samples[: cfg.limit] if cfg.limit is not None else samples


def _probe_samples(data: Any, cfg: TrainConfig, probe_data: Any) -> list[Any]:
    if probe_data is not None:
        return list(probe_data)[: cfg.probe_limit]
    if cfg.probe_split is None or not isinstance(data, str | os.PathLike):
        return []

    if cfg.probe_split not in load_dataset(data):
        return []
    return load_samples(data, cfg.probe_split, limit=cfg.probe_limit)


def _process_device(device: str | None) -> str | None:
    """Under ``accelerate launch``/``torchrun`` each process loads onto its own GPU."""
    import torch

    local_rank = os.environ.get("LOCAL_RANK")
    if device in (None, "auto", "cuda") and local_rank is not None and torch.cuda.is_available():
        return f"cuda:{int(local_rank)}"
    return device


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _check_out_dir(out: Path, record: dict[str, Any], resume: bool) -> str | None:
    """The checkpoint to resume from (or None); raises when ``out`` holds another run."""
    ckpt_root = out / CHECKPOINTS
    saved = out / CONFIG_FILE
    if not resume:
        # only the main process judges the folder: the others would see what it already
        # wrote there (its lock, its marker) in a multi-process launch
        busy = out.exists() and any(p.name != LOCK_FILE for p in out.iterdir())
        if busy and _is_main_process():
            raise ConfigError(
                f"out={str(out)!r} is not empty: pass resume=True (--resume) or choose another --out"
            )
        return None
    if not saved.is_file():  # a folder of a run that wrote no config yet, or a user's
        check_output_dir(out, TRAIN_KIND, flag=None)
    else:
        import yaml

        before = yaml.safe_load(saved.read_text()) or {}
        for key in ("method", "train", "method_config"):
            if before.get(key) != record[key]:
                raise ConfigError(
                    f"resume: the {key} in {saved} differs from this run's; resume with the same "
                    "config or choose another --out"
                )
    return last_complete_checkpoint(ckpt_root)


def _training_arguments(cfg: TrainConfig, out: Path, use_cpu: bool) -> Any:
    return training_arguments(
        out / CHECKPOINTS,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        progress=cfg.progress,
        use_cpu=use_cpu,
        scheduler=cfg.scheduler,
        grad_accum=cfg.grad_accum,
        epochs=cfg.epochs,
        mixed_precision=cfg.mixed_precision,
        extra=cfg.args,
    )


def _save_outputs(
    out: Path, model: Any, has_terms: bool, log_history: list[dict], probe: list[dict]
) -> None:
    """Adapter, heads, log and probe into ``out`` (each file replaced atomically)."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=out))
    try:
        model.save_pretrained(str(tmp))
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if has_terms:
        save_terms(model, out / TERMS_FILE)
    atomic_write_text(out / LOG_FILE, "".join(json.dumps(row) + "\n" for row in log_history))
    atomic_write_text(out / PROBE_FILE, json.dumps(probe, indent=2))


def train(
    model_path: str | os.PathLike | Any,
    data_path: str | os.PathLike | Sequence[Any],
    method: str,
    config: str | os.PathLike | Mapping[str, Any] | TrainConfig | None = None,
    out_dir: str | os.PathLike = "fairvlm-train",
    resume: bool = False,
    *,
    overrides: Sequence[str] = (),
    model_args: Mapping[str, Any] | None = None,
    probe_data: Sequence[Any] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Fine-tune ``model_path`` on ``data_path`` with ``method`` and save to ``out_dir``.

    Args:
        model_path: a model directory / hub id, or an already loaded ``VLMAdapter``
            (LoRA is applied to it in place).
        data_path: a stored dataset (``TrainConfig.split`` is used) or a list of Samples.
        method: a registered method (``fairvlm.training.available_methods()``).
        config: YAML path or mapping with ``train:`` and ``method:`` sections, or a TrainConfig.
        out_dir: where the adapter, heads, config, log and checkpoints go.
        resume: continue from the last checkpoint in ``out_dir`` (same config required).
            A run whose last checkpoint reached ``max_steps`` is not trained again: its
            weights are loaded, and the final outputs written only when missing.
        overrides: ``key=value`` strings (``--set``).
        model_args: more ``load_vlm`` options for the base model (``attn_implementation``,
            ``quantization_config``, ...; ``--model-arg``).
        probe_data: held-out samples for the probe (default: ``TrainConfig.probe_split``).
        callbacks: extra ``transformers.TrainerCallback``s.

    Raises:
        ConfigError / DataError: bad config, method options or data, before any model work.
    """
    import yaml
    from transformers import set_seed

    # 1. everything that can be checked without the model
    spec = get_method(method)
    cfg, options = load_train_config(config, overrides)
    method_cfg = spec.parse(options)
    samples = _load_training_samples(data_path, cfg)
    if not samples:
        raise ConfigError(f"split={cfg.split!r} of the data is empty: nothing to train on")
    spec.check(method_cfg, samples)
    out = Path(out_dir)
    train_record = to_plain(cfg)
    if not cfg.args:  # left out when empty: runs saved before train.args still resume
        del train_record["args"]
    record = {"method": method, "train": train_record, "method_config": to_plain(method_cfg)}
    ckpt = _check_out_dir(out, record, resume)
    # one writer per output folder; the other processes of a launch follow the main one
    with output_lock(out) if _is_main_process() else contextlib.nullcontext():
        # 2. the model
        set_seed(cfg.seed)
        if isinstance(model_path, str | os.PathLike):
            adapter = load_vlm(
                model_path,
                dtype=cfg.dtype,
                device=_process_device(cfg.device),
                **dict(model_args or {}),
            )
            record["model"] = str(model_path)
        else:
            adapter = model_path
            record["model"] = getattr(adapter, "name_or_path", "")
        model = apply_lora(adapter, cfg.lora, seed=cfg.seed)
        space = AttributeSpace.from_samples(samples, spec.attributes(method_cfg))
        setup = spec.build(MethodContext(adapter, samples, space, cfg, method_cfg))
        train_samples = setup.samples if setup.samples is not None else samples
        dataset = SampleDataset(train_samples, space, setup.weights)
        record.update(
            data=str(data_path)
            if isinstance(data_path, str | os.PathLike)
            else f"<{len(samples)} samples>",
            attribute_space=space.to_dict(),
            setup=setup.extra,
            n_train=len(dataset),
        )
        out.mkdir(parents=True, exist_ok=True)
        if _is_main_process():
            write_marker(out, TRAIN_KIND)

        args = _training_arguments(cfg, out, use_cpu=adapter.device.type == "cpu")
        trainer = FairTrainer(
            model,
            args=args,
            train_dataset=dataset,
            data_collator=TrainCollator(adapter),
            terms=setup.terms,
            sampler=setup.sampler,
            lm_weight=setup.lm_weight,
            space=space,
            callbacks=[*callbacks, *setup.callbacks],
        )
        if trainer.is_world_process_zero() and not (resume and (out / CONFIG_FILE).is_file()):
            atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(record, sort_keys=False))
        for term in setup.terms:
            term.attach(adapter)
        finished = _finished_state(ckpt)
        try:
            if ckpt is not None and (Path(ckpt) / TERMS_FILE).is_file():
                load_terms(model, Path(ckpt) / TERMS_FILE)
            probe: list[dict[str, Any]] = []
            if finished is not None:
                # The Trainer would train past max_steps when resuming a finished run (it
                # replays a partial epoch): load the last checkpoint instead of training.
                _load_adapter_weights(model, Path(ckpt))
                global_step, log_history = finished["global_step"], finished["log_history"]
                kept = _final_outputs(out, global_step)
                print(
                    f"fairvlm train: {ckpt} already reached max_steps={finished['max_steps']}: "
                    "not training again; "
                    + ("the final outputs are kept" if kept else "writing the final outputs")
                )
            else:
                trainer.train(resume_from_checkpoint=ckpt)
                global_step, log_history = trainer.state.global_step, trainer.state.log_history
                kept = None
            trainable = trainable_parameter_names(model)
            if kept is not None:
                log_history, probe = kept
            elif trainer.is_world_process_zero():
                held_out = _probe_samples(data_path, cfg, probe_data)
                if held_out:
                    spec = setup.probe or ProbeSpec()
                    probe = probe_trained(adapter, held_out, space, spec, cfg.seed, cfg.probe)
                    if cfg.probe.sweep:
                        sweep = sweep_trained(adapter, held_out, space, spec, cfg.seed, cfg.probe)
                        atomic_write_text(out / SWEEP_FILE, json.dumps(sweep, indent=2))
                _save_outputs(out, model, bool(setup.terms), log_history, probe)
            trainer.accelerator.wait_for_everyone()
        finally:
            for term in setup.terms:
                term.remove()
    if hasattr(model, TERMS_ATTR):
        delattr(model, TERMS_ATTR)
    model.eval()
    return TrainResult(out, method, global_step, list(log_history), probe, trainable, adapter)


def _finished_state(ckpt: str | None) -> dict[str, Any] | None:
    """The checkpoint's trainer state when it reached ``max_steps`` (the run is done)."""
    if ckpt is None or not (Path(ckpt) / "trainer_state.json").is_file():
        return None
    state = json.loads((Path(ckpt) / "trainer_state.json").read_text())
    max_steps = state.get("max_steps") or 0
    return state if max_steps > 0 and state.get("global_step", 0) >= max_steps else None


def _load_adapter_weights(model: Any, ckpt: Path) -> None:
    """Load a checkpoint's adapter (LoRA + projector copy) into the PEFT ``model``."""
    from peft import load_peft_weights, set_peft_model_state_dict

    weights = load_peft_weights(str(ckpt), device=str(next(model.parameters()).device))
    result = set_peft_model_state_dict(model, weights)
    unexpected = [k for k in getattr(result, "unexpected_keys", None) or [] if "lora_" in k]
    if unexpected:
        raise ConfigError(
            f"resume: {ckpt} holds adapter weights the model lacks ({unexpected[:3]}); "
            "resume with the same model and config or choose another --out"
        )


def _final_outputs(out: Path, global_step: int) -> tuple[list[dict], list[dict]] | None:
    """(log history, probe) of a finished run's saved outputs when they are of ``global_step``."""
    log, probe = out / LOG_FILE, out / PROBE_FILE
    if not (out / "adapter_model.safetensors").is_file() or not log.is_file():
        return None
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not rows or max(row.get("step", -1) for row in rows) != global_step:
        return None
    return rows, json.loads(probe.read_text()) if probe.is_file() else []


def _probed_attributes(space: Any, spec: Any) -> list[str]:
    attributes = spec.attributes or [a for a in space.names if space.size(a) >= 2]
    return [a for a in attributes if a in space.values]


def sweep_trained(
    adapter: Any,
    samples: list[Any],
    space: Any,
    spec: Any,
    seed: int = 0,
    probe: ProbeSettings | None = None,
) -> list[dict[str, Any]]:
    """The linear and the MLP probe (``probe``'s width and steps) at every layer, on image
    and text positions, mean-pooled, for the attributes of ``spec``, as dicts."""
    probe = probe or ProbeSettings()
    probes = (ProbeSettings(), replace(probe, kind="mlp", sweep=False))
    rows = probe_sweep(
        adapter, samples, space, _probed_attributes(space, spec), probes=probes, seed=seed
    )
    return sweep_to_dicts(rows)


def probe_trained(
    adapter: Any,
    samples: list[Any],
    space: Any,
    spec: Any,
    seed: int = 0,
    probe: ProbeSettings | None = None,
) -> list[dict[str, Any]]:
    """Fresh probes (``probe``, default linear) on a trained model's layer (``spec``: a
    ``ProbeSpec``), as dicts.

    The CLUB estimate of ``spec.heads`` is reported beside each probe; a warning is
    printed when the estimator is being fooled.
    """
    attributes = _probed_attributes(space, spec)
    reader = LayerReader(spec.representation)
    reader.attach(adapter)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = run_probe(
                adapter,
                reader,
                samples,
                space,
                attributes,
                spec.heads,
                labels=space.labels,
                seed=seed,
                probe=probe,
            )
        for w in caught:
            if FOOLED in str(w.message):
                print(f"fairvlm train: warning: {w.message}")
    finally:
        reader.remove()
    return results_to_dict(results)
