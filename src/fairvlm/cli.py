"""The ``fairvlm`` command.

Each sub-command lives in its own module under :mod:`fairvlm.commands` with two
functions, ``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
only the standard library at module level (heavy imports go inside ``run``) so that
``fairvlm --help`` starts fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from fairvlm import __version__
from fairvlm.errors import FairVLMError
from fairvlm.upstream_warnings import filter_unavoidable

# A read-only folder, missing permission or a full disk: the user's to fix, not a bug.
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}

#: name -> (module, one-line help). Order is the order of ``fairvlm --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("fairvlm.commands.models", "list the supported VLM families"),
    "tiny": ("fairvlm.commands.tiny", "build a tiny random model of a family (offline)"),
    "info": ("fairvlm.commands.info", "show a model's family and structure"),
    "data": ("fairvlm.commands.data", "import, inspect and synthesise datasets"),
    "export": ("fairvlm.commands.export", "write a dataset as lmms-eval tasks"),
    "pretrain": ("fairvlm.commands.pretrain", "train the small benchmark base model"),
    "audit": ("fairvlm.commands.audit", "audit a model: records + group metrics"),
    "metrics": ("fairvlm.commands.metrics", "recompute metrics from audit records"),
    "import-records": (
        "fairvlm.commands.import_records",
        "lmms-eval sample logs as an audit folder",
    ),
    "compare": ("fairvlm.commands.compare", "paired comparison of audits: differences, CIs, p"),
    "train": ("fairvlm.commands.train", "fine-tune with a mitigation method"),
    "steer": ("fairvlm.commands.steer", "build and sweep steering vectors"),
    "run": ("fairvlm.commands.run", "run an experiment YAML end to end"),
    "demo": ("fairvlm.commands.demo", "the whole story on the embedded benchmarks"),
    "report": ("fairvlm.commands.report", "write the HTML report of a run"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="fairvlm",
        description="Audit vision-language models for demographic and social bias, and remove it.",
    )
    parser.add_argument("--version", action="version", version=f"fairvlm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(cmd)
        cmd.set_defaults(_module=module)
        _add_plugin_flag(cmd, [])
    return parser


def _add_plugin_flag(parser: argparse.ArgumentParser, default: object) -> None:
    """``--plugin MODULE`` on a command and on each of its actions (``steer build ...``);
    the actions' flag has no default of its own, so it never hides the command's."""
    parser.add_argument(
        "--plugin",
        action="append",
        default=default,
        metavar="MODULE",
        help="import MODULE first: it registers methods, builders, tasks or families "
        "(repeatable; see docs/extending.md)",
    )
    for action in parser._actions:  # argparse keeps sub-parsers only there
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_plugin_flag(child, argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m fairvlm``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    # start-up: fairvlm.atomic (~15-40 ms: tempfile, shutil ...) and fairvlm.plugins (~20-45 ms:
    # importlib.metadata) load once a command runs, not for `fairvlm --help`
    from fairvlm.atomic import describe_write_error
    from fairvlm.plugins import load_plugins

    filter_unavoidable()
    try:
        load_plugins(getattr(args, "plugin", []))
        return int(importlib.import_module(args._module).run(args) or 0)
    except FairVLMError as exc:
        print(f"fairvlm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fairvlm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader closed the pipe (`fairvlm data inspect D | head`): stop quietly, with
        # the exit status of a process killed by SIGPIPE, as other Unix tools do; stdout
        # goes to devnull so that the interpreter's final flush raises nothing either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        print(f"fairvlm {args.command}: error: {describe_write_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
