"""Input-token estimate of a whole request body, for every provider.

One walk over the JSON collects every string (keys included: tool schemas and structured
output schemas are billed as input) and prices media by the provider's published rules.
Nothing is rejected: shapes we do not know are counted as text, which overcounts.

Per piece of text we add one token (tokenizing the pieces joined may merge across the
joins; the provider tokenizes them apart), one per JSON object or array (the chat
template's role and separator tokens), and a constant per request and for tool use
(Anthropic's tool-use system prompt is ~350 tokens on Claude 4 models).

Content we cannot see -- files referenced by id or URL, PDFs whose pages we cannot count,
stored previous responses or cached contents -- sets ``unbounded``: the caller should then
reserve up to the model's context window.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from spendguard_proxy import tokens
from spendguard_proxy.providers import images

REQUEST_OVERHEAD_TOKENS = 8
FILE_REFERENCE_TOKENS = 32_000  # a referenced file's visible share; `unbounded` covers the rest
PDF_PAGE_TOKENS = 4_600  # dense text (~3,000) plus the page image (~1,600) on any provider
MEDIA_BYTES_PER_TOKEN = 16  # audio/video: >= 32 tokens/s of audio at 16 kbit/s is 1 per 64 B
_TOOLS_OVERHEAD = {"anthropic": 600, "openai": 32, "grok": 64, "gemini": 64}

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[\w=.-]+)*;base64,", re.ASCII)
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")
_PDF_COUNT = re.compile(rb"/Count\s+(\d{1,6})")


@dataclass(frozen=True, slots=True)
class InputEstimate:
    tokens: int
    unbounded: bool = False


def estimate_input(
    body: Any,
    *,
    provider: str,
    model: str,
    skip_keys: frozenset[str] = frozenset(),
    unbounded: bool = False,
) -> InputEstimate:
    """Estimate ``body``'s input tokens; ``skip_keys`` are top-level settings, not content."""
    walk = _Walk(provider, model)
    if isinstance(body, dict):
        for key, value in body.items():
            if key not in skip_keys:
                walk.pieces.append(key)
                walk.visit(value)
    else:
        walk.visit(body)
    return walk.result(unbounded)


class _Walk:
    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.pieces: list[str] = []
        self.containers = 0
        self.media_tokens = 0
        self.unbounded = False
        self.has_tools = False

    def result(self, unbounded: bool) -> InputEstimate:
        text = "\n".join(self.pieces)
        total = (
            tokens.count_text(text, self.provider, self.model)
            + len(self.pieces)
            + self.containers
            + self.media_tokens
            + REQUEST_OVERHEAD_TOKENS
        )
        if self.has_tools:
            total += _TOOLS_OVERHEAD.get(self.provider, 600)
        return InputEstimate(total, unbounded or self.unbounded)

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
        for key in ("inlineData", "inline_data"):
            blob = node.get(key)
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                mime = blob.get("mimeType") or blob.get("mime_type") or ""
                self._blob(str(mime), blob["data"], None)
                return True
        for key in ("fileData", "file_data"):
            ref = node.get(key)
            if isinstance(ref, dict):
                self._reference(str(ref.get("mimeType") or ref.get("mime_type") or ""), None)
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
            self.media_tokens += images.openai_image_tokens(self.model, None, detail)
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

    def _blob(self, mime: str, data: str, detail: str | None) -> None:
        if mime.startswith("image/"):
            self.media_tokens += self._image(images.size_from_base64(data), detail)
        elif mime == "application/pdf":
            self._pdf(data)
        elif mime.startswith("text/") or mime in ("application/json", "application/xml"):
            self.pieces.append(_decode(data).decode("utf-8", "replace"))
        else:
            self.media_tokens += _raw_len(data) // MEDIA_BYTES_PER_TOKEN + 64
            if not mime.startswith(("audio/", "video/")):
                # Office files and the like: text is extracted from them, size unknown.
                self.media_tokens += _raw_len(data) // 2
                self.unbounded = True

    def _image(self, size: tuple[int, int] | None, detail: str | None) -> int:
        if self.provider == "anthropic":
            return images.anthropic_image_tokens(self.model, size)
        if self.provider == "gemini":
            return images.gemini_image_tokens(self.model, size)
        return images.openai_image_tokens(self.model, size, detail)

    def _pdf(self, data: str) -> None:
        raw = _decode(data)
        pages = len(_PDF_PAGE.findall(raw))
        counts = [int(n) for n in _PDF_COUNT.findall(raw)]
        pages = max([pages, *counts])
        if pages:
            self.media_tokens += pages * PDF_PAGE_TOKENS
        else:  # compressed object streams hide the page tree
            self.media_tokens += len(raw) // 2
            self.unbounded = True

    def _reference(self, mime: str, detail: str | None) -> None:
        if mime.startswith("image/"):
            self.media_tokens += self._image(None, detail)
        else:
            self.media_tokens += FILE_REFERENCE_TOKENS
            self.unbounded = True


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
