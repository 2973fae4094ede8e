"""Write docs/cli.md: every ``fairvlm`` sub-command's ``--help``, from the argparse parsers.

.venv/bin/python scripts/gen_cli.py            # rewrite docs/cli.md
.venv/bin/python scripts/gen_cli.py --check    # exit 1 when docs/cli.md is out of date
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = "96"  # argparse wraps help at $COLUMNS: fixed, so the file does not depend on a terminal

HEADER = """\
# `fairvlm` command-line reference

Generated from the argparse parsers by `scripts/gen_cli.py`; do not edit by hand. After
changing a command's flags, regenerate it with

<!-- not-run: rewrites docs/cli.md; tests/test_docs.py runs it with --check -->
```bash
.venv/bin/python scripts/gen_cli.py
```

(`--check` exits 1 when this file is out of date). Every command takes `-h`/`--help`.
A bad flag, config or input is reported as `fairvlm COMMAND: error: ...` with exit
status 2; an interrupted command (Ctrl-C) exits with 130.
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for sub-commands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, prefix: list[str]):
    yield prefix, parser
    for name, sub in _subparsers(parser).items():
        yield from _walk(sub, [*prefix, name])


def render() -> str:
    """The Markdown text of docs/cli.md."""
    os.environ["COLUMNS"] = WIDTH
    from fairvlm.cli import COMMANDS, build_parser

    parser = build_parser()
    parts = [HEADER, "## Commands\n"]
    available = _subparsers(parser)
    for name, (_, help_) in COMMANDS.items():
        if name in available:
            parts.append(f"- [`fairvlm {name}`](#fairvlm-{name}): {help_}")
    parts.append("")
    for path, sub in _walk(parser, ["fairvlm"]):
        level = "#" * min(2 + len(path) - 1, 4)
        parts.append(f"{level} `{' '.join(path)}`\n")
        parts.append("```text\n" + sub.format_help().rstrip() + "\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run .venv/bin/python scripts/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
