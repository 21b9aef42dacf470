"""Media token rules per provider, and the sizes and durations they need, read from headers.

Image sizes come from the first bytes of PNG, GIF, JPEG and WebP data; audio and video
durations from WAV, AIFF, FLAC, Ogg, MP3, ADTS and MP4/MOV/M4A headers (``media_seconds``). No
decoder: we need a few integers, not pixels or samples. When a size is unknown (a URL, a file
id, an unusual format) each image rule answers its largest possible count; when a duration is
unknown the caller refuses the request (estimate.py) rather than guess.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from dataclasses import dataclass
from fractions import Fraction

# First base64 characters decoded when looking for a size; JPEG may need more (EXIF first).
_HEAD_B64_CHARS = 8192


def size_from_base64(data: str) -> tuple[int, int] | None:
    head = _decode_b64(data[:_HEAD_B64_CHARS])
    if head is None:
        return None
    size = size_from_bytes(head)
    if size is None and head[:2] == b"\xff\xd8" and len(data) > _HEAD_B64_CHARS:
        full = _decode_b64(data)
        size = size_from_bytes(full) if full else None
    return size


def _decode_b64(text: str) -> bytes | None:
    text = text[: len(text) - len(text) % 4]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        return None


def size_from_bytes(head: bytes) -> tuple[int, int] | None:
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head)
    except struct.error:
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return w, h
        pos += 2 + length
    return None


# ---------------------------------------------------------------- OpenAI
#
# OpenAI's vision guide ("Calculating costs", platform.openai.com/docs/guides/images-vision)
# has two rules. Tiles (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, computer-use-preview,
# gpt-4o-mini): detail "low" costs the base; otherwise the image is fitted in 2048x2048, its short
# side scaled to 768 px, and each 512-px tile costs the tile figure, plus the base once (85 +
# 170/tile for 4o/4.1/4.5, 70 + 140 for gpt-5, 75 + 150 for o1/o3, 65 + 129 for
# computer-use-preview, 2833 + 5667 for gpt-4o-mini). Patches (gpt-4.1-mini 1.62, gpt-4.1-nano
# 2.46, gpt-5-mini 1.62, gpt-5-nano 2.46, o4-mini 1.72): 32-px patches, at most 1536 (10,000
# for detail "original"), times the model's multiplier; detail does not lower it. For gpt-5.2
# and later the published sources disagree (patches x 1.2, per openai/codex#19806 and the
# guide's patch section; tiles x 1.2 per community measurements): both are computed and the
# larger is reserved. Unknown models and unknown minis get the largest of every rule but
# gpt-4o-mini's.


@dataclass(frozen=True, slots=True)
class _Tiles:
    base: int
    per_tile: int

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if detail == "low":
            return self.base
        return self.base + self.per_tile * _high_detail_tiles(size)


@dataclass(frozen=True, slots=True)
class _Patches:
    multiplier: Fraction

    def tokens(self, size: tuple[int, int] | None, detail: str | None) -> int:
        cap = 10_000 if detail == "original" else 1536
        return math.ceil(_patches(size, 32, cap) * self.multiplier)


_TILES_4O = (_Tiles(85, 170),)
_UNKNOWN_OPENAI = (_Patches(Fraction(246, 100)), _Tiles(102, 204))
_OPENAI_RULES: tuple[tuple[re.Pattern[str], tuple[_Tiles | _Patches, ...]], ...] = tuple(
    (re.compile(pattern), rules)
    for pattern, rules in (
        (r"gpt-4o-mini", (_Tiles(2833, 5667),)),
        (r"gpt-(4\.1|5)-mini", (_Patches(Fraction(162, 100)),)),
        (r"gpt-(4\.1|5)-nano", (_Patches(Fraction(246, 100)),)),
        (r"o4-mini", (_Patches(Fraction(172, 100)),)),
        (r"[\w.-]*-(mini|nano)\b", _UNKNOWN_OPENAI),
        (r"computer-use-preview", (_Tiles(65, 129),)),
        (r"gpt-(5\.([2-9]|\d\d)|[6-9]|\d\d)", (_Patches(Fraction(12, 10)), _Tiles(102, 204))),
        (r"gpt-5(\.1)?(-|$)", (_Tiles(70, 140),)),
        (r"o(1|3)(-|$)", (_Tiles(75, 150),)),
        (r"gpt-4", _TILES_4O),
    )
)


def openai_image_tokens(model: str, size: tuple[int, int] | None, detail: str | None) -> int:
    bare = model.removeprefix("ft:").removeprefix("openai/")
    rules = next((r for pattern, r in _OPENAI_RULES if pattern.match(bare)), _UNKNOWN_OPENAI)
    return max(rule.tokens(size, detail) for rule in rules)


def _high_detail_tiles(size: tuple[int, int] | None) -> int:
    if size is None:
        return 8  # the most a 2048x2048-fit, 768-short-side image can cover: 2 x 4
    w, h = size
    scale = min(1.0, 2048 / max(w, h, 1))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / max(min(w, h), 1))
    w, h = w * scale, h * scale
    return max(1, math.ceil(w / 512)) * max(1, math.ceil(h / 512))


def _patches(size: tuple[int, int] | None, patch_px: int, cap: int) -> int:
    if size is None:
        return cap
    w, h = size
    return min(cap, max(1, math.ceil(w / patch_px)) * max(1, math.ceil(h / patch_px)))


# ---------------------------------------------------------------- Anthropic
#
# Claude's vision guide (platform.claude.com/docs/en/build-with-claude/vision): tokens =
# width x height / 750 after the image is scaled to fit 1568 px on its long edge and ~1.15 MP
# ("~1,600 tokens" at most); Opus 4.7 and later read up to 2576 px / ~3.75 MP (4784 visual
# tokens of 28 px). We take the larger of w*h/750 and the 28-px patch count, capped at 1600,
# and 5000 (3.75 MP / 750) for the newer models and unknown ones.
_ANTHROPIC_SMALL = re.compile(r"^claude-(3|2|instant|(opus|sonnet|haiku)-4(-[0-6])?(-\d{8})?$)")


def anthropic_image_tokens(model: str, size: tuple[int, int] | None) -> int:
    small = bool(_ANTHROPIC_SMALL.match(model))
    long_edge, cap = (1568, 1600) if small else (2576, 5000)
    if size is None:
        return cap
    w, h = size
    scale = min(1.0, long_edge / max(w, h, 1))
    patches = math.ceil(w * scale / 28) * math.ceil(h * scale / 28)
    return min(cap, max(patches, math.ceil(w * scale * h * scale / 750)))


# ---------------------------------------------------------------- Gemini
#
# Gemini API "Understand and count tokens" (ai.google.dev/gemini-api/docs/tokens): Gemini 1.x/2.x
# images with both sides <= 384 px are 258 tokens; larger ones are cropped into tiles of 258
# tokens each. The crop unit is min(w, h) / 1.5 clamped to 256..768 px (so a 1000x300 image is
# 4 tiles, not 2): we count tiles of that unit. Gemini 3 ("Media resolution"): an image costs
# at most 280 / 560 / 1120 / 2240 tokens at LOW / MEDIUM / HIGH (the default) / ULTRA_HIGH.
# Video: frames sampled at 1 fps unless videoMetadata.fps says otherwise, each frame 258 tokens
# on Gemini 2.x (fewer at low resolution), at most 280 at HIGH on Gemini 3, plus the audio
# track at 32 tokens per second ("Gemini represents each second of audio as 32 tokens").
GEMINI_AUDIO_TOKENS_PER_S = 32
_GEMINI_OLD = re.compile(r"^(models/)?gemini-(1|2)")
GEMINI3_IMAGE_TOKENS = 1120
GEMINI3_ULTRA_IMAGE_TOKENS = 2240


_GEMINI_NEW = re.compile(r"^(models/)?gemini-([3-9]|\d\d)")


def gemini_is_tiled(model: str) -> bool:
    """Gemini 1.x/2.x price images by tiles; Gemini 3 and later by media resolution."""
    return bool(_GEMINI_OLD.match(model))


def gemini_image_tokens(model: str, size: tuple[int, int] | None, ultra: bool = False) -> int:
    flat = GEMINI3_ULTRA_IMAGE_TOKENS if ultra else GEMINI3_IMAGE_TOKENS
    if _GEMINI_NEW.match(model):
        return flat
    tiles = _gemini_tiles(size)
    # An alias ("gemini-flash-latest") may be either generation: the larger rule holds.
    return tiles if gemini_is_tiled(model) else max(tiles, flat)


def _gemini_tiles(size: tuple[int, int] | None) -> int:
    if size is None:
        return 258 * 36  # a 4608-px square (6 x 6 tiles): not provable, no size to read
    w, h = size
    if w <= 384 and h <= 384:
        return 258
    unit = min(768, max(256, min(w, h) / 1.5))
    return 258 * math.ceil(w / unit) * math.ceil(h / unit)


def gemini_video_tokens_per_frame(model: str, ultra: bool = False) -> int:
    if gemini_is_tiled(model):
        return 258
    return GEMINI3_ULTRA_IMAGE_TOKENS if ultra else 280


# ---------------------------------------------------------------- xAI
#
# xAI publishes no image-token rule. Grok's vision encoder is reported to cut images into
# 448-px tiles of 256 tokens plus one overview; we reserve that, uncapped up to 4096 px a side.


def grok_image_tokens(size: tuple[int, int] | None) -> int:
    if size is None:
        return 256 * (10 * 10 + 1)
    w, h = (min(4096, max(1, d)) for d in size)
    return 256 * (math.ceil(w / 448) * math.ceil(h / 448) + 1)


# ---------------------------------------------------------------- OpenAI audio
#
# OpenAI publishes no audio-token rate; usage reports ~10 input tokens per second (1 per
# 100 ms) for gpt-4o audio and realtime models. We reserve twice that.
OPENAI_AUDIO_TOKENS_PER_S = 20


# ---------------------------------------------------------------- audio and video durations
#
# The provider's decoder takes a clip's length from the same header fields, so they bound the
# tokens it bills. MP3 without a Xing/Info/VBRI frame count is bounded by its size: no MPEG
# audio frame is smaller than 8 kbit/s (MPEG-2.5 layer III's lowest bitrate) allows.
MP3_MIN_BYTES_PER_S = 1000
_ADTS_FRAMES_MAX = 200_000  # ~77 min at 44.1 kHz: walking more would block the event loop
_BOXES_MAX = 10_000


def media_seconds(data: str) -> float | None:
    """Length in seconds of the base64 audio or video ``data``, or None when unreadable."""
    source = _Base64Source(data)
    seconds = _seconds(source) or None
    if seconds is None and any(c in data for c in "\r\n \t"):  # MIME-style wrapped base64
        raw = _decode_b64("".join(data.split()))
        seconds = _seconds(_BytesSource(raw)) or None if raw else None
    return seconds


class _BytesSource:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.size = len(raw)

    def read(self, offset: int, n: int) -> bytes:
        return self.raw[offset : offset + n]

    def whole(self) -> bytes:
        return self.raw


class _Base64Source:
    """Random access to the bytes of base64 text, decoding only the parts read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = len(text) // 4 * 3 - text[-2:].count("=") if len(text) >= 4 else 0

    def read(self, offset: int, n: int) -> bytes:
        if n <= 0 or offset >= self.size:
            return b""
        start, end = offset // 3 * 4, -(-(offset + n) // 3) * 4
        chunk = _decode_b64(self.text[start:end]) or b""
        skip = offset % 3
        return chunk[skip : skip + n]

    def whole(self) -> bytes:
        return _decode_b64("".join(self.text.split())) or b""


def _seconds(src: _BytesSource | _Base64Source) -> float | None:
    head = src.read(0, 16)
    try:
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav(src)
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(src)
        if head[:4] == b"OggS":
            return _ogg(src)
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return _matroska(src.read(0, 1 << 16))
        if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
            return _mp4(src)
        start = _id3_end(head)
        if src.read(start, 4) == b"fLaC":
            return _flac(src.read(start + 4, 38))
        if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
            return _adts(src.whole())
        return _mp3(src, start)
    except (struct.error, ValueError, IndexError, ZeroDivisionError, OverflowError):
        return None


def _wav(src: _BytesSource | _Base64Source) -> float | None:
    pos, byte_rate, data_bytes = 12, 0, None
    for _ in range(64):
        if pos + 8 > src.size or (byte_rate and data_bytes is not None):
            break
        chunk_id, size = struct.unpack("<4sI", src.read(pos, 8))
        if chunk_id == b"fmt ":
            fmt = src.read(pos + 8, 16)
            _tag, channels, rate, avg, _align, bits = struct.unpack("<HHIIHH", fmt)
            rates = [r for r in (avg, rate * channels * bits // 8) if r > 0]
            byte_rate = min(rates) if rates else 0  # the slower rate: the longer clip
        elif chunk_id == b"data":
            data_bytes = min(size, src.size - pos - 8)
        pos += 8 + size + (size & 1)
    if not byte_rate or data_bytes is None:
        return None
    return data_bytes / byte_rate


def _aiff(src: _BytesSource | _Base64Source) -> float | None:
    pos = 12
    for _ in range(64):
        if pos + 8 > src.size:
            return None
        chunk_id, size = struct.unpack(">4sI", src.read(pos, 8))
        if chunk_id == b"COMM":
            comm = src.read(pos + 8, 18)
            frames = int.from_bytes(comm[2:6], "big")
            exponent = int.from_bytes(comm[8:10], "big") & 0x7FFF
            mantissa = int.from_bytes(comm[10:18], "big")
            rate = mantissa * 2.0 ** (exponent - 16383 - 63)
            return frames / rate if rate > 0 else None
        pos += 8 + size + (size & 1)
    return None


def _flac(info: bytes) -> float | None:
    # metadata block header (type 0 = STREAMINFO), then 34 bytes; sample rate (20 bits) and
    # total samples (36 bits) sit in bytes 10..17 of STREAMINFO.
    if len(info) < 38 or info[0] & 0x7F != 0:
        return None
    packed = int.from_bytes(info[14:22], "big")
    rate, total = packed >> 44, packed & ((1 << 36) - 1)
    return total / rate if rate and total else None


def _ogg(src: _BytesSource | _Base64Source) -> float | None:
    first = src.read(0, 512)
    if (at := first.find(b"OpusHead")) >= 0:
        rate, skip = 48_000, struct.unpack("<H", first[at + 10 : at + 12])[0]
    elif (at := first.find(b"\x01vorbis")) >= 0:
        rate, skip = struct.unpack("<I", first[at + 12 : at + 16])[0], 0
    elif (at := first.find(b"\x7fFLAC")) >= 0:
        rate, skip = int.from_bytes(first[at + 27 : at + 30], "big") >> 4, 0
    else:
        return None
    tail_start = max(0, src.size - (1 << 16))
    tail = src.read(tail_start, src.size - tail_start)
    granules = [
        struct.unpack("<q", tail[i + 6 : i + 14])[0]
        for i in _find_all(tail, b"OggS")
        if i + 14 <= len(tail)
    ]
    granule = max(granules, default=-1)
    return max(0, granule - skip) / rate if rate and granule > 0 else None


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _id3_end(head: bytes) -> int:
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F
    return 10 + size + (10 if head[5] & 0x10 else 0)


_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3(src: _BytesSource | _Base64Source, start: int) -> float | None:
    frame = src.read(start, 64)
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return None
    version, layer = (frame[1] >> 3) & 3, (frame[1] >> 1) & 3
    rate_index = (frame[2] >> 2) & 3
    if version == 1 or layer == 0 or rate_index == 3:
        return None
    rate = _MP3_RATES[version][rate_index]
    per_frame = 384 if layer == 3 else 1152 if layer == 2 or version == 3 else 576
    mono = frame[3] >> 6 == 3
    side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    frames = None
    tag = frame[4 + side : 8 + side]
    if tag in (b"Xing", b"Info"):
        flags = int.from_bytes(frame[8 + side : 12 + side], "big")
        if flags & 1:
            frames = int.from_bytes(frame[12 + side : 16 + side], "big")
    elif frame[36:40] == b"VBRI":
        frames = int.from_bytes(frame[50:54], "big")
    if frames:
        return frames * per_frame / rate
    return (src.size - start) / MP3_MIN_BYTES_PER_S


_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
               7350)


def _adts(raw: bytes) -> float | None:
    pos, seconds, end = 0, 0.0, len(raw) - 7
    for _ in range(_ADTS_FRAMES_MAX):
        if pos > end:
            return seconds or None
        if raw[pos] != 0xFF or raw[pos + 1] & 0xF6 != 0xF0:
            return None
        rate = _ADTS_RATES[(raw[pos + 2] >> 2) & 0xF]
        length = (raw[pos + 3] & 3) << 11 | raw[pos + 4] << 3 | raw[pos + 5] >> 5
        if length < 7:
            return None
        seconds += 1024 * ((raw[pos + 6] & 3) + 1) / rate
        pos += length
    return None


def _mp4(src: _BytesSource | _Base64Source) -> float | None:
    best = 0.0
    boxes = [(0, src.size)]
    for _ in range(_BOXES_MAX):
        if not boxes:
            break
        pos, end = boxes.pop()
        if pos + 8 > end:
            continue
        size, kind = struct.unpack(">I4s", src.read(pos, 8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", src.read(pos + 8, 8))[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return None
        boxes.append((pos + size, end))
        if kind in (b"moov", b"trak", b"mdia"):
            boxes.append((pos + header, min(end, pos + size)))
        elif kind in (b"mvhd", b"mdhd"):
            best = max(best, _mp4_header_seconds(src.read(pos + header, 32)))
    return best or None


def _mp4_header_seconds(body: bytes) -> float:
    if body[0] == 1:
        scale, duration = struct.unpack(">IQ", body[20:32])
        unknown = duration == (1 << 64) - 1
    else:
        scale, duration = struct.unpack(">II", body[12:20])
        unknown = duration == (1 << 32) - 1
    return 0.0 if unknown or not scale else duration / scale


def _matroska(head: bytes) -> float | None:
    # EBML: Segment (18 53 80 67) > Info (15 49 A9 66) > TimecodeScale (2A D7 B1), Duration (44 89)
    at = head.find(b"\x15\x49\xa9\x66")
    if at < 0:
        return None
    size, width = _vint(head, at + 4)
    info = head[at + 4 + width : at + 4 + width + size]
    scale_ns, duration = 1_000_000, None
    pos = 0
    while pos < len(info):
        element, id_width = _element_id(info, pos)
        size, width = _vint(info, pos + id_width)
        body = info[pos + id_width + width : pos + id_width + width + size]
        if element == 0x2AD7B1:
            scale_ns = int.from_bytes(body, "big")
        elif element == 0x4489:
            duration = struct.unpack(">f" if size == 4 else ">d", body)[0]
        pos += id_width + width + size
    return duration * scale_ns / 1e9 if duration and duration > 0 else None


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    width = 9 - first.bit_length()
    if width > 8:
        raise ValueError("bad EBML size")
    value = first & ((1 << (8 - width)) - 1)
    for byte in data[pos + 1 : pos + width]:
        value = value << 8 | byte
    return value, width


def _element_id(data: bytes, pos: int) -> tuple[int, int]:
    width = 9 - data[pos].bit_length()
    if width > 4:
        raise ValueError("bad EBML id")
    return int.from_bytes(data[pos : pos + width], "big"), width
