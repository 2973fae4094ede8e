"""The generated CLI reference matches the parsers (rerun scripts/gen_cli.py when not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_cli.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr


# -- the code blocks of README.md and docs/ (run by test_docs_examples.py) ---------------------
def _comments(path: Path):
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("<!--") and "not-run" in line:
            yield i, line


def test_every_fence_names_its_language():
    from docs_support import all_blocks

    bare = [b.id for b in all_blocks() if not b.lang]
    assert not bare, f"fences without a language (```text for output): {bare}"


def test_not_run_markers_give_a_reason_and_sit_on_the_line_before_a_code_block():
    from docs_support import NOT_RUN, all_blocks, doc_files

    marked = {(b.path, b.line - 1) for b in all_blocks() if b.not_run is not None and b.kind}
    bad = []
    for path in doc_files():
        rel = path.relative_to(ROOT).as_posix()
        for line, text in _comments(path):
            m = NOT_RUN.match(text)
            if not m or not m.group("reason"):
                bad.append(f"{rel}:{line}: write <!-- not-run: REASON -->")
            elif (rel, line) not in marked:
                bad.append(f"{rel}:{line}: not on the line just before a python/shell/yaml fence")
    assert not bad, "\n".join(bad)


def test_running_the_examples_documents_what_the_tests_change():
    from docs_support import SIZES, VARIABLES, WORLD

    text = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    for command in WORLD.values():
        assert command in text, command
    for name, value in VARIABLES.items():
        assert f"`${name}`" in text and f"{name}={value}" in text, name
    for key, value in SIZES.items():
        assert f"| `{key}` |" in text and f"at most {value}" in text, key
        assert f"FAIRVLM_DOCS_{key.upper()}" in text, key
