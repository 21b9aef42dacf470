"""Incremental server-sent-events splitter that keeps each event's raw bytes.

Written here rather than taken from a library (httpx-sse, sseclient, aiohttp-sse-client)
because those hand out decoded fields only, and the relay must forward every event
byte for byte as the provider sent it. Splitting follows the SSE spec: lines end in
CRLF, LF or CR, an empty line ends an event. A CR at the end of the buffer is held back
until the next byte shows whether it was half of a CRLF, so every way of cutting the
stream into chunks yields the same events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Two line ends in a row: the first ends the last field line, the second is the empty
# line. A lone CR is only a line end when no LF follows it.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    raw: bytes
    event: str | None
    data: str | None  # the data lines joined with "\n"; None when the event has none


class SseSplitter:
    """``feed`` bytes, get complete events back; ``finish`` flushes a last partial one."""

    __slots__ = ("_buf", "_scan_from")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan_from = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buf += chunk
        events: list[SseEvent] = []
        start = 0
        pos = self._scan_from
        while True:
            match = _EVENT_END.search(self._buf, pos)
            if match is None:
                break
            end = match.end()
            if self._buf[end - 1] == 0x0D and end == len(self._buf):
                break  # maybe the CR of a CRLF: wait for the next byte
            events.append(parse_event(bytes(self._buf[start:end])))
            start = pos = end
        if start:
            del self._buf[:start]
        # Resume a little before the end: a boundary may straddle the chunks.
        self._scan_from = max(0, len(self._buf) - 3)
        return events

    def finish(self) -> list[SseEvent]:
        """The bytes after the last complete event, as one event (the stream ended)."""
        if not self._buf:
            return []
        raw = bytes(self._buf)
        self._buf.clear()
        self._scan_from = 0
        return [parse_event(raw)]

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)


def parse_event(raw: bytes) -> SseEvent:
    event: str | None = None
    data: list[str] = []
    for line in _LINE_END.split(raw):
        if not line or line[0] == 0x3A:  # empty, or a ":" comment
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return SseEvent(raw, event, "\n".join(data) if data else None)


def encode_event(data: str, event: str | None = None) -> bytes:
    """One SSE event as bytes, ending in its empty line."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()
