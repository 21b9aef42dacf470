"""The billable units SpendGuard prices, in genai-prices' vocabulary.

Each price key (``input_mtok``, ``web_searches_kcount``, …) prices one usage count per ``per``
units. Units form a tree by their dimensions: ``cache_write_1h_tokens`` is a kind of
``cache_write_tokens``, which is a kind of ``input_tokens``. A count is charged at the most
specific *priced* unit it belongs to (the "leaf"): a 1-hour cache write costs the 1-hour rate
when the model has one, else the cache-write rate, else the input rate — genai-prices' rule,
so our charges equal its ``calc_price``.

A document may only use these keys: a price key we cannot map to a usage count would price
nothing, silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Unit:
    usage_key: str
    price_key: str
    per: int
    dimensions: MappingProxyType

    def covers(self, other: Unit) -> bool:
        """``other`` is this unit or a more specific kind of it."""
        return self.dimensions.items() <= other.dimensions.items()

    @property
    def direction(self) -> str | None:
        return self.dimensions.get("direction")

    @property
    def modality(self) -> str | None:
        return self.dimensions.get("modality")

    @property
    def token_type(self) -> str | None:
        return self.dimensions.get("token_type")

    @property
    def cache_ttl(self) -> str | None:
        return self.dimensions.get("cache_ttl")


def _unit(usage_key: str, price_key: str, per: int, **dimensions: str) -> Unit:
    return Unit(usage_key, price_key, per, MappingProxyType(dimensions))


_M = 1_000_000
_TOKENS = {"family": "tokens"}
UNITS: tuple[Unit, ...] = (
    _unit("input_tokens", "input_mtok", _M, **_TOKENS, direction="input"),
    _unit("output_tokens", "output_mtok", _M, **_TOKENS, direction="output"),
    _unit("cache_read_tokens", "cache_read_mtok", _M, **_TOKENS, direction="input",
          token_type="cache_read"),
    _unit("cache_write_tokens", "cache_write_mtok", _M, **_TOKENS, direction="input",
          token_type="cache_write"),
    _unit("cache_write_1h_tokens", "cache_write_1h_mtok", _M, **_TOKENS, direction="input",
          token_type="cache_write", cache_ttl="1h"),
    _unit("input_audio_tokens", "input_audio_mtok", _M, **_TOKENS, direction="input",
          modality="audio"),
    _unit("input_image_tokens", "input_image_mtok", _M, **_TOKENS, direction="input",
          modality="image"),
    _unit("input_video_tokens", "input_video_mtok", _M, **_TOKENS, direction="input",
          modality="video"),
    _unit("cache_audio_read_tokens", "cache_audio_read_mtok", _M, **_TOKENS, direction="input",
          modality="audio", token_type="cache_read"),
    _unit("cache_image_read_tokens", "cache_image_read_mtok", _M, **_TOKENS, direction="input",
          modality="image", token_type="cache_read"),
    _unit("output_audio_tokens", "output_audio_mtok", _M, **_TOKENS, direction="output",
          modality="audio"),
    _unit("output_image_tokens", "output_image_mtok", _M, **_TOKENS, direction="output",
          modality="image"),
    _unit("output_video_tokens", "output_video_mtok", _M, **_TOKENS, direction="output",
          modality="video"),
    _unit("web_searches", "web_searches_kcount", 1000, family="tool_calls",
          tool_type="web_search"),
    _unit("storage_searches", "storage_searches_kcount", 1000, family="tool_calls",
          tool_type="storage_search"),
    _unit("code_executions", "code_executions_kcount", 1000, family="tool_calls",
          tool_type="code_execution"),
)
BY_PRICE_KEY = MappingProxyType({unit.price_key: unit for unit in UNITS})
BY_USAGE_KEY = MappingProxyType({unit.usage_key: unit for unit in UNITS})
PRICE_KEYS = tuple(BY_PRICE_KEY)
FEE_KEYS = tuple(u.usage_key for u in UNITS if u.dimensions.get("family") == "tool_calls")
