"""The library's exceptions.

Every message names the argument, the value received and the fix, so that a user can
act on it without reading the source.
"""

from __future__ import annotations


class FairVLMError(Exception):
    """Base class of every error fairvlm raises on purpose."""


class ConfigError(FairVLMError, ValueError):
    """A configuration field, CLI flag or YAML key has a bad value."""


class DataError(FairVLMError, ValueError):
    """Input data is malformed: a missing column, an unreadable image, an unknown value."""


class ModelError(FairVLMError, ValueError):
    """A model cannot be loaded or does not fit the operation asked of it."""


def bad_value(name: str, value: object, fix: str, cls: type[FairVLMError] = ConfigError):
    """Build an error whose message names the argument, the value and the fix; its
    ``key`` attribute is ``name`` (config readers locate the error by it)."""
    exc = cls(f"{name}={value!r} is not valid: {fix}")
    exc.key = name  # type: ignore[attr-defined]
    return exc
