"""Plugins: a user's module that registers methods, builders, tasks or families.

A plugin is any importable module whose import calls the ``register_*`` functions of
:mod:`fairvlm.registry`. It is loaded by one of:

- the ``fairvlm.plugins`` entry-point group of an installed package
  (``[project.entry-points."fairvlm.plugins"] mine = "my_pkg.fairvlm_plugin"``), loaded
  the first time the CLI or :func:`load_plugins` runs;
- ``fairvlm --plugin MODULE COMMAND ...`` (any command, repeatable);
- ``plugins: [MODULE]`` in an experiment YAML.

What it registers then works from the CLI, the YAML and Python like a built-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from fairvlm.errors import ConfigError

#: The entry-point group installed packages list their plugin modules under.
ENTRY_POINT_GROUP = "fairvlm.plugins"
_loaded: set[str] = set()
_entry_points_loaded = False


def load_plugin(module: str, name: str = "--plugin") -> None:
    """Import plugin ``module`` once; a one-line error naming it when it cannot be."""
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{name}={module!r} cannot be imported ({exc}): give an importable module name "
            "(on sys.path / PYTHONPATH, or installed)"
        ) from None
    _loaded.add(module)


def load_entry_points() -> None:
    """Import every module of the ``fairvlm.plugins`` entry-point group, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        load_plugin(ep.value.split(":")[0], f"entry point {ep.name!r}")


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Load the entry-point plugins and ``modules``; returns the modules loaded so far."""
    load_entry_points()
    for module in modules:
        load_plugin(module)
    return sorted(_loaded)


__all__ = ["ENTRY_POINT_GROUP", "load_entry_points", "load_plugin", "load_plugins"]
