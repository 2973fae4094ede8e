"""The registries: the one place every name of a method, builder, task or family lives.

Four registries, one per kind of thing a user can add:

- :data:`TRAINING_METHODS`: fine-tuning methods (``fairvlm.training.Method``);
- :data:`STEERING_BUILDERS`: steering-vector builders (``fairvlm.mitigation.steering.Builder``);
- :data:`AUDIT_TASKS`: audit tasks (``fairvlm.audit.AuditTask`` subclasses);
- :data:`FAMILIES`: VLM families (``fairvlm.models.FamilySpec``).

The CLI choices, the experiment YAML, the summary and the report read names from here.
This module sits at the bottom of the package: it imports no other fairvlm module. The
built-in entries are registered by the modules that define them, which a registry
imports by name the first time it is read (the way transformers' auto classes map names
to modules), so that registering never needs an import back up the layers. Plugins
register theirs through :mod:`fairvlm.plugins`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from fairvlm.errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``name``, else ``''``."""
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named entries of one kind; each entry has a ``name`` attribute.

    Args:
        kind: what an entry is, for messages ("training method").
        key: the argument that names an entry, for messages ("method").
        builtin: modules that register the built-in entries, imported on first read.
    """

    def __init__(self, kind: str, key: str, builtin: tuple[str, ...]) -> None:
        self.kind = kind
        self.key = key
        self.builtin = builtin
        self._entries: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtin:
                importlib.import_module(module)

    def register(self, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under its name (``replace=True`` to override one of that name)."""
        self._load()  # a plugin overriding a built-in must come after it
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old is not entry and not replace:
            raise ConfigError(
                f"{self.key}={name!r} is already a registered {self.kind}: choose another "
                "name, or pass replace=True to override it"
            )
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T | None:
        """Remove the entry ``name`` (``None`` when there was none): for tests, and for a
        plugin that replaces its own entries when reloaded."""
        self._load()
        return self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry called ``name``; a :class:`ConfigError` listing the names otherwise."""
        self._load()
        if name not in self._entries:
            names = self.names()
            raise ConfigError(
                f"{self.key}={name!r} is not a registered {self.kind}"
                f"{did_you_mean(name, names)}: use one of {names}, or register it (see "
                "docs/extending.md)"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, in registration order (built-ins first)."""
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        self._load()
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)


TRAINING_METHODS: Registry[Any] = Registry(
    "training method",
    "method",
    (
        "fairvlm.mitigation.baselines.methods",
        "fairvlm.mitigation.fairllava.method",
        "fairvlm.mitigation.asd.methods",
    ),
)
STEERING_BUILDERS: Registry[Any] = Registry(
    "steering builder", "builder", ("fairvlm.mitigation.steering.builders",)
)
AUDIT_TASKS: Registry[Any] = Registry("audit task", "task", ("fairvlm.audit.tasks",))
FAMILIES: Registry[Any] = Registry("VLM family", "family", ("fairvlm.models.builtin_families",))


def register_method(method: Any, *, replace: bool = False) -> Any:
    """Register a training method (a ``fairvlm.training.Method``)."""
    return TRAINING_METHODS.register(method, replace=replace)


def register_builder(builder: Any, *, replace: bool = False) -> Any:
    """Register a steering builder (a ``fairvlm.mitigation.steering.Builder``)."""
    return STEERING_BUILDERS.register(builder, replace=replace)


def register_task(task: Any, *, replace: bool = False) -> Any:
    """Register an audit task (a ``fairvlm.audit.AuditTask`` subclass); usable as a
    class decorator."""
    return AUDIT_TASKS.register(task, replace=replace)


def register_family(family: Any, *, replace: bool = False) -> Any:
    """Register a VLM family (a ``fairvlm.models.FamilySpec``)."""
    return FAMILIES.register(family, replace=replace)


__all__ = [
    "AUDIT_TASKS",
    "FAMILIES",
    "STEERING_BUILDERS",
    "TRAINING_METHODS",
    "Registry",
    "did_you_mean",
    "register_builder",
    "register_family",
    "register_method",
    "register_task",
]
