"""Webhook secrets, by provider, read at run time and never shown.

A chart says how a provider signs its deliveries; the keys come from the environment or a
file, so charts stay publishable and secrets stay out of them. One variable per provider,
``INVOICE_ENGINE_SECRET_<PROVIDER>`` (the provider's name upper-cased:
``INVOICE_ENGINE_SECRET_MODERN_TREASURY``), its value one secret or several separated by commas
(while a provider rotates its secret, list the old and the new: a delivery signed with either
passes). Blanks around each secret are dropped, empty items ignored; a variable with nothing in
it counts as unset. A comma separates secrets, so a secret with a comma in it (a password you
chose) is quoted, '…' or "…": inside quotes a comma, a blank or a ``#`` is part of the secret
(``"pa,ss",'old'`` is two secrets). In code, ``Secrets({"moxie": "pa,ss"})`` is one secret.

The secrets file has the same variables, one per line, in the ``.env`` style::

    # Stripe: the endpoint's signing secret (whsec_…); two while rotating
    INVOICE_ENGINE_SECRET_STRIPE=whsec_new,whsec_old
    export INVOICE_ENGINE_SECRET_CHARGEOVER="the key"

Blank lines and ``#`` comment lines are skipped; ``export`` is optional; each secret may be
quoted ('…' or "…", taken as written, no escapes). A line that is not ``NAME=VALUE``, a variable
that is not ``INVOICE_ENGINE_SECRET_<PROVIDER>``, an unquoted secret with a space inside it (a
trailing comment, most likely), unmatched quotes or a variable given twice is refused, naming
the file and the line and never the value.

Who may read and write the file (POSIX; ``check_permissions=False`` skips this for a file whose
access is controlled otherwise), as ssh judges a private key, with one allowance:

- a file of the user that runs the engine must be that user's alone (``chmod 600``, or 400):
  any access for its group or others is refused;
- a file of root's, read by another user, may be readable by others — that is how the process
  reads it: a Kubernetes secret volume (root's, mode 0644 unless ``defaultMode`` says
  otherwise, 0440 with an ``fsGroup``), a Docker secret (0444) — but no one but root may
  write it, or they could choose the secrets;
- a file of anyone else's is refused: its owner could change the secrets.

Precedence (:meth:`Secrets.load`, :meth:`Secrets.merged`): a provider set in the environment
takes its secrets from there only; the file's line for it is ignored. So a deployment can
override one provider's secret without editing the file.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..chart.spec import PROVIDER_NAME
from ..errors import SecretsError

__all__ = ["ENV_PREFIX", "Secrets", "SecretsLike", "env_name", "permission_problem", "secrets_for"]

#: The variables secrets are read from: this, then the provider's name upper-cased.
ENV_PREFIX = "INVOICE_ENGINE_SECRET_"
_PROVIDER = re.compile(PROVIDER_NAME)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHOWABLE = re.compile(r"[A-Z][A-Z0-9_]*")  # a variable's name, not a piece of a secret


def env_name(provider: str) -> str:
    """The variable a provider's secrets are read from: ``INVOICE_ENGINE_SECRET_STRIPE``."""
    return ENV_PREFIX + provider.upper()


def _split(
    value: str, name: str, source: str, line: int | None = None, *, blanks: bool = True
) -> tuple[str, ...]:
    """The secrets of a variable's ``value``: comma-separated, each without the blanks around
    it, or in quotes and as written (a comma inside is part of it); empty ones left out.

    Raises:
        SecretsError: unmatched quotes, text after a closing quote, or (not ``blanks``: a file)
            an unquoted secret with a blank inside.
    """
    comment = "; a comment goes on a line of its own" if line is not None else ""
    found: list[str] = []
    rest = value
    while True:
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote, end = rest[0], rest.find(rest[0], 1)
            if end < 0:
                raise SecretsError(
                    source, f"the value of {name} has unmatched {quote} quotes{comment}", line=line
                )
            item, rest = rest[1:end], rest[end + 1 :].lstrip()
            if rest[:1] not in ("", ","):
                raise SecretsError(
                    source,
                    f"the value of {name} has text after a quoted secret (secrets are separated "
                    f"by commas){comment}",
                    line=line,
                )
        else:
            item, comma, tail = rest.partition(",")
            item, rest = item.strip(), comma + tail
            if not blanks and any(c.isspace() for c in item):
                raise SecretsError(
                    source,
                    f"the value of {name} has a space inside a secret: quote the secret if the "
                    "space is part of it; a comment goes on a line of its own",
                    line=line,
                )
        if item.strip():
            found.append(item)
        if not rest:
            return tuple(found)
        rest = rest[1:]  # the comma


def permission_problem(source: str, mode: int, owner: int, me: int) -> str | None:
    """Why a secrets file of ``mode`` (its permission bits), owned by user ``owner``, must not
    be read by user ``me`` (see the module's description); ``None`` when it may."""
    if owner == me:
        if not mode & 0o077:
            return None
        return (
            f"other users can access this file (mode {mode:04o}): it holds secrets; run "
            f"`chmod 600 {source}` (a Kubernetes secret volume: `defaultMode: 0400`)"
        )
    if owner == 0:
        if not mode & 0o022:
            return None  # root's and written by root alone: a platform's mount, read as others
        return (
            f"users other than root can change this file (mode {mode:04o}), and so the secrets "
            f"deliveries are checked with: run `chmod go-w {source}`"
        )
    return (
        f"the file belongs to user {owner}, not to this user ({me}) or root, and its owner "
        "could change the secrets: `chown` it to the user that runs invoice-engine and "
        f"`chmod 600 {source}`"
    )


class Secrets:
    """Webhook secrets by provider; several per provider while one is being rotated.

    Build one from the environment (:meth:`from_env`), a file (:meth:`from_file`), both
    (:meth:`load`), or a mapping (``Secrets({"stripe": ["whsec_new", "whsec_old"]})``; in code
    a string is one secret, never split at commas). ``repr()`` and ``str()`` name the
    providers and how many secrets each has, never a secret.

    Raises:
        SecretsError: a name that is not a provider's (lower-case letters, digits, ``_``).
    """

    __slots__ = ("_by_provider",)

    def __init__(self, secrets: Mapping[str, str | Iterable[str]] | None = None) -> None:
        by_provider: dict[str, tuple[str, ...]] = {}
        for provider, value in (secrets or {}).items():
            if not isinstance(provider, str) or not _PROVIDER.match(provider):
                raise SecretsError(
                    "Secrets",
                    f"{provider!r} is not a provider name (lower-case letters, digits and _, "
                    "starting with a letter)",
                )
            items = (value,) if isinstance(value, str) else tuple(value)
            if not all(isinstance(item, str) for item in items):
                raise SecretsError("Secrets", f"the secrets for {provider!r} must be strings")
            kept = tuple(item for item in items if item.strip())
            if kept:
                by_provider[provider] = kept
        self._by_provider = by_provider

    # --------------------------------------------------------------------------- reading

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        """The secrets in ``INVOICE_ENGINE_SECRET_<PROVIDER>`` variables of ``environ``
        (default: the process environment).

        Raises:
            SecretsError: a variable with the prefix that names no provider, or whose value
                has unmatched quotes.
        """
        environ = os.environ if environ is None else environ
        found: dict[str, tuple[str, ...]] = {}
        for name, value in environ.items():
            if not name.upper().startswith(ENV_PREFIX):
                continue
            provider = name[len(ENV_PREFIX) :].lower()
            if not _PROVIDER.match(provider):
                raise SecretsError(
                    "environment",
                    f"{name} names no provider: after {ENV_PREFIX} comes a provider's name, "
                    "upper-cased (INVOICE_ENGINE_SECRET_MODERN_TREASURY)",
                )
            if items := _split(value, name, "environment"):
                found[provider] = items
        return cls(found)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, check_permissions: bool = True) -> Secrets:
        """The secrets in an env-style file (see the module's description).

        Args:
            path: the file.
            check_permissions: refuse a file others could read or change (the default; see
                the module's description).

        Raises:
            SecretsError: the file can't be read, others could read or change it, or a line
                is wrong; naming the file and line, never a value.
        """
        source = str(path)
        try:
            st = os.stat(path)
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise SecretsError(source, f"can't read the file: {exc.strerror or exc}") from None
        if check_permissions and os.name == "posix":
            mode = stat.S_IMODE(st.st_mode)
            if problem := permission_problem(source, mode, st.st_uid, os.geteuid()):
                raise SecretsError(source, problem)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SecretsError(source, "not UTF-8 text") from None
        return cls(_parse(text, source))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        check_permissions: bool = True,
    ) -> Secrets:
        """The secrets of a file (if ``path``) and of the environment; for a provider in
        both, the environment's alone.

        Raises:
            SecretsError: as :meth:`from_file` and :meth:`from_env`.
        """
        env = cls.from_env(environ)
        if path is None:
            return env
        return cls.from_file(path, check_permissions=check_permissions).merged(env)

    # --------------------------------------------------------------------------- using

    def secrets(self, provider: str) -> tuple[str, ...]:
        """The provider's secrets (several while rotating); empty when it has none."""
        return self._by_provider.get(provider, ())

    def providers(self) -> list[str]:
        """The providers that have at least one secret, sorted."""
        return sorted(self._by_provider)

    def __contains__(self, provider: object) -> bool:
        return provider in self._by_provider

    def __bool__(self) -> bool:
        return bool(self._by_provider)

    def merged(self, other: Secrets) -> Secrets:
        """These secrets, with each provider ``other`` has taking ``other``'s instead (so
        ``file.merged(env)``: the environment wins)."""
        return Secrets({**self._by_provider, **other._by_provider})

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{p}: {len(s)} secret{'s' if len(s) != 1 else ''}"
            for p, s in sorted(self._by_provider.items())
        )
        return f"Secrets({shown or 'none'})"

    __str__ = __repr__


#: Secrets by provider, as the engine's functions take them: a :class:`Secrets`, or a mapping
#: of provider to its secret or secrets (``{"stripe": ["whsec_new", "whsec_old"]}``).
SecretsLike = Secrets | Mapping[str, str | Sequence[str]]


def secrets_for(provider: str, secrets: SecretsLike | str | Sequence[str]) -> tuple[bytes, ...]:
    """The provider's secrets as keys (UTF-8, without surrounding blanks; blank ones left out)
    from ``secrets`` by provider, or from ``secrets`` when it is the provider's own.

    Raises:
        TypeError: ``secrets`` is none of those (bytes, a list of bytes).
    """
    if isinstance(secrets, Secrets):
        found = secrets.secrets(provider)
    elif isinstance(secrets, Mapping):  # {provider: secret or secrets}, as Secrets(...) takes
        found = Secrets(secrets).secrets(provider)
    elif isinstance(secrets, str):
        found = (secrets,)
    else:
        found = tuple(secrets)
        if not all(isinstance(s, str) for s in found):
            raise TypeError("secrets: give a Secrets, a mapping, a string or a list of strings")
    return tuple(s.strip().encode("utf-8") for s in found if s.strip())


def _parse(text: str, source: str) -> dict[str, tuple[str, ...]]:
    """The provider -> secrets of an env-style file's text."""
    found: dict[str, tuple[str, ...]] = {}
    first: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"export\s", line):
            line = line[len("export") :].lstrip()
        name, eq, value = line.partition("=")
        name = name.strip()
        if not eq or not _NAME.fullmatch(name):
            raise SecretsError(
                source,
                "expected NAME=VALUE (INVOICE_ENGINE_SECRET_STRIPE=whsec_…), a # comment or a "
                "blank line; the line is not shown, as it may hold a secret",
                line=n,
            )
        provider = _provider(name, source, n)
        if provider in first:
            raise SecretsError(
                source,
                f"{name} is set again (first on line {first[provider]}): give several "
                "secrets on one line, separated by commas",
                line=n,
            )
        first[provider] = n
        items = _split(value, name, source, n, blanks=False)
        if not items:  # in a file a line is written on purpose: an empty one is a mistake
            raise SecretsError(
                source, f"{name} is empty: give its secret, or delete the line", line=n
            )
        found[provider] = items
    return found


def _provider(name: str, source: str, line: int) -> str:
    """The provider a variable of the file is for; refused when it is not ours."""
    if name.upper().startswith(ENV_PREFIX):
        provider = name[len(ENV_PREFIX) :].lower()
        if _PROVIDER.match(provider):
            return provider
        problem = f"{name} names no provider: after {ENV_PREFIX} comes a provider's name"
        raise SecretsError(source, problem, line=line)
    if _SHOWABLE.fullmatch(name):
        # A misspelled prefix (INVOICE_ENGINE_SECRETS_STRIPE): the split that reads most like it.
        ratio, at = max(
            (difflib.SequenceMatcher(None, name[:i], ENV_PREFIX).ratio(), i)
            for i in range(1, len(name))
        )
        rest = name[at:]
        meant = f" (did you mean {ENV_PREFIX}{rest}?)" if ratio >= 0.85 and rest else ""
        what = f"unknown variable {name}{meant}"
    else:
        what = "a variable that is not ours (its name is not shown: it may be part of a secret)"
    raise SecretsError(
        source,
        f"{what}; a secrets file holds only {ENV_PREFIX}<PROVIDER> variables",
        line=line,
    )
