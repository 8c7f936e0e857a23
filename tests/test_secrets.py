"""Secrets: from the environment and from a file, rotation, precedence, and never shown.

The file format is ``.env``-like (comments, blank lines, ``export``, quotes); every mistake is
refused with the file and the line, never the value; a file others could read or change is
refused, but for root's read-only mounts (Kubernetes, Docker) read by another user. A comma
separates rotated secrets; inside quotes it is part of the secret.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from engine import Secrets, SecretsError
from engine.runtime._secrets import env_name, permission_problem

SECRET = "whsec_Zq8LmNp3RsTu"


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _error(tmp_path: Path, text: str) -> SecretsError:
    path = _file(tmp_path, text)
    with pytest.raises(SecretsError) as info:
        Secrets.from_file(path)
    err = info.value
    assert str(path) in str(err)
    assert SECRET not in str(err)
    assert SECRET not in repr(err)
    return err


# ---------------------------------------------------------------------------- environment


def test_env_names() -> None:
    assert env_name("modern_treasury") == "INVOICE_ENGINE_SECRET_MODERN_TREASURY"
    assert env_name("stripe") == "INVOICE_ENGINE_SECRET_STRIPE"


def test_from_env_reads_each_provider_and_splits_rotations() -> None:
    env = {
        "INVOICE_ENGINE_SECRET_STRIPE": f" {SECRET} , whsec_old ,, ",
        "INVOICE_ENGINE_SECRET_MODERN_TREASURY": "mt",
        "INVOICE_ENGINE_SECRET_PELCRO": "  ",  # blank: as if unset
        "INVOICE_ENGINE_DB": "x.db",
        "PATH": "/bin",
    }
    secrets = Secrets.from_env(env)
    assert secrets.providers() == ["modern_treasury", "stripe"]
    assert secrets.secrets("stripe") == (SECRET, "whsec_old")
    assert secrets.secrets("modern_treasury") == ("mt",)
    assert secrets.secrets("pelcro") == ()
    assert "stripe" in secrets
    assert "pelcro" not in secrets
    assert secrets
    assert not Secrets.from_env({})


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICE_ENGINE_SECRET_UPMIND", "u1,u2")
    assert Secrets.from_env().secrets("upmind") == ("u1", "u2")


@pytest.mark.parametrize("name", ["INVOICE_ENGINE_SECRET_", "INVOICE_ENGINE_SECRET_1X"])
def test_from_env_refuses_a_variable_that_names_no_provider(name: str) -> None:
    with pytest.raises(SecretsError) as info:
        Secrets.from_env({name: SECRET})
    assert name in str(info.value)
    assert SECRET not in str(info.value)


# ---------------------------------------------------------------------------------- file


def test_from_file_reads_the_env_file_format(tmp_path: Path) -> None:
    text = f"""\ufeff# the secrets of this deployment

INVOICE_ENGINE_SECRET_STRIPE={SECRET},whsec_old
export INVOICE_ENGINE_SECRET_CHARGEOVER="a key with spaces"
  export\tINVOICE_ENGINE_SECRET_MOXIE = 'user:pa#ss'
INVOICE_ENGINE_SECRET_UPMIND=u1, u2
"""
    secrets = Secrets.from_file(_file(tmp_path, text))
    assert secrets.providers() == ["chargeover", "moxie", "stripe", "upmind"]
    assert secrets.secrets("stripe") == (SECRET, "whsec_old")
    assert secrets.secrets("chargeover") == ("a key with spaces",)
    assert secrets.secrets("moxie") == ("user:pa#ss",)
    assert secrets.secrets("upmind") == ("u1", "u2")


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (f"# ok\n{SECRET}\n", 2, "expected NAME=VALUE"),
        ("\nINVOICE_ENGINE_SECRET_PELCRO=\n", 2, "INVOICE_ENGINE_SECRET_PELCRO is empty"),
        ('INVOICE_ENGINE_SECRET_PELCRO=""\n', 1, "INVOICE_ENGINE_SECRET_PELCRO is empty"),
        (f"INVOICE_ENGINE_SECRET_STRIPE={SECRET}\nnot a line\n", 2, "expected NAME=VALUE"),
        (f"STRIPE_SECRET={SECRET}\n", 1, "unknown variable STRIPE_SECRET;"),
        (f"INVOICE_ENGIN_SECRET_UPMIND={SECRET}\n", 1, "mean INVOICE_ENGINE_SECRET_UPMIND?"),
        (
            f"INVOICE_ENGINE_SECRETS_STRIPE={SECRET}\n",
            1,
            "(did you mean INVOICE_ENGINE_SECRET_STRIPE?)",
        ),
        (f"whsec_abc={SECRET}\n", 1, "its name is not shown"),
        (f"INVOICE_ENGINE_SECRET_9={SECRET}\n", 1, "names no provider"),
        (
            f"INVOICE_ENGINE_SECRET_STRIPE=a\n\nINVOICE_ENGINE_SECRET_STRIPE={SECRET}\n",
            3,
            "set again (first on line 1)",
        ),
        (f'INVOICE_ENGINE_SECRET_STRIPE="{SECRET}\n', 1, 'unmatched " quotes'),
        (f"INVOICE_ENGINE_SECRET_STRIPE='{SECRET}\"\n", 1, "unmatched ' quotes"),
        (f"INVOICE_ENGINE_SECRET_STRIPE={SECRET} # rotated in May\n", 1, "a space inside"),
        (f'INVOICE_ENGINE_SECRET_STRIPE="{SECRET}" # rotated\n', 1, "text after a quoted"),
        (f"INVOICE_ENGINE_SECRET_STRIPE=whsec_old,'{SECRET}\n", 1, "unmatched ' quotes"),
    ],
)
def test_a_wrong_line_is_refused_with_its_line_never_its_value(
    tmp_path: Path, text: str, line: int, says: str
) -> None:
    err = _error(tmp_path, text)
    assert err.line == line
    assert f"secrets.env:{line}: " in str(err)
    assert says in str(err), str(err)
    assert "whsec_abc" not in str(err)


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    path = _file(tmp_path, f"INVOICE_ENGINE_SECRET_STRIPE={SECRET}\n", mode=0o644)
    with pytest.raises(SecretsError) as info:
        Secrets.from_file(path)
    assert "mode 0644" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)
    assert Secrets.from_file(path, check_permissions=False).secrets("stripe") == (SECRET,)
    path.chmod(0o640)
    with pytest.raises(SecretsError):
        Secrets.from_file(path)
    path.chmod(0o400)
    assert Secrets.from_file(path).secrets("stripe") == (SECRET,)


def test_a_missing_or_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="can't read the file"):
        Secrets.from_file(tmp_path / "nope.env")
    path = tmp_path / "bin.env"
    path.write_bytes(b"\xff\xfe\x00")
    path.chmod(0o600)
    with pytest.raises(SecretsError, match="not UTF-8"):
        Secrets.from_file(path)


# ------------------------------------------------------------------ precedence and display


def test_load_the_environment_wins_per_provider(tmp_path: Path) -> None:
    path = _file(
        tmp_path, "INVOICE_ENGINE_SECRET_STRIPE=from_file\nINVOICE_ENGINE_SECRET_UPMIND=u_file\n"
    )
    env = {"INVOICE_ENGINE_SECRET_STRIPE": "from_env_new,from_env_old"}
    secrets = Secrets.load(path, environ=env)
    assert secrets.secrets("stripe") == ("from_env_new", "from_env_old")
    assert secrets.secrets("upmind") == ("u_file",)
    assert Secrets.load(environ=env).providers() == ["stripe"]
    merged = Secrets.from_file(path).merged(Secrets.from_env(env))
    assert merged.secrets("stripe") == secrets.secrets("stripe")


def test_secrets_never_show_their_values() -> None:
    secrets = Secrets({"stripe": [SECRET, "whsec_old"], "moxie": "m0xie-token"})
    for text in (repr(secrets), str(secrets), f"{secrets}", f"{secrets!r}"):
        assert text == "Secrets(moxie: 1 secret, stripe: 2 secrets)"
    assert repr(Secrets()) == "Secrets(none)"
    assert not hasattr(secrets, "__dict__")
    back = pickle.loads(pickle.dumps(secrets))  # a copy, for a worker process, keeps them
    assert back.secrets("stripe") == (SECRET, "whsec_old")


def test_in_code_a_string_is_one_secret_and_names_are_checked() -> None:
    assert Secrets({"stripe": "a,b"}).secrets("stripe") == ("a,b",)
    assert Secrets({"stripe": ["a", " ", ""]}).secrets("stripe") == ("a",)
    with pytest.raises(SecretsError, match="'Stripe' is not a provider name"):
        Secrets({"Stripe": "x"})
    with pytest.raises(SecretsError, match="must be strings"):
        Secrets({"stripe": [b"x"]})  # type: ignore[list-item]


# ---------------------------------------------------------------------- commas and quotes


def test_a_comma_separates_secrets_but_inside_quotes_it_is_part_of_one(tmp_path: Path) -> None:
    """A comma would split a secret in two, each weaker than the whole: quote it."""
    text = """INVOICE_ENGINE_SECRET_MOXIE="user:pa,ss w", 'old#1',new
INVOICE_ENGINE_SECRET_STRIPE='a,b'
INVOICE_ENGINE_SECRET_UPMIND=a,b
"""
    secrets = Secrets.from_file(_file(tmp_path, text))
    assert secrets.secrets("moxie") == ("user:pa,ss w", "old#1", "new")
    assert secrets.secrets("stripe") == ("a,b",)
    assert secrets.secrets("upmind") == ("a", "b")
    env = Secrets.from_env(
        {
            "INVOICE_ENGINE_SECRET_MOXIE": ' "user:pa,ss" , old',
            "INVOICE_ENGINE_SECRET_UPMIND": "a,b",
            "INVOICE_ENGINE_SECRET_PELCRO": "it's, fine",  # a quote inside is not quoting
        }
    )
    assert env.secrets("moxie") == ("user:pa,ss", "old")
    assert env.secrets("upmind") == ("a", "b")
    assert env.secrets("pelcro") == ("it's", "fine")


def test_unmatched_quotes_in_the_environment_are_refused_never_shown() -> None:
    with pytest.raises(SecretsError) as info:
        Secrets.from_env({"INVOICE_ENGINE_SECRET_MOXIE": f'"{SECRET}'})
    err = info.value
    assert (err.source, err.line) == ("environment", None)
    assert 'the value of INVOICE_ENGINE_SECRET_MOXIE has unmatched " quotes' in str(err)
    assert SECRET not in str(err)
    assert "comment" not in str(err)  # (that hint is for a file's line)


# ------------------------------------------------------------------------ who may read it


@pytest.mark.parametrize(
    ("mode", "owner", "me", "says"),
    [
        (0o600, 1000, 1000, None),
        (0o400, 1000, 1000, None),
        (0o644, 1000, 1000, "other users can access this file (mode 0644)"),
        (0o640, 1000, 1000, "other users can access this file (mode 0640)"),
        (0o604, 0, 0, "other users can access this file (mode 0604)"),  # root's, read by root
        (0o600, 0, 0, None),
        # root's and written by root alone, read by another user: a platform's mount
        (0o644, 0, 1000, None),  # a Kubernetes secret volume's default
        (0o440, 0, 1000, None),  # Kubernetes with defaultMode: 0400 and an fsGroup
        (0o444, 0, 1000, None),  # a Docker secret
        (0o664, 0, 1000, "users other than root can change this file (mode 0664)"),
        (0o646, 0, 1000, "users other than root can change this file (mode 0646)"),
        (0o600, 1001, 1000, "the file belongs to user 1001, not to this user (1000) or root"),
        (0o400, 1001, 0, "the file belongs to user 1001, not to this user (0) or root"),
    ],
)
def test_who_may_read_and_write_a_secrets_file(
    mode: int, owner: int, me: int, says: str | None
) -> None:
    problem = permission_problem("s.env", mode, owner, me)
    if says is None:
        assert problem is None
        return
    assert problem is not None
    assert problem.startswith(says), problem
    if owner == me:
        assert "run `chmod 600 s.env` (a Kubernetes secret volume: `defaultMode: 0400`)" in problem


def test_the_file_is_judged_for_the_process_effective_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    path = _file(tmp_path, f"INVOICE_ENGINE_SECRET_STRIPE={SECRET}\n", mode=0o644)
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 4242)  # the engine runs as another user
    if owner == 0:  # (the tests run as root) root's 0644 file, as Kubernetes mounts a secret
        assert Secrets.from_file(path).secrets("stripe") == (SECRET,)
        path.chmod(0o664)
        with pytest.raises(SecretsError, match=r"users other than root can change this file"):
            Secrets.from_file(path)
    else:
        with pytest.raises(SecretsError, match=rf"the file belongs to user {owner}, not to"):
            Secrets.from_file(path)
    assert Secrets.from_file(path, check_permissions=False).secrets("stripe") == (SECRET,)
