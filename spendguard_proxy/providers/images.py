"""Image token rules per provider, and image sizes read from file headers.

Sizes come from the first bytes of PNG, GIF, JPEG and WebP data (no image library: we
need two integers, not pixels). When the size is unknown (a URL, a file id, an unusual
format) each rule answers its largest possible count.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct

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

# (model prefix, rule): "tile" = base + per 512px tile after the high-detail resize;
# "patch" = 32px patches capped at 1536, times a multiplier. Published figures, with the
# largest tile figures (gpt-5.2's 1.2x on 85/170) as the default for unknown tile models.
_OPENAI_RULES: tuple[tuple[str, str, float, float], ...] = (
    ("gpt-4o-mini", "tile", 2833, 5667),
    ("gpt-4.1-mini", "patch", 1.62, 0),
    ("gpt-4.1-nano", "patch", 2.46, 0),
    ("gpt-5-mini", "patch", 1.62, 0),
    ("gpt-5-nano", "patch", 2.46, 0),
    ("o4-mini", "patch", 1.72, 0),
    ("gpt-4.1", "patch", 1.0, 0),
)
_OPENAI_DEFAULT = ("tile", 102.0, 204.0)


def openai_image_tokens(model: str, size: tuple[int, int] | None, detail: str | None) -> int:
    kind, a, b = _OPENAI_DEFAULT
    bare = model.removeprefix("ft:")
    for prefix, rule_kind, ra, rb in _OPENAI_RULES:
        if bare.startswith(prefix):
            kind, a, b = rule_kind, ra, rb
            break
    if kind == "patch":
        return math.ceil(_patches(size, 32, 1536) * a)
    if detail == "low":
        return math.ceil(a)
    return math.ceil(a + b * _high_detail_tiles(size))


def _high_detail_tiles(size: tuple[int, int] | None) -> int:
    if size is None:
        return 8  # the most a 2048x2048-fit, 768-short-side image can cover: 2 x 4
    w, h = size
    scale = min(1.0, 2048 / max(w, h, 1))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / max(min(w, h), 1))
    w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patches(size: tuple[int, int] | None, patch_px: int, cap: int) -> int:
    if size is None:
        return cap
    w, h = size
    return min(cap, math.ceil(w / patch_px) * math.ceil(h / patch_px))


# ---------------------------------------------------------------- Anthropic

# Models before Opus 4.7 downscale to 1568 px long edge / ~1.15 MP: at most ~1600 tokens.
# Newer (and unknown) models accept 2576 px: ceil(2576/28)^2 = 8464 visual tokens at most.
_ANTHROPIC_SMALL = re.compile(r"^claude-(3|2|instant|(opus|sonnet|haiku)-4(-[0-6])?(-\d{8})?$)")


def anthropic_image_tokens(model: str, size: tuple[int, int] | None) -> int:
    small = bool(_ANTHROPIC_SMALL.match(model))
    long_edge, cap = (1568, 1600) if small else (2576, 8464)
    if size is None:
        return cap
    w, h = size
    scale = min(1.0, long_edge / max(w, h, 1))
    patches = math.ceil(w * scale / 28) * math.ceil(h * scale / 28)
    return min(cap, max(patches, math.ceil(w * scale * h * scale / 750)))


# ---------------------------------------------------------------- Gemini

_GEMINI_OLD = re.compile(r"^(models/)?gemini-(1|2)")


def gemini_image_tokens(model: str, size: tuple[int, int] | None) -> int:
    # Gemini 1.x/2.x: 258 when both sides <= 384 px, else 258 per 768 px tile.
    # Gemini 3 defaults to "high" media resolution, 1120 per image; allow up to 2240.
    floor = 0 if _GEMINI_OLD.match(model) else 2240
    if size is None:
        return max(floor, 258 * 12)
    w, h = size
    if w <= 384 and h <= 384:
        tiles = 1
    else:
        tiles = math.ceil(w / 768) * math.ceil(h / 768)
    return max(floor, 258 * tiles)
