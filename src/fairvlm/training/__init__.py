"""The shared fine-tuning machinery: LoRA through PEFT, ``FairTrainer`` (a
``transformers.Trainer`` with per-sample weights, extra loss terms and a pluggable
sampler), the method registry and ``train``."""

from fairvlm.training.config import LoraSettings, TrainConfig, load_train_config
from fairvlm.training.dataset import AttributeSpace, SampleDataset, TrainCollator
from fairvlm.training.lora import apply_lora, lora_targets, trainable_parameter_names
from fairvlm.training.methods import (
    Method,
    MethodContext,
    MethodSetup,
    ProbeSpec,
    available_methods,
    get_method,
    register_method,
)
from fairvlm.training.pretrain import PretrainConfig, pretrain
from fairvlm.training.run import TrainResult, probe_trained, sweep_trained, train
from fairvlm.training.trainer import (
    FairTrainer,
    LossTerm,
    TermInputs,
    TermOutput,
    load_terms,
    per_sample_lm_loss,
    save_terms,
)

__all__ = [
    "AttributeSpace",
    "FairTrainer",
    "LoraSettings",
    "LossTerm",
    "Method",
    "MethodContext",
    "MethodSetup",
    "PretrainConfig",
    "ProbeSpec",
    "SampleDataset",
    "TermInputs",
    "TermOutput",
    "TrainCollator",
    "TrainConfig",
    "TrainResult",
    "apply_lora",
    "available_methods",
    "get_method",
    "load_terms",
    "load_train_config",
    "lora_targets",
    "per_sample_lm_loss",
    "pretrain",
    "probe_trained",
    "register_method",
    "save_terms",
    "sweep_trained",
    "train",
    "trainable_parameter_names",
]
