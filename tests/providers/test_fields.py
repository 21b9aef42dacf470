"""Every request field of every adapter's API is classified (DESIGN §10).

Per adapter: the table of its API's fields (from the pinned official SDKs, see
``recorded/FIELDS.md``) and the kind each must have; an unknown field is a 400 naming it; values
of a field are classified too; a Gemini field in two spellings is a 400; the operator's escape
hatch works for ``adapter:field`` and ``adapter:field=value`` and never for a bare name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from spendguard_proxy import billing
from spendguard_proxy.errors import InvalidRequest, UnpricedOption
from spendguard_proxy.pricing.sources import load_bundled
from spendguard_proxy.providers import (
    anthropic,
    fields,
    gemini,
    openai_chat,
    openai_embeddings,
    openai_responses,
)
from spendguard_proxy.providers.base import DEFAULT_TOOL_CALLS_MAX
from spendguard_proxy.providers.fields import Kind
from spendguard_proxy.providers.registry import get_adapter

F, B, R = "free", "bounded", "refused"
MSG = [{"role": "user", "content": "hi"}]
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]
TABLE = load_bundled()
NOW = datetime.now(UTC)

# ---------------------------------------------------------------- the tables, field by field

OPENAI_CHAT = {
    "audio": R, "frequency_penalty": F, "function_call": F, "functions": B, "logit_bias": F,
    "logprobs": F, "max_completion_tokens": B, "max_tokens": B, "messages": B, "metadata": F,
    "modalities": B, "model": B, "moderation": R, "n": B, "parallel_tool_calls": F,
    "prediction": B, "presence_penalty": F, "prompt_cache_key": F, "prompt_cache_options": B,
    "prompt_cache_retention": B, "reasoning_effort": F, "response_format": B,
    "safety_identifier": F, "seed": F, "service_tier": B, "stop": F, "store": F, "stream": F,
    "stream_options": F, "temperature": F, "tool_choice": F, "tools": B, "top_logprobs": F,
    "top_p": F, "user": F, "verbosity": F, "web_search_options": B,
}
OPENAI_CHAT_TOOLS = {"function": B, "custom": B}
GROK_CHAT = {
    "messages": B, "model": B, "user": F, "n": B, "max_tokens": B, "max_completion_tokens": B,
    "seed": F, "stop": F, "temperature": F, "top_p": F, "logprobs": F, "top_logprobs": F,
    "tools": B, "tool_choice": F, "response_format": B, "frequency_penalty": F,
    "presence_penalty": F, "reasoning_effort": F, "search_parameters": R,
    "parallel_tool_calls": F, "previous_response_id": B, "store_messages": F,
    "use_encrypted_content": F, "max_turns": F, "include": F, "agent_count": R,
    "service_tier": B, "safety_identifier": F, "guidelines": B, "stream": F,
    "stream_options": F,
}
GROK_TOOLS = {
    "function": B, "web_search": R, "x_search": R, "code_execution": R, "code_interpreter": R,
    "collections_search": R, "attachment_search": R, "file_search": R, "image_generation": R,
    "mcp": R,
}
OPENAI_RESPONSES = {
    "access_programs": F, "background": B, "background_options": F, "context_management": R,
    "conversation": B, "image": F, "include": F, "input": B, "instructions": B,
    "max_output_tokens": B, "max_tool_calls": B, "metadata": F, "model": B, "moderation": R,
    "parallel_tool_calls": F, "previous_response_id": B, "prompt": R, "prompt_cache_key": F,
    "prompt_cache_options": B, "prompt_cache_retention": B, "reasoning": B,
    "safety_identifier": F, "service_tier": B, "store": F, "stream": F, "stream_options": F,
    "temperature": F, "text": B, "tool_choice": F, "tools": B, "top_logprobs": F, "top_p": F,
    "truncation": F, "user": F,
}
OPENAI_RESPONSES_TOOLS = {
    "function": B, "custom": B, "namespace": B, "computer": B, "computer_use_preview": B,
    "local_shell": B, "apply_patch": B, "web_search": B, "web_search_2025_08_26": B,
    "web_search_preview": B, "web_search_preview_2025_03_11": B, "file_search": B,
    "code_interpreter": B, "shell": R, "image_generation": R, "mcp": R,
    "programmatic_tool_calling": R, "tool_search": R,
}
GROK_RESPONSES = {
    **{name: kind for name, kind in OPENAI_RESPONSES.items() if name in {
        "model", "input", "instructions", "max_output_tokens", "max_tool_calls", "stream",
        "stream_options", "temperature", "top_p", "top_logprobs", "user", "metadata", "store",
        "parallel_tool_calls", "tool_choice", "truncation", "include", "text", "tools",
        "previous_response_id", "service_tier", "background", "reasoning"}},
    "logprobs": F, "max_turns": F, "search_parameters": R,
}
ANTHROPIC = {
    "model": B, "messages": B, "system": B, "max_tokens": B, "stream": F, "metadata": F,
    "stop_sequences": F, "temperature": F, "top_p": F, "top_k": F, "tools": B,
    "tool_choice": F, "thinking": B, "output_config": B, "cache_control": B,
    "service_tier": B, "inference_geo": B, "speed": B, "context_management": B,
    "diagnostics": F, "user_profile_id": F, "workspace_id": F, "billing_policy": F,
    "fallback_credit_token": F, "container": R, "mcp_servers": R, "compaction": R,
    "fallbacks": R, "thread": R,
}
ANTHROPIC_TOOLS = {
    "custom": B, "bash_20250124": B, "bash_20241022": B, "text_editor_20250124": B,
    "text_editor_20250429": B, "text_editor_20250728": B, "text_editor_20241022": B,
    "computer_20241022": B, "computer_20250124": B, "computer_20251124": B,
    "memory_20250818": B, "tool_search_tool_bm25_20251119": B, "tool_search_tool_bm25": B,
    "tool_search_tool_regex_20251119": B, "tool_search_tool_regex": B,
    "web_search_20250305": B, "web_search_20260209": B, "web_search_20260318": B,
    "web_fetch_20250910": B, "web_fetch_20260209": B, "web_fetch_20260309": B,
    "web_fetch_20260318": B, "code_execution_20250522": R, "code_execution_20250825": R,
    "code_execution_20260120": R, "code_execution_20260521": R, "advisor_20260301": R,
    "mcp_toolset": R, "browser_toolset_20260801": R, "computer_toolset_20260801": R,
}
# Every value of the anthropic SDK's AnthropicBetaParam (anthropic 2.14.0).
ANTHROPIC_BETAS = {
    "computer-use-2024-10-22": B, "computer-use-2025-01-24": B, "output-128k-2025-02-19": B,
    "mcp-client-2025-04-04": F, "mcp-client-2025-11-20": F, "dev-full-thinking-2025-05-14": F,
    "interleaved-thinking-2025-05-14": B, "code-execution-2025-05-22": F,
    "context-1m-2025-08-07": B, "context-management-2025-06-27": F,
    "model-context-window-exceeded-2025-08-26": F, "fast-mode-2026-02-01": B,
    "output-300k-2026-03-24": B, "user-profiles-2026-03-24": F, "user-profiles-2026-08-18": F,
    "user-profiles-2026-09-04": F, "advisor-tool-2026-03-01": F,
    "managed-agents-2026-04-01": R, "dreaming-2026-04-21": R,
    "thinking-token-count-2026-05-13": F, "server-side-fallback-2026-06-01": F,
    "server-side-fallback-2026-07-01": F, "fallback-credit-2026-06-01": F,
    "fallback-credit-2026-07-01": F, "agent-memory-2026-07-22": R,
    "mid-conversation-tool-changes-2026-07-01": F, "compact-2026-01-12": F,
    "computer-use-2025-11-24": B, "mcp-tunnels-2026-06-22": R,
    "structured-outputs-2025-11-13": F, "task-budgets-2026-03-13": F,
    "thinking-display-updates-2026-08-18": F, "mid-conversation-output-config-2026-07-01": F,
    "thinking-binding-controls-2026-08-01": F, "mid-conversation-system-clear-at-2026-08-21": F,
    "compact-2026-09-04": F, "inline-tools-2026-09-15": B, "mcp-client-2026-09-15": F,
    "ce-plugins-2026-09-01": R, "spend-limit-reads-2026-09-26": F,
    "telemetry-destinations-2026-08-11": F, "webhooks-2026-10-07": F,
    "admin-user-sign-out-2026-10-08": F, "message-threads-2026-08-12": F,
    "analytics-usage-cost-2026-08-24": F, "experimental-claude-tag-2026-10-21": R,
    "message-batches-2024-09-24": F, "prompt-caching-2024-07-31": B, "pdfs-2024-09-25": B,
    "token-counting-2024-11-01": F, "token-efficient-tools-2025-02-19": F,
    "files-api-2025-04-14": B, "extended-cache-ttl-2025-04-11": B, "skills-2025-10-02": F,
    "cache-diagnosis-2026-04-07": F, "ce-user-management-2026-07-13": F,
    "ce-claude-code-managed-settings-2026-10-06": F, "efs-2026-10-01": R,
    "google-managed-data-controls-2026-09-01": F, "user-profiles-billing-2026-10-01": F,
}
GEMINI = {
    "contents": B, "systemInstruction": B, "generationConfig": B, "tools": B, "toolConfig": F,
    "safetySettings": F, "labels": F, "model": F, "store": F, "cachedContent": B,
    "serviceTier": B, "continuationToken": R,
}
GEMINI_CONFIG = {
    "temperature": F, "topP": F, "topK": F, "seed": F, "stopSequences": F,
    "presencePenalty": F, "frequencyPenalty": F, "responseLogprobs": F, "logprobs": F,
    "responseMimeType": F, "responseSchema": B, "responseJsonSchema": B, "candidateCount": B,
    "maxOutputTokens": B, "enableEnhancedCivicAnswers": F, "mediaResolution": B,
    "responseModalities": B, "thinkingConfig": B, "speechConfig": R, "imageConfig": R,
    "audioTranscriptionConfig": R,
}
GEMINI_THINKING = {"includeThoughts": F, "thinkingBudget": B, "thinkingLevel": B}
GEMINI_TOOLS = {
    "functionDeclarations": B, "computerUse": B, "googleSearch": B, "googleSearchRetrieval": B,
    "fileSearch": B, "codeExecution": B, "urlContext": R, "googleMaps": R, "mcpServers": R,
}


EMBEDDINGS = {"model": F, "input": B, "encoding_format": F, "dimensions": F, "user": F}


def _kinds(table: fields.FieldTable) -> dict[str, str]:
    return {name: rule.kind.value for name, rule in table.items()}


def _camel_only(table: fields.FieldTable) -> dict[str, str]:
    return {n: k for n, k in _kinds(table).items() if "_" not in n}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (openai_chat.OPENAI_CHAT_FIELDS, OPENAI_CHAT),
        (openai_chat.OPENAI_CHAT_TOOLS, OPENAI_CHAT_TOOLS),
        (openai_chat.GROK_CHAT_FIELDS, GROK_CHAT),
        (openai_chat.GROK_CHAT_TOOLS, GROK_TOOLS),
        (openai_responses.OPENAI_RESPONSES_FIELDS, OPENAI_RESPONSES),
        (openai_responses.OPENAI_RESPONSES_TOOLS, OPENAI_RESPONSES_TOOLS),
        (openai_responses.GROK_RESPONSES_FIELDS, GROK_RESPONSES),
        (openai_responses.GROK_RESPONSES_TOOLS, GROK_TOOLS),
        (anthropic.ANTHROPIC_FIELDS, ANTHROPIC),
        (anthropic.ANTHROPIC_BETAS, ANTHROPIC_BETAS),
        (openai_embeddings.EMBEDDINGS_FIELDS, EMBEDDINGS),
    ],
    ids=["openai_chat", "openai_chat.tools", "grok_chat", "grok_chat.tools", "openai_responses",
         "openai_responses.tools", "grok_responses", "grok_responses.tools",
         "anthropic_messages", "anthropic-beta", "openai_embeddings"],
)
def test_every_field_has_its_kind(table: fields.FieldTable, expected: dict[str, str]) -> None:
    assert _kinds(table) == expected


def test_anthropic_tool_types_have_their_kind() -> None:
    got = {}
    for kind in ANTHROPIC_TOOLS:
        rule = fields.lookup(anthropic.ANTHROPIC_TOOLS, kind)
        got[kind] = rule.kind.value if rule else None
    assert got == ANTHROPIC_TOOLS
    assert fields.lookup(anthropic.ANTHROPIC_TOOLS, "teleport_20270101") is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (gemini.GEMINI_FIELDS, GEMINI),
        (gemini.GEMINI_FIELDS["generationConfig"].fields, GEMINI_CONFIG),
        (gemini.GEMINI_FIELDS["generationConfig"].fields["thinkingConfig"].fields,
         GEMINI_THINKING),
        (gemini.GEMINI_TOOLS, GEMINI_TOOLS),
    ],
    ids=["gemini", "generationConfig", "thinkingConfig", "tools"],
)
def test_gemini_fields_have_their_kind_in_both_spellings(table, expected) -> None:
    assert _camel_only(table) == expected
    for name, kind in expected.items():
        assert table[fields.snake_case(name)].kind.value == kind


def test_every_rule_says_why() -> None:
    tables = [openai_chat.OPENAI_CHAT_FIELDS, openai_chat.GROK_CHAT_FIELDS,
              openai_responses.OPENAI_RESPONSES_FIELDS, anthropic.ANTHROPIC_FIELDS,
              anthropic.ANTHROPIC_BETAS, gemini.GEMINI_FIELDS, gemini.GEMINI_TOOLS]
    for table in tables:
        for name, rule in table.items():
            assert rule.why and len(rule.why) > 8, name


# ---------------------------------------------------------------- through preflight

BASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "openai_chat": ({"model": "gpt-6-sol", "messages": MSG}, None),
    "grok_chat": ({"model": "grok-4.3", "messages": MSG}, None),
    "openai_responses": ({"model": "gpt-6-sol", "input": "hi"}, None),
    "grok_responses": ({"model": "grok-4.3", "input": "hi"}, None),
    "anthropic_messages": ({"model": "claude-opus-5", "messages": MSG}, None),
    "gemini": ({"contents": CONTENTS}, "gemini-3.5-flash"),
    "openai_embeddings": ({"model": "text-embedding-3-small", "input": "hi"}, None),
}
REFUSED_FIELDS = [
    ("openai_chat", "audio", {"voice": "alloy", "format": "wav"}),
    ("openai_chat", "moderation", {"model": "omni-moderation-latest"}),
    ("grok_chat", "search_parameters", {"mode": "auto"}),
    ("grok_chat", "agent_count", 4),
    ("openai_responses", "context_management", [{"type": "compaction"}]),
    ("openai_responses", "prompt", {"id": "pmpt_1"}),
    ("openai_responses", "moderation", {"model": "omni-moderation-latest"}),
    ("grok_responses", "search_parameters", {"mode": "on"}),
    ("anthropic_messages", "container", "cntr_1"),
    ("anthropic_messages", "mcp_servers", [{"type": "url", "url": "https://x"}]),
    ("anthropic_messages", "fallbacks", "default"),
    ("gemini", "continuationToken", "abc"),
]


def _preflight(name: str, extra: dict[str, Any], forwarded: frozenset[str] = frozenset(),
               headers: dict[str, str] | None = None):
    body, model = BASES[name]
    return get_adapter(name).preflight({**body, **extra}, model=model, forwarded=forwarded,
                                       headers=headers)


@pytest.mark.parametrize(("name", "field", "value"), REFUSED_FIELDS)
def test_refused_field_is_a_400_naming_it_unless_forwarded(name, field, value) -> None:
    with pytest.raises(InvalidRequest) as raised:
        _preflight(name, {field: value})
    assert raised.value.status == 400
    message = raised.value.message
    assert message.startswith(f"{field} is refused: ")
    assert f"CAP_FORWARD_UNPRICED_FIELDS={name}:{field}" in message
    _preflight(name, {field: value}, forwarded=fields.parse_forwarded([f"{name}:{field}"]))
    with pytest.raises(InvalidRequest):  # another adapter's entry does not apply
        _preflight(name, {field: value}, forwarded=frozenset({f"other_api:{field}"}))


@pytest.mark.parametrize("name", sorted(BASES))
def test_unknown_field_is_a_400_naming_it(name: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^turbo_mode is refused: SpendGuard does not know"):
        _preflight(name, {"turbo_mode": True})
    _preflight(name, {"turbo_mode": True}, forwarded=frozenset({f"{name}:turbo_mode"}))


def test_bare_names_are_not_an_escape_hatch() -> None:
    for bare in ("audio", "service_tier=scale", ":audio", "openai_chat:", "openai_chat:=x"):
        with pytest.raises(ValueError, match="adapter:field"):
            fields.parse_forwarded([bare])
    with pytest.raises(InvalidRequest):
        _preflight("openai_chat", {"audio": {}}, forwarded=frozenset({"audio"}))


def test_value_entries_forward_only_that_value() -> None:
    forwarded = fields.parse_forwarded(["openai_chat:modalities=audio"])
    _preflight("openai_chat", {"modalities": ["text", "audio"]}, forwarded=forwarded)
    with pytest.raises(InvalidRequest, match="modalities='image'"):
        _preflight("openai_chat", {"modalities": ["image"]}, forwarded=forwarded)
    with pytest.raises(InvalidRequest, match="modalities='audio'.*openai_chat:modalities=audio"):
        _preflight("openai_chat", {"modalities": ["text", "audio"]})
    assert _preflight("openai_chat", {"modalities": ["text"]}).model == "gpt-6-sol"


def test_nested_fields_are_classified_and_forwardable() -> None:
    with pytest.raises(InvalidRequest, match=r"^reasoning\.mode='pro' is refused"):
        _preflight("openai_responses", {"reasoning": {"effort": "high", "mode": "pro"}})
    _preflight("openai_responses", {"reasoning": {"mode": "pro"}},
               forwarded=frozenset({"openai_responses:reasoning.mode=pro"}))
    _preflight("openai_responses", {"reasoning": {"mode": "standard", "summary": "auto"}})
    with pytest.raises(InvalidRequest, match=r"^reasoning\.colour is refused"):
        _preflight("openai_responses", {"reasoning": {"colour": "blue"}})
    with pytest.raises(InvalidRequest, match=r"prompt_cache_options\.ttl='12h'"):
        _preflight("openai_responses", {"prompt_cache_options": {"ttl": "12h"}})
    with pytest.raises(InvalidRequest, match=r"access_programs\.cyber='daybreak_red'"):
        _preflight("openai_responses", {"access_programs": {"cyber": "daybreak_red"}})
    with pytest.raises(InvalidRequest, match="background='true'"):
        _preflight("openai_responses", {"background": True})
    _preflight("openai_responses", {"background": False, "background_options": {
        "completion_window": "2h"}})


@pytest.mark.parametrize(
    ("name", "tool", "shown"),
    [
        ("openai_chat", {"type": "web_search"}, "web_search"),
        ("openai_responses", {"type": "image_generation"}, "image_generation"),
        ("openai_responses", {"type": "mcp", "server_url": "https://x"}, "mcp"),
        ("openai_responses", {"type": "shell"}, "shell"),
        ("openai_responses", {"type": "teleport"}, "teleport"),
        ("grok_chat", {"type": "web_search"}, "web_search"),
        ("grok_responses", {"type": "code_execution"}, "code_execution"),
        ("anthropic_messages", {"type": "code_execution_20250825", "name": "c"},
         "code_execution_20250825"),
        ("anthropic_messages", {"type": "mcp_toolset", "mcp_server_name": "x"}, "mcp_toolset"),
    ],
)
def test_refused_tools_name_their_type(name: str, tool: dict, shown: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        _preflight(name, {"tools": [tool]})
    assert raised.value.message.startswith(f"tools={shown!r} is refused")
    assert f"CAP_FORWARD_UNPRICED_FIELDS={name}:tools={shown}" in raised.value.message
    _preflight(name, {"tools": [tool]}, forwarded=frozenset({f"{name}:tools={shown}"}))


def test_gemini_tools_are_classified_per_key() -> None:
    with pytest.raises(InvalidRequest, match=r"^tools\.urlContext is refused"):
        _preflight("gemini", {"tools": [{"urlContext": {}}]})
    pre = _preflight("gemini", {"tools": [{"urlContext": {}}]},
                     forwarded=frozenset({"gemini:tools.urlContext"}))
    assert pre.input_unbounded
    with pytest.raises(InvalidRequest, match=r"^tools\.google_maps is refused"):
        _preflight("gemini", {"tools": [{"google_maps": {}}]})



def test_gemini_grounding_is_one_fee_per_prompt_or_refused() -> None:
    """Gemini 1.x/2.x bill one fee per grounded prompt; Gemini 3 and later one per query,
    with no cap the request can set."""
    search = {"tools": [{"googleSearch": {}}]}
    old = get_adapter("gemini").preflight({"contents": CONTENTS, **search},
                                         model="models/gemini-2.5-flash")
    assert old.fees == {"web_searches": 1} and old.input_unbounded
    with pytest.raises(InvalidRequest, match=r"^tools\.googleSearch is refused: gemini-3\.5"):
        _preflight("gemini", search)
    assert _preflight("gemini", search, frozenset({"gemini:tools.googleSearch"})).fees == {}
    answer = {"usageMetadata": {"promptTokenCount": 5},
              "candidates": [{"groundingMetadata": {"webSearchQueries": ["a", "b", "c"]}}]}
    adapter = get_adapter("gemini")
    assert adapter.usage_from_json(answer, old).grounding_queries == 1
    new = adapter.preflight({"contents": CONTENTS}, model="gemini-3.5-flash")
    assert adapter.usage_from_json(answer, new).grounding_queries == 3


# ---------------------------------------------------------------- Gemini spellings


@pytest.mark.parametrize(
    "extra",
    [
        {"generationConfig": {}, "generation_config": {}},
        {"systemInstruction": {"parts": []}, "system_instruction": {"parts": []}},
        {"generationConfig": {"maxOutputTokens": 5, "max_output_tokens": 6}},
        {"generationConfig": {"thinkingConfig": {"thinkingBudget": 5, "thinking_budget": 6}}},
        {"tools": [{"googleSearch": {}, "google_search": {}}]},
        {"serviceTier": "flex", "service_tier": "priority"},
    ],
)
def test_gemini_field_in_both_spellings_is_a_400(extra: dict) -> None:
    with pytest.raises(InvalidRequest, match="two spellings"):
        _preflight("gemini", extra)


def test_gemini_snake_case_inside_camel_case_is_fine() -> None:
    """google-genai itself sends thinkingConfig.thinking_budget (recorded)."""
    config = {"thinkingConfig": {"include_thoughts": True, "thinking_budget": 1024},
              "maxOutputTokens": 50}
    pre = _preflight("gemini", {"generationConfig": config})
    assert pre.requested_max_tokens == 50
    snake = _preflight("gemini", {"generation_config": {"max_output_tokens": 9}})
    assert snake.max_tokens_field == "generation_config.max_output_tokens"


def test_gemini_text_only_output() -> None:
    _preflight("gemini", {"generationConfig": {"responseModalities": ["TEXT"]}})
    with pytest.raises(InvalidRequest, match="responseModalities='IMAGE'"):
        _preflight("gemini", {"generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}})
    with pytest.raises(InvalidRequest, match=r"generationConfig\.speechConfig is refused"):
        _preflight("gemini", {"generationConfig": {"speechConfig": {}}})


# ---------------------------------------------------------------- tiers and price variants


def _resolve(provider: str, model: str, context: dict[str, str]):
    return TABLE.lookup(provider, model).resolve(NOW, context)


@pytest.mark.parametrize("name", ["openai_chat", "openai_responses"])
def test_openai_tier_prices_by_its_variant(name: str) -> None:
    assert _preflight(name, {}).price_context == {}
    assert _preflight(name, {"service_tier": "auto"}).price_context == {}
    assert _preflight(name, {"service_tier": "default"}).price_context == {}
    priority = _preflight(name, {"service_tier": "priority"}).price_context
    assert priority == {"service_tier": "priority"}
    standard, fast = _resolve("openai", "gpt-6-sol", {}), _resolve("openai", "gpt-6-sol", priority)
    assert fast["output_mtok"].base > standard["output_mtok"].base
    # No price for the tier: UnpricedOption (a 400) when the relay resolves the card.
    scale = _preflight(name, {"service_tier": "scale"}).price_context
    with pytest.raises(UnpricedOption, match="service_tier='scale'"):
        _resolve("openai", "gpt-6-sol", scale)
    with pytest.raises(UnpricedOption):
        _resolve("openai", "gpt-5-nano", priority)
    # Forwarded by the operator: priced at standard rates (the documented risk).
    forwarded = frozenset({f"{name}:service_tier=scale"})
    assert _preflight(name, {"service_tier": "scale"}, forwarded).price_context == {}
    with pytest.raises(InvalidRequest, match="service_tier must be a string"):
        _preflight(name, {"service_tier": 2})


def test_settlement_follows_the_tier_the_answer_reports() -> None:
    requested = {"service_tier": "priority"}
    assert billing.settled_context(requested, "default") == {}
    assert billing.settled_context({}, "priority") == {"service_tier": "priority"}
    assert billing.settled_context({}, "standard") == {}  # Anthropic's word for it


def test_anthropic_geo_and_speed_price_by_their_variants() -> None:
    pre = _preflight("anthropic_messages", {"inference_geo": "us", "speed": "fast"})
    assert pre.price_context == {"inference_geo": "us", "speed": "fast"}
    us_fast = _resolve("anthropic", "claude-opus-5", pre.price_context)
    assert us_fast["output_mtok"] > _resolve("anthropic", "claude-opus-5", {})["output_mtok"]
    assert _preflight("anthropic_messages", {"speed": "standard"}).price_context == {}
    with pytest.raises(UnpricedOption, match="inference_geo='us'"):
        _resolve("anthropic", "claude-sonnet-4-5", {"inference_geo": "us"})
    with pytest.raises(UnpricedOption, match="speed='fast'"):
        _resolve("anthropic", "claude-sonnet-5", {"speed": "fast"})
    with pytest.raises(InvalidRequest, match="speed='ludicrous'"):
        _preflight("anthropic_messages", {"speed": "ludicrous"})
    with pytest.raises(InvalidRequest, match="service_tier='priority'"):
        _preflight("anthropic_messages", {"service_tier": "priority"})
    forwarded = frozenset({"anthropic_messages:inference_geo=us"})
    assert _preflight("anthropic_messages", {"inference_geo": "us"}, forwarded).price_context == {}


def test_gemini_tier_prices_by_its_variant() -> None:
    assert _preflight("gemini", {"serviceTier": "standard"}).price_context == {}
    assert _preflight("gemini", {"service_tier": "unspecified"}).price_context == {}
    flex = _preflight("gemini", {"serviceTier": "SERVICE_TIER_FLEX"}).price_context
    assert flex == {"service_tier": "flex"}
    with pytest.raises(UnpricedOption):  # no Gemini tier variant in the bundled table
        _resolve("gemini", "gemini-3.5-flash", flex)


# ---------------------------------------------------------------- cache writes


def test_anthropic_cache_ttl_picks_the_write_rate() -> None:
    def block(ttl: str | None) -> dict:
        control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
        return {"type": "text", "text": "x", "cache_control": control}

    assert _preflight("anthropic_messages", {}).cache_write is None
    assert _preflight("anthropic_messages", {"system": [block(None)]}).cache_write == "5m"
    assert _preflight("anthropic_messages", {"system": [block("1h"), block("5m")]}).cache_write \
        == "1h"
    top = _preflight("anthropic_messages", {"cache_control": {"type": "ephemeral", "ttl": "1h"}})
    assert top.cache_write == "1h"
    with pytest.raises(InvalidRequest, match="cache_control.ttl='24h'"):
        _preflight("anthropic_messages", {"system": [block("24h")]})
    card = TABLE.lookup("anthropic", "claude-opus-5")
    one_hour = billing.worst_case_quote(card, input_tokens=1000, cache_write="1h")
    five_min = billing.worst_case_quote(card, input_tokens=1000, cache_write="5m")
    assert one_hour.fixed_microcents > five_min.fixed_microcents


def test_openai_holds_input_at_the_cache_write_rate() -> None:
    """gpt-5.6+ write the prompt cache by default (one implicit breakpoint)."""
    assert _preflight("openai_chat", {}).cache_write == "5m"
    explicit = {"prompt_cache_options": {"mode": "explicit"}}
    assert _preflight("openai_responses", explicit).cache_write is None
    breakpoint_ = {**explicit, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "x", "prompt_cache_breakpoint": {}}]}]}
    assert _preflight("openai_responses", breakpoint_).cache_write == "5m"


# ---------------------------------------------------------------- built-in tool fees


def _quote(provider: str, model: str, fees: dict[str, int]):
    card = TABLE.lookup(provider, model)
    return billing.worst_case_quote(card, input_tokens=100, fees=fees)


def test_search_fees_are_in_the_hold() -> None:
    pre = _preflight("openai_responses", {"tools": [{"type": "web_search"}], "max_tool_calls": 2})
    assert pre.fees == {"web_searches": 2}
    assert _quote("openai", "gpt-6-sol", pre.fees).fixed_microcents > \
        _quote("openai", "gpt-6-sol", {}).fixed_microcents


@pytest.mark.parametrize(
    ("name", "extra", "provider", "model"),
    [
        ("openai_responses", {"tools": [{"type": "code_interpreter",
                                         "container": {"type": "auto"}}]},
         "openai", "gpt-6-sol"),
        ("gemini", {"tools": [{"codeExecution": {}}]}, "gemini", "gemini-3.5-flash"),
    ],
)
def test_code_execution_without_a_fee_is_refused_by_the_price_table(
    name: str, extra: dict, provider: str, model: str
) -> None:
    pre = _preflight(name, extra)
    assert pre.fees == {"code_executions": DEFAULT_TOOL_CALLS_MAX}
    with pytest.raises(UnpricedOption, match="code_executions"):
        _quote(provider, model, pre.fees)
    tool = "tools=code_interpreter" if name == "openai_responses" else "tools.codeExecution"
    assert _preflight(name, extra, frozenset({f"{name}:{tool}"})).fees == {}


def test_a_priced_code_execution_fee_bounds_the_hold() -> None:
    """The fees mechanism prices what the table has (xAI prices code execution)."""
    assert _quote("grok", "grok-4.3", {"code_executions": 3}).fixed_microcents > \
        _quote("grok", "grok-4.3", {}).fixed_microcents


# ---------------------------------------------------------------- anthropic-beta


def test_anthropic_beta_values_are_classified() -> None:
    ok = {"anthropic-beta": "context-1m-2025-08-07, fast-mode-2026-02-01"}
    _preflight("anthropic_messages", {}, headers=ok)
    with pytest.raises(InvalidRequest, match="anthropic-beta='dreaming-2026-04-21'"):
        _preflight("anthropic_messages", {},
                   headers={"Anthropic-Beta": "prompt-caching-2024-07-31,dreaming-2026-04-21"})
    with pytest.raises(InvalidRequest, match="anthropic-beta='warp-drive-2027-01-01'.*does not"):
        _preflight("anthropic_messages", {}, headers={"anthropic-beta": "warp-drive-2027-01-01"})
    forwarded = frozenset({"anthropic_messages:anthropic-beta=dreaming-2026-04-21"})
    _preflight("anthropic_messages", {}, forwarded,
               headers={"anthropic-beta": "dreaming-2026-04-21"})


def test_anthropic_context_management_edits() -> None:
    clear = {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}}
    _preflight("anthropic_messages", clear)
    compact = {"context_management": {"edits": [{"type": "compact_20260112"}]}}
    with pytest.raises(InvalidRequest, match="context_management.edits.type='compact_20260112'"):
        _preflight("anthropic_messages", compact)
    forwarded = frozenset({"anthropic_messages:context_management.edits.type=compact_20260112"})
    _preflight("anthropic_messages", compact, forwarded)


def test_value_kinds_cover_lists_and_booleans() -> None:
    rule = fields.bounded("x", {"a": Kind.FREE, "true": Kind.FREE})
    table = {"f": rule}
    fields.check_fields("t", {"f": ["a"]}, table, frozenset())
    fields.check_fields("t", {"f": True}, table, frozenset())
    with pytest.raises(InvalidRequest, match="f='false'"):
        fields.check_fields("t", {"f": False}, table, frozenset())
    with pytest.raises(InvalidRequest, match="f='3'"):
        fields.check_fields("t", {"f": 3}, table, frozenset())
    fields.check_fields("t", {"f": None}, table, frozenset())  # null means "not sent"
