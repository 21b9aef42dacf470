"""Debian's PgBouncer (1.18) in transaction pooling mode in front of the session's database.

One ``pgbouncer`` process for this package on 127.0.0.1:<free port>, trust auth, pointing at the
test server (its TCP port, or the embedded server's Unix socket). The tests here run the
replica and concurrency suites through it: the ``pool`` fixture is overridden to SpendGuard's
server pool on ``CAP_DATABASE_POOLER_URL``, so every test function imported into this package
talks to the database through the pooler.

Without the binary the tests skip (``apt-get install pgbouncer``); CI installs it and sets
``CAP_TEST_REQUIRE_PGBOUNCER=1``, which turns a missing binary into a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from spendguard_proxy.db.pool import create_pool
from tests.faults.conftest import budgeted_agent, faults_pool, servers  # noqa: F401
from tests.relay.conftest import relay_settings  # noqa: F401

START_TIMEOUT_S = 10.0
# Server connections per database/user pair: fewer than the client connections the suites
# open (a proxy's pool is up to 20), so the pooler really multiplexes.
SERVER_POOL_SIZE = 8
# A second entry for the same database with pools of its own: its server connections start
# when a test first uses it (after the test changed the database's defaults).
PROBE_ALIAS = "sg_pooler_probe"
# The same database with exactly two server connections (tests/pgbouncer/test_pooler.py).
TWO_SERVERS_ALIAS = "sg_pooler_two"


def _binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):
        found = "/usr/sbin/pgbouncer"  # Debian's path, outside a non-root PATH
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def _server_address(server_dsn: str) -> tuple[str, int, str | None]:
    """(host, port, Unix socket directory or None) of the test's PostgreSQL."""
    parts = urlsplit(server_dsn)
    if parts.hostname:
        return parts.hostname, parts.port or 5432, None
    [directory] = parse_qs(parts.query)["host"]  # the embedded server: a socket only
    [sock] = Path(directory).glob(".s.PGSQL.*[0-9]")
    return directory, int(sock.name.rsplit(".", 1)[1]), directory


@dataclass
class Bouncer:
    port: int
    process: subprocess.Popen
    log_path: Path

    def url(self, dsn: str, database: str | None = None) -> str:
        """``dsn`` (user, database, options) through the pooler."""
        parts = urlsplit(dsn)
        user = parts.username or "postgres"
        path = f"/{database}" if database else parts.path
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("host="))
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{self.port}", path, query, ""))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logins(self, dsn: str) -> int:
        """Client connections the pooler accepted so far for ``dsn``'s database."""
        return self.log().count(f"login attempt: db={database_name(dsn)} ")


def _config(directory: Path, port: int, server_dsn: str, database: str) -> Path:
    host, server_port, _ = _server_address(server_dsn)
    parts = urlsplit(server_dsn)
    # Clients log in on trust; the password (if any) is what PgBouncer logs in to the server with.
    (directory / "userlist.txt").write_text(
        f'"{parts.username or "postgres"}" "{parts.password or ""}"\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"{PROBE_ALIAS} = host={host} port={server_port} dbname={database}\n"
        f"{TWO_SERVERS_ALIAS} = host={host} port={server_port} dbname={database} pool_size=2\n"
        f"* = host={host} port={server_port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        # The longest-idle server connection first, and at least two per pool: a client's
        # consecutive transactions land on different server connections, so anything that
        # relied on session state would fail here.
        "server_round_robin = 1\n"
        "min_pool_size = 2\n"
        f"default_pool_size = {SERVER_POOL_SIZE}\n"
        "max_client_conn = 500\n"
    )
    for path in (directory, ini, directory / "userlist.txt"):  # readable after -u (below)
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ini


def _run_as(server_dsn: str) -> list[str]:
    """PgBouncer refuses to run as root: then it runs as the owner of the embedded server's
    socket directory (so it may open the socket), or as nobody."""
    if os.geteuid() != 0:
        return []
    socket_dir = _server_address(server_dsn)[2]
    user = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name if socket_dir else "nobody"
    return ["-u", user]


def _wait_listening(bouncer: Bouncer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {bouncer.process.returncode}:\n"
                               f"{bouncer.log()}")
        with contextlib.suppress(OSError), socket.create_connection(
            ("127.0.0.1", bouncer.port), timeout=0.5
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer not listening in {START_TIMEOUT_S}s:\n{bouncer.log()}")


@pytest.fixture(scope="package")
def pgbouncer(server_dsn, dsn):
    binary = _binary()
    if binary is None:
        if os.environ.get("CAP_TEST_REQUIRE_PGBOUNCER"):
            pytest.fail("CAP_TEST_REQUIRE_PGBOUNCER is set but pgbouncer is not installed")
        pytest.skip("Debian's pgbouncer is not installed (apt-get install pgbouncer; .ci/run"
                    " installs it)")
    directory = Path(tempfile.mkdtemp(prefix="spendguard-pgbouncer-"))
    port = _free_port()
    ini = _config(directory, port, server_dsn, database_name(dsn))
    log_path = directory / "pgbouncer.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, *_run_as(server_dsn), str(ini)],
                                   stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT)
    bouncer = Bouncer(port, process, log_path)
    try:
        _wait_listening(bouncer)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="package")
def pooled_dsn(pgbouncer, dsn):
    """The session's database through the pooler."""
    return pgbouncer.url(dsn)


@pytest.fixture(scope="package")
def pooled_settings(settings, dsn, pooled_dsn):
    return settings.model_copy(update={"database_url": dsn, "database_pooler_url": pooled_dsn})


@pytest.fixture(scope="package")
async def pool(dsn, pooled_settings):
    """Overrides the session pool for this package: the server's pool, through the pooler.
    (Package scope: when the package is done, the pooler and its server connections are gone,
    and the rest of the session has the server's connection slots to itself.)"""
    p = await create_pool(dsn, pooled_settings)
    yield p
    await p.close()
