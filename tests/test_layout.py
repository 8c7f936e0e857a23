"""The package's shape: modules by concern, imports that only go one way, SQL only in the store.

These are the seams later work builds on (a PostgreSQL store beside the SQLite one, an HTTP
receiver, a changes feed): a test keeps each from eroding quietly.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
MODULES = sorted(ENGINE.rglob("*.py"))

#: Which engine packages each may import at module level (besides engine.errors/models).
LAYERS = {
    "chart": set(),
    "store": set(),
    "runtime": {"chart", "store"},
    "diagrams": {"chart"},
    "testing": {"chart"},
    "cli": {"chart", "runtime", "store", "diagrams"},
}
_SQL = re.compile(
    r"\b(SELECT\s+[\w*(]|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|"
    r"UNIQUE|INDEX|TRIGGER)|DROP\s+(TABLE|INDEX|TRIGGER)|PRAGMA\s+\w|BEGIN\s+IMMEDIATE|"
    r"ROLLBACK\b|COMMIT\b)"
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """The engine modules ``path`` imports when it is imported (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if target.startswith("engine"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("engine"))
    known = {_module_name(p) for p in MODULES}
    return {m for m in found if m in known}


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal in ``path`` but docstrings, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ENGINE)))
def test_module_stays_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines; split it by concern"


def test_no_import_cycle() -> None:
    graph = {_module_name(p): _top_level_imports(p) for p in MODULES}
    # a package's __init__ importing its own modules is how re-exports work, not a cycle
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not (d.startswith(name + ".") or d == name)}

    def visit(node: str, path: list[str], done: set[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, [*path, node], done)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [], done)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_packages_import_only_downward(package: str) -> None:
    allowed = LAYERS[package] | {package}
    for path in sorted((ENGINE / package).rglob("*.py")):
        for dep in _top_level_imports(path):
            parts = dep.split(".")
            if len(parts) > 1 and parts[1] in LAYERS:
                assert parts[1] in allowed, f"{_module_name(path)} imports {dep}"


def _sql_lines(paths: list[Path]) -> list[str]:
    return [
        f"{p.relative_to(ROOT)}:{line}: {text[:60]!r}"
        for p in paths
        for line, text in _strings(p)
        if _SQL.search(text)
    ]


def test_sql_lives_only_in_the_store() -> None:
    outside = [p for p in MODULES if "store" not in p.relative_to(ENGINE).parts]
    assert _sql_lines(outside) == []
    assert _sql_lines(sorted((ENGINE / "store").rglob("*.py"))), "the check finds nothing at all"


def test_nothing_outside_the_store_touches_a_connection() -> None:
    # tests/_db.py is the one test helper that looks behind the engine's back (tampering);
    # benchmarks/ measures raw sqlite3 as the storage limit, on purpose.
    helper = ROOT / "tests" / "_db.py"
    files = [p for p in MODULES if "store" not in p.relative_to(ENGINE).parts]
    files += [
        p for p in (ROOT / "tests").rglob("*.py") if p != helper and "node_modules" not in p.parts
    ]
    files += sorted((ROOT / "examples").rglob("*.py"))
    touching = re.compile(
        r"\.(execute|executemany|executescript|cursor)\(|sqlite3\.connect|\.conn\b"
    )

    def lines_touching(paths: list[Path]) -> list[str]:
        return [
            f"{p.relative_to(ROOT)}:{n}"
            for p in paths
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if touching.search(line)
        ]

    assert lines_touching([p for p in files if p != Path(__file__)]) == []
    assert lines_touching([helper]), "the check finds nothing at all"


def test_one_clock() -> None:
    # The engine reads the time in one place (Engine's default clock); read_delivery falls back
    # to the system clock only when a caller outside the engine gives it no `now`.
    allowed = {"runtime/engine.py", "runtime/delivery.py"}
    readers = [
        str(p.relative_to(ENGINE))
        for p in MODULES
        if re.search(r"datetime\.now\(|time\.time\(\)|date\.today\(", p.read_text("utf-8"))
    ]
    assert set(readers) <= allowed, readers
