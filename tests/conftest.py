"""Shared fixtures: offline hub, one CPU thread, tiny models built once per session.

``tiny_llava`` is the directory of a saved tiny LLaVA; ``tiny_vlm_dir(family)`` builds
(once) and returns the directory of any family; ``tiny_vlm(family)`` the adapter that
was saved there (in memory, shared by every test: do not change its weights; load your
own copy with ``load_vlm(tiny_vlm_dir(family))`` to train it). ``make_samples(n)`` gives
samples with small random images. ``published_dir(family)`` is the directory of
``fairvlm tiny FAMILY --geometry published`` and ``published_vlm(family)`` its adapter
(on CPU, shared: do not change its weights), each built once.
"""

from __future__ import annotations

import contextlib
import io
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fairvlm.upstream_warnings import filter_unavoidable  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _unavoidable_upstream_warnings():
    """Filtered as the CLI filters them; per test, as pytest resets the filters per test."""
    filter_unavoidable()


_PROMPTS = (
    "What is shown?",
    "Is this person a doctor or a nurse in the room?",
    "Describe the image.",
    "What is the diagnosis of the lesion?",
)


@pytest.fixture(scope="session")
def _tiny_cache(tmp_path_factory):
    return {"root": tmp_path_factory.mktemp("tiny_vlms"), "dirs": {}, "adapters": {}}


@pytest.fixture(scope="session")
def tiny_vlm_dir(_tiny_cache):
    """Factory: ``tiny_vlm_dir("qwen2_vl")`` -> Path of a saved tiny model (built once)."""
    from fairvlm.models import build_tiny_vlm

    def make(family: str = "llava"):
        if family not in _tiny_cache["dirs"]:
            out = _tiny_cache["root"] / family
            _tiny_cache["adapters"][family] = build_tiny_vlm(family, out)
            _tiny_cache["dirs"][family] = out
        return _tiny_cache["dirs"][family]

    return make


@pytest.fixture(scope="session")
def tiny_vlm(tiny_vlm_dir, _tiny_cache):
    """Factory: ``tiny_vlm("llava")`` -> the in-memory adapter saved by ``tiny_vlm_dir``."""

    def make(family: str = "llava"):
        tiny_vlm_dir(family)
        return _tiny_cache["adapters"][family]

    return make


@pytest.fixture(scope="session")
def tiny_llava(tiny_vlm_dir):
    """Directory of a saved tiny LLaVA (hidden 32, 2 layers, 32 px images)."""
    return tiny_vlm_dir("llava")


@pytest.fixture(scope="session")
def make_samples():
    """Factory: ``make_samples(n, target="yes")`` -> Samples with distinct random images."""
    from PIL import Image

    from fairvlm.data.schema import Sample

    def make(n: int = 3, target: str | None = "yes", size: tuple[int, int] = (40, 48)):
        rng = np.random.default_rng(n)
        out = []
        for i in range(n):
            pixels = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
            out.append(
                Sample(
                    id=f"s{i}",
                    image=Image.fromarray(pixels),
                    prompt=_PROMPTS[i % len(_PROMPTS)],
                    target=target,
                    attributes={"sex": "female" if i % 2 else "male"},
                )
            )
        return out

    return make


@pytest.fixture(scope="session")
def published_dir(tmp_path_factory):
    """Factory: the folder of ``fairvlm tiny FAMILY OUT --geometry published``, built once."""
    from fairvlm.cli import main

    root = tmp_path_factory.mktemp("published")
    built: dict[str, str] = {}

    def make(family: str) -> str:
        if family not in built:
            out = root / family
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                assert main(["tiny", family, str(out), "--geometry", "published"]) == 0
            assert "published geometry" in printed.getvalue()
            built[family] = str(out)
        return built[family]

    return make


@pytest.fixture(scope="session")
def published_vlm(published_dir):
    """Factory: the adapter of ``published_dir(family)``, loaded once on CPU."""
    from fairvlm.models import load_vlm

    loaded: dict[str, object] = {}

    def make(family: str):
        if family not in loaded:
            loaded[family] = load_vlm(published_dir(family), device="cpu")
        return loaded[family]

    return make
