"""The config base: how every fairvlm config dataclass is read, coerced, checked and saved.

A config is a ``@dataclass`` that inherits :class:`Config`. It gets:

- :meth:`Config.from_dict`: build from a plain mapping (YAML, ``--set``, a saved
  ``config.yaml``); an unknown key is an error that lists the fields and suggests the
  closest one; with YAML ``marks`` every error names ``file:line`` and the key path;
- type coercion from the field annotations, on every construction (``from_dict`` or a
  direct call): ``"a,b"`` to a list, ``"1e-4"`` or ``2`` to a float, ``"8"`` to an int,
  a mapping to a nested config; ``bool`` fields take only booleans;
- :meth:`Config.validate`, the subclass's own value checks (run after coercion);
- :meth:`Config.to_dict`: plain, YAML-able data (nested configs included), which
  ``from_dict`` reads back to an equal config.

Errors are one line, ``name=value is not valid: fix`` (:func:`fairvlm.errors.bad_value`),
prefixed with the path of a nested config (``lora.r=0 ...``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from fairvlm.errors import FairVLMError, bad_value
from fairvlm.registry import did_you_mean

C = TypeVar("C", bound="Config")


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, optional: bool = False) -> None:
    """Raise unless ``value`` is a positive int (or ``None`` when ``optional``)."""
    if optional and value is None:
        return
    if not is_int(value) or value < 1:
        raise bad_value(name, value, "use a positive integer" + (" or null" if optional else ""))


def split_list(value: Any) -> Any:
    """``"a, b"`` as ``["a", "b"]`` (the CLI's comma lists); anything else unchanged."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _is_config(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Config)


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None``; ``hint`` itself otherwise."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(hint)):
            return args[0]
    return hint


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to annotation ``hint`` where that is unambiguous (module doc)."""
    hint = _without_none(hint)
    if value is None:
        return None
    if _is_config(hint):
        return value if isinstance(value, hint) else hint.from_dict(value, prefix=f"{name}.")
    origin = get_origin(hint)
    if origin in (list, Sequence) or hint is list:
        value = split_list(value)
        if isinstance(value, Mapping):
            raise bad_value(name, value, "use a list")
        if not isinstance(value, list | tuple):
            value = [value]  # one item given as a scalar
        args = get_args(hint)
        return (
            [coerce(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)]
            if args
            else list(value)
        )
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise bad_value(name, value, "use a mapping")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad_value(name, value, "use true or false")
        return value
    try:
        if hint is float and isinstance(value, int | float | str) and not isinstance(value, bool):
            return float(value)
        if hint is int and isinstance(value, str):
            return int(value)
    except ValueError:
        raise bad_value(name, value, f"use a {hint.__name__}") from None
    return value


class Config:
    """Base of fairvlm's config dataclasses (see the module doc)."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, coerce(f.name, getattr(self, f.name), hints[f.name]))
        self.validate()

    def validate(self) -> None:
        """Check the values (raise :func:`fairvlm.errors.bad_value` errors); subclasses
        override it."""

    @classmethod
    def field_names(cls) -> list[str]:
        """The fields a mapping may set."""
        return [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]

    @classmethod
    def from_dict(
        cls: type[C],
        data: Mapping[str, Any] | None = None,
        *,
        prefix: str = "",
        marks: Any = None,
        path: tuple = (),
    ) -> C:
        """Build from a mapping; ``prefix`` names a nested config in messages; ``marks``
        (``fairvlm.yamlpos.Marks``) and ``path`` locate errors in a YAML file."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise located(
                bad_value(prefix.rstrip(".") or cls.__name__, data, "use a mapping of fields"),
                marks,
                path,
            )
        names = cls.field_names()
        for key in data:
            if key not in names:
                exc = bad_value(
                    f"{prefix}{key}",
                    data[key],
                    f"not a {cls.__name__} field{did_you_mean(key, names)}; known fields: {names}",
                )
                raise located(exc, marks, path)
        try:
            return cls(**dict(data))
        except FairVLMError as exc:
            raise located(_prefixed(exc, prefix), marks, path) from None
        except TypeError as exc:  # a missing required field
            raise located(
                bad_value(prefix.rstrip(".") or cls.__name__, dict(data), str(exc)), marks, path
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-able fields (nested configs as mappings)."""
        return to_plain(self)


def to_plain(obj: Any) -> Any:
    """A dataclass, mapping or sequence (nested) as plain YAML-able Python."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj


def _prefixed(exc: FairVLMError, prefix: str) -> FairVLMError:
    """``exc`` with its key under ``prefix`` (``r=0 ...`` -> ``lora.r=0 ...``)."""
    key = getattr(exc, "key", None)
    if not prefix or not key or not str(exc).startswith(f"{key}="):
        return exc
    out = type(exc)(f"{prefix}{exc}")
    out.key = f"{prefix}{key}"  # type: ignore[attr-defined]
    return out


def located(exc: FairVLMError, marks: Any, path: tuple) -> FairVLMError:
    """``exc`` at its YAML line: the key it names, under ``path``, when marks are given."""
    if marks is None:
        return exc
    key = str(getattr(exc, "key", None) or "")
    return marks.error((*path, *[k for k in key.split(".") if k and "[" not in k]), str(exc))


__all__ = ["Config", "check_positive_int", "coerce", "is_int", "located", "split_list", "to_plain"]
