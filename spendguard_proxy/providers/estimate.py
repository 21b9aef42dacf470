"""Input-token bound of a whole request body, for every provider.

One walk over the JSON collects every string (keys included: tool schemas and structured
output schemas are billed as input) and prices media by the provider's published rules
(providers/images.py). Shapes we do not know are counted as text, which overcounts.

Per piece of text we add one token (tokenizing the pieces joined may merge across the
joins; the provider tokenizes them apart, and may add a prefix space to each), one per JSON
object or array (the chat template's role and separator tokens), and a constant per request
and for tool use (Anthropic's tool-use system prompt is ~350 tokens on Claude 4 models).

``InputEstimate.media`` holds the audio, image and video parts of ``tokens`` (billing prices
each modality at its own rate). Audio and video are bounded from what the request states: the
clip's length read from its header (images.media_seconds), or for a Gemini part referenced by
URI, ``videoMetadata.endOffset``; a clip whose length cannot be bounded is refused with a 400
saying what to send.

Content we cannot see -- files referenced by id or URL, PDFs whose pages we cannot count,
stored previous responses or cached contents -- sets ``unbounded``: the caller should then
reserve up to the model's context window.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from typing import Any

from spendguard_proxy import tokens
from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import images

REQUEST_OVERHEAD_TOKENS = 8
FILE_REFERENCE_TOKENS = 32_000  # a referenced file's visible share; `unbounded` covers the rest
PDF_PAGE_TOKENS = 4_600  # dense text (~3,000) plus the page image (~1,600) on any provider
CLIP_OVERHEAD_TOKENS = 16  # per audio/video part: start/end markers, timestamps
_TOOLS_OVERHEAD = {"anthropic": 600, "openai": 32, "grok": 64, "gemini": 64}
_ULTRA_HIGH = "MEDIA_RESOLUTION_ULTRA_HIGH"

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[\w=.-]+)*;base64,", re.ASCII)
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")
_PDF_COUNT = re.compile(rb"/Count\s+(\d{1,6})")
_DURATION = re.compile(r"^\s*(\d{1,9}(?:\.\d{1,9})?)s\s*$")
_READABLE = "WAV, AIFF, FLAC, Ogg (Opus/Vorbis/FLAC), MP3, AAC (ADTS), MP4/M4A/MOV or WebM"


@dataclass(frozen=True, slots=True)
class InputEstimate:
    tokens: int  # upper bound on every input token billed, media included
    unbounded: bool = False
    media: dict[str, int] = field(default_factory=dict)  # "audio"/"image"/"video" parts of tokens


def estimate_input(
    body: Any,
    *,
    provider: str,
    model: str,
    skip_keys: frozenset[str] = frozenset(),
    unbounded: bool = False,
) -> InputEstimate:
    """Bound ``body``'s input tokens; ``skip_keys`` are top-level settings, not content.

    Raises InvalidRequest for audio or video whose length the request does not bound."""
    walk = _Walk(provider, model, ultra=provider == "gemini" and contains_value(body, _ULTRA_HIGH))
    if isinstance(body, dict):
        for key, value in body.items():
            if key not in skip_keys:
                walk.pieces.append(key)
                walk.visit(value)
    else:
        walk.visit(body)
    return walk.result(unbounded)


class _Walk:
    def __init__(self, provider: str, model: str, *, ultra: bool = False) -> None:
        self.provider = provider
        self.model = model
        self.ultra = ultra  # Gemini 3: some part asks for MEDIA_RESOLUTION_ULTRA_HIGH
        self.pieces: list[str] = []
        self.containers = 0
        self.media: dict[str, int] = {}
        self.other_tokens = 0  # documents and unknown blobs: priced as text
        self.unbounded = False
        self.has_tools = False

    def result(self, unbounded: bool) -> InputEstimate:
        text = "\n".join(self.pieces)
        total = (
            tokens.count_text(text, self.provider, self.model)
            + len(self.pieces)
            + self.containers
            + self.other_tokens
            + sum(self.media.values())
            + REQUEST_OVERHEAD_TOKENS
        )
        if self.has_tools:
            total += _TOOLS_OVERHEAD.get(self.provider, 600)
        media = {modality: n for modality, n in self.media.items() if n}
        return InputEstimate(total, unbounded or self.unbounded, media)

    def _add(self, modality: str, n: int) -> None:
        self.media[modality] = self.media.get(modality, 0) + n

    def visit(self, root: Any) -> None:
        # An explicit stack: request bodies can nest deeper than Python's recursion limit.
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, str):
                self._string(node)
            elif isinstance(node, dict):
                self.containers += 1
                if not self._media(node):
                    for key, value in node.items():
                        self.pieces.append(key)
                        if (
                            key
                            in (
                                "tools",
                                "functions",
                                "function_declarations",
                                "functionDeclarations",
                            )
                            and value
                        ):
                            self.has_tools = True
                        stack.append(value)
            elif isinstance(node, list):
                self.containers += 1
                stack.extend(reversed(node))

    def _string(self, text: str) -> None:
        if len(text) > 256 and text.startswith("data:"):
            match = _DATA_URL.match(text)
            if match:
                self._blob(match.group(1) or "", text[match.end() :], None)
                return
        self.pieces.append(text)

    # ---------------------------------------------------------------- media shapes

    def _media(self, node: dict[str, Any]) -> bool:
        """Price a media part if ``node`` is one; False lets the walk treat it as text."""
        clip = node.get("videoMetadata", node.get("video_metadata"))
        for key in ("inlineData", "inline_data"):
            blob = node.get(key)
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                mime = blob.get("mimeType") or blob.get("mime_type") or ""
                self._blob(str(mime), blob["data"], None, clip)
                return True
        for key in ("fileData", "file_data"):
            ref = node.get(key)
            if isinstance(ref, dict):
                mime = str(ref.get("mimeType") or ref.get("mime_type") or "")
                self._reference(mime, None, clip)
                return True
        kind = node.get("type")
        if kind == "image_url":
            return self._openai_image(node.get("image_url"))
        if kind == "input_image":
            return self._openai_image(node)
        if kind in ("image", "document") and isinstance(node.get("source"), dict):
            return self._anthropic_source(kind, node["source"])
        if kind in ("file", "input_file"):
            return self._openai_file(node.get("file") if kind == "file" else node)
        if kind == "input_audio" and isinstance(node.get("input_audio"), dict):
            data = node["input_audio"].get("data")
            if isinstance(data, str):
                self._blob("audio/" + str(node["input_audio"].get("format", "")), data, None)
                return True
        return False

    def _openai_image(self, part: Any) -> bool:
        if isinstance(part, str):
            part = {"url": part}
        if not isinstance(part, dict):
            return False
        url = part.get("url", part.get("image_url"))
        detail = part.get("detail") if isinstance(part.get("detail"), str) else None
        match = _DATA_URL.match(url) if isinstance(url, str) else None
        if match:
            self._blob(match.group(1) or "image/", url[match.end() :], detail)
        else:
            self._add("image", self._image(None, detail))
        return True

    def _openai_file(self, part: Any) -> bool:
        if not isinstance(part, dict):
            return False
        data = part.get("file_data")
        match = _DATA_URL.match(data) if isinstance(data, str) else None
        if match:
            self._blob(match.group(1) or "", data[match.end() :], None)
        elif isinstance(data, str):
            self._blob(_mime_from_name(part.get("filename")), data, None)
        else:
            self._reference(_mime_from_name(part.get("filename")), None)
        return True

    def _anthropic_source(self, kind: str, source: dict[str, Any]) -> bool:
        source_type = source.get("type")
        if source_type == "base64" and isinstance(source.get("data"), str):
            default = "image/" if kind == "image" else "application/pdf"
            self._blob(str(source.get("media_type") or default), source["data"], None)
            return True
        if source_type in ("url", "file"):
            self._reference("image/" if kind == "image" else "", None)
            return True
        return False  # text and content sources are text: walk them

    # ---------------------------------------------------------------- pricing

    def _blob(self, mime: str, data: str, detail: str | None, clip: Any = None) -> None:
        if mime.startswith("image/"):
            self._add("image", self._image(images.size_from_base64(data), detail))
        elif mime == "application/pdf":
            self._pdf(data)
        elif mime.startswith("text/") or mime in ("application/json", "application/xml"):
            self.pieces.append(_decode(data).decode("utf-8", "replace"))
        elif mime.startswith(("audio/", "video/")):
            seconds = _clip_seconds(clip)
            if seconds is None:
                seconds = images.media_seconds(data)
            if seconds is None:
                raise InvalidRequest(
                    f"Inline {mime} data: SpendGuard cannot read the clip's length from it, so it "
                    f"cannot bound its tokens. Send {_READABLE} data with its header"
                    + (", or state videoMetadata.endOffset" if self.provider == "gemini" else "")
                )
            self._clip(mime, seconds, clip)
        else:
            # Office files and the like: text is extracted from them, size unknown.
            self.other_tokens += _raw_len(data) // 2 + 64
            self.unbounded = True

    def _clip(self, mime: str, seconds: float, clip: Any) -> None:
        whole_s = math.ceil(seconds) + 1  # a started second counts, and a frame at each end
        if self.provider == "gemini":
            audio = whole_s * images.GEMINI_AUDIO_TOKENS_PER_S + CLIP_OVERHEAD_TOKENS
            self._add("audio", audio)  # a video's sound track is billed as audio too
            if mime.startswith("video/"):
                frames = math.ceil(seconds * _clip_fps(clip)) + 1
                per_frame = images.gemini_video_tokens_per_frame(self.model, self.ultra)
                self._add("video", frames * per_frame + CLIP_OVERHEAD_TOKENS)
        elif mime.startswith("audio/"):
            self._add("audio", whole_s * images.OPENAI_AUDIO_TOKENS_PER_S + CLIP_OVERHEAD_TOKENS)
        else:
            raise InvalidRequest(
                f"{mime} input: SpendGuard has no published token rule for {self.provider} "
                "video, so it cannot bound its cost"
            )

    def _image(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if self.provider == "anthropic":
            return images.anthropic_image_tokens(self.model, size)
        if self.provider == "gemini":
            return images.gemini_image_tokens(self.model, size, self.ultra)
        if self.provider == "grok":
            return images.grok_image_tokens(size)
        return images.openai_image_tokens(self.model, size, detail)

    def _pdf(self, data: str) -> None:
        raw = _decode(data)
        pages = len(_PDF_PAGE.findall(raw))
        counts = [int(n) for n in _PDF_COUNT.findall(raw)]
        pages = max([pages, *counts])
        if pages:
            self.other_tokens += pages * PDF_PAGE_TOKENS
        else:  # compressed object streams hide the page tree
            self.other_tokens += len(raw) // 2
            self.unbounded = True

    def _reference(self, mime: str, detail: str | None, clip: Any = None) -> None:
        if mime.startswith("image/"):
            self._add("image", self._image(None, detail))
        elif mime.startswith(("audio/", "video/")):
            seconds = _clip_seconds(clip)
            if seconds is None or not mime.startswith("video/"):
                raise InvalidRequest(
                    f"fileData ({mime}): SpendGuard cannot bound the length of a clip referenced "
                    "by URI. "
                    + (
                        "State videoMetadata.endOffset (e.g. \"90s\"), or send the video inline"
                        if mime.startswith("video/")
                        else f"Send the audio inline (inlineData: {_READABLE})"
                    )
                )
            self._clip(mime, seconds, clip)
        else:
            self.other_tokens += FILE_REFERENCE_TOKENS
            self.unbounded = True


# ---------------------------------------------------------------- Gemini videoMetadata


def _clip_seconds(clip: Any) -> float | None:
    """The clip length a Gemini part states (endOffset - startOffset), or None."""
    if not isinstance(clip, dict):
        return None
    end = _offset_s(clip, "endOffset", "end_offset")
    if end is None:
        return None
    start = _offset_s(clip, "startOffset", "start_offset") or 0.0
    if end < start:
        raise InvalidRequest("videoMetadata.endOffset must not be before startOffset")
    return end - start


def _offset_s(clip: dict[str, Any], camel: str, snake: str) -> float | None:
    value = clip.get(camel, clip.get(snake))
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9:
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1))
    raise InvalidRequest(f'videoMetadata.{camel} must be a duration like "12.5s" (got {value!r})')


def _clip_fps(clip: Any) -> float:
    fps = clip.get("fps", 1) if isinstance(clip, dict) else 1
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 60:
        raise InvalidRequest("videoMetadata.fps must be a number in (0, 60]")
    return max(1.0, float(fps))


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data[: len(data) - len(data) % 4], validate=False)
    except (binascii.Error, ValueError):
        return data.encode("utf-8", "replace")


def _raw_len(data: str) -> int:
    return len(data) * 3 // 4


def _mime_from_name(name: Any) -> str:
    if isinstance(name, str):
        lowered = name.lower()
        if lowered.endswith(".pdf"):
            return "application/pdf"
        if lowered.endswith((".png", ".jpg", ".jpeg", ".gif", ".webp")):
            return "image/"
        if lowered.endswith((".txt", ".md", ".csv", ".json")):
            return "text/plain"
        if lowered.endswith((".wav", ".mp3")):
            return "audio/" + lowered.rsplit(".", 1)[1]
    return ""


def contains_key(root: Any, key: str) -> bool:
    """Whether any object inside ``root`` has ``key`` (e.g. Anthropic's cache_control)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def contains_value(root: Any, value: str) -> bool:
    """Whether the string ``value`` appears anywhere inside ``root`` (case-insensitive)."""
    wanted = value.lower()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if len(node) <= 64 and node.lower() == wanted:
                return True
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
