"""A plugin, as a user would write one: one of each kind of thing fairvlm can register.

- ``demo-scaled``: a training method (LoRA with the LM loss scaled by ``lm_weight``);
- ``demo-random``: a steering builder (a seeded random unit direction on one layer);
- ``length``: an audit task (open generation, scored by the answer's length in words);
- ``plugin_llava``: a VLM family with its own model type and model class.

Loaded with ``fairvlm --plugin fairvlm_test_plugin ...`` or ``plugins: [fairvlm_test_plugin]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import AutoConfig, LlavaConfig, LlavaForConditionalGeneration

from fairvlm.audit import GenerationTask
from fairvlm.config import Config
from fairvlm.errors import bad_value
from fairvlm.metrics.base import mean_metric
from fairvlm.mitigation.steering import SteeringVector
from fairvlm.mitigation.steering.builders import Builder
from fairvlm.models import FamilySpec, get_family, tiny_configs
from fairvlm.registry import register_builder, register_family, register_method, register_task
from fairvlm.training import Method, MethodSetup


# -- a training method ------------------------------------------------------------------
@dataclass
class ScaledConfig(Config):
    """``lm_weight``: the weight of the LM loss."""

    lm_weight: float = 1.0

    def validate(self) -> None:
        if not self.lm_weight > 0:
            raise bad_value("lm_weight", self.lm_weight, "use a positive weight")


register_method(
    Method(
        "demo-scaled",
        "LoRA with a scaled LM loss (plugin test)",
        lambda ctx: MethodSetup(lm_weight=ctx.config.lm_weight),
        config_class=ScaledConfig,
        metrics=("length.length",),
    )
)


# -- a steering builder -----------------------------------------------------------------
@dataclass
class RandomConfig(Config):
    """A seeded random unit direction on ``layer``; ``split``/``task``: the data it reads."""

    layer: int = 0
    seed: int = 0
    split: str = "test"
    task: str | None = None


def build_random(vlm, data, config: RandomConfig, progress: bool = False) -> SteeringVector:
    direction = torch.randn(
        int(vlm.hidden_size), generator=torch.Generator().manual_seed(config.seed)
    )
    return SteeringVector(
        {config.layer: direction / direction.norm()},
        num_layers=int(vlm.num_layers),
        builder="demo-random",
        config=config.to_dict(),
    )


register_builder(
    Builder("demo-random", "a random direction (plugin test)", RandomConfig, build_random)
)


# -- an audit task ----------------------------------------------------------------------
def length_metrics(records, reference_lm=None) -> dict:
    words = [len(str(o).split()) if o is not None else np.nan for o in records.df["output"]]
    return {
        "length": records.group(
            mean_metric("length", scale="words"), None, np.asarray(words, float)
        )
    }


class LengthTask(GenerationTask):
    """Open generation; the metric is the answer's length in words."""

    name = "length"
    derivable = True
    metric_columns = ("output",)
    compute = staticmethod(length_metrics)
    goals = {"length": "min"}
    fairness = {"length": "length"}

    def derived_prompt(self, sample) -> str:
        return "Describe the image."


register_task(LengthTask)


# -- a VLM family -----------------------------------------------------------------------
class PluginLlavaConfig(LlavaConfig):
    model_type = "plugin_llava"


class PluginLlava(LlavaForConditionalGeneration):
    config_class = PluginLlavaConfig


AutoConfig.register("plugin_llava", PluginLlavaConfig, exist_ok=True)


def tiny_plugin_llava(cfg, corpus):
    config, processor = tiny_configs.llava(cfg, corpus)
    fields = {k: v for k, v in config.to_dict().items() if k != "model_type"}
    return PluginLlavaConfig.from_dict(fields), processor


_llava = get_family("llava")
register_family(
    FamilySpec(
        "plugin_llava",
        "plugin_llava",
        PluginLlava,
        _llava.processor_class,
        _llava.image_processor_class,
        _llava.projector_attr,
        tiny=tiny_plugin_llava,
    )
)
