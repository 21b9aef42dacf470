"""Anthropic Messages: shaping, usage, stream counting.

Anthropic's ``usage.input_tokens`` leaves out cache writes and cache reads; ``Usage``
counts every input token, so the three are added up here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers import base, fields
from spendguard_proxy.providers.base import Preflight, StreamCounter, ThinkingBudgetUnaffordable
from spendguard_proxy.providers.estimate import estimate_input
from spendguard_proxy.providers.fields import BOUNDED, FREE, Rule, bounded, free, refused
from spendguard_proxy.providers.sse import SseEvent, encode_event
from spendguard_proxy.usage import Usage

DEFAULT_VERSION = "2023-06-01"
THINKING_BUDGET_MIN = 1024
# Sent upstream unless the client asked for it: 'auto' may be served (and billed) at
# Priority Tier when the organisation has Priority capacity.
STANDARD_TIER = "standard_only"

_SETTINGS_KEYS = frozenset(
    {
        "model",
        "stream",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "service_tier",
        "thinking",
        "container",
        "context_management",
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
        "cache_control",
    }
)

_INPUT = "counted into the input-token estimate"
_OUTPUT_CAP = "output stays under the max_tokens SpendGuard clamps"
_SAMPLING = free(f"sampling control; {_OUTPUT_CAP}")
_CACHE_WRITE = bounded(
    "cache writes are held at the 5-minute or 1-hour write rate the request asks for"
)

# Anthropic Messages (anthropic 2.14.0 MessageCreateParams, plus the beta-only body fields and
# the sampling fields older clients still send).
ANTHROPIC_FIELDS: dict[str, Rule] = {
    "model": bounded("selects the price row (an unpriced model is refused)"),
    "messages": bounded(f"{_INPUT} (cache_control blocks at the cache-write rate)"),
    "system": bounded(f"{_INPUT} (cache_control blocks at the cache-write rate)"),
    "max_tokens": bounded("the output cap SpendGuard prices and clamps (thinking included)"),
    "stream": free("same tokens"),
    "metadata": free("an identifier"),
    "stop_sequences": _SAMPLING,
    "temperature": _SAMPLING,
    "top_p": _SAMPLING,
    "top_k": _SAMPLING,
    "tools": bounded(f"definitions are {_INPUT}; each tool type below"),
    "tool_choice": free("tool selection only"),
    "thinking": bounded(
        "thinking tokens are output inside max_tokens (budget_tokens is lowered below it)"
    ),
    "output_config": bounded(
        f"effort stays inside max_tokens; a format schema is {_INPUT}",
        fields={"effort": free(_OUTPUT_CAP), "format": bounded(_INPUT)},
    ),
    "cache_control": _CACHE_WRITE,
    "service_tier": bounded(
        "'auto' may be served at Priority Tier: SpendGuard sends 'standard_only' and prices "
        "standard",
        {"auto": BOUNDED, "standard_only": BOUNDED},
    ),
    "inference_geo": bounded(
        "priced by the model's inference_geo price variant (US-only costs more), refused where "
        "the price table has none",
        other=BOUNDED,  # the price table decides (400 UnpricedOption if unpriced)
    ),
    "speed": bounded(
        "'fast' is priced by the model's speed price variant, refused where the price table "
        "has none",
        {"standard": FREE, "fast": BOUNDED},
    ),
    "context_management": bounded(
        "clear_* edits only remove input; compaction edits are refused (checked per edit)"
    ),
    "diagnostics": free("cache-miss diagnostics"),
    "user_profile_id": free("attribution"),
    "workspace_id": free("selects the workspace; its defaults are overridden by what "
                         "SpendGuard sends"),
    "billing_policy": free("can only move the bill away from the organisation"),
    "fallback_credit_token": free("only lowers a retry's cache-creation cost"),
    "container": refused("code-execution containers are billed by the hour, which the price "
                         "table does not price"),
    "mcp_servers": refused("remote MCP tool results enter the context with no size cap"),
    "compaction": refused("server-side compaction runs extra model work SpendGuard cannot bound"),
    "fallbacks": refused("a fallback may run another model at its own price"),
    "thread": refused("server-held conversation state of unknown size is added to the input"),
}
_CLIENT_TOOL = bounded(
    "executed by the client: its definition is input, its result input of the next request"
)
_SEARCH = bounded(
    "billed per search: max_uses x the fee is in the hold (refused where the price table has "
    "no fee) and SpendGuard sends max_uses upstream; results count as unseen input"
)
_FETCH = bounded(
    "no per-call fee; fetched pages are unseen input, and SpendGuard sends max_uses upstream"
)
ANTHROPIC_TOOLS: dict[str, Rule] = {
    "custom": bounded(f"the definition is {_INPUT}"),
    "bash_*": _CLIENT_TOOL,
    "text_editor_*": _CLIENT_TOOL,
    "computer_2*": _CLIENT_TOOL,
    "memory_*": _CLIENT_TOOL,
    "tool_search_tool_*": bounded(f"deferred definitions are in the request: {_INPUT}"),
    "web_search_*": _SEARCH,
    "web_fetch_*": _FETCH,
    "code_execution_*": refused(
        "code execution is billed by container hour, which the price table does not price"
    ),
    "advisor_*": refused("each use runs another model, which the hold does not price"),
    "mcp_toolset": refused("remote MCP tool results enter the context with no size cap"),
    "browser_toolset_*": refused("a server-side browser with no price in the price table"),
    "computer_toolset_*": refused("a server-side computer with no price in the price table"),
}
_ENABLES = "only enables a field or tool that is classified on its own"
_NO_PRICE_EFFECT = free("no effect on the bill")
_ADMIN = free("another endpoint (admin, batches, reporting): not a Messages price")
# anthropic-beta header values (AnthropicBetaParam of anthropic 2.14.0).
ANTHROPIC_BETAS: dict[str, Rule] = {
    "context-1m-2025-08-07": bounded(
        "input above 200k tokens is priced at the model's long-context tier in the price table"
    ),
    "output-128k-2025-02-19": bounded("larger max_tokens: the hold prices the max_tokens sent"),
    "output-300k-2026-03-24": bounded("larger max_tokens: the hold prices the max_tokens sent"),
    "interleaved-thinking-2025-05-14": bounded(f"thinking between tool calls; {_OUTPUT_CAP}"),
    "fast-mode-2026-02-01": bounded("speed is priced by its own price variant"),
    "extended-cache-ttl-2025-04-11": _CACHE_WRITE,
    "prompt-caching-2024-07-31": _CACHE_WRITE,
    "pdfs-2024-09-25": bounded(f"PDF pages are {_INPUT}"),
    "files-api-2025-04-14": bounded(
        "referenced files are input SpendGuard cannot see: reserved as CAP_UNSEEN_INPUT_TOKENS"
    ),
    "inline-tools-2026-09-15": bounded(f"inline tool definitions are {_INPUT}"),
    "computer-use-2024-10-22": _CLIENT_TOOL,
    "computer-use-2025-01-24": _CLIENT_TOOL,
    "computer-use-2025-11-24": _CLIENT_TOOL,
    "context-management-2025-06-27": free(_ENABLES),
    "code-execution-2025-05-22": free(_ENABLES),
    "mcp-client-2025-04-04": free(_ENABLES),
    "mcp-client-2025-11-20": free(_ENABLES),
    "mcp-client-2026-09-15": free(_ENABLES),
    "compact-2026-01-12": free(_ENABLES),
    "compact-2026-09-04": free(_ENABLES),
    "server-side-fallback-2026-06-01": free(_ENABLES),
    "server-side-fallback-2026-07-01": free(_ENABLES),
    "message-threads-2026-08-12": free(_ENABLES),
    "advisor-tool-2026-03-01": free(_ENABLES),
    "skills-2025-10-02": free(_ENABLES),
    "structured-outputs-2025-11-13": free(f"the schema is {_INPUT}"),
    "dev-full-thinking-2025-05-14": _NO_PRICE_EFFECT,
    "model-context-window-exceeded-2025-08-26": _NO_PRICE_EFFECT,
    "thinking-token-count-2026-05-13": _NO_PRICE_EFFECT,
    "thinking-display-updates-2026-08-18": _NO_PRICE_EFFECT,
    "thinking-binding-controls-2026-08-01": _NO_PRICE_EFFECT,
    "mid-conversation-tool-changes-2026-07-01": _NO_PRICE_EFFECT,
    "mid-conversation-output-config-2026-07-01": _NO_PRICE_EFFECT,
    "mid-conversation-system-clear-at-2026-08-21": _NO_PRICE_EFFECT,
    "token-efficient-tools-2025-02-19": free(f"fewer output tokens; {_OUTPUT_CAP}"),
    "task-budgets-2026-03-13": free(_OUTPUT_CAP),
    "cache-diagnosis-2026-04-07": free("diagnostics"),
    "fallback-credit-2026-06-01": free("only lowers a retry's cache-creation cost"),
    "fallback-credit-2026-07-01": free("only lowers a retry's cache-creation cost"),
    "user-profiles-2026-03-24": free("attribution"),
    "user-profiles-2026-08-18": free("attribution"),
    "user-profiles-2026-09-04": free("attribution"),
    "user-profiles-billing-2026-10-01": free("can only move the bill away from the organisation"),
    "token-counting-2024-11-01": _ADMIN,
    "message-batches-2024-09-24": _ADMIN,
    "spend-limit-reads-2026-09-26": _ADMIN,
    "telemetry-destinations-2026-08-11": _ADMIN,
    "webhooks-2026-10-07": _ADMIN,
    "admin-user-sign-out-2026-10-08": _ADMIN,
    "analytics-usage-cost-2026-08-24": _ADMIN,
    "ce-user-management-2026-07-13": _ADMIN,
    "ce-claude-code-managed-settings-2026-10-06": _ADMIN,
    "google-managed-data-controls-2026-09-01": _ADMIN,
    "agent-memory-2026-07-22": refused("server-side memory adds input of unknown size"),
    "dreaming-2026-04-21": refused("undocumented background work"),
    "managed-agents-2026-04-01": refused("the Managed Agents API, not a Messages request"),
    "mcp-tunnels-2026-06-22": refused("remote MCP tool results enter the context with no size cap"),
    "ce-plugins-2026-09-01": refused("code-execution plugins with no price in the price table"),
    "efs-2026-10-01": refused("undocumented"),
    "experimental-claude-tag-2026-10-21": refused("undocumented"),
}
CACHE_TTLS = ("5m", "1h")
_SERVER_TOOL_PREFIXES = ("web_search_", "web_fetch_", "code_execution_", "bash_code_execution")
_CAPPED_TOOL_PREFIXES = ("web_search_", "web_fetch_")


@dataclass(frozen=True, eq=False)
class AnthropicAdapter:
    name: str = "anthropic_messages"
    pricing_provider: str = "anthropic"
    base_url_setting: str = "anthropic_base_url"
    api_key_setting: str = "anthropic_api_key"
    api_key_env: str = "ANTHROPIC_API_KEY"

    def preflight(
        self,
        body: Any,
        *,
        model: str | None = None,
        stream: bool | None = None,
        forwarded: frozenset[str] = frozenset(),
        headers: Mapping[str, str] | None = None,
    ) -> Preflight:
        body = base.require_object(body)
        model = base.require_model(body.get("model"))
        base.list_of_objects(body, "messages", required=True)
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            raise InvalidRequest("system must be a string or a list of content blocks")
        tools = base.list_of_objects(body, "tools", required=False)
        fields.check_fields(self.name, body, ANTHROPIC_FIELDS, forwarded)
        kinds = fields.check_tools(self.name, tools, ANTHROPIC_TOOLS, forwarded,
                                   default_type="custom")
        _check_edits(self.name, body, forwarded)
        fields.check_values(self.name, "anthropic-beta", beta_values(headers or {}),
                            ANTHROPIC_BETAS, forwarded)
        thinking = base.optional_object(body, "thinking")
        budget = None
        if thinking.get("type") == "enabled":
            budget = base.optional_positive_int(thinking, "budget_tokens", "thinking.budget_tokens")
        searches = sum(
            _uses_cap(tool)
            for tool, kind in zip(tools, kinds, strict=True)
            if kind.startswith("web_search_")
            and not fields.is_forwarded(self.name, "tools", kind, forwarded)
        )
        server_tools = any(kind.startswith(_SERVER_TOOL_PREFIXES) for kind in kinds)
        estimate = estimate_input(
            body, provider=self.pricing_provider, model=model, skip_keys=_SETTINGS_KEYS
        )
        return Preflight(
            model=model,
            stream=base.optional_bool(body, "stream"),
            input_tokens=estimate.tokens,
            media_tokens=estimate.media,
            requested_max_tokens=base.optional_positive_int(body, "max_tokens"),
            max_tokens_field="max_tokens",
            input_unbounded=estimate.unbounded or server_tools or bool(body.get("mcp_servers")),
            cache_write=_cache_write(self.name, body, forwarded),
            fees={"web_searches": searches} if searches else {},
            price_context=_price_context(self.name, body, forwarded),
            thinking_budget=budget,
        )

    def build_upstream(
        self,
        body: dict[str, Any],
        *,
        max_tokens: int,
        stream: bool,
        base_url: str,
        api_key: str | None,
        client_headers: Mapping[str, str],
        model: str | None = None,
        price_context: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str], bytes]:
        """``price_context``: the variant the hold was priced at. An inference_geo in it that
        the client left out is sent (omitted, the workspace default applies, and it may be
        the dearer "us"); only the caller knows whether the model takes the field at all
        (legacy models answer 400 to it), from the price table's options."""
        out = dict(body)
        out["max_tokens"] = max_tokens
        geo = (price_context or {}).get("inference_geo")
        if geo is not None and out.get("inference_geo") is None:
            out["inference_geo"] = geo
        if stream or "stream" in out:
            out["stream"] = stream
        thinking = out.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            out["thinking"] = _fit_thinking(thinking, max_tokens)
        if out.get("service_tier") in (None, "auto"):
            out["service_tier"] = STANDARD_TIER
        if isinstance(out.get("tools"), list):
            out["tools"] = [_capped_tool(tool) for tool in out["tools"]]
        headers = base.forwarded_headers(client_headers)
        headers.setdefault("anthropic-version", DEFAULT_VERSION)
        headers["content-type"] = "application/json"
        if api_key:
            headers["x-api-key"] = api_key
        return f"{base_url.rstrip('/')}/v1/messages", headers, base.dump_json(out)

    def usage_from_json(self, answer: Any, preflight: Preflight | None = None) -> Usage | None:
        usage = answer.get("usage") if isinstance(answer, dict) else None
        return anthropic_usage(usage) if isinstance(usage, dict) else None

    def new_stream_counter(
        self, preflight: Preflight, client_wants_usage: bool | None = None
    ) -> AnthropicStreamCounter:
        return AnthropicStreamCounter(preflight, True, self.pricing_provider)

    def client_api_key(self, client_headers: Mapping[str, str]) -> str | None:
        return base.header(client_headers, "x-api-key") or base.bearer_token(client_headers)


def beta_values(headers: Mapping[str, str]) -> list[str]:
    """The comma-separated values of the ``anthropic-beta`` header."""
    raw = base.header(headers, "anthropic-beta") or ""
    return [value.strip() for value in raw.split(",") if value.strip()]


def _uses_cap(tool: Mapping[str, Any]) -> int:
    """The uses a capped server tool may make: the client's max_uses, else the default."""
    uses = tool.get("max_uses")
    valid = isinstance(uses, int) and not isinstance(uses, bool) and uses > 0
    return uses if valid else base.DEFAULT_TOOL_CALLS_MAX


def _capped_tool(tool: Any) -> Any:
    """Web search and fetch go upstream with the max_uses the hold assumed."""
    if isinstance(tool, dict) and str(tool.get("type", "")).startswith(_CAPPED_TOOL_PREFIXES):
        return {**tool, "max_uses": _uses_cap(tool)}
    return tool


def _price_context(adapter: str, body: Mapping[str, Any],
                   forwarded: frozenset[str]) -> dict[str, str]:
    """Price variants of the request (standard tier is pinned upstream, never priced up)."""
    context: dict[str, str] = {}
    geo = body.get("inference_geo")
    if geo is not None:
        if not isinstance(geo, str):
            raise InvalidRequest("inference_geo must be a string")
        if not fields.is_forwarded(adapter, "inference_geo", geo, forwarded):
            context["inference_geo"] = geo
    speed = body.get("speed")
    if speed not in (None, "standard") and not fields.is_forwarded(
        adapter, "speed", speed, forwarded
    ):
        context["speed"] = str(speed)
    return context


def _cache_write(adapter: str, body: Any, forwarded: frozenset[str]) -> str | None:
    """The longest prompt-cache TTL the request writes ("5m", "1h"), None when it marks no
    cache_control; a TTL without a price is refused."""
    longest = None
    for control in _cache_controls(body):
        ttl = control.get("ttl", "5m")
        if ttl not in CACHE_TTLS:
            fields.refuse(adapter, "cache_control.ttl", ttl, forwarded,
                          "only the 5-minute and 1-hour cache writes have a price")
            continue
        if longest != "1h":
            longest = ttl
    return longest


def _cache_controls(root: Any) -> list[dict[str, Any]]:
    found = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            control = node.get("cache_control")
            if isinstance(control, dict):
                found.append(control)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _check_edits(adapter: str, body: Mapping[str, Any], forwarded: frozenset[str]) -> None:
    """context_management edits: clear_* only removes input; anything else (compaction runs
    a summarising pass) is refused."""
    management = body.get("context_management")
    if management is None or fields.is_forwarded(adapter, "context_management", None, forwarded):
        return
    edits = management.get("edits") if isinstance(management, dict) else None
    if not isinstance(edits, list):
        raise InvalidRequest("context_management.edits must be a list")
    for edit in edits:
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not isinstance(kind, str) or not kind.startswith("clear_"):
            fields.refuse(adapter, "context_management.edits.type", kind, forwarded,
                          "only clear_* edits are bounded (they remove input); compaction "
                          "runs extra model work SpendGuard cannot bound")


def _fit_thinking(thinking: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < max_tokens:
        return thinking
    if max_tokens - 1 < THINKING_BUDGET_MIN:
        raise ThinkingBudgetUnaffordable(max_tokens, THINKING_BUDGET_MIN)
    return {**thinking, "budget_tokens": max_tokens - 1}


def anthropic_usage(usage: dict[str, Any]) -> Usage:
    uncached = base.positive_or_zero(usage.get("input_tokens"))
    writes = base.positive_or_zero(usage.get("cache_creation_input_tokens"))
    reads = base.positive_or_zero(usage.get("cache_read_input_tokens"))
    output = base.positive_or_zero(usage.get("output_tokens"))
    creation = usage.get("cache_creation")
    writes_1h = (
        base.positive_or_zero(creation.get("ephemeral_1h_input_tokens"))
        if isinstance(creation, dict)
        else 0
    )
    writes = max(writes, writes_1h)  # the 1h writes are a part of all writes
    details = usage.get("output_tokens_details")
    thinking = (
        base.positive_or_zero(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    )
    server = usage.get("server_tool_use")
    searches = (
        base.positive_or_zero(server.get("web_search_requests")) if isinstance(server, dict) else 0
    )
    tier = usage.get("service_tier")
    return Usage(
        input_tokens=uncached + writes + reads,
        output_tokens=output,
        reasoning_tokens=min(thinking, output),
        cache_write_tokens=writes,
        cache_write_1h_tokens=writes_1h,
        cache_read_tokens=reads,
        web_search_calls=searches,
        service_tier=tier if isinstance(tier, str) else None,
    )


class AnthropicStreamCounter(StreamCounter):
    def __init__(self, preflight: Preflight, client_wants_usage: bool, provider: str) -> None:
        super().__init__(preflight, client_wants_usage, provider)
        self._message: dict[str, Any] | None = None
        self._usage_fields: dict[str, Any] = {}
        self._saw_delta_usage = False
        self._open_blocks: set[int] = set()

    def _on_event(self, event: SseEvent, payload: Any) -> bool:
        if not isinstance(payload, dict):
            return True
        kind = payload.get("type") or event.event
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            self._message = payload["message"]
            self._merge_usage(self._message.get("usage"))
        elif kind == "content_block_start":
            self._block_start(payload)
        elif kind == "content_block_delta":
            self._block_delta(payload.get("delta"), str(payload.get("index")))
        elif kind == "content_block_stop" and isinstance(payload.get("index"), int):
            self._open_blocks.discard(payload["index"])
        elif kind == "message_delta":
            self._saw_delta_usage |= isinstance(payload.get("usage"), dict)
            self._merge_usage(payload.get("usage"))
        elif kind == "message_stop":
            self.done = True
            if self._saw_delta_usage:
                self.usage = anthropic_usage(self._usage_fields)
        return True

    def _merge_usage(self, usage: Any) -> None:
        # message_delta repeats the figures cumulatively; null means "not reported here".
        if isinstance(usage, dict):
            self._usage_fields.update({k: v for k, v in usage.items() if v is not None})
            self._tally.add_reported(base.positive_or_zero(self._usage_fields.get("output_tokens")))

    def _block_start(self, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        if isinstance(index, int):
            self._open_blocks.add(index)
        block = payload.get("content_block")
        if isinstance(block, dict):
            channel = str(index)
            for key in ("text", "thinking", "name"):
                self._count(block.get(key), channel)
            if block.get("input"):
                self._count(json.dumps(block["input"]), channel)

    def _block_delta(self, delta: Any, channel: str) -> None:
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            self._count(delta.get("text"), channel)
        elif kind == "input_json_delta":
            self._count(delta.get("partial_json"), channel)
        elif kind == "thinking_delta":
            self._count(delta.get("thinking"), channel)

    def cutoff_events(self) -> bytes:
        if self.done:
            return b""
        out = b""
        if self._message is None:  # cut before message_start: the SDKs need one first
            self._message = _empty_message(self.preflight)
            out += _event("message_start", {"message": self._message})
        for index in sorted(self._open_blocks):
            out += _event("content_block_stop", {"index": index})
        usage = {"output_tokens": self.output_tokens}
        delta = {"stop_reason": "max_tokens", "stop_sequence": None}
        out += _event("message_delta", {"delta": delta, "usage": usage})
        return out + _event("message_stop", {})


def _empty_message(preflight: Preflight) -> dict[str, Any]:
    return {
        "id": "msg_spendguard_cutoff",
        "type": "message",
        "role": "assistant",
        "model": preflight.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": preflight.input_tokens, "output_tokens": 0},
    }


def _event(kind: str, fields: dict[str, Any]) -> bytes:
    return encode_event(json.dumps({"type": kind, **fields}, separators=(",", ":")), kind)


ANTHROPIC_MESSAGES = AnthropicAdapter()
