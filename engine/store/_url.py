"""Database names: which store a name asks for, the names refused, and showing one safely.

A name is a SQLite file path (or ``:memory:``) or a PostgreSQL URL, ``postgresql://…`` or
``postgres://…`` (the scheme in any case: libpq knows only the lower-case spelling, so the
scheme is lowered before libpq sees it). Refused before anything is opened or created, with
the password hidden, rather than taken for a file name:

- any other ``scheme://`` (``mysql://``, ``sqlite:///x.db``, ``postgresql+psycopg://``, a
  misspelt ``postgresq://``), and any other name holding ``://``;
- ``postgresql:`` or ``postgres:`` without the ``//`` (and ``postgresql//…``);
- libpq keyword strings (``host=localhost dbname=billing``): write them as a URL;
- a PostgreSQL URL with white space before or after it (never stripped: a name is used as
  given; a SQLite path may begin or end with a space);
- a PostgreSQL URL that libpq would read otherwise than it looks: an unencoded ``@`` in the
  host or database (a password holding ``@`` or ``/``), a port that is not a number, a query
  parameter without ``=``; a password's ``@``, ``/``, ``?``, ``#`` are written ``%40``,
  ``%2F``, ``%3F``, ``%23``.

:func:`redact` hides a password however it is written: libpq ends the user name and password
at the first ``@`` (when no ``/`` comes before it), so ``#`` and ``?`` may be part of it; here
everything from the first ``:`` after ``//`` to the *last* ``@`` is hidden, which is libpq's
password and more (a query holding an ``@`` hides more than the password). Query parameters
and keywords named ``…password`` (``password``, ``sslpassword``, percent-encoded or not) are
hidden too, and a port that is no number (``postgresql://user:password`` without a host).
A name without ``//`` that reads like ``user:password@host`` (``u:pw@h/db``, a SQLite path
then) is shown with that password hidden as well.
"""

from __future__ import annotations

import difflib
import re
from urllib.parse import unquote

from ..errors import StoreError

__all__ = ["checked_name", "is_postgres_url", "redact", "scrub"]

_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
#: From the first ":" after "//" (or after a "postgresql" missing its "://") to the last "@".
_USERINFO_PASSWORD = re.compile(
    r"((?:^\s*postgres(?:ql)?(?::|//)|://)[^:]*:)(.*)(@)", re.IGNORECASE | re.DOTALL
)
#: Without "//": ``user:password@host``, ``scheme:/user:password@host``, ``a/u:pw@h`` (no file
#: name anyone means; shown this way should one reach SQLite's messages), to the last "@".
_BARE_USERINFO = re.compile(r"((?:^\s*|/)[\w+.\-]+:)(.*)(@)", re.DOTALL)
#: A URL query parameter (its name is checked once percent-decoded); the value runs to "&".
_QUERY_PASSWORD = re.compile(r"([?&]([^=&]*)=)([^&]*)")
#: A libpq keyword (``password=…``, ``sslpassword='…'``) in a keyword string.
_KEYWORD_PASSWORD = re.compile(
    r"((?:^|\s)\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE
)
#: A host and its port, in the hosts of a URL (``h1:5432,[::1]:5433``).
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:,\[]*):([^,]*)")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]+)://")
_NO_SLASHES = re.compile(r"^\s*(postgres(?:ql)?)(?::(?!//)|//)", re.IGNORECASE)
_KEYWORD = re.compile(r"^\s*([A-Za-z_]+)\s*=")
_LIBPQ_KEYWORDS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "require_auth",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "requiressl",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
    }
)
_CHOICES = (
    "give a SQLite file path (invoices.db) or a PostgreSQL URL (postgresql://user@host/dbname)"
)


def is_postgres_url(db: object) -> bool:
    """Whether ``db`` names a PostgreSQL database (``postgresql://…`` or ``postgres://…``, the
    scheme in any case); :func:`checked_name` says whether it can be used."""
    return isinstance(db, str) and _URL.match(db) is not None


def _userinfo(name: str) -> re.Match[str] | None:
    """Where ``name``'s password is (group 2), if it has one: see the module docstring."""
    found = _USERINFO_PASSWORD.search(name)
    if found is None and "://" not in name:
        found = _BARE_USERINFO.search(name)
    return found


def _is_password(name: str) -> bool:
    return unquote(name).strip().lower().endswith("password")


def redact(name: str) -> str:
    """A database name as messages may show it: any password replaced by ``***``.

    Any name, not only a PostgreSQL URL: a refused one (``mysql://u:pw@h``, a keyword
    string) is shown this way too. A SQLite path comes back as it is, unless it reads like
    one (``user:password@host``, ``…password=…``).
    """
    shown, last = [], 0
    for start, end in _spans(name):
        shown += [name[last:start], "***"]
        last = end
    return "".join([*shown, name[last:]])


def _spans(name: str) -> list[tuple[int, int]]:
    """Where ``name``'s passwords are, each read of them together (merged, in order)."""
    userinfo = _userinfo(name)
    spans = [] if userinfo is None else [userinfo.span(2)]
    spans += [m.span(3) for m in _QUERY_PASSWORD.finditer(name) if _is_password(m.group(2))]
    spans += [m.span(2) for m in _KEYWORD_PASSWORD.finditer(name)]
    spans += _port_spans(name)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _port_spans(name: str) -> list[tuple[int, int]]:
    """Ports that are no number: a password without its host, which libpq reads as host and
    port (``postgresql://user:password``)."""
    hosts = re.search(r"(?:^\s*postgres(?:ql)?:/{0,2}|://)([^/?]*)", name, re.IGNORECASE)
    if hosts is None:
        return []
    start = hosts.start(1) + hosts.group(1).rfind("@") + 1
    return [
        (start + m.start(2), start + m.end(2))
        for m in _HOST_PORT.finditer(name[start : hosts.end(1)])
        if m.group(2) and not m.group(2).isdigit()
    ]


def _secrets(url: str) -> list[str]:
    """Every password in ``url`` as it is written (:func:`redact`'s and libpq's reading)."""
    found = [url[start:end] for start, end in _spans(url)]
    libpq = _libpq_userinfo(url)
    if libpq is not None and ":" in libpq:
        found.append(libpq.split(":", 1)[1])
    return [*found, *(secret.strip("'") for secret in found)]


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's message) with the URL's passwords, if it has any, blanked out."""
    text = text.replace(url, redact(url))
    secrets = {s for secret in _secrets(url) for s in (secret, unquote(secret))}
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _libpq_userinfo(url: str) -> str | None:
    """The user name and password as libpq reads them: up to the first ``@``, if no ``/``
    comes before it."""
    if "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    end = re.search(r"[@/]", rest)
    return rest[: end.start()] if end and end.group() == "@" else None


def _misread(url: str) -> str | None:
    """Why libpq would read the PostgreSQL URL ``url`` otherwise than it looks (or None)."""
    rest = url.split("://", 1)[1]
    userinfo = _libpq_userinfo(url)
    if userinfo is not None:
        rest = rest[len(userinfo) + 1 :]
    head, _, query = rest.partition("?")
    hosts, _, path = head.partition("/")
    if "@" in hosts or "@" in path:
        return "an '@' in the host or database name"
    for host in re.sub(r"\[[^\]]*\]", "", hosts).split(","):
        port = host.rpartition(":")[2] if ":" in host else ""
        if port and not port.isdigit():
            return "a port that is not a number"
    if any(param and "=" not in param for param in query.split("&")):
        return "a query parameter without '='"
    return None


def _foreign(scheme: str, shown: str) -> str:
    """Why the ``scheme://`` URL ``shown`` is refused, and what to write instead."""
    low = scheme.lower()
    said = f"{shown!r}: no store for {scheme!r} URLs; {_CHOICES}"
    if low.startswith("postgres") and "+" in low:
        driver = scheme[scheme.index("+") :]
        return f"{said}. Drop the {driver!r} (SQLAlchemy's driver name): write postgresql://…"
    if low.startswith("sqlite"):
        return f"{said}. For SQLite give the file's path itself, not a {scheme}:// URL"
    close = difflib.get_close_matches(low, ["postgresql", "postgres"], 1, 0.6)
    if close or "postgres" in low or low in {"pg", "pgsql", "psql"}:
        return f"{said}. Did you mean postgresql://…?"
    return said


def checked_name(db: str) -> str:
    """``db`` as a store opens it (a PostgreSQL URL's scheme lower-cased), once it is known
    not to be one of the names refused (see the module docstring).

    Raises:
        StoreError: naming the value (its password hidden), what is wrong and what to give.
    """
    shown = redact(db)
    scheme = _SCHEME.match(db)
    if scheme is not None:
        name = scheme.group(1)
        if name.lower() not in ("postgresql", "postgres"):
            raise StoreError(_foreign(name, shown))
        if db != db.strip():
            raise StoreError(
                f"{shown!r} has white space before or after it: remove it (a database name "
                f"is used as given, never stripped); {_CHOICES}"
            )
        url = name.lower() + db[len(name) :]
        why = _misread(url)
        if why is not None:
            raise StoreError(
                f"{shown!r}: PostgreSQL would read this URL otherwise than it looks "
                f"({why}); write '@' as %40, '/' as %2F, '?' as %3F and '#' as %23 in the "
                "user name and password: postgresql://user:password@host:port/dbname, or "
                "give a SQLite file path"
            )
        return url
    if "://" in db:
        hint = ". Did you mean postgresql://…?" if "postgres" in db.lower() else ""
        raise StoreError(f"{shown!r} holds '://' but is no URL a store takes; {_CHOICES}{hint}")
    if (missing := _NO_SLASHES.match(db)) is not None:
        raise StoreError(
            f"{shown!r} looks like a PostgreSQL URL without its '://' after "
            f"{missing.group(1)!r}; {_CHOICES}"
        )
    keyword = _KEYWORD.match(db)
    if keyword is not None and (
        keyword.group(1).lower() in _LIBPQ_KEYWORDS or re.search(r"\s", db.strip())
    ):
        raise StoreError(
            f"{shown!r} looks like a libpq keyword string (host=… dbname=…), which is not "
            f"taken here: write it as a URL; {_CHOICES}"
        )
    return db
