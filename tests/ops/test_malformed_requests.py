"""A request aiohttp cannot parse never has its bytes echoed back or logged.

The probe: ``x-api-key: sk_cynsta_live_SECRET\\x00SECRET`` on a raw socket came back in the 400
body (``Invalid header value char: b'x-api-key: sk_…'``) and was logged in a traceback. Every
variant here carries the key in the broken line; neither the answer nor any log record (message,
arguments, traceback) may contain it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import pytest

from spendguard_proxy.server.runner import MALFORMED_REQUEST

SECRET = b"sk_cynsta_live_SECRET0123456789abcdef"
WAIT_S = 10

MALFORMED = {
    "NUL in a header value": b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key: " + SECRET + b"\x00"
                             + SECRET + b"\r\n\r\n",
    "bare CR in a header value": b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key: " + SECRET + b"\r"
                                 + SECRET + b"\r\n\r\n",
    "bare LF splitting a header": b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key: " + SECRET + b"\n"
                                  + SECRET + b"\r\n\r\n",
    "folded header line": b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key: " + SECRET + b"\r\n "
                          + SECRET + b"\r\n\r\n",
    "key in a header name": b"GET / HTTP/1.1\r\nHost: x\r\n" + SECRET + b"(): v\r\n\r\n",
    "NUL in the request line": b"GET /v1/agents?key=" + SECRET + b"\x00 HTTP/1.1\r\n"
                               b"Host: x\r\n\r\n",
    "header line too long": b"GET / HTTP/1.1\r\nHost: x\r\nx-api-key: " + SECRET
                            + b"A" * 9000 + b"\r\n\r\n",
    "bad chunk size": b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/json\r\n\r\n" + SECRET + b"\r\n",
}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _send(url: str, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    try:
        writer.write(raw)
        chunks = []
        try:
            async with asyncio.timeout(WAIT_S):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)
    finally:
        writer.close()


def _logged_text(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            parts.extend(traceback.format_exception(record.exc_info[1]))
        parts.extend(filter(None, (record.exc_text, record.stack_info)))
    return "\n".join(parts)


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_the_answer_and_the_log_never_carry_the_broken_line(proxy_url, caplog, raw):
    caplog.set_level(logging.DEBUG)
    answer = await _send(proxy_url, raw)
    await asyncio.sleep(0.05)  # let the server finish logging
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer[:200]
    assert json.loads(body)["detail"] == MALFORMED_REQUEST
    assert b"SECRET" not in answer
    logged = _logged_text(caplog.records)
    assert "SECRET" not in logged
    assert "sk_cynsta" not in logged


async def test_a_body_broken_half_way_gets_400_at_once(proxy_url, caplog):
    """A bad chunk size after the handler started reading: aiohttp 3.14 queues its 400 behind
    the request and leaves the handler waiting for the rest of the body for ever."""
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(proxy_url))
    try:
        writer.write(b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/json\r\n\r\n1\r\n{\r\n")
        await asyncio.sleep(0.2)  # the handler is reading the body now
        writer.write(SECRET + b"\r\n")
        async with asyncio.timeout(WAIT_S):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in head, answer[:200]
    assert json.loads(body)["detail"] == MALFORMED_REQUEST
    assert "SECRET" not in _logged_text(caplog.records)


async def test_the_log_still_says_what_was_wrong(proxy_url, caplog):
    caplog.set_level(logging.INFO, logger="spendguard_proxy.server.runner")
    await _send(proxy_url, MALFORMED["NUL in a header value"])
    await asyncio.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "spendguard_proxy.server.runner"]
    assert any(line.startswith("malformed HTTP request from 127.0.0.1:") for line in lines), lines
