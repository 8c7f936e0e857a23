"""What the tests read from a database, and the few things they do behind the engine's back.

Tests read records through the store's own read transactions (typed rows, never SQL). A test
that must look at or damage a database the way another program would — tamper with a row to
see ``replay`` notice, make a write fail half-way, read while a killed process left the file,
cut a worker's connection — does it through the functions at the bottom, the only SQL in the
test suite. A database is a SQLite path or a PostgreSQL URL (a schema of its own per test:
:func:`new_schema`); the functions take either.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import Engine
from engine.store import is_postgres_url, open_store
from engine.store.base import EventRow, InvoiceRow, RevisionRow, Store
from engine.store.sqlite import SqliteStore


@dataclass
class Databases:
    """Fresh, empty databases of one store for a test (the ``make_db`` fixture).

    ``make_db()`` names a new database for one engine; ``make_db(shared=True)`` one that can be
    opened again by its name (by another engine, a process, the CLI, the helpers below): for
    SQLite a file instead of ``":memory:"``, for PostgreSQL a schema either way.
    """

    #: ``"sqlite"`` or ``"postgres"``.
    kind: str
    make: Callable[[bool], str]
    #: The PostgreSQL server's URL (its default schema), for the fault tests' own SQL.
    server: str | None = None
    made: list[str] = field(default_factory=list)

    def __call__(self, *, shared: bool = False) -> str:
        name = self.make(shared)
        self.made.append(name)
        return name


def sqlite_databases(folder: Path) -> Databases:
    numbers = itertools.count(1)

    def make(shared: bool) -> str:
        return str(folder / f"db{next(numbers)}.db") if shared else ":memory:"

    return Databases("sqlite", make)


@contextmanager
def postgres_databases(server: str, pool: SchemaPool | None = None) -> Iterator[Databases]:
    """Databases as schemas of ``server``: new ones, each dropped (its connections cut) at the
    end. Given a :class:`SchemaPool`, one for a single engine (not ``shared``, like SQLite's
    ``:memory:``) is taken from it instead — a used one, emptied — and given back at the end."""
    made: list[str] = []
    pooled: list[str] = []

    def make(shared: bool) -> str:
        if pool is not None and not shared:
            schema = pool.take()
            pooled.append(schema)
        else:
            schema = f"ie_test_{uuid.uuid4().hex[:16]}"
            new_schema(server, schema)
            made.append(schema)
        return schema_url(server, schema)

    try:
        yield Databases("postgres", make, server)
    finally:
        if pool is not None:
            pool.give_back(pooled)
        drop_schemas(server, made)


class SchemaPool:
    """Schemas on a server for the tests, reused: after a test, a schema holding exactly an
    engine's tables is emptied (its rows deleted, its numbering restarted) and handed to the
    next test, which so skips creating them (~50 ms a database); any other is dropped. All are
    dropped when the tests end."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._free: list[str] = []
        self._all: list[str] = []

    def take(self) -> str:
        if self._free:
            return self._free.pop()
        schema = f"ie_test_{uuid.uuid4().hex[:16]}"
        new_schema(self.server, schema)
        self._all.append(schema)
        return schema

    def give_back(self, schemas: list[str]) -> None:
        from engine.store._postgres_schema import META, SCHEMA_VERSION

        if not schemas:
            return
        ours = {META, "events", "invoices", "revisions", "charts", "invoice_locks", "changes",
                "subscribers"}  # fmt: skip
        with _pg(self.server) as conn:
            _cut(conn, schemas)
            tables: dict[str, set[str]] = {s: set() for s in schemas}
            for schema, table in conn.execute(
                "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)",
                (schemas,),
            ):
                tables[schema].add(table)
            for schema in dict.fromkeys(schemas):
                assert _SCHEMA.match(schema), schema
                kept = not tables[schema]
                if tables[schema] == ours:
                    version = conn.execute(f"SELECT value FROM {schema}.{META}").fetchone()
                    triggers = conn.execute(
                        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                        " WHERE c.relnamespace = %s::regnamespace",
                        (schema,),
                    ).fetchone()
                    kept = version == (str(SCHEMA_VERSION),) and triggers == (0,)
                    if kept:
                        conn.execute(
                            f"DELETE FROM {schema}.events; DELETE FROM {schema}.invoices;"
                            f" DELETE FROM {schema}.revisions; DELETE FROM {schema}.charts;"
                            f" DELETE FROM {schema}.invoice_locks; DELETE FROM {schema}.changes;"
                            f" DELETE FROM {schema}.subscribers;"
                            f" SELECT setval('{schema}.events_seq', 1, false)"
                        )
                if kept:
                    self._free.append(schema)
                else:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                    self._all.remove(schema)

    def close(self) -> None:
        drop_schemas(self.server, self._all)
        self._all, self._free = [], []


@contextmanager
def _store(db: Engine | Store | str | Path) -> Iterator[Store]:
    if isinstance(db, Engine):
        yield db.store
    elif isinstance(db, str | Path):
        # reading changes nothing in the database
        store = (
            open_store(db, readonly=True) if is_postgres_url(db) else SqliteStore(db, readonly=True)
        )
        try:
            yield store
        finally:
            store.close()
    else:
        yield db


def events(db: Engine | Store | str | Path) -> list[EventRow]:
    """Every event row, by arrival."""
    with _store(db) as store, store.read() as tx:
        return list(tx.event_rows())


def live_events(db: Engine | Store | str | Path, provider: str | None = None) -> list[EventRow]:
    """The rows that count (``live = 1``), optionally of one provider, by arrival."""
    return [r for r in events(db) if r.in_fold and provider in (None, r.provider)]


def bodies(db: Engine | Store | str | Path) -> list[bytes]:
    """Every stored body, by arrival."""
    return [bytes(r.body) for r in events(db)]


def invoices(db: Engine | Store | str | Path) -> list[InvoiceRow]:
    """Every invoice row (those only seen through rejected events too), by provider and id."""
    with _store(db) as store, store.read() as tx:
        return list(tx.invoice_rows(unborn=True))


def doubled_live_events(db: Engine | Store | str | Path) -> list[str]:
    """Event ids with more than one live row (there must never be any)."""
    ids = [r.event_id or "" for r in live_events(db)]
    return sorted({i for i in ids if ids.count(i) > 1})


def revisions(db: Engine | Store | str | Path) -> list[RevisionRow]:
    """Every revision, in the order written."""
    with _store(db) as store, store.read() as tx:
        return list(tx.revision_rows())


# ------------------------------------------------------------------- behind the engine's back


class _Recorder:
    """A sqlite3 connection that records the SQL text of every statement."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.sql: list[str] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self._conn.executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self.sql.append(sql)
        return self._conn.executescript(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def record_sql(eng: Engine) -> list[str]:
    """From now on, the text of every SQL statement the engine's store runs (before binding)."""
    store = eng.store
    assert isinstance(store, SqliteStore)
    rec = _Recorder(store._conn)
    store._conn = store._tx._conn = rec  # type: ignore[assignment]
    return rec.sql


@contextmanager
def _connection(db: str | Path) -> Iterator[Any]:
    """A plain connection to ``db`` committing when the block ends: sqlite3 for a path,
    psycopg (autocommit) for a URL. Statements use ``?`` placeholders either way."""
    if is_postgres_url(db):
        with _pg(str(db)) as conn:
            yield _Qmark(conn)
    else:
        with closing(sqlite3.connect(db)) as conn, conn:
            yield conn


class _Qmark:
    """A psycopg connection taking sqlite3's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), args)


def _pg(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def set_state_behind_the_engine(db: str | Path, invoice_id: str, state: str) -> None:
    """Overwrite an invoice's stored state, as a careless script would."""
    with _connection(db) as conn:
        conn.execute("UPDATE invoices SET state = ? WHERE invoice_id = ?", (state, invoice_id))


def delete_invoice_behind_the_engine(db: str | Path, invoice_id: str) -> None:
    """Lose an invoice's row, as a careless script would."""
    with _connection(db) as conn:
        conn.execute("DELETE FROM invoices WHERE invoice_id = ?", (invoice_id,))


def tamper_canonical_behind_the_engine(db: str | Path, invoice_id: str, canonical: str) -> None:
    """Overwrite an invoice's stored canonical state."""
    with _connection(db) as conn:
        conn.execute(
            "UPDATE invoices SET canonical = ? WHERE invoice_id = ?", (canonical, invoice_id)
        )


def delete_events_behind_the_engine(db: str | Path, invoice_id: str) -> None:
    """Lose every event row of an invoice, keeping its invoice row."""
    with _connection(db) as conn:
        conn.execute("DELETE FROM events WHERE invoice_id = ?", (invoice_id,))


def delete_last_change_behind_the_engine(db: str | Path) -> None:
    """Lose the changes feed's last entry, as a careless script would."""
    with _connection(db) as conn:
        conn.execute("DELETE FROM changes WHERE cursor = (SELECT MAX(cursor) FROM changes)")


@contextmanager
def invoice_writes_fail(db: str | Path) -> Iterator[None]:
    """While inside, every write of an ``invoices`` row fails (a trigger raises 'boom')."""
    if is_postgres_url(db):
        with _pg(str(db)) as conn:
            conn.execute(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER boom BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION boom()"
            )
            try:
                yield
            finally:
                conn.execute("DROP TRIGGER boom ON invoices")
                conn.execute("DROP FUNCTION boom()")
        return
    with closing(sqlite3.connect(db)) as lite:
        lite.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON invoices BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        lite.commit()
        try:
            yield
        finally:
            lite.execute("DROP TRIGGER boom")
            lite.commit()


def pragma(path: str | Path, name: str) -> object:
    """A PRAGMA's value, read by a plain connection (``user_version``, ``journal_mode``, …)."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def set_user_version(path: str | Path, version: int) -> None:
    """Stamp a file with a schema version, as a newer invoice-engine would."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {int(version)}")


def count_rows_read_only(path: str | Path) -> int | None:
    """How many event rows a file holds, opened read-only (``None``: no schema there yet)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or the schema not yet in place
        return None


def integrity(db: str | Path) -> str:
    """SQLite's own ``PRAGMA integrity_check`` verdict (``"ok"``); for PostgreSQL, ``"ok"``
    when every live row's invoice has a row (the server keeps its own files whole)."""
    if not is_postgres_url(db):
        return str(pragma(db, "integrity_check"))
    with _pg(str(db)) as conn:
        orphans = conn.execute(
            "SELECT COUNT(*) FROM events e WHERE in_fold = 1 AND invoice_id IS NOT NULL AND"
            " NOT EXISTS (SELECT 1 FROM invoices i WHERE i.provider = e.provider"
            " AND i.invoice_id = e.invoice_id)"
        ).fetchone()[0]
    return "ok" if orphans == 0 else f"{orphans} live rows without an invoice row"


def tables(db: str | Path) -> set[str]:
    """The names of the database's tables (for PostgreSQL: in its schema)."""
    if is_postgres_url(db):
        with _pg(str(db)) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
            return {r[0] for r in rows}
    with closing(sqlite3.connect(db)) as lite:
        return {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# ---------------------------------------------------------------------------- PostgreSQL

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")


def schema_url(server: str, schema: str) -> str:
    """``server``'s URL with ``schema`` first on the search path, asynchronous commits (no
    durability to test here: no server crash), and the schema as the application name, so
    the connections of one test can be found (and cut) by it."""
    sep = "&" if "?" in server else "?"
    return (
        f"{server}{sep}options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
        f"&application_name={schema}"
    )


def new_schema(server: str, schema: str) -> None:
    """Create an empty schema on ``server``."""
    assert _SCHEMA.match(schema), schema
    with _pg(server) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")


def drop_schemas(server: str, schemas: list[str]) -> None:
    """Cut the schemas' connections (an engine a test left open) and drop them."""
    if not schemas:
        return
    with _pg(server) as conn:
        _cut(conn, schemas)
        for schema in schemas:
            assert _SCHEMA.match(schema), schema
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _cut(conn: Any, schemas: list[str]) -> None:
    """Terminate the connections of engines a test left open on these schemas."""
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = ANY(%s) AND pid <> pg_backend_pid()",
        (schemas,),
    )


def cut_connections(
    server: str, application_name: str, *, in_transaction: bool = True, most: int | None = None
) -> int:
    """``pg_terminate_backend`` the connections of ``application_name`` — only those inside a
    transaction, by default; at ``most`` that many, picked at random — and say how many."""
    busy = "AND xact_start IS NOT NULL" if in_transaction else ""
    limit = f"ORDER BY random() LIMIT {int(most)}" if most is not None else ""
    with _pg(server) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM (SELECT pid FROM pg_stat_activity"
            f" WHERE application_name = %s AND pid <> pg_backend_pid() {busy} {limit}) AS chosen",
            (application_name,),
        ).fetchall()
    return sum(1 for r in rows if r[0])


def schema_of(url: str) -> str:
    """The schema (and application name) :func:`schema_url` put in ``url``."""
    found = re.search(r"application_name=(\w+)", url)
    assert found, url
    return found.group(1)


def set_schema_version(url: str, version: int) -> None:
    """Stamp a PostgreSQL store with a schema version, as a newer invoice-engine would."""
    with _pg(url) as conn:
        conn.execute(
            "UPDATE invoice_engine_meta SET value = %s WHERE key = 'schema_version'",
            (str(version),),
        )


def setting(tx: Any, name: str) -> str:
    """A server setting as a store's session sees it."""
    return str(tx._conn.execute(f"SHOW {name}").fetchone()[0])


def make_postgres_version_1(url: str) -> None:
    """Turn a PostgreSQL store back into one of schema version 1: no lock table, no feed, an
    index on event ids."""
    with _pg(url) as conn:
        for table in ("invoice_locks", "changes", "subscribers"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("CREATE INDEX events_event_id ON events (provider, event_id)")
        for table, column in (("events", "event_id"), ("invoices", "last_event_id"),
                              ("invoices", "provider"), ("invoices", "invoice_id")):  # fmt: skip
            conn.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT COLLATE "default"')
        conn.execute("UPDATE invoice_engine_meta SET value = '1' WHERE key = 'schema_version'")


def collation(url: str, table: str, column: str) -> str | None:
    """The collation a PostgreSQL store's column sorts by (``None``: the database's)."""
    with _pg(url) as conn:
        row = conn.execute(
            "SELECT collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s",
            (table, column),
        ).fetchone()
    return None if row is None else row[0]


def sort_by_locale(url: str, table: str, columns: Sequence[str]) -> bool:
    """Make a PostgreSQL store's ``columns`` sort as in a database created with a locale
    (ICU's root locale: punctuation first, then letters whatever their case, ``_x``, ``a``,
    ``B``) rather than by code point (``B``, ``_x``, ``a``); ``False``: the server has no ICU."""
    with _pg(url) as conn:
        icu = "SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'"
        if conn.execute(icu).fetchone() is None:
            return False
        for column in columns:
            conn.execute(f'ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT COLLATE "und-x-icu"')
    return True


def feed_rows(url: str) -> list[tuple[Any, ...]]:
    """A PostgreSQL store's changes table as it is: (cursor, invoice id, to_state, kind)."""
    with _pg(url) as conn:
        sql = "SELECT cursor, invoice_id, to_state, kind FROM changes ORDER BY cursor"
        return [tuple(r) for r in conn.execute(sql)]


def schema_version(url: str) -> int:
    """A PostgreSQL store's recorded schema version."""
    with _pg(url) as conn:
        row = conn.execute(
            "SELECT value FROM invoice_engine_meta WHERE key = 'schema_version'"
        ).fetchone()
    return int(row[0])


def serialization_failure() -> Exception:
    """The error PostgreSQL raises for SQLSTATE 40001, as psycopg gives it."""
    import psycopg

    return psycopg.errors.SerializationFailure("could not serialize access (a test's)")


def server_answers(server: str) -> bool:
    """Whether a connection to ``server`` can be made now."""
    try:
        with _pg(server) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def make_foreign_database(db: str | Path) -> None:
    """Another application's database (a SQLite file, or a PostgreSQL schema), with a table
    called events of its own."""
    with _connection(db) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
        conn.execute("INSERT INTO events (id, what) VALUES (1, 'a meeting')")


def make_version_1_database(path: str | Path) -> None:
    """A file as invoice-engine's schema version 1 wrote it: one applied stripe event."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(_VERSION_1)


_VERSION_1 = """
CREATE TABLE [events] ([seq] INTEGER PRIMARY KEY, [provider] TEXT NOT NULL, [event_id] TEXT,
  [live] INTEGER NOT NULL DEFAULT 0, [invoice_id] TEXT, [event_type] TEXT, [trigger] TEXT,
  [status] TEXT, [outcome] TEXT NOT NULL, [reason] TEXT, [from_state] TEXT, [to_state] TEXT,
  [retryable] INTEGER DEFAULT 0, [adopted] INTEGER DEFAULT 0, [occurred_at] TEXT,
  [fold_time] INTEGER, [fold_rank] INTEGER, [received_at] TEXT NOT NULL,
  [revisions] INTEGER NOT NULL DEFAULT 0, [headers] TEXT, [body] BLOB);
CREATE TABLE [invoices] ([provider] TEXT, [invoice_id] TEXT, [state] TEXT, [canonical] TEXT,
  [version] INTEGER NOT NULL, [created_at] TEXT, [updated_at] TEXT, [last_time] INTEGER,
  [last_rank] INTEGER, [last_event_id] TEXT, PRIMARY KEY ([provider], [invoice_id]));
CREATE TABLE [revisions] ([id] INTEGER PRIMARY KEY, [seq] INTEGER, [cause_seq] INTEGER,
  [revised_at] TEXT, [old_outcome] TEXT, [new_outcome] TEXT, [old_from] TEXT, [old_to] TEXT,
  [new_from] TEXT, [new_to] TEXT, [old_reason] TEXT, [new_reason] TEXT);
CREATE UNIQUE INDEX events_live_event ON events(provider, event_id) WHERE live = 1;
CREATE INDEX events_invoice_fold
  ON events(provider, invoice_id, fold_time, fold_rank, event_id) WHERE live = 1;
INSERT INTO events VALUES (1, 'stripe', 'evt_1', 1, 'in_1', 'invoice.created', NULL, 'draft',
  'applied', 'created', NULL, 'draft', 0, 0, '2023-11-14T22:13:20+00:00', 1700000000000000, 0,
  '2026-01-01T00:00:00+00:00', 0, NULL,
  CAST('{"id":"evt_1","type":"invoice.created","created":1700000000,'
       || '"data":{"object":{"id":"in_1","status":"draft"}}}' AS BLOB));
INSERT INTO invoices VALUES ('stripe', 'in_1', 'draft', 'draft', 1, '2026-01-01T00:00:00+00:00',
  '2026-01-01T00:00:00+00:00', 1700000000000000, 0, 'evt_1');
PRAGMA user_version = 1;
"""


def make_version_2_database(path: str | Path) -> None:
    """A file as invoice-engine wrote it at schema version 2: no ``events.verified``."""
    body = (
        b'{"id":"evt_1","type":"invoice.created","created":1700000000,'
        b'"data":{"object":{"id":"in_1","status":"draft"}}}'
    )
    with Engine(path) as eng:
        eng.apply("stripe", body)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN verified")
        conn.execute("DROP TABLE changes")
        conn.execute("DROP TABLE subscribers")
        conn.execute("PRAGMA user_version = 2")
        conn.commit()


# ------------------------------------------------------------------- the receiver's faults


@contextmanager
def invoice_write_fails(path: str | Path, invoice_id: str) -> Iterator[None]:
    """While inside, writing the ``invoices`` row of ``invoice_id`` (and no other) fails."""
    literal = "'" + invoice_id.replace("'", "''") + "'"
    with closing(sqlite3.connect(path)) as lite:
        for when in ("INSERT", "UPDATE"):
            lite.execute(
                f"CREATE TRIGGER fail_one_{when.lower()} BEFORE {when} ON invoices"
                f" WHEN NEW.invoice_id = {literal} BEGIN SELECT RAISE(ABORT, 'one fails'); END"
            )
        lite.commit()
        try:
            yield
        finally:
            lite.execute("DROP TRIGGER fail_one_insert")
            lite.execute("DROP TRIGGER fail_one_update")
            lite.commit()


@contextmanager
def held_exclusive(path: str | Path) -> Iterator[None]:
    """While inside, another connection holds the database's write lock (``BEGIN EXCLUSIVE``)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as lite:
        lite.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")


def own_pragma(db: Engine | Store, name: str) -> object:
    """A PRAGMA as the engine's (or store's) own connection has it: per-connection settings
    such as ``synchronous``, which a plain connection to the same file would not show."""
    store = db.store if isinstance(db, Engine) else db
    assert isinstance(store, SqliteStore), store
    with store._lock:
        return store._conn.execute(f"PRAGMA {name}").fetchone()[0]


@contextmanager
def open_transaction(server: str) -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A transaction left open on its own connection: its id, and ``finish(commit)``."""
    with _pg(server) as conn:
        conn.execute("BEGIN")
        xid = str(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])

        def finish(commit: bool) -> None:
            conn.execute("COMMIT" if commit else "ROLLBACK")

        yield xid, finish
