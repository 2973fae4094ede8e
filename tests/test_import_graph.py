"""The import graph of ``src/fairvlm``: no cycles, and no unexplained lazy imports.

Every module is parsed with :mod:`ast` (nothing is imported). An edge ``a -> b`` is an
``import`` / ``from ... import`` in ``a`` that runs ``b``: at module level or inside a
function, relative imports resolved, ``from fairvlm.pkg import name`` pointing at the
submodule ``fairvlm.pkg.name`` when there is one (and at ``fairvlm.pkg`` itself for the
other names). Importing ``fairvlm.a.b`` also runs the package ``fairvlm.a``'s
``__init__``, so that is an edge too, except for the importer's own packages, which
Python has entered before the importer runs. ``if TYPE_CHECKING:`` imports never run
and are left out. Names imported through ``importlib`` (the registries' built-in
modules, the CLI's commands) are not edges: they are looked up by name on purpose.

A function-level import of a fairvlm module is a hidden edge; the only reason left for
one is start-up time (``fairvlm --help`` imports the CLI, the command modules and the
standard library, nothing else), and it says so with a comment (``# start-up: ...``) on
its line or in the comment lines right above its run of adjacent import lines.
"""

from __future__ import annotations

import ast
import graphlib
import io
import subprocess
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "fairvlm"
#: the reasons a function-level import of a fairvlm module may give
REASONS = ("start-up:",)


@dataclass(frozen=True)
class Import:
    """One import statement of a fairvlm module in ``module``."""

    module: str  # the importer
    path: Path
    line: int  # first line of the statement
    targets: tuple[str, ...]  # the fairvlm modules it names
    function_level: bool
    comment: str  # the comments on its line(s) and in the block above its group


def _modules(src: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _comments(source: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string for tok in tokens if tok.type == tokenize.COMMENT}


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool, known) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == ROOT]
    if node.level:
        package = module.split(".") if is_pkg else module.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    if name.split(".")[0] != ROOT:
        return []
    targets = [f"{name}.{a.name}" if f"{name}.{a.name}" in known else name for a in node.names]
    return list(dict.fromkeys(targets))


class _Walker:
    """Collects the fairvlm imports of one module, with their level and comment."""

    def __init__(self, module: str, path: Path, known: dict[str, Path]) -> None:
        self.module, self.path, self.known = module, path, known
        source = path.read_text(encoding="utf-8")
        self.lines = source.splitlines()
        self.comments = _comments(source)
        self.tree = ast.parse(source, str(path))
        self.found: list[Import] = []

    def run(self) -> list[Import]:
        self.body(self.tree.body, False)
        return self.found

    def comment(self, stmt: ast.stmt, group_start: int) -> str:
        """The comments on the statement's lines and in the block above its group."""
        end = stmt.end_lineno or stmt.lineno
        texts = [self.comments[n] for n in range(stmt.lineno, end + 1) if n in self.comments]
        line = group_start - 1
        while line in self.comments and self.lines[line - 1].lstrip().startswith("#"):
            texts.insert(0, self.comments[line])
            line -= 1
        return " ".join(texts)

    def body(self, stmts: list[ast.stmt], in_function: bool) -> None:
        group_start = 0  # first line of the run of adjacent import lines ``stmt`` is in
        previous_end = 0
        for stmt in stmts:
            if not isinstance(stmt, ast.Import | ast.ImportFrom):
                group_start = 0
                if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                    self.body(stmt.orelse, in_function)  # the body never runs
                else:
                    self.node(stmt, in_function)
                continue
            if not group_start or stmt.lineno != previous_end + 1:
                group_start = stmt.lineno  # a new run of import lines
            previous_end = stmt.end_lineno or stmt.lineno
            is_pkg = self.path.name == "__init__.py"
            targets = _targets(stmt, self.module, is_pkg, self.known)
            if targets:
                self.found.append(
                    Import(
                        self.module,
                        self.path,
                        stmt.lineno,
                        tuple(targets),
                        in_function,
                        self.comment(stmt, group_start),
                    )
                )

    def node(self, node: ast.AST, in_function: bool) -> None:
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for value in ast.iter_fields(node):
            value = value[1]
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self.body(value, inner)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.node(item, inner)
            elif isinstance(value, ast.AST):
                self.node(value, inner)


def collect_imports(src: Path = SRC) -> list[Import]:
    """Every import of a fairvlm module in ``src/fairvlm``, in file order."""
    modules = _modules(src)
    return [imp for m, path in modules.items() for imp in _Walker(m, path, modules).run()]


def _packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the fairvlm modules its imports run (module- and function-level)."""
    graph: dict[str, set[str]] = {module: set() for module in _modules(src)}
    for imp in collect_imports(src):
        own = {imp.module, *_packages(imp.module)}
        for target in imp.targets:
            if target != imp.module:
                graph[imp.module].add(target)
            graph[imp.module].update(p for p in _packages(target) if p not in own)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one
    cycle through it, smallest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted((_one_cycle(graph, set(c)) for c in components), key=len)


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_walker_resolves_imports_and_finds_a_cycle_closed_inside_a_function(tmp_path):
    src = _write_tree(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from fairvlm.pkg.high import Thing  # never runs: no edge

                def f():
                    # start-up: a reason
                    from fairvlm import pkg
                    from .pkg.mid import g  # (adjacent: the comment above counts)

                    from fairvlm.pkg import high
                """,
            "pkg/__init__.py": "from .mid import g\n",
            "pkg/mid.py": "from .. import low\nfrom . import high\ng = 1\n",
            "pkg/high.py": "import fairvlm.low\n",
        },
    )
    graph = import_graph(src)
    assert graph["fairvlm.low"] == {"fairvlm.pkg", "fairvlm.pkg.mid", "fairvlm.pkg.high"}
    assert graph["fairvlm.pkg"] == {"fairvlm.pkg.mid"}  # a package's own submodules
    assert graph["fairvlm.pkg.mid"] == {"fairvlm.low", "fairvlm.pkg.high"}
    assert graph["fairvlm.pkg.high"] == {"fairvlm.low"}
    cycles = find_cycles(graph)
    assert len(cycles) == 1 and cycles[0][0] == cycles[0][-1] == "fairvlm.low"
    assert set(cycles[0]) <= {"fairvlm.low", "fairvlm.pkg", "fairvlm.pkg.mid", "fairvlm.pkg.high"}
    lazy = {imp.line: imp.comment for imp in collect_imports(src) if imp.function_level}
    assert sorted(lazy) == [9, 10, 12]
    assert "start-up:" in lazy[9] and "start-up:" in lazy[10] and lazy[12] == ""


def test_walker_sees_every_module():
    graph = import_graph()
    assert "fairvlm.cli" in graph and "fairvlm.registry" in graph
    assert "fairvlm.errors" in graph["fairvlm.registry"]
    assert len(graph) == len(list((SRC / ROOT).rglob("*.py")))


def test_module_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in src/fairvlm:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )
    # the same, as Python's own check: the graph has a topological order
    tuple(graphlib.TopologicalSorter(graph).static_order())


def test_function_level_imports_say_why():
    silent = [
        f"{imp.path.relative_to(SRC.parent)}:{imp.line}: {', '.join(imp.targets)}"
        for imp in collect_imports()
        if imp.function_level and not any(r in imp.comment for r in REASONS)
    ]
    assert not silent, (
        "function-level imports of fairvlm modules without a comment saying why "
        "(e.g. `# start-up: ...` on the line or the line above): move them to module "
        "level, or explain:\n" + "\n".join(silent)
    )


def test_help_imports_only_the_standard_library():
    """What the start-up comments of the command modules promise: ``fairvlm --help``
    imports the CLI, the command modules and nothing beyond the standard library."""
    code = (
        "import sys; before = set(sys.modules)\n"
        "from fairvlm.cli import build_parser; build_parser().format_help()\n"
        "print(*sorted(set(sys.modules) - before), sep='\\n')"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    allowed = {"fairvlm", "fairvlm.cli", "fairvlm.errors", "fairvlm.upstream_warnings"}
    extra = [
        m
        for m in loaded
        if m not in allowed
        and not m.startswith("fairvlm.commands")
        and m.split(".")[0] not in sys.stdlib_module_names
    ]
    assert not extra, f"`fairvlm --help` imports {extra}"
