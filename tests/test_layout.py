"""The package's shape: modules by concern, imports that only go one way, SQL only in the store.

These are the seams later work builds on (a PostgreSQL store beside the SQLite one, an HTTP
receiver, a changes feed): a test keeps each from eroding quietly. Every check is a function of
the files it reads, and each is shown to catch a violation planted in a scratch file, so a
check that silently stopped matching would fail here too.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
MODULES = sorted(ENGINE.rglob("*.py"))
HELPER = ROOT / "tests" / "_db.py"  # the one test helper that looks behind the engine's back

#: Which engine packages (and top-level modules) each may import, at any depth of the code.
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "models": set(),
    "chart": {"errors"},
    "store": {"errors"},
    "runtime": {"chart", "store", "errors", "models"},
    "diagrams": {"chart", "errors"},
    "testing": {"chart", "errors"},
    "server": {"chart", "runtime", "errors", "models"},
    "cli": {"chart", "runtime", "store", "diagrams", "server", "errors", "models"},
}
_SQL = re.compile(
    r"\b(select\b.+\bfrom\b|insert\s+into|update\s+\w+\s+set|delete\s+from|"
    r"create\s+(table|unique|index|trigger)|drop\s+(table|index|trigger)|alter\s+table|"
    r"pragma\s+\w|begin\s+(immediate|deferred|exclusive)|rollback\b|commit\b)",
    re.IGNORECASE | re.DOTALL,
)
_DB_MODULES = ("sqlite3", "sqlite_utils", "psycopg", "psycopg_pool")
# `.cursor(` opens a database cursor; `.cursor` alone is also a feed entry's position
_CONNECTION = re.compile(r"\._?conn\b|\.cursor\(|\.(execute|executemany|executescript)\(")
_CLOCK = re.compile(r"\b(datetime|date)\.(now|utcnow|today)\(|\btime\.time(_ns)?\(")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _name(path: Path, root: Path = ROOT) -> str:
    """The dotted module name of ``path`` under ``root`` (elsewhere: the file's stem)."""
    parts = path.relative_to(root).with_suffix("").parts if path.is_relative_to(root) else ()
    parts = parts or (path.stem,)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool, root: Path = ROOT) -> set[str]:
    """The modules ``path`` imports (absolute names), everywhere or only at module level.

    ``if TYPE_CHECKING:`` blocks are left out: they never run.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif not top_level_only or isinstance(node, ast.If | ast.Try):
                visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return found


def _engine_modules(names: set[str], paths: Iterable[Path], root: Path) -> set[str]:
    known = {_name(p, root) for p in paths}
    return {n for n in names if n in known}


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal but docstrings, f-strings joined with ``{}`` for their holes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                p.value if isinstance(p, ast.Constant) and isinstance(p.value, str) else "{}"
                for p in node.values
            )
            out.append((node.lineno, text))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in inside_fstrings
        ):
            out.append((node.lineno, node.value))
    return out


# ---------------------------------------------------------------------------------- checks


def long_modules(paths: Iterable[Path], limit: int = 400) -> list[str]:
    return [
        f"{p.name}: {n} lines"
        for p in paths
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit
    ]


def import_cycles(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    """Cycles among module-level imports (a package's ``__init__`` counts as a module)."""
    paths = list(paths)
    graph = {
        _name(p, root): _engine_modules(_imports(p, top_level_only=True, root=root), paths, root)
        for p in paths
    }
    for name in graph:  # importing a package's own submodule from its __init__ is no cycle
        graph[name] = {d for d in graph[name] if d != name}
    cycles: list[str] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            if not all(b.startswith(a + ".") for a, b in itertools.pairwise(cycle)):
                cycles.append(" -> ".join(cycle))
            return
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, [*path, node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])
    return cycles


def upward_imports(paths: Iterable[Path], root: Path = ROOT) -> list[str]:
    paths = list(paths)
    found = []
    for path in paths:
        parts = _name(path, root).split(".")
        layer = parts[1] if len(parts) > 1 else ""
        if layer not in LAYERS:
            continue
        allowed = LAYERS[layer] | {layer}
        imported = _imports(path, top_level_only=False, root=root)
        for dep in sorted(_engine_modules(imported, paths, root)):
            dep_layer = dep.split(".")[1] if "." in dep else ""
            if dep_layer in LAYERS and dep_layer not in allowed:
                found.append(f"{_name(path, root)} imports {dep}")
    return found


def sql_outside(paths: Iterable[Path]) -> list[str]:
    return [
        f"{_rel(p)}:{line}: {text[:60]!r}"
        for p in paths
        for line, text in _strings(p)
        if _SQL.search(text)
    ]


def database_access(paths: Iterable[Path]) -> list[str]:
    found = []
    for p in paths:
        imported = _imports(p, top_level_only=False)
        found += [f"{p.name} imports {m}" for m in _DB_MODULES if m in imported]
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if _CONNECTION.search(line):
                found.append(f"{p.name}:{n}: {line.strip()[:60]}")
    return found


def clock_readers(paths: Iterable[Path]) -> list[str]:
    return [
        f"{_rel(p)}:{n}"
        for p in paths
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if _CLOCK.search(line)
    ]


# ----------------------------------------------------------------------------------- tests


def _outside_store() -> list[Path]:
    return [p for p in MODULES if "store" not in p.relative_to(ENGINE).parts]


def _tests_and_examples() -> list[Path]:
    tests = [p for p in (ROOT / "tests").rglob("*.py") if "node_modules" not in p.parts]
    return [p for p in tests if p not in (HELPER, Path(__file__))] + sorted(
        (ROOT / "examples").rglob("*.py")
    )


def test_modules_stay_small() -> None:
    assert long_modules(MODULES) == []


def test_no_import_cycle() -> None:
    assert import_cycles(MODULES) == []


def test_packages_import_only_downward() -> None:
    assert upward_imports(MODULES) == []


def test_sql_lives_only_in_the_store() -> None:
    assert sql_outside(_outside_store()) == []
    # test_security's injection payload is SQL on purpose: it must never reach SQL text
    payload = ROOT / "tests" / "test_security.py"
    assert sql_outside(p for p in _tests_and_examples() if p != payload) == []


def test_nothing_outside_the_store_touches_a_database() -> None:
    # benchmarks/ measures raw sqlite3 as the storage limit, on purpose, and is not checked.
    assert database_access(_outside_store()) == []
    assert database_access(_tests_and_examples()) == []


def test_one_clock() -> None:
    # The engine reads the time in one place (Engine's default clock); read_delivery falls back
    # to the system clock only when a caller outside the engine gives it no `now`.
    allowed = {ENGINE / "runtime" / "_clock.py", ENGINE / "runtime" / "delivery.py"}
    assert clock_readers(p for p in MODULES if p not in allowed) == []


# ------------------------------------------------------------- the checks can fail at all

_PLANTED = {
    "long": "x = 1\n" * 401,
    "sql": 'def f(cols):\n    return f"select {cols} from events where live = 1"\n',
    "db": "def f():\n    import sqlite3\n    return sqlite3.connect(':memory:')\n",
    "conn": "def f(store):\n    return store._conn\n",
    "clock": "import datetime\nx = datetime.datetime.utcnow()\n",
}


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("long", long_modules),
        ("sql", sql_outside),
        ("db", database_access),
        ("conn", database_access),
        ("clock", clock_readers),
    ],
)
def test_each_check_catches_a_planted_violation(kind: str, check: object, tmp_path: Path) -> None:
    planted = tmp_path / f"planted_{kind}.py"
    planted.write_text(_PLANTED[kind], encoding="utf-8")
    assert callable(check)
    assert check([planted]) != []


def test_the_import_checks_catch_planted_violations(tmp_path: Path) -> None:
    # A copy of the package with a cycle through a package __init__ and an upward import
    # inside a function: both must be found.
    copy = tmp_path / "engine"
    for p in MODULES:
        target = copy / p.relative_to(ENGINE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    lint = copy / "chart" / "lint.py"
    lint.write_text("from .. import chart\n" + lint.read_text(encoding="utf-8"), encoding="utf-8")
    spec = copy / "chart" / "spec.py"
    upward = "\n\ndef _f() -> None:\n    from ..runtime import fold\n"
    spec.write_text(spec.read_text(encoding="utf-8") + upward, encoding="utf-8")
    copied = sorted(copy.rglob("*.py"))
    assert any("engine.chart.lint" in c for c in import_cycles(copied, tmp_path))
    assert any(
        "engine.chart.spec imports engine.runtime" in u for u in upward_imports(copied, tmp_path)
    )
