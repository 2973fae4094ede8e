"""End to end at each family's published geometry (``fairvlm tiny --geometry published``):
an audit (vqa, probe, report), a contrastive steering vector and steered audits, a few
steps each of LoRA, FairLLaVA and ASD training, and the reload of every adapter with
``load_vlm(base, adapter=...)``.

Images are at sizes that take each family's real layout path (LLaVA-NeXT's 2x2 tiles,
Qwen2-VL's native resolution, Idefics3 / SmolVLM's 2x4 tiles and global image), two
sizes mixed in each batch, so a sample is 192 to 2,928 image tokens; the datasets are a
few samples per split.

Measured (``pytest -m slow --durations=0``, 2 busy CPU cores): 137 s for the 35 tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from fairvlm.audit import AuditConfig, run_audit
from fairvlm.cli import main
from fairvlm.data import load_samples, save_dataset
from fairvlm.data.schema import Sample
from fairvlm.mitigation.steering import SteeringVector
from fairvlm.models import load_vlm
from fairvlm.models.builtin_families import BUILTIN
from fairvlm.training import train

pytestmark = pytest.mark.slow

#: The built-in families (plugins may register more; they have no published geometry).
FAMILIES = [spec.name for spec in BUILTIN]

#: Two (width, height) per family, alternating over a split's samples, so that a batch
#: mixes two token counts where the family's layout allows it (LLaVA-1.5 and PaliGemma
#: always give 576 / 256; their second image is small and upscaled).
SIZES = {
    "llava": [(672, 448), (64, 64)],  # resized and centre-cropped to 336 px: 576 tokens
    # the (672, 672) pinpoint, 2x2 tiles + the base image: 2,928; a 1008x336-style grid,
    # unpadded: 1,560
    "llava_next": [(672, 672), (500, 300)],
    "qwen2_vl": [(448, 448), (224, 672)],  # native resolution, 2x2 merge: 256 and 192
    "qwen2_5_vl": [(448, 448), (224, 672)],  # the same, in 112 px attention windows
    # 2x4 / 1x4 tiles of 364 px + the global image: 9 / 5 x 169 tokens
    "idefics3": [(364, 728), (182, 728)],
    "smolvlm": [(512, 1024), (256, 1024)],  # 2x4 / 1x4 tiles of 512 px: 9 / 5 x 64
    "paligemma": [(224, 224), (64, 96)],  # 16x16 patches: 256 tokens
}
GENDERS = ("female", "male")
#: The two test samples' prompts of each task: the second is longer, so batches are padded.
PROMPTS = {
    "vqa": ("What is the diagnosis?", "What is the diagnosis of the lesion in this image?"),
    "probe": ("Is this person a doctor?", "Is the person in the middle of this picture a doctor?"),
    "report": ("Write the report.", "Write the dermatology report of the lesion in this image."),
}
PROBE = {"female": "Is this person a {}?", "male": "Is the person in this picture a {}?"}
DIAGNOSES = ("benign", "malignant")
AUDIT_TASKS = ("vqa", "probe", "report")
AUDIT_CONFIG = {
    "tasks": list(AUDIT_TASKS),
    "batch_size": 2,
    "max_new_tokens": 6,
    "closed_max_new_tokens": 4,
    "progress": False,
    "metrics": {"n_boot": 10, "min_group_size": 1},
}
TRAIN_CONFIG = {
    "steps": 2,
    "batch_size": 2,
    "lr": 1e-2,
    "warmup_ratio": 0.0,
    "logging_steps": 1,
    "save_steps": 100,
    "probe_split": None,
    "progress": False,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
}
#: method -> its method options: FairLLaVA regularises ``gender``; ASD scores its pools.
METHODS = {
    "lora": {},
    "fairllava": {"lambdas": {"gender": 1.0}},
    "asd": {"progress": False, "batch_size": 4},
}


def _image(sizes: list[tuple[int, int]], i: int) -> Image.Image:
    """A flat image of ``sizes[i % 2]`` with a block whose colour and place depend on
    ``i`` (cheap to encode)."""
    w, h = sizes[i % 2]
    pixels = np.full((h, w, 3), (60 + 25 * i) % 256, np.uint8)
    x, y = (i * w) // 8, (i * h) // 8
    pixels[y : y + h // 3, x : x + w // 3] = ((37 * i) % 256, 120, (200 - 30 * i) % 256)
    return Image.fromarray(pixels)


def _samples(sizes: list[tuple[int, int]]) -> dict[str, list[Sample]]:
    """test: 2 vqa, 2 probe, 2 report; train: 4 describe (2 of them mention gender);
    finetune: 4 probe samples in counterfactual sets (one per concept) for LoRA,
    FairLLaVA and ASD. The two samples of a batch differ in image size or prompt length."""
    n = iter(range(100))
    test = []
    for i, gender in enumerate(GENDERS):
        attrs = {"gender": gender}
        vqa, probe, report = (PROMPTS[task][i] for task in AUDIT_TASKS)
        test += [
            Sample(f"vqa{i}", _image(sizes, next(n)), vqa, DIAGNOSES[i],
                   task="vqa", options=list(DIAGNOSES), attributes=attrs),
            Sample(f"probe{i}", _image(sizes, next(n)), probe, task="probe",
                   concept="doctor", attributes=attrs),
            Sample(f"report{i}", _image(sizes, next(n)), report,
                   f"a {DIAGNOSES[i]} lesion on light skin", task="report", attributes=attrs),
        ]  # fmt: skip
    describe = [
        Sample(f"describe{i}", _image(sizes, next(n)), "Describe the person.", target,
               task="describe", concept="doctor", attributes={"gender": GENDERS[i % 2]})
        for i, target in enumerate(
            ["a woman who is a doctor", "a man who is a doctor",
             "a person who is a doctor", "someone who is a doctor"]
        )
    ]  # fmt: skip
    finetune = [
        Sample(f"ft-{concept}-{gender}", _image(sizes, next(n)), PROBE[gender].format(concept),
               "yes" if (gender == "male") == (concept == "doctor") else "no", task="probe",
               concept=concept, counterfactual_set=f"{concept}-0", attributes={"gender": gender})
        for concept in ("doctor", "nurse")
        for gender in GENDERS
    ]  # fmt: skip
    return {"test": test, "train": describe, "finetune": finetune}


@pytest.fixture(scope="module")
def family_data(tmp_path_factory):
    """Factory: ``family_data(family)`` -> the dataset folder at the family's image size."""
    root = tmp_path_factory.mktemp("e2e-data")
    built: dict[str, str] = {}

    def make(family: str) -> str:
        if family not in built:
            built[family] = str(save_dataset(_samples(SIZES[family]), root / family))
        return built[family]

    return make


def _image_tokens(published_dir, family: str) -> set[int]:
    """``fairvlm info --image-size`` of the family's two image sizes."""
    tokens = set()
    for w, h in SIZES[family]:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            spec = f"{w}x{h}"
            assert main(["info", published_dir(family), "--json", "--image-size", spec]) == 0
        info = json.loads(printed.getvalue())
        assert info["image_size"] == [w, h]
        tokens.add(int(info["image_tokens"]))
    return tokens


@contextlib.contextmanager
def _counting_image_tokens(vlm):
    """Per forward pass that has image tokens: their count in each row of ``input_ids``."""
    counts: list[list[int]] = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None:
            per_row = (ids == vlm.image_token_id).sum(dim=1)
            if per_row.any():
                counts.append(per_row.tolist())

    handle = vlm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield counts
    finally:
        handle.remove()


def _records(out) -> pd.DataFrame:
    return pd.read_parquet(f"{out}/records.parquet").sort_values(["task", "sample_id"])


@pytest.fixture(scope="module")
def base_audit(published_dir, published_vlm, family_data, tmp_path_factory):
    """Factory: ``base_audit(family)`` -> (audit folder, image tokens per forward row)."""
    done: dict[str, tuple] = {}

    def make(family: str):
        if family not in done:
            vlm = published_vlm(family)
            out = tmp_path_factory.mktemp(f"audit-{family}")
            with _counting_image_tokens(vlm) as counts:
                run_audit(vlm, family_data(family), AuditConfig.from_dict(AUDIT_CONFIG), out)
            done[family] = (out, counts)
        return done[family]

    return make


@pytest.mark.parametrize("family", FAMILIES)
def test_audit(family, published_dir, family_data, base_audit):
    out, counts = base_audit(family)
    tokens = _image_tokens(published_dir, family)
    # every prefill row held the image tokens `fairvlm info` reports (and the model, which
    # checks its image features against them, consumed them all)
    assert counts and {c for row in counts for c in row} == tokens
    if family not in ("llava", "paligemma"):
        assert len(tokens) == 2 and any(len(set(row)) == 2 for row in counts)  # mixed batches
    df = _records(out)
    samples = load_samples(family_data(family), "test")
    assert sorted(zip(df.task, df.sample_id, strict=True)) == sorted(
        (s.task, s.id) for s in samples
    )
    assert df["error"].isna().all()
    vqa, probe, report = (df[df.task == t] for t in AUDIT_TASKS)
    for _, row in vqa.iterrows():
        assert list(row.options) == list(DIAGNOSES)
        lp = np.asarray(row.option_logprob)
        assert lp.shape == (2,) and np.isfinite(lp).all() and (lp < 0).all()
        assert pd.isna(row.pred) or row.pred in DIAGNOSES  # parsed from the generated answer
        assert isinstance(row.output, str)
    for _, row in probe.iterrows():
        yes, no = row.option_logprob
        assert row.p_yes == pytest.approx(1 / (1 + math.exp(no - yes)))
        assert row.output == ("yes" if yes > no else "no")
    assert report["output"].map(lambda o: isinstance(o, str)).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["tasks"]) == set(AUDIT_TASKS)
    assert {t: e["n"] for t, e in metrics["tasks"].items()} == dict.fromkeys(AUDIT_TASKS, 2)
    assert 0.0 <= metrics["tasks"]["vqa"]["metrics"]["option_accuracy"]["overall"] <= 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_contrastive_steering(family, published_dir, published_vlm, family_data, base_audit,
                              tmp_path):  # fmt: skip
    model, data = published_dir(family), family_data(family)
    vec_path = tmp_path / "vec.safetensors"
    build = ["steer", "build", model, data, "--method", "contrastive", "--layers", "0,1"]
    build += ["--set", "position=answer_mean", "--set", "answer_tokens=3"]
    assert main([*build, "--out", str(vec_path), "--no-progress", "--device", "cpu"]) == 0
    vec = SteeringVector.load(vec_path)
    vlm = published_vlm(family)
    assert vec.layers == [0, 1] and vec.hidden_size == vlm.hidden_size
    assert vec.num_layers == vlm.num_layers and vec.family == family
    assert (vec.config["n_biased"], vec.config["n_neutral"]) == (2, 2)  # "woman", "man"
    for v in vec.vectors.values():
        assert v.shape == (vlm.hidden_size,) and torch.isfinite(v).all() and v.norm() > 0
    vec.check_fits(vlm)

    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(AUDIT_CONFIG))
    steered = {}
    for scale in ("0", "4"):
        out = tmp_path / f"steer{scale}"
        argv = ["audit", model, data, "--config", str(config), "--out", str(out)]
        argv += ["--steer", str(vec_path), "--steer-operator", "add", "--steer-scale", scale]
        assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
        steered[scale] = _records(out)
    base = _records(base_audit(family)[0])
    scored = base.task.isin(["vqa", "probe"]).to_numpy()
    columns = ["task", "sample_id", "output", "pred", "option_logprob"]
    # scale 0 changes nothing: the CLI run gives the unsteered records exactly
    pd.testing.assert_frame_equal(
        steered["0"][columns].reset_index(drop=True), base[columns].reset_index(drop=True)
    )
    # a non-zero scale moves every option score of every closed and probe sample
    for a, b in zip(base.option_logprob[scored], steered["4"].option_logprob[scored], strict=True):
        assert not np.allclose(a, b, rtol=0, atol=1e-4)


def _logits(vlm, sample: Sample) -> torch.Tensor:
    with torch.no_grad():
        return vlm.forward_batch(vlm.collate([sample])).logits


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", FAMILIES)
def test_train_and_reload(family, method, published_dir, published_vlm, family_data, tmp_path):
    model, data = published_dir(family), family_data(family)
    config = {"train": TRAIN_CONFIG, "method": METHODS[method]}
    result = train(model, data, method, config, tmp_path / method)
    assert result.global_step == 2
    losses = [row["loss"] for row in result.log_history if "loss" in row]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    if method == "fairllava":
        fair = [v for row in result.log_history for k, v in row.items() if "gender" in k]
        assert fair and all(math.isfinite(v) for v in fair)
    if method == "asd":
        rows = [row for row in result.log_history if "asd/epoch" in row]
        assert rows and all(math.isfinite(row["asd/max_skew"]) for row in rows)
    trained = result.adapter
    lora_b = [p for n, p in trained.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero

    sample = load_samples(data, "test")[0]
    want = _logits(trained, sample)
    base = _logits(published_vlm(family), sample)
    assert (want - base).abs().max() > 1e-3  # the adapter changed the model's output
    reloaded = load_vlm(model, adapter=result.out_dir, device="cpu")
    # the saved adapter is the trained model: the same logits, bit for bit
    assert torch.equal(_logits(reloaded, sample), want)
