"""Database names: a SQLite path or a PostgreSQL URL, and nothing taken for the other.

A name that is neither (another scheme, a misspelt one, ``postgresql:`` without ``//``, a libpq
keyword string, a URL with white space around it) is refused before anything is created, and
no message, CLI output or display of a name ever shows a password, however it is written:
libpq ends a URL's password at the first ``@`` (``#``, ``?`` are part of it); one holding
``@`` or ``/`` is misread by libpq, so refused, with how to write it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import _db
import pytest
from click.testing import CliRunner, Result

from engine import Engine, StoreError
from engine.cli import main
from engine.cli._base import shown
from engine.store import display_name, is_postgres_url, open_store
from engine.store._url import checked_name, redact, scrub

SECRET = "Hunter2Secret"
#: A password as people write it, unencoded: each is hidden whole wherever a name is shown.
PASSWORDS = {
    "plain": SECRET,
    "hash": f"pa#{SECRET}",
    "question": f"p?{SECRET}",
    "slash": f"p/{SECRET}",
    "at": f"p@{SECRET}",
    "colon": f"p:{SECRET}",
    "percent": f"p%2F{SECRET}",
}

#: (name, words the refusal says): never a file, never the password in what is shown.
REFUSED = {
    "misspelt": ("postgresq://u:{pw}@h/db", ["'postgresq'", "Did you mean postgresql://"]),
    "sqlalchemy": ("postgresql+psycopg://u:{pw}@h/db", ["Drop the '+psycopg'"]),
    "sqlalchemy2": ("postgresql+psycopg2://u:{pw}@h/db", ["Drop the '+psycopg2'"]),
    "pgsql": ("pgsql://u:{pw}@h/db", ["'pgsql'", "Did you mean postgresql://"]),
    "mysql": ("mysql://u:{pw}@h/db", ["no store for 'mysql' URLs"]),
    "sqlite-url": ("sqlite:///x.db?password={pw}", ["'sqlite'", "the file's path itself"]),
    "http": ("http://u:{pw}@h/db", ["'http'"]),
    "jdbc": ("jdbc:postgresql://u:{pw}@h/db", ["'://'", "Did you mean postgresql://"]),
    "leading-space": (" postgresql://u:{pw}@h/db", ["white space", "remove it"]),
    "trailing-newline": ("postgresql://u:{pw}@h/db\n", ["white space"]),
    "tab-upper": ("\tPOSTGRESQL://u:{pw}@h/db", ["white space"]),
    "no-slashes": ("postgresql:u:{pw}@host", ["without its '://'"]),
    "no-slashes-short": ("postgres:u:{pw}@host/db", ["without its '://'"]),
    "no-colon": ("postgresql//u:{pw}@host/db", ["without its '://'"]),
    "keywords": ("host=localhost dbname=x password={pw}", ["libpq keyword string"]),
    "keywords-quoted": ("dbname=x password='{pw} x'", ["libpq keyword string"]),
    "keyword-alone": ("password={pw}", ["libpq keyword string"]),
    "slash-in-password": ("postgresql://u:{pw}/x@127.0.0.1/db", ["%2F", "%40"]),
    "at-in-password": ("postgresql://u:x@{pw}@127.0.0.1/db", ["%40"]),
    "at-in-user": ("postgresql://me@srv:{pw}@127.0.0.1/db", ["%40"]),
    "not-a-port": ("postgresql://u:{pw}", ["port that is not a number"]),
    "query-no-equals": ("postgresql://u:5?{pw}/y@127.0.0.1/db", ["without '='"]),
}


def _refused(key: str, password: str = SECRET) -> str:
    return REFUSED[key][0].format(pw=password)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working folder, so a name taken for a relative path would land in it."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing created, ever


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, list(args))


# ------------------------------------------------------------------------------- refused


@pytest.mark.parametrize("key", sorted(REFUSED))
@pytest.mark.parametrize("readonly", [False, True])
def test_names_that_are_neither_are_refused_without_a_file(
    key: str, readonly: bool, in_tmp: Path
) -> None:
    name = _refused(key)
    with pytest.raises(StoreError) as info:
        open_store(name, readonly=readonly)
    message = str(info.value)
    assert SECRET not in message
    for word in REFUSED[key][1]:
        assert word in message, (word, message)
    assert "postgresql://" in message  # the valid choices
    assert "SQLite file path" in message


@pytest.mark.parametrize("key", sorted(REFUSED))
@pytest.mark.parametrize(
    "args",
    [["state", "stripe", "in_1"], ["apply", "stripe", "--example"], ["history", "stripe", "x"]],
    ids=["state", "apply", "history"],
)
def test_the_cli_refuses_them_without_showing_the_password(
    key: str, args: list[str], in_tmp: Path
) -> None:
    for res in (
        _run(*args, "--db", _refused(key)),
        _run(*args, env={"INVOICE_ENGINE_DB": _refused(key)}),
    ):
        assert res.exit_code == 1, res.output
        assert "Error: " in res.stderr
        assert SECRET not in res.output
        assert SECRET not in res.stderr
        assert "Traceback" not in res.output
        assert "unexpected" not in res.stderr


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_a_path_object_is_checked_too(key: str, in_tmp: Path) -> None:
    with pytest.raises(StoreError) as info:
        Engine(Path(_refused(key)))
    assert SECRET not in str(info.value)


def test_the_server_refuses_them_too(in_tmp: Path) -> None:
    pytest.importorskip("starlette")
    from engine.server import create_app

    with pytest.raises(StoreError) as info:
        create_app(_refused("sqlalchemy"))
    assert SECRET not in str(info.value)
    assert "'+psycopg'" in str(info.value)


# ----------------------------------------------------------------------------- redaction


@pytest.mark.parametrize("password", PASSWORDS.values(), ids=PASSWORDS.keys())
@pytest.mark.parametrize(
    "template",
    [
        "postgresql://u:{pw}@host/db",
        "postgres://u:{pw}@host:5432/db?sslmode=disable",
        "POSTGRESQL://u:{pw}@host/db",
        "postgresql://u:{pw}@h1:5432,h2:5433/db",
        "postgresql://u:{pw}@[::1]:5432/db",
        "postgresql://u:{pw}@host/db?application_name=me@work",
        "postgresql://host/db?password={pw}",
        "postgresql://host/db?user=u&password={pw}&sslmode=disable",
        "postgresql://host/db?PASSWORD={pw}",
        "postgresql://host/db?pass%77ord={pw}",
        "postgresql://host/db?sslpassword={pw}",
        "host=h password={pw} dbname=x",
        "mysql://u:{pw}@h/db",
        "postgresql:u:{pw}@host",
        " postgresql://u:{pw}@h/db",
    ],
)
def test_a_password_is_hidden_however_it_is_written(template: str, password: str) -> None:
    name = template.format(pw=password)
    for seen in (redact(name), display_name(name), shown(name), display_name(Path(name))):
        assert SECRET not in seen, seen
        assert "***" in seen


@pytest.mark.parametrize(
    ("name", "seen"),
    [
        ("postgresql://u:pa#ss@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:p/w@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:p?w@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u@host:5432/db", "postgresql://u@host:5432/db"),
        ("postgresql://host/db?password=x#y&sslmode=disable", "postgresql://host/db?password=***&sslmode=disable"),
        ("host=h password='a b' dbname=x", "host=h password=*** dbname=x"),
        ("invoices.db", "invoices.db"),
        (":memory:", ":memory:"),
        ("with spaces/and:colons.db", "with spaces/and:colons.db"),
    ],
)  # fmt: skip
def test_what_is_shown(name: str, seen: str) -> None:
    assert redact(name) == seen
    assert display_name(name) == seen


def test_a_drivers_message_is_scrubbed_of_every_spelling() -> None:
    url = "postgresql://u:p%40ss%2Fword@host/db?sslpassword=k%23ey"
    text = f"failed for {url}: bad p@ss/word, p%40ss%2Fword; key k#ey"
    clean = scrub(text, url)
    for secret in ("p@ss/word", "p%40ss%2Fword", "k#ey", "k%23ey"):
        assert secret not in clean
    assert "postgresql://u:***@host/db?sslpassword=***" in clean


# -------------------------------------------------------------------------- accepted names


@pytest.mark.parametrize(
    ("name", "opened"),
    [
        ("postgresql://u@host/db", "postgresql://u@host/db"),
        ("POSTGRESQL://u:pw@host/db", "postgresql://u:pw@host/db"),
        ("Postgres://host/db", "postgres://host/db"),
        ("postgresql://u:pa#ss@host/db", "postgresql://u:pa#ss@host/db"),
        ("postgresql://u:p?w@host/db", "postgresql://u:p?w@host/db"),
        ("postgresql://u:p%2Fw@host/db", "postgresql://u:p%2Fw@host/db"),
        ("postgresql://host:5432/db?application_name=me@work", None),
        ("postgresql://h1:5432,h2:5433/db", None),
        ("postgresql://[::1]:5432/db", None),
        ("postgresql:///db?host=/var/run/postgresql", None),
        ("postgresql://", None),
        ("invoices.db", None),
        ("folder/x.db", None),
        (":memory:", None),
        ("a=b.db", None),
        (" spaced name.db", None),
        ("postgres.db", None),
        ("postgresql", None),
        ("postgres/x.db", None),
    ],
)
def test_good_names_pass_as_they_are(name: str, opened: str | None) -> None:
    assert checked_name(name) == (opened or name)
    assert is_postgres_url(name) == name.lower().startswith(("postgresql://", "postgres://"))


def test_a_sqlite_file_still_opens(in_tmp: Path) -> None:
    Engine("x.db").close()
    assert (in_tmp / "x.db").is_file()
    for made in in_tmp.iterdir():
        made.unlink()


def _host(server: str) -> str:
    return urlsplit(server).netloc.rsplit("@", 1)[-1]


@pytest.mark.parametrize("password", PASSWORDS.values(), ids=PASSWORDS.keys())
def test_a_servers_refusal_never_shows_the_password(postgres_server: str, password: str) -> None:
    """Passwords libpq reads as written reach the server; the others are refused first."""
    from urllib.parse import quote

    for written in {password, quote(password, safe="")}:
        url = f"postgresql://postgres:{written}@{_host(postgres_server)}/no_such_database_here"
        with pytest.raises(StoreError) as info:
            Engine(url)
        assert SECRET not in str(info.value)
        res = _run("apply", "stripe", "--example", "--db", url)
        assert res.exit_code == 1, res.output
        assert SECRET not in res.output
        assert SECRET not in res.stderr


@pytest.fixture
def pg(postgres_server: str) -> Iterator[_db.Databases]:
    with _db.postgres_databases(postgres_server) as databases:
        yield databases


@pytest.mark.parametrize("scheme", ["postgresql", "POSTGRESQL", "Postgres", "postgres"])
def test_a_postgresql_url_opens_with_its_scheme_in_any_case(
    pg: _db.Databases, scheme: str, in_tmp: Path
) -> None:
    url = pg(shared=True)
    spelt = scheme + url[url.index("://") :]
    with Engine(spelt) as eng:
        assert eng.store.name.startswith(scheme.lower() + "://")
    res = _run("apply", "stripe", "--example", "--db", spelt)
    assert res.exit_code == 0, res.output
    res = _run("state", "stripe", "in_1PqA8sDemo0002", "--db", spelt)
    assert res.exit_code == 0, res.output
    assert len(_db.events(url)) > 0
