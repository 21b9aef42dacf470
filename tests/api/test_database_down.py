"""A database that cannot be reached gives 503 and /ready says so; nothing else breaks."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest

from tests.conftest import running_proxy


class Cuttable:
    """A TCP forwarder to the test database that can be cut and restored (asyncpg's fuzzer
    idea): the proxy's connections really break, as in a network or database outage."""

    def __init__(self, dsn: str) -> None:
        url = urlparse(dsn)
        self.socket_dir = parse_qs(url.query).get("host", [None])[0]
        self.target = (url.hostname or "127.0.0.1", url.port or 5432)
        self.database = url.path.lstrip("/")
        self.server: asyncio.AbstractServer | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def _open(self):
        if self.socket_dir and self.socket_dir.startswith("/"):
            return await asyncio.open_unix_connection(f"{self.socket_dir}/.s.PGSQL.5432")
        return await asyncio.open_connection(*self.target)

    async def _pipe(self, reader, writer):
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, client_reader, client_writer):
        up_reader, up_writer = await self._open()
        self.pipes |= {client_writer, up_writer}
        await asyncio.gather(self._pipe(client_reader, up_writer),
                             self._pipe(up_reader, client_writer))

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for writer in self.pipes:
            writer.transport.abort()
        self.pipes.clear()


@pytest.fixture
async def cuttable(dsn):
    forwarder = Cuttable(dsn)
    port = await forwarder.start()
    url = f"postgresql://postgres@127.0.0.1:{port}/{forwarder.database}"
    conn = await asyncpg.connect(url)  # the forwarder works before the test relies on it
    await conn.close()
    yield forwarder, url, port
    with contextlib.suppress(Exception):
        await forwarder.cut()


async def test_database_outage_gives_503_and_recovers(cuttable, settings, http):
    forwarder, url, port = cuttable
    quick = settings.model_copy(update={"db_command_timeout_s": 2.0})
    async with running_proxy(quick, url) as proxy:
        async with http.post(f"{proxy}/v1/agents", json={"name": "before"}) as r:
            assert r.status == 200
        await forwarder.cut()
        for path, method in (("/v1/agents", "post"), ("/v1/agents", "get")):
            async with http.request(method, proxy + path, json={}) as r:
                body = await r.json()
                assert r.status == 503, body
                assert body["error"]["type"] == "database_unavailable"
        async with http.get(f"{proxy}/ready") as r:
            ready = await r.json()
            assert r.status == 503 and ready["checks"]["database"].startswith("unavailable")
        async with http.get(f"{proxy}/health") as r:
            assert r.status == 200  # liveness is not readiness
        await forwarder.start(port)
        for _ in range(50):
            async with http.get(f"{proxy}/ready") as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.1)
        async with http.post(f"{proxy}/v1/agents", json={"name": "after"}) as r:
            assert r.status == 200
