"""SteeringVector: validation, arithmetic, safetensors round trip, fit checks."""

from __future__ import annotations

import pytest
import torch

from fairvlm.errors import ConfigError, DataError, ModelError
from fairvlm.mitigation.steering import SteeringVector


def _vec(layers=(0, 1), hidden=32, num_layers=2, seed=0, **kw) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector(
        {layer: torch.randn(hidden, generator=g) for layer in layers},
        num_layers=num_layers,
        family="llava",
        model_name="tiny",
        **kw,
    )


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    vec = _vec(
        builder="contrastive",
        operator="ablate",
        positions="generated",
        scale=-2.5,
        config={"position": "last_prompt", "layers": [0, 1], "nested": {"a": [1, 2]}},
    )
    path = vec.save(tmp_path / "sub" / "v.safetensors")
    back = SteeringVector.load(path)
    assert back.layers == [0, 1]
    for layer in vec.layers:
        assert torch.equal(back.vectors[layer], vec.vectors[layer])
    assert back.metadata() == vec.metadata()
    assert back.scale == -2.5 and back.operator == "ablate" and back.positions == "generated"
    assert not list(tmp_path.glob("sub/.*tmp"))  # atomic write left no temp file


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_round_trip_keeps_the_dtype(tmp_path, dtype):
    """Not only float32: a bf16 or float64 vector comes back bit-equal, same dtype."""
    g = torch.Generator().manual_seed(1)
    vec = SteeringVector({3: (torch.randn(48, generator=g) / 3).to(dtype)}, num_layers=6)
    back = SteeringVector.load(vec.save(tmp_path / "v.safetensors"))
    assert back.vectors[3].dtype == dtype
    assert torch.equal(back.vectors[3], vec.vectors[3])
    assert back.metadata() == vec.metadata()


def test_load_rejects_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, tmp_path / "w.safetensors")
    with pytest.raises(DataError, match="no fairvlm steering metadata"):
        SteeringVector.load(tmp_path / "w.safetensors")
    with pytest.raises(DataError, match="existing"):
        SteeringVector.load(tmp_path / "missing.safetensors")


def test_arithmetic_hand_values():
    a = SteeringVector({0: torch.tensor([1.0, 2.0]), 1: torch.tensor([0.0, 1.0])})
    b = SteeringVector({1: torch.tensor([3.0, -1.0]), 2: torch.tensor([1.0, 1.0])})
    s = a + b
    assert s.layers == [0, 1, 2]
    assert s.vectors[0].tolist() == [1.0, 2.0]
    assert s.vectors[1].tolist() == [3.0, 0.0]
    assert s.vectors[2].tolist() == [1.0, 1.0]
    assert (2 * a).vectors[0].tolist() == [2.0, 4.0]
    assert (a * 0.5).vectors[1].tolist() == [0.0, 0.5]
    assert (a - a).norms() == {0: 0.0, 1: 0.0}
    assert (-a).vectors[0].tolist() == [-1.0, -2.0]
    assert s.builder == "combination" and s.config["op"] == "add"


def test_arithmetic_refuses_other_model():
    with pytest.raises(ModelError, match="same model"):
        _ = _vec(hidden=32) + _vec(hidden=16)
    with pytest.raises(ModelError, match="same model"):
        _ = _vec(num_layers=2) + _vec(num_layers=4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"operator": "multiply"}, "operator"),
        ({"positions": "image"}, "positions"),
        ({"scale": float("nan")}, "scale"),
        ({"hidden_size": 8}, "hidden_size"),
    ],
)
def test_bad_fields(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _vec(**kwargs)


def test_bad_tensors():
    with pytest.raises(ConfigError, match="one size"):
        SteeringVector({0: torch.zeros(4), 1: torch.zeros(5)})
    with pytest.raises(ConfigError, match="1-D"):
        SteeringVector({0: torch.zeros(2, 4)})
    with pytest.raises(ConfigError, match="non-negative"):
        SteeringVector({-1: torch.zeros(4)})
    with pytest.raises(ConfigError, match="num_layers"):
        SteeringVector({3: torch.zeros(4)}, num_layers=2)


def test_check_fits(tiny_vlm):
    vlm = tiny_vlm("llava")  # hidden 32, 2 layers
    _vec().check_fits(vlm)
    with pytest.raises(ModelError, match="hidden_size=16"):
        _vec(hidden=16).check_fits(vlm)
    with pytest.raises(ModelError, match="num_layers=4"):
        _vec(layers=(1,), num_layers=4).check_fits(vlm)
    with pytest.raises(ModelError, match="layer=5 is out of range"):
        _vec(layers=(5,), num_layers=None).check_fits(vlm)
    with pytest.raises(ConfigError, match="subset"):
        _vec().select([3])
