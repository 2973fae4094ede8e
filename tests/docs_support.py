"""The code blocks of README.md and docs/, and the rules by which the tests run them.

docs/README.md ("Running the examples") is the reader's version of this module: the
starting files, the size substitutions and the markers. ``tests/test_docs_examples.py``
runs the blocks; ``tests/test_docs.py`` checks that every block is covered.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console")
YAML = ("yaml", "yml")
CODE = (*PYTHON, *SHELL, *YAML)

#: ``<!-- not-run: REASON -->`` on the line just before a fence.
NOT_RUN = re.compile(r"^\s*<!--\s*not-run\s*:\s*(?P<reason>.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[^\s`]*)\s*$")

#: What the examples start from (docs/README.md): each page's folder holds these, made as
#: the pages make them, and ``/tmp/...`` in a block means that folder's ``tmp/...``.
WORLD = {
    "t": "fairvlm tiny llava /tmp/t",
    "c": "fairvlm data synth clinical /tmp/c --set n_train=60 --set n_finetune=30 --set n_test=24",
    "s": "fairvlm data synth social /tmp/s --set n_train=12 --set n_finetune_sets=1 "
    "--set n_test_sets=1",
}
#: The documented variables of commands that work on any model or dataset.
VARIABLES = {"MODEL": "/tmp/t", "DATA": "/tmp/s"}
#: Sizes lowered (never raised) wherever a block writes them: ``KEY=N``, ``"KEY": N``,
#: ``KEY: N``. ``FAIRVLM_DOCS_<KEY>`` (e.g. ``FAIRVLM_DOCS_STEPS=50``) sets another value.
SIZES = {"steps": 4, "n_sets": 1}


@dataclass(frozen=True)
class Block:
    """One fenced block: ``path`` relative to the repository, ``line`` of its fence."""

    path: str
    line: int
    lang: str
    text: str
    not_run: str | None = None  # the reason, when marked not-run
    marker_line: str = ""  # the line before the fence

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def kind(self) -> str | None:
        lang = self.lang.lower()
        if lang in PYTHON:
            return "python"
        if lang in SHELL:
            return "shell"
        if lang in YAML:
            return "yaml"
        return None

    @property
    def file_name(self) -> str | None:
        """The file a YAML block names in its first line (``# audit.yaml, for ...``)."""
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        m = re.match(r"#\s*([\w.-]+\.ya?ml)\b", first)
        return m.group(1) if m else None

    def shell_text(self) -> str:
        """The commands of a shell block (``console``: the lines after ``$ ``, the rest is
        output), with its line count kept so that errors name the right line."""
        if self.lang.lower() != "console":
            return self.text
        return "\n".join(
            line[2:] if line.startswith("$ ") else "" for line in self.text.splitlines()
        )


def doc_files() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def yaml_files() -> list[Path]:
    """YAML files under docs/ (each validated like a YAML block)."""
    return sorted(p for ext in ("*.yaml", "*.yml") for p in (ROOT / "docs").rglob(ext))


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, dedented to their fence (list items)."""
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m.group("indent")), m.group("fence")
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1 : j]]
        before = lines[i - 1] if i else ""
        marker = NOT_RUN.match(before)
        out.append(
            Block(
                rel,
                i + 1,
                m.group("lang"),
                "\n".join(body) + "\n",
                marker.group("reason") if marker else None,
                before,
            )
        )
        i = j + 1
    return out


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in blocks_of(path)]


def code_blocks() -> list[Block]:
    """The blocks of a code language (python, shell, yaml)."""
    return [b for b in all_blocks() if b.kind]


# -- the substitutions ------------------------------------------------------------------
_TMP = re.compile(r"(?<![\w./~-])/tmp/")


def map_tmp(text: str, page_dir: Path) -> str:
    """``/tmp/x`` -> ``PAGE_DIR/tmp/x`` (the line count is kept)."""
    return _TMP.sub(lambda _m: f"{page_dir}/tmp/", text)


def size(key: str) -> int:
    return int(os.environ.get(f"FAIRVLM_DOCS_{key.upper()}", SIZES[key]))


def lower_sizes(text: str) -> str:
    """Every ``KEY=N`` / ``"KEY": N`` / ``KEY: N`` of :data:`SIZES` at most its test value."""
    for key in SIZES:
        pattern = re.compile(rf"(?<![\w])(?P<head>{key}(?:=|[\"']?\s*:\s*))(?P<n>\d+)(?![\d.])")
        text = pattern.sub(lambda m, k=key: f"{m['head']}{min(int(m['n']), size(k))}", text)
    return text


_QUICK = re.compile(r"(?P<cmd>\bfairvlm\s+(?:run|demo)\b)(?![^\n]*--quick)")


def add_quick(text: str) -> str:
    """``fairvlm run`` / ``fairvlm demo`` -> ``... --quick`` (where not given already)."""
    return _QUICK.sub(lambda m: f"{m['cmd']} --quick", text)
