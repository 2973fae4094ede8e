"""Every code block of README.md and docs/ runs, on tiny models (docs/README.md).

- Python blocks are exec'd in a fresh namespace, in their page's folder (fast suite).
- YAML blocks are validated by the config class of what reads them; an experiment with
  a ``quick:`` section is also run end to end with ``--quick`` (fast suite).
- Shell blocks: every ``fairvlm`` command line, in every block (not-run ones too), must
  parse with the CLI's own parser (fast suite); the blocks run through ``bash -e``,
  line by line, with ``fairvlm`` = ``python -m fairvlm`` (slow suite: ``make test-slow``).

Each page runs in its own folder, which starts with the files of ``WORLD``; its blocks
run in page order: a block first runs the earlier blocks of its page that its suite runs
(a Python block: the earlier Python blocks; a shell block: all of them). A block marked
``<!-- not-run: REASON -->`` is only checked: its command lines parse, its Python compiles.
Test ids are ``FILE:LINE`` of the fence.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_support import (
    VARIABLES,
    WORLD,
    Block,
    add_quick,
    code_blocks,
    lower_sizes,
    map_tmp,
    yaml_files,
)

BLOCKS = code_blocks()
RUNNABLE = [b for b in BLOCKS if b.not_run is None]
SHELL_BLOCKS = [b for b in BLOCKS if b.kind == "shell"]
TIMEOUT = 900  # seconds per shell block


# -- the starting files and the page folders -----------------------------------------------
@pytest.fixture(scope="session")
def world(tiny_vlm_dir, tmp_path_factory):
    """The folder of WORLD's files, made once (in-process, as the commands make them)."""
    from fairvlm.synth import synthesize

    root = tmp_path_factory.mktemp("docs_world")
    shutil.copytree(tiny_vlm_dir("llava"), root / "t")  # = fairvlm tiny llava (defaults)
    synthesize("clinical", root / "c", {"n_train": 60, "n_finetune": 30, "n_test": 24})
    synthesize("social", root / "s", {"n_train": 12, "n_finetune_sets": 1, "n_test_sets": 1})
    assert sorted(p.name for p in root.iterdir()) == sorted(WORLD)
    return root


class Page:
    """One page's folder and which of its blocks ran (and how that went)."""

    def __init__(self, path: str, root: Path, world: Path):
        self.path = path
        self.dir = root
        self.blocks = [b for b in RUNNABLE if b.path == path]
        self.outcome: dict[int, str | None] = {}  # line -> None (passed) or the failure
        shutil.copytree(world, root / "tmp")
        for block in self.blocks:  # files a YAML block names exist from the start
            if block.kind == "yaml" and block.file_name:
                (root / block.file_name).write_text(block.text, encoding="utf-8")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({k: map_tmp(v, self.dir) for k, v in VARIABLES.items()})
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
        return env

    def run(self, block: Block, slow: bool) -> None:
        """Run ``block`` after the earlier blocks its suite runs; fail with the reason."""
        for earlier in self.blocks:
            if earlier.line >= block.line:
                break
            if earlier.kind == "yaml" or (earlier.kind == "shell" and not slow):
                continue
            if earlier.line not in self.outcome:
                self._run_one(earlier)
            if self.outcome[earlier.line] is not None:
                pytest.fail(f"{block.id} needs {earlier.id}, which failed")
        # a block may have run already, as another block's prerequisite
        failure = self.outcome[block.line] if block.line in self.outcome else self._run_one(block)
        if failure is not None:
            pytest.fail(failure, pytrace=False)

    def _run_one(self, block: Block) -> str | None:
        try:
            {"python": self._python, "shell": self._shell, "yaml": self._yaml}[block.kind](block)
        except Exception as exc:  # recorded here, reported by pytest.fail
            import traceback

            failure = f"{block.id} failed:\n{''.join(traceback.format_exception(exc))}"
        else:
            failure = None
        self.outcome[block.line] = failure
        return failure

    # -- the three kinds ----------------------------------------------------------------
    def _python(self, block: Block) -> None:
        code = "\n" * block.line + lower_sizes(map_tmp(block.text, self.dir))
        here = os.getcwd()
        os.chdir(self.dir)
        try:
            exec(compile(code, str(Path(block.path)), "exec"), {"__name__": "__main__"})
        finally:
            os.chdir(here)

    def _shell(self, block: Block) -> None:
        shims = _shims(self.dir / ".docs-bin", record=None)
        script = add_quick(lower_sizes(map_tmp(block.shell_text(), self.dir)))
        env = self.env()
        env["PATH"] = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env["PATH"]])
        trap = (
            "set -eo pipefail; trap 'echo \"docs: the command at "
            f"{block.path}:$(({block.line} + LINENO - 1)) failed (exit $?)\" >&2' ERR"
        )
        run = subprocess.run(
            ["bash", "-c", trap + "\n" + script],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        print(run.stdout)
        print(run.stderr, file=sys.stderr)
        if run.returncode != 0:
            raise AssertionError(
                f"exit {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
            )

    def _yaml(self, block: Block) -> None:
        path = self.dir / (block.file_name or f"block-{block.line}.yaml")
        path.write_text(block.text, encoding="utf-8")
        check_yaml(path, block.text, run_dir=self.dir, env=self.env())


_PAGES: dict[str, Page] = {}


@pytest.fixture
def page(world, tmp_path_factory):
    def get(path: str) -> Page:
        if path not in _PAGES:
            _PAGES[path] = Page(path, tmp_path_factory.mktemp("docs_page"), world)
        return _PAGES[path]

    return get


# -- YAML ------------------------------------------------------------------------------------
def _reader(text: str) -> str | None:
    """The command a YAML block's first-line comment names (``... for `fairvlm audit ...```)."""
    first = text.lstrip().splitlines()[0]
    return first if first.startswith("#") and "fairvlm " in first else None


def check_yaml(path: Path, text: str, run_dir: Path, env: dict[str, str]) -> None:
    """Validate a YAML file by what reads it; run an experiment with ``quick:`` at --quick."""
    import yaml

    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    reader = _reader(text) or ""
    if "studies" in data or "data" in data or "fairvlm run" in reader:
        from fairvlm.experiment import load_experiment

        cfg = load_experiment(path)
        if "quick" not in data:
            return
        quick = load_experiment(path, quick=True)
        assert set(quick.studies) == set(cfg.studies)
        out = run_dir / "runs" / f"{path.stem}-quick"
        run = subprocess.run(
            [sys.executable, "-m", "fairvlm", "run", str(path), "--out", str(out), "--quick"],
            cwd=run_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
        summary = json.loads((out / "summary.json").read_text())
        for name, study in quick.studies.items():
            rows = json.dumps(summary)
            for method in ("base", *(m.name for m in study.methods)):
                assert f'"{method}"' in rows, f"study {name}: no row {method!r} in summary.json"
        return
    if "fairvlm audit" in reader:
        from fairvlm.audit import AuditConfig
        from fairvlm.yamlpos import read_yaml_mapping

        AuditConfig.from_dict(read_yaml_mapping(path, "--config"))
        return
    if "fairvlm train" in reader:
        from fairvlm.training import get_method
        from fairvlm.training.config import load_train_config

        words = reader.replace("`", " ").split()
        assert "--method" in words, f"{path.name}: the first line names no --method"
        method = words[words.index("--method") + 1]
        _, options = load_train_config(path)
        get_method(method).parse(options)
        return
    raise AssertionError(
        f"{path.name}: not an experiment; name what reads it on its first line, e.g. "
        "`# audit.yaml, for fairvlm audit MODEL DATA --config audit.yaml`"
    )


# -- the command lines ------------------------------------------------------------------------
_RECORDER = """#!{python} -I
import json, os, sys
argv = sys.argv[1:]
name = os.path.basename(sys.argv[0])
if name != "fairvlm":  # accelerate launch ... -m fairvlm ARGS, python -m fairvlm ARGS
    argv = argv[argv.index("fairvlm") + 1 :] if "fairvlm" in argv and "-m" in argv else None
if argv is not None:
    with open(os.environ["DOCS_RECORD"], "a") as f:
        f.write(json.dumps({{"line": os.environ.get("DOCS_LINENO"), "argv": argv}}) + "\\n")
"""
_NOOPS = ("python", "python3", "accelerate", "pip", "pip3", "make", "hf", "huggingface-cli")


def _shims(folder: Path, record: Path | None) -> Path:
    """``fairvlm`` (and ``python``) for running blocks; with ``record``, recorders that only
    write each ``fairvlm`` command line down, and no-ops for the other tools."""
    folder.mkdir(exist_ok=True)
    if record is None:
        scripts = {
            "fairvlm": f'#!/bin/sh\nexec "{sys.executable}" -m fairvlm "$@"\n',
            "python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
        }
    else:
        recorder = _RECORDER.format(python=sys.executable)
        scripts = {name: recorder for name in ("fairvlm", *_NOOPS)}
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def command_lines(block: Block, tmp: Path) -> list[tuple[int, list[str]]]:
    """``(doc line, argv)`` of every ``fairvlm`` command the block runs, found by running
    the block through bash (no ``-e``) with recorders in place of fairvlm and its tools."""
    record = tmp / "record.jsonl"
    shims = _shims(tmp / "bin", record)
    env = dict(os.environ)
    env.update({k: f"<{k}>" for k in VARIABLES})
    env.update(DOCS_RECORD=str(record), PATH=f"{shims}{os.pathsep}/usr/bin{os.pathsep}/bin")
    work = tmp / "work"
    work.mkdir()
    script = "trap 'export DOCS_LINENO=$LINENO' DEBUG\n" + block.shell_text()
    subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    if not record.exists():
        return []
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    return [(block.line + int(r["line"] or 1) - 1, r["argv"]) for r in rows]


@pytest.fixture(scope="module")
def parser():
    from fairvlm.cli import build_parser

    return build_parser()


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_command_lines_parse(block, parser, tmp_path):
    """Every ``fairvlm`` command of a shell block is one the CLI accepts (flags, choices)."""
    bad = []
    for line, argv in command_lines(block, tmp_path):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                bad.append(f"{block.path}:{line}: fairvlm {' '.join(argv)}\n  {err.getvalue()}")
        except argparse.ArgumentError as exc:
            bad.append(f"{block.path}:{line}: {exc}")
    assert not bad, "\n".join(bad)


# -- running the blocks --------------------------------------------------------------------------
def _param(block: Block):
    marks = [pytest.mark.slow] if block.kind == "shell" else []
    return pytest.param(block, marks=marks, id=block.id)


@pytest.mark.parametrize("block", [_param(b) for b in RUNNABLE])
def test_block_runs(block, page):
    """The block runs as written (with the substitutions of docs/README.md)."""
    page(block.path).run(block, slow=block.kind == "shell")


def test_yaml_files_under_docs_validate(tmp_path):
    """A YAML file under docs/ is checked like a YAML block (there is none today)."""
    for path in yaml_files():
        check_yaml(path, path.read_text(encoding="utf-8"), run_dir=tmp_path, env=dict(os.environ))


def test_not_run_blocks_are_at_least_well_formed():
    """A Python block marked not-run compiles, a YAML one parses (shell: see above)."""
    import yaml

    for block in BLOCKS:
        if block.not_run is None:
            continue
        if block.kind == "python":
            compile("\n" * block.line + block.text, block.path, "exec")
        elif block.kind == "yaml":
            yaml.safe_load(block.text)
