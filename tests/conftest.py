"""Shared fixtures: every bundled chart and every store, parametrized, so a new chart (or store)
is tested with no new code."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import _db
import _postgres
import pytest
from hypothesis import HealthCheck, settings

from engine.chart import bundled_chart_dir

ROOT = Path(__file__).resolve().parent.parent
CHART_FILES = sorted(bundled_chart_dir().glob("*.yaml"))
CHART_NAMES = [p.stem for p in CHART_FILES]

# Hypothesis profiles: "ci" (the default: fast) and "thorough" (by hand:
# HYPOTHESIS_PROFILE=thorough pytest).
# make_db is function-scoped on purpose: a factory, it hands every example new databases.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough", max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=CHART_FILES, ids=lambda p: p.name)
def chart_file(request: pytest.FixtureRequest) -> Path:
    """Each bundled chart file in turn."""
    path: Path = request.param
    return path


@pytest.fixture(params=CHART_NAMES)
def chart_name(request: pytest.FixtureRequest) -> str:
    """Each bundled chart's name in turn."""
    name: str = request.param
    return name


# ------------------------------------------------------------------------------------ stores

STORES = ["sqlite", "postgres"]


def _unavailable(reason: str) -> None:
    """Skip for want of PostgreSQL, saying how to run the test; under CI, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests never skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[_postgres.Cluster]:
    """A throwaway PostgreSQL cluster of the tests' own, started from the installed binaries:
    the server the tests may restart."""
    try:
        cluster = _postgres.Cluster()
        cluster.start()
    except RuntimeError as exc:
        _unavailable(f"can't start a PostgreSQL cluster: {exc}; {_postgres.HOW}")
        raise  # not reached
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> str:
    """The PostgreSQL server the tests use: ``INVOICE_ENGINE_TEST_POSTGRES``, else a throwaway
    cluster, else skipped with how to run them (never under ``CI=true``)."""
    if importlib.util.find_spec("psycopg") is None:
        _unavailable(f"psycopg is not installed: pip install -e '.[dev]'; {_postgres.HOW}")
    url = os.environ.get(_postgres.ENV)
    if not url:
        cluster: _postgres.Cluster = request.getfixturevalue("pg_cluster")
        return cluster.url
    if not _db.server_answers(url):
        pytest.fail(f"{_postgres.ENV}={url} does not answer")
    return url


@pytest.fixture(scope="session")
def postgres_schemas(postgres_server: str) -> Iterator[_db.SchemaPool]:
    """Schemas for ``make_db``, emptied after each test and reused (dropped at the end)."""
    pool = _db.SchemaPool(postgres_server)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(params=STORES)
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_db.Databases]:
    """New, empty databases of each store in turn: ``make_db()`` names one (SQLite: a file or
    ``:memory:``; PostgreSQL: a URL with a schema of its own, for this test only)."""
    if request.param == "sqlite":
        yield _db.sqlite_databases(tmp_path)
        return
    server = request.getfixturevalue("postgres_server")
    pool = request.getfixturevalue("postgres_schemas")
    with _db.postgres_databases(server, pool) as databases:
        yield databases


#: Examples per property test against PostgreSQL (SQLite runs the profile's count): there every
#: example builds its databases on a server, ~50 ms each; the variant is there to show the
#: stores agree, which the SQLite variant's breadth does not need repeated.
POSTGRES_EXAMPLES = 10


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object:
    test = pyfuncitem.obj
    callspec = getattr(pyfuncitem, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("make_db") == "postgres"
    if not (on_postgres and getattr(test, "is_hypothesis_test", False)):
        return (yield)
    # the settings a @given test runs under are read from the test function when it is called
    current = test._hypothesis_internal_use_settings
    fewer = min(current.max_examples, POSTGRES_EXAMPLES)
    test._hypothesis_internal_use_settings = settings(current, max_examples=fewer)
    try:
        return (yield)
    finally:
        test._hypothesis_internal_use_settings = current
