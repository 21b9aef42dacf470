"""Slow clients (DESIGN §13): a deadline on reading a request, a cap on open connections.

The probe that found them: a POST sending one byte every 20 s stayed open for 200 s and more,
and 1,100 half-open connections exhausted a process allowed 1,024 file descriptors. Here the
deadline is scaled down (1 s instead of 30 s, one byte every 0.25 s instead of every 20 s);
the last test replays the connection flood at full size against `spendguard serve`.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid

import pytest

from spendguard_proxy.settings import Settings
from tests.conftest import running_proxy
from tests.ops.conftest import ROOT, clean_env

TIMEOUT_S = 1.0
DRIP_INTERVAL_S = 0.25
WAIT_S = 10  # no step of these tests may take longer


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", _port(url))


async def _drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` one byte at a time, DRIP_INTERVAL_S apart."""
    for i in range(len(data)):
        await asyncio.sleep(DRIP_INTERVAL_S)
        writer.write(data[i:i + 1])


async def _until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took
    (a reset counts as closed: the server may close with our last bytes unread)."""
    started = time.monotonic()
    chunks = []
    try:
        async with asyncio.timeout(WAIT_S):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks), time.monotonic() - started


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.fixture(scope="module")
def quick(settings):
    return settings.model_copy(update={"client_body_timeout_s": TIMEOUT_S})


def test_the_defaults_leave_room_for_real_clients():
    defaults = Settings.model_fields
    assert defaults["client_body_timeout_s"].default == 30.0
    assert defaults["client_body_min_rate_bytes_per_s"].default == 8192
    assert defaults["client_max_connections"].default == 900


async def test_a_body_sent_one_byte_at_a_time_gets_408_at_the_deadline(quick, dsn):
    body = b'{"name": "slow-body-client"}'
    async with running_proxy(quick, dsn) as url:
        reader, writer = await _connect(url)
        writer.write(b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n{" % len(body))
        dripping = asyncio.create_task(_drip(writer, body[1:]))  # 7 s if never cut
        try:
            raw, elapsed_s = await _until_closed(reader)
        finally:
            dripping.cancel()
            writer.close()
    status, payload = _status_and_json(raw)
    assert status == 408
    assert "CAP_CLIENT_BODY_TIMEOUT_S" in payload["detail"]
    assert b"Connection: close" in raw
    # Cut at the deadline (1 s after the connection opened, plus 1 s per 8 KiB received),
    # though a byte arrived every 0.25 s: a total, not an idle timeout.
    assert TIMEOUT_S - 0.1 <= elapsed_s < TIMEOUT_S + 1.0, elapsed_s


async def test_headers_sent_one_byte_at_a_time_are_cut_at_the_deadline(quick, dsn):
    async with running_proxy(quick, dsn) as url:
        reader, writer = await _connect(url)
        writer.write(b"GET /health HTTP/1.1\r\n")
        dripping = asyncio.create_task(_drip(writer, b"x-slow: " + b"a" * 40 + b"\r\n\r\n"))
        try:
            raw, elapsed_s = await _until_closed(reader)
        finally:
            dripping.cancel()
            writer.close()
        # A connection that sends nothing at all is closed at the same deadline.
        reader, writer = await _connect(url)
        silent, silent_s = await _until_closed(reader)
        writer.close()
    assert raw == b"" and silent == b""  # no request was complete: nothing to answer
    assert TIMEOUT_S - 0.1 <= elapsed_s < TIMEOUT_S + 1.0, elapsed_s
    assert TIMEOUT_S - 0.1 <= silent_s < TIMEOUT_S + 1.0, silent_s


async def test_a_big_body_arriving_steadily_is_not_cut(quick, dsn):
    """1 MiB at about 320 KiB/s takes 3.2 s, three times the 1 s deadline: allowed, since it
    keeps up the minimum rate (here 256 KiB/s, so the deadline is 1 s + 4 s)."""
    steady = quick.model_copy(update={"client_body_min_rate_bytes_per_s": 256 * 1024})
    chunk_bytes, chunks = 64 * 1024, 16
    prefix = b'{"name": "steady-uploader", "padding": "'
    body = prefix + b"x" * (chunk_bytes * chunks - len(prefix) - 2) + b'"}'
    async with running_proxy(steady, dsn) as url:
        reader, writer = await _connect(url)
        writer.write(b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        started = time.monotonic()
        for i in range(chunks):
            writer.write(body[i * chunk_bytes:(i + 1) * chunk_bytes])
            await writer.drain()
            await asyncio.sleep(0.2)
        upload_s = time.monotonic() - started
        raw, _ = await _until_closed(reader)
        writer.close()
    assert upload_s > 3 * TIMEOUT_S
    status, payload = _status_and_json(raw)
    assert status == 200, payload
    uuid.UUID(payload["agent_id"])


async def test_connections_over_the_cap_get_503_and_open_ones_keep_working(settings, dsn):
    capped = settings.model_copy(update={"client_max_connections": 20})
    async with running_proxy(capped, dsn) as url:
        held = [await _connect(url) for _ in range(20)]
        try:
            started = time.monotonic()
            for _ in range(10):
                reader, writer = await _connect(url)
                raw, _ = await _until_closed(reader)
                writer.close()
                status, payload = _status_and_json(raw)
                assert status == 503 and payload["error"]["type"] == "server_busy"
                assert "CAP_CLIENT_MAX_CONNECTIONS" in payload["detail"]
            assert time.monotonic() - started < 2.0  # answered at once, not queued
            reader, writer = held[0]
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.readuntil(b'"ok"}'), WAIT_S)
            assert answer.startswith(b"HTTP/1.1 200 ")
            # Closing one makes room for one.
            held.pop()[1].close()
            await asyncio.sleep(0.2)
            reader, writer = await _connect(url)
            held.append((reader, writer))
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.readuntil(b'"ok"}'), WAIT_S)
            assert answer.startswith(b"HTTP/1.1 200 ")
        finally:
            for _, writer in held:
                writer.close()


FLOOD = 1_100
FD_LIMIT = 1_024


async def test_1100_half_open_connections_do_not_exhaust_a_1024_fd_serve(dsn):
    """The probe's flood at full size: `spendguard serve` limited to 1,024 descriptors, with
    the default cap (900). The connections past the cap get 503; an open one still answers;
    the process never runs out of descriptors; once the flood leaves, new clients get in."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < FLOOD + 200:
        pytest.skip("this test process needs more than 1,300 file descriptors")

    serve_with_fd_limit = (
        "import os, resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT}))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'spendguard_proxy.cli.main',"
        " 'serve', '--port', '0'])\n"
    )
    env = clean_env(CAP_DATABASE_URL=dsn, CAP_SWEEP_INTERVAL_SECONDS="3600")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", serve_with_fd_limit, env=env, cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    flood: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert " on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].split(",", 1)[0]
        for _ in range(FLOOD):
            flood.append(await asyncio.wait_for(_connect(url), WAIT_S))
        answers = await asyncio.wait_for(
            asyncio.gather(*(reader.read(100) for reader, _ in flood[900:])), WAIT_S)
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), set(answers)
        reader, writer = flood[0]  # admitted before the cap was reached
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b'"ok"}'), WAIT_S)).startswith(
            b"HTTP/1.1 200 ")
        for _, writer in flood:
            writer.close()
        flood.clear()
        await asyncio.sleep(0.5)
        reader, writer = await _connect(url)
        flood.append((reader, writer))
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b'"ok"}'), WAIT_S)).startswith(
            b"HTTP/1.1 200 ")
    finally:
        for _, writer in flood:
            writer.close()
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    assert "Too many open files" not in stderr and "out of system resource" not in stderr
    assert "connection cap reached" in stderr
