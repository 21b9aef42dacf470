from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy.providers.sse import SseSplitter, parse_event

from .splits import chunkings, every_byte
from .streams import anthropic_stream, crlf, gemini_stream

FUZZ = settings(max_examples=150, deadline=None, database=None)


def _split_all(chunks: list[bytes]) -> list[bytes]:
    splitter = SseSplitter()
    raws = [event.raw for chunk in chunks for event in splitter.feed(chunk)]
    return raws + [event.raw for event in splitter.finish()]


def test_parses_fields_comments_and_multiline_data() -> None:
    event = parse_event(b': keep-alive\nevent: message_start\ndata: {"a":\ndata:1}\nid: 7\n\n')
    assert event.event == "message_start"
    assert event.data == '{"a":\n1}'


def test_event_keeps_its_raw_bytes_and_blank_line() -> None:
    splitter = SseSplitter()
    events = splitter.feed(b"data: 1\r\n\r\ndata: 2\n\ndata: 3\r\rda")
    assert [e.raw for e in events] == [b"data: 1\r\n\r\n", b"data: 2\n\n", b"data: 3\r\r"]
    assert [e.raw for e in splitter.feed(b"ta: 4\n\n")] == [b"data: 4\n\n"]


def test_cr_at_end_of_chunk_waits_for_the_next_byte() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: x\r\n\r") == []
    assert [e.raw for e in splitter.feed(b"\ndata: y")] == [b"data: x\r\n\r\n"]
    assert [e.raw for e in splitter.finish()] == [b"data: y"]


def test_split_inside_a_utf8_character() -> None:
    raw = 'data: {"t": "日本"}\n\n'.encode()
    cut = raw.index("本".encode()) + 1
    splitter = SseSplitter()
    events = splitter.feed(raw[:cut]) + splitter.feed(raw[cut:])
    assert events[0].data == '{"t": "日本"}'


def test_one_byte_at_a_time() -> None:
    stream = crlf(anthropic_stream())
    assert _split_all(every_byte(stream)) == _split_all([stream])


@FUZZ
@given(st.data())
def test_any_chunking_yields_the_same_events(data: st.DataObject) -> None:
    stream = data.draw(
        st.sampled_from(
            [
                anthropic_stream(),
                crlf(anthropic_stream()),
                gemini_stream(),
                b"data: a\r\rdata: b\r\n\ndata: c\n\r",
            ]
        )
    )
    chunks = data.draw(chunkings(stream))
    whole = _split_all([stream])
    assert _split_all(chunks) == whole
    assert b"".join(whole) == stream
