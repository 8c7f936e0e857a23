"""A PostgreSQL server for the tests: the one named by ``INVOICE_ENGINE_TEST_POSTGRES``, or a
throwaway cluster started from the PostgreSQL binaries installed on the machine.

A throwaway cluster lives in a temporary folder, listens on 127.0.0.1 on a free port, and is
stopped and deleted when the tests end; it is also what the server-restart fault test restarts
(never the shared server of the machine). PostgreSQL refuses to run as root: as root, the
cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ENV = "INVOICE_ENGINE_TEST_POSTGRES"
HOW = (
    f"set {ENV}=postgresql://USER@HOST:PORT/DATABASE (a database the tests may create "
    "schemas in), or install the PostgreSQL server binaries (initdb, pg_ctl) so the tests "
    "start a throwaway cluster, and pip install -e '.[dev]'"
)


def binary(name: str) -> str | None:
    """The path of a PostgreSQL program, on PATH or in Debian's versioned folders."""
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster (see the module docstring)."""

    def __init__(self) -> None:
        initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self._pg_ctl = pg_ctl
        self._as: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="invoice-engine-pg-"))
        if os.geteuid() == 0:  # initdb and postgres refuse root
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root, and there is no postgres user") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root, and runuser is not installed")
            self._as = [runuser, "-u", "postgres", "--"]
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.data = self.folder / "data"
        self.port = _free_port()
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-500:]}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(self._pg_ctl, "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
