"""fairvlm.representation: the settings, the pooling, one z for every reader, the layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from training_support import group_samples

import fairvlm.representation as representation
from fairvlm.errors import ConfigError
from fairvlm.mitigation.fairllava import FairLLaVAConfig
from fairvlm.representation import (
    LayerReader,
    RepresentationSettings,
    collect,
    nest_settings,
    pool,
)
from fairvlm.training import AttributeSpace, get_method
from fairvlm.training.config import to_plain
from fairvlm.training.methods import MethodContext


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"depth": 0.0}, "depth"),
        ({"depth": 1.5}, "depth"),
        ({"depth": "middle"}, "depth"),
        ({"tokens": "pixels"}, "tokens"),
        ({"pooling": "max"}, "pooling"),
        ({"normalise": "yes"}, "normalise"),
    ],
)
def test_bad_settings_give_a_one_line_error_naming_the_field(fields, field):
    for build in (
        lambda: RepresentationSettings(**fields),
        lambda: FairLLaVAConfig.from_dict({"lambdas": {"sex": 0.1}, **fields}),
        lambda: get_method("adversarial").parse({"lambdas": {"sex": 1.0}, **fields}),
    ):
        with pytest.raises(ConfigError) as err:
            build()
        message = str(err.value)
        # "depth=..." (a bad value) or "method.representation.depth=..." (a bad type)
        assert message.split("=", 1)[0].endswith(field) and "\n" not in message
        assert "use " in message  # the fix


def test_flat_and_nested_settings_load_the_same_config():
    flat = {"lambdas": {"sex": 0.1}, "depth": 0.8, "pooling": "mean"}
    nested = {"lambdas": {"sex": 0.1}, "representation": {"depth": 0.8, "pooling": "mean"}}
    cfg = FairLLaVAConfig.from_dict(flat)
    assert cfg.representation == RepresentationSettings(depth=0.8, pooling="mean")
    assert FairLLaVAConfig.from_dict(nested) == cfg
    # a run's saved config.yaml records them nested; it loads back to the same config
    assert FairLLaVAConfig.from_dict(to_plain(cfg)) == cfg
    assert to_plain(cfg)["representation"] == {
        "depth": 0.8,
        "tokens": "image",
        "pooling": "mean",
        "normalise": True,
    }
    adversarial = get_method("adversarial").parse
    assert adversarial({**flat, "lambdas": {"sex": 1.0}}).representation == cfg.representation
    # a preset's settings are updated, not replaced, by the user's
    ham = FairLLaVAConfig.from_dict({"preset": "ham10000", "representation": {"pooling": "mean"}})
    assert ham.representation == RepresentationSettings(depth=0.8, pooling="mean")


def test_flat_settings_override_nested_and_unknown_ones_are_refused():
    # --set depth=0.8 over a saved run's config.yaml (nested)
    saved = {"representation": {"depth": 0.5, "pooling": "mean"}}
    assert nest_settings({**saved, "depth": 0.8}) == {
        "representation": {"depth": 0.8, "pooling": "mean"}
    }
    with pytest.raises(ConfigError, match="^representation="):
        nest_settings({"depth": 0.8, "representation": "middle"})
    with pytest.raises(ConfigError, match="representation.layer"):
        FairLLaVAConfig.from_dict({"lambdas": {"sex": 0.1}, "representation": {"layer": 3}})
    with pytest.raises(ConfigError, match="representation.layer"):
        FairLLaVAConfig(lambdas={"sex": 0.1}, representation={"layer": 3})


def test_pool_modes():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    mask = torch.tensor([[False, True, True, False], [False, False, False, False]])
    z, valid = pool(hidden, mask, "mean")
    assert valid.tolist() == [True, False]
    assert torch.equal(z[0], hidden[0, 1:3].mean(0))
    z, _ = pool(hidden, mask, "last")
    assert torch.equal(z[0], hidden[0, 2])
    z, _ = pool(hidden, mask, "random", normalise=True)
    assert any(torch.allclose(z[0], hidden[0, p] / hidden[0, p].norm()) for p in (1, 2))
    with pytest.raises(ConfigError, match="^pooling="):
        pool(hidden, mask, "max")


def _read(vlm, reader, batch):
    reader.attach(vlm)
    try:
        torch.manual_seed(0)  # the random position draw
        reader.prepare(batch)
        with torch.no_grad():
            vlm.forward_batch(batch)
        z, valid = reader.read()
        return reader.entry, z, valid
    finally:
        reader.remove()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"depth": 1.0, "tokens": "text", "pooling": "mean"},
        {"depth": 0.2, "tokens": "all", "normalise": False},  # hidden_states[0]: a pre-hook
        {"pooling": "last"},
    ],
)
def test_fairllava_adversary_and_probe_read_the_same_z(tiny_vlm, fields):
    vlm = tiny_vlm("llava")
    samples = group_samples(6)
    space = AttributeSpace.from_samples(samples)
    setups = {}
    for name, weights in (("fairllava", {"skin_tone": 1.0}), ("adversarial", {"skin_tone": 1.0})):
        method = get_method(name)
        config = method.parse({"lambdas": weights, **fields})
        setups[name] = method.build(MethodContext(vlm, samples, space, None, config))
    expected = RepresentationSettings(**fields)
    for setup in setups.values():
        assert setup.terms[0].reader.settings == expected
        assert setup.probe.representation == expected
    batch = vlm.collate(samples)
    reads = [_read(vlm, setup.terms[0].reader, batch) for setup in setups.values()]
    # the post-training probe: a reader of the method's ProbeSpec, z through collect()
    probe_reader = LayerReader(setups["fairllava"].probe.representation)
    probe_reader.attach(vlm)
    try:
        z, valid = collect(vlm, probe_reader, samples, batch_size=len(samples), seed=0)
    finally:
        probe_reader.remove()
    reads.append((probe_reader.entry, torch.as_tensor(z), torch.as_tensor(valid)))
    entry, z0, valid0 = reads[0]
    assert valid0.all()
    for other_entry, z, valid in reads[1:]:
        assert other_entry == entry
        assert torch.equal(valid.cpu(), valid0.cpu()) and torch.equal(z.cpu(), z0.cpu())


FORBIDDEN = (
    "fairvlm.training",
    "fairvlm.mitigation",
    "fairvlm.experiment",
    "fairvlm.audit",
    "fairvlm.commands",
    "fairvlm.cli",
)


def _imports(path: Path, package: str) -> list[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:  # relative: resolved against the package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            # ``from fairvlm import training`` imports fairvlm.training
            found += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_representation_imports_nothing_above_it():
    root = Path(representation.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert {p.stem for p in modules} >= {"settings", "reader", "pooling", "probe", "heads"}
    seen = set()
    for path in modules:
        for name in _imports(path, "fairvlm.representation"):
            seen.add(name)
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
    assert "fairvlm.errors" in seen and "torch" in seen  # the walk does see imports
