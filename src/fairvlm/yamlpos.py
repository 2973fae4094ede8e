"""YAML with line numbers: every key and item remembers where it was written.

PyYAML's ``safe_load`` forgets positions; ``yaml.compose`` keeps them on the node tree.
This module builds plain Python values from that tree and a :class:`Marks` table
(``path -> line``) so that a config error can say ``demo.yaml:12: methods[2].method``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairvlm.errors import ConfigError

#: A position in the document: mapping keys (str) and sequence indices (int).
KeyPath = tuple[str | int, ...]


def path_text(path: KeyPath) -> str:
    """``("studies", "clinical", "methods", 2)`` -> ``studies.clinical.methods[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


@dataclass
class Marks:
    """Where each key path was written (1-based line numbers) in ``source``."""

    source: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its nearest written ancestor."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def where(self, path: KeyPath) -> str:
        """``file:line: key.path`` for error messages."""
        line = self.line(path)
        loc = f"{self.source}:{line}" if line is not None else self.source
        return f"{loc}: {path_text(path)}"

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A ConfigError located at ``path``."""
        return ConfigError(f"{self.where(path)}: {message}")

    def sub(self, prefix: KeyPath) -> Iterator[tuple[KeyPath, int]]:
        """The marks under ``prefix``."""
        n = len(prefix)
        for path, line in self.lines.items():
            if path[:n] == tuple(prefix):
                yield path, line


def _scalar(node: Any) -> Any:
    """A scalar node's value, typed by the safe loader's resolver (int, float, bool, null, str)."""
    import yaml

    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _build(node: Any, path: KeyPath, marks: Marks) -> Any:
    import yaml

    marks.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    f"{marks.source}:{key_node.start_mark.line + 1}: keys must be plain words"
                )
            key = str(_scalar(key_node))
            child = (*path, key)
            if key in out:
                raise ConfigError(
                    f"{marks.source}:{key_node.start_mark.line + 1}: "
                    f"{path_text(child)} is written twice: keep one"
                )
            marks.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), marks) for i, item in enumerate(node.value)]
    return _scalar(node)


def load_yaml_with_marks(text: str, source: str = "<string>") -> tuple[Any, Marks]:
    """Parse ``text``; return its value and the line of every key path.

    Raises:
        ConfigError: invalid YAML (with the parser's line), anchors/aliases or tags.
    """
    import yaml

    marks = Marks(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{line}: not valid YAML ({problem})") from None
    if node is None:
        return {}, marks
    return _build(node, (), marks), marks


def load_yaml_file(path: str | Path, name: str = "experiment") -> tuple[Any, Marks]:
    """:func:`load_yaml_with_marks` on a file (a clear error naming ``name`` when it is
    missing or unreadable)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{name}={str(path)!r} does not exist: give a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}={str(path)!r} cannot be read as text ({exc})") from None
    return load_yaml_with_marks(text, str(p))


def read_yaml_mapping(path: str | Path, name: str) -> dict[str, Any]:
    """The mapping of a YAML config file (empty for an empty file).

    Raises:
        ConfigError: missing or unreadable file, invalid YAML (with ``file:line``), or a
            document that is not a mapping; each names ``name`` or the file.
    """
    data, marks = load_yaml_file(path, name)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{marks.source}:1: {name} must be a mapping of fields (key: value), "
            f"not a {type(data).__name__}"
        )
    return data


def parse_yaml_value(text: str, key: str) -> Any:
    """The value of a ``--set key=text`` override, parsed as YAML (``None`` when empty).

    Raises:
        ConfigError: ``text`` is not valid YAML.
    """
    import yaml

    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid"
        raise ConfigError(
            f"--set {key}={text!r} is not valid: not a YAML value ({problem}); write a "
            "number, a word, a [list] or quote it, e.g. --set 'key=\"[a\"'"
        ) from None
