"""What a provider reports a call used, normalised across providers.

``input_tokens`` is every input token of the call whatever rate applies to it; the cached,
cache-write, cache-read and per-modality counts are parts of it (``cache_write_1h_tokens`` is
a part of ``cache_write_tokens``). ``output_tokens`` is every output token; reasoning and
audio/image output are parts of it. ``service_tier`` is the tier the provider says it used.
"""

from __future__ import annotations

from dataclasses import dataclass

_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "input_audio_tokens",
    "input_image_tokens",
    "input_video_tokens",
    "cache_audio_read_tokens",
    "output_audio_tokens",
    "output_image_tokens",
    "grounding_queries",
    "web_search_calls",
    "file_search_calls",
    "code_executions",
)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    input_video_tokens: int = 0
    cache_audio_read_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0
    grounding_queries: int = 0
    web_search_calls: int = 0
    file_search_calls: int = 0
    code_executions: int = 0
    service_tier: str | None = None

    def as_dict(self) -> dict[str, int]:
        """The counts (not dataclasses.asdict: that deep-copies, and this runs per call)."""
        return {name: getattr(self, name) for name in _COUNTS}
