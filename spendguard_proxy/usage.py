"""What a provider reports a call used, normalised across providers.

``input_tokens`` is every input token of the call whatever rate applies to it; the
``cached_input_tokens``, ``cache_write_tokens`` and ``cache_read_tokens`` are parts of it.
``output_tokens`` is every output token; ``reasoning_tokens`` is the part that was reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    grounding_queries: int = 0
    web_search_calls: int = 0
    file_search_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        # Not dataclasses.asdict: that deep-copies, and this runs for every settled call.
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(Usage))
