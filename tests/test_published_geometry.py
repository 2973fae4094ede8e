"""``fairvlm tiny --geometry published``: each family's image becomes the published number
of image tokens, as reported by ``fairvlm info --image-size``, inserted by the processor
and consumed by the model."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from fairvlm.cli import main
from fairvlm.data.schema import Sample
from fairvlm.models import load_vlm
from fairvlm.models.builtin_families import BUILTIN
from fairvlm.models.published import PUBLISHED

#: The built-in families (plugins may register more; they have no published geometry).
FAMILIES = [spec.name for spec in BUILTIN]

# LLaVA-NeXT at 672x672: the (672, 672) pinpoint, 2x2 tiles of 24x24 patches: a 48x48
# grid with one newline token per row, after the 24x24 base image.
_NEXT_672 = 24 * 24 + 48 * (48 + 1)

#: (family, (width, height), image tokens): the published counts. Idefics3 / SmolVLM
#: first resize the longest edge to 1456 / 2048 px, then cut 364 / 512 px tiles and add
#: one global image: a square image is 4x4 + 1 = 17 tiles, a 1:2 one 2x4 + 1 = 9.
CASES = [
    ("llava", (64, 64), 576),  # 24x24 patches of 14 px at 336 px, any input size
    ("llava", (672, 448), 576),
    ("llava", (336, 336), 576),
    ("llava_next", (672, 672), _NEXT_672),
    ("qwen2_vl", (448, 448), 256),  # (448 / 14)^2 / (2x2 merge)
    ("qwen2_vl", (672, 448), 384),  # 48 x 32 / 4
    ("qwen2_5_vl", (448, 448), 256),
    ("qwen2_5_vl", (672, 448), 384),
    ("idefics3", (364, 364), 17 * 169),  # 169 = (364 / 14)^2 / (2x2 pixel shuffle)
    ("idefics3", (364, 728), 9 * 169),
    ("smolvlm", (512, 512), 17 * 64),  # 64 = (512 / 16)^2 / (4x4 pixel shuffle)
    ("smolvlm", (512, 1024), 9 * 64),
    ("paligemma", (224, 224), 256),  # (224 / 14)^2
    ("paligemma", (64, 96), 256),
]
#: Tokens per tile of the tiled families.
PER_TILE = {"idefics3": 169, "smolvlm": 64}


def test_every_family_has_a_published_geometry():
    assert sorted(PUBLISHED) == sorted(FAMILIES)
    assert {f for f, _, _ in CASES} == set(FAMILIES)


@pytest.mark.parametrize(("family", "size", "tokens"), CASES)
def test_info_reports_published_image_tokens(family, size, tokens, published_dir, capsys):
    spec = f"{size[0]}x{size[1]}"
    assert main(["info", published_dir(family), "--json", "--image-size", spec]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["image_size"] == list(size)
    assert info["image_tokens"] == tokens


@pytest.mark.parametrize(("family", "size", "tokens"), CASES)
def test_processor_inserts_and_model_consumes_them(family, size, tokens, published_vlm):
    vlm = published_vlm(family)
    image = Image.new("RGB", size, "gray")
    batch = vlm.collate([Sample(id="a", image=image, prompt="What is shown?")])
    assert int((batch["input_ids"] == vlm.image_token_id).sum()) == tokens
    if family in PER_TILE:
        assert tokens == PER_TILE[family] * batch["pixel_values"].shape[1]
    with torch.no_grad():
        logits = vlm.forward_batch(batch).logits  # raises on a token / feature mismatch
    assert logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(logits).all()


def test_llava_next_features_at_672_are_the_inserted_tokens(published_vlm):
    vlm = published_vlm("llava_next")
    image = Image.new("RGB", (672, 672), "gray")
    batch = vlm.collate([Sample(id="a", image=image, prompt="What is shown?")])
    with torch.no_grad():
        features = vlm.base_model.model.get_image_features(
            batch["pixel_values"], batch["image_sizes"]
        ).pooler_output
    assert sum(f.shape[0] for f in features) == _NEXT_672 == 2928


def test_published_model_is_small_and_covers_the_image(published_dir):
    vlm = load_vlm(published_dir("llava"), device="meta")
    vision = vlm.base_model.config.vision_config
    assert (vision.image_size, vision.patch_size) == (336, 14)
    assert vlm.hidden_size == 32 and vlm.num_layers == 2
    assert sum(p.numel() for p in vlm.model.parameters()) < 500_000


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["tiny", "llava", "OUT", "--geometry", "huge"], "--geometry"),
        (["tiny", "llava", "OUT", "--geometry", "published", "--image-size", "64"], "--image-size"),
        (["tiny", "llava", "OUT", "--geometry", "published", "--patch-size", "7"], "--patch-size"),
    ],
)
def test_bad_geometry_flags_exit_2(argv, flag, tmp_path, capsys):
    argv = [str(tmp_path / "m") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("value", ["0", "64x", "x64", "64x64x3", "big"])
def test_bad_image_size_exits_2(value, tiny_llava, capsys):
    assert main(["info", str(tiny_llava), "--image-size", value]) == 2
    assert "--image-size" in capsys.readouterr().err


def test_info_image_size_on_the_tiny_geometry(tiny_llava, capsys):
    assert main(["info", str(tiny_llava), "--json", "--image-size", "48"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["image_tokens"] == info["image_tokens_per_image_64px"] == 16
