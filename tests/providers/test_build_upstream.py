from __future__ import annotations

import json

import pytest

from spendguard_proxy.providers.base import DEFAULT_TOOL_CALLS_MAX, ThinkingBudgetUnaffordable
from spendguard_proxy.providers.registry import ADAPTERS, get_adapter

CLIENT_HEADERS = {
    "Authorization": "Bearer sg-client-secret",
    "X-Api-Key": "sk-ant-client-secret",
    "x-goog-api-key": "client-goog-secret",
    "X-Cynsta-Agent-Id": "agent-1",
    "x-cynsta-run-id": "run-1",
    "Cookie": "session=secret",
    "Host": "proxy.local",
    "Content-Length": "123",
    "x-fake-status": "500",
    "Anthropic-Version": "2023-06-01",
    "anthropic-beta": "prompt-caching-2024-07-31",
    "OpenAI-Beta": "assistants=v2",
    "OpenAI-Organization": "org-1",
    "openai-project": "proj-1",
}
SECRETS = (
    "sg-client-secret",
    "sk-ant-client-secret",
    "client-goog-secret",
    "agent-1",
    "run-1",
    "session=secret",
)

BODIES = {
    "openai_chat": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    "grok_chat": {"model": "grok-4", "messages": [{"role": "user", "content": "hi"}]},
    "openai_responses": {"model": "gpt-4.1", "input": "hi"},
    "grok_responses": {"model": "grok-4", "input": "hi"},
    "anthropic_messages": {
        "model": "claude-sonnet-4-6",
        "messages": [{"role": "user", "content": "hi"}],
    },
    "gemini": {"contents": [{"parts": [{"text": "hi"}]}]},
    "openai_embeddings": {"model": "text-embedding-3-small", "input": "hi"},
}
# What build_upstream adds besides the clamped field: the tier SpendGuard priced.
PINNED = {"service_tier", "serviceTier"}


def _build(
    name: str,
    body: dict,
    max_tokens: int = 77,
    stream: bool = False,
    api_key: str | None = "server-key",
) -> tuple[str, dict[str, str], dict]:
    url, headers, raw = get_adapter(name).build_upstream(
        body,
        max_tokens=max_tokens,
        stream=stream,
        base_url="http://up.test/base/",
        api_key=api_key,
        client_headers=CLIENT_HEADERS,
        model="gemini-2.5-flash",
    )
    return url, headers, json.loads(raw)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@pytest.mark.parametrize("stream", [False, True])
def test_no_client_credentials_go_upstream(name: str, stream: bool) -> None:
    url, headers, body = _build(name, BODIES[name], stream=stream)
    blob = json.dumps(headers) + url + json.dumps(body)
    for secret in SECRETS:
        assert secret not in blob
    lowered = {k.lower() for k in headers}
    assert not lowered & {"cookie", "host", "content-length", "x-fake-status"}
    assert not any(k.startswith("x-cynsta") for k in lowered)
    assert set(headers.values()) & {"server-key", "Bearer server-key"}


def test_auth_header_per_provider() -> None:
    assert _build("openai_chat", BODIES["openai_chat"])[1]["authorization"] == "Bearer server-key"
    assert (
        _build("grok_responses", BODIES["grok_responses"])[1]["authorization"]
        == "Bearer server-key"
    )
    anthropic_headers = _build("anthropic_messages", BODIES["anthropic_messages"])[1]
    assert anthropic_headers["x-api-key"] == "server-key"
    assert "authorization" not in anthropic_headers
    assert _build("gemini", BODIES["gemini"])[1]["x-goog-api-key"] == "server-key"
    assert "authorization" not in _build("openai_chat", BODIES["openai_chat"], api_key=None)[1]


def test_provider_headers_pass_through() -> None:
    _, headers, _ = _build("anthropic_messages", BODIES["anthropic_messages"])
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    _, headers, _ = _build("openai_chat", BODIES["openai_chat"])
    assert headers["openai-beta"] == "assistants=v2"
    assert headers["openai-organization"] == "org-1" and headers["openai-project"] == "proj-1"
    _, headers, _ = get_adapter("anthropic_messages").build_upstream(
        BODIES["anthropic_messages"],
        max_tokens=5,
        stream=False,
        base_url="http://x",
        api_key="k",
        client_headers={},
    )
    assert headers["anthropic-version"] == "2023-06-01"  # default when the client sent none


def test_urls() -> None:
    assert _build("openai_chat", BODIES["openai_chat"])[0] == "http://up.test/base/chat/completions"
    assert (
        _build("openai_responses", BODIES["openai_responses"])[0] == "http://up.test/base/responses"
    )
    assert (
        _build("anthropic_messages", BODIES["anthropic_messages"])[0]
        == "http://up.test/base/v1/messages"
    )
    assert _build("gemini", BODIES["gemini"])[0] == (
        "http://up.test/base/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert _build("gemini", BODIES["gemini"], stream=True)[0] == (
        "http://up.test/base/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("openai_chat", BODIES["openai_chat"], "max_completion_tokens"),
        ("openai_chat", {**BODIES["openai_chat"], "max_tokens": 900}, "max_tokens"),
        (
            "openai_chat",
            {**BODIES["openai_chat"], "max_completion_tokens": 900},
            "max_completion_tokens",
        ),
        ("grok_chat", BODIES["grok_chat"], "max_tokens"),
        (
            "grok_chat",
            {**BODIES["grok_chat"], "max_completion_tokens": 900},
            "max_completion_tokens",
        ),
        (
            "openai_responses",
            {**BODIES["openai_responses"], "max_output_tokens": 900},
            "max_output_tokens",
        ),
        ("grok_responses", BODIES["grok_responses"], "max_output_tokens"),
        ("anthropic_messages", BODIES["anthropic_messages"], "max_tokens"),
    ],
)
def test_clamps_the_field_the_client_sent_or_the_default(name: str, body: dict, field: str) -> None:
    adapter = get_adapter(name)
    assert adapter.preflight(body).max_tokens_field == field
    _, _, sent = _build(name, body)
    assert sent[field] == 77
    others = {"max_tokens", "max_completion_tokens", "max_output_tokens"} - {field}
    assert not any(key in sent and key not in body for key in others)
    assert {k: v for k, v in sent.items() if k not in (field, "stream", *PINNED)} == {
        k: v for k, v in body.items() if k != field
    }


def test_gemini_clamps_camel_or_snake_case() -> None:
    body = {"contents": [], "generationConfig": {"maxOutputTokens": 900, "temperature": 0.2}}
    assert _build("gemini", body)[2]["generationConfig"] == {
        "maxOutputTokens": 77,
        "temperature": 0.2,
    }
    body = {"contents": [], "generation_config": {"max_output_tokens": 900}}
    assert _build("gemini", body)[2] == {
        "contents": [],
        "generation_config": {"max_output_tokens": 77},
        "serviceTier": "standard",
    }
    assert _build("gemini", {"contents": []})[2]["generationConfig"] == {"maxOutputTokens": 77}
    assert body == {"contents": [], "generation_config": {"max_output_tokens": 900}}  # not mutated


def test_openai_chat_stream_asks_for_usage_and_remembers_the_client_choice() -> None:
    adapter = get_adapter("openai_chat")
    body = {
        **BODIES["openai_chat"],
        "stream": True,
        "stream_options": {"include_obfuscation": False},
    }
    _, _, sent = _build("openai_chat", body, stream=True)
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert adapter.preflight(body).client_wants_usage is False
    body["stream_options"] = {"include_usage": True}
    assert adapter.preflight(body).client_wants_usage is True
    _, _, sent = _build("openai_chat", BODIES["openai_chat"], stream=False)
    assert "stream_options" not in sent


def test_anthropic_thinking_budget_is_lowered_below_max_tokens() -> None:
    body = {
        **BODIES["anthropic_messages"],
        "max_tokens": 16000,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
    }
    assert _build("anthropic_messages", body, max_tokens=5000)[2]["thinking"] == {
        "type": "enabled",
        "budget_tokens": 4999,
    }
    assert (
        _build("anthropic_messages", body, max_tokens=12000)[2]["thinking"]["budget_tokens"]
        == 10000
    )
    with pytest.raises(ThinkingBudgetUnaffordable):
        _build("anthropic_messages", body, max_tokens=1024)
    adaptive = {**body, "thinking": {"type": "adaptive"}}
    assert _build("anthropic_messages", adaptive, max_tokens=100)[2]["thinking"] == {
        "type": "adaptive"
    }


def test_client_api_key_for_bring_your_own_key() -> None:
    assert get_adapter("openai_chat").client_api_key(CLIENT_HEADERS) == "sg-client-secret"
    assert (
        get_adapter("anthropic_messages").client_api_key(CLIENT_HEADERS) == "sk-ant-client-secret"
    )
    assert get_adapter("gemini").client_api_key(CLIENT_HEADERS) == "client-goog-secret"
    assert get_adapter("openai_chat").client_api_key({"authorization": "Basic abc"}) is None


def test_adapter_settings_names() -> None:
    expected = {
        "openai_chat": ("openai", "openai_base_url", "openai_api_key", "OPENAI_API_KEY"),
        "openai_responses": ("openai", "openai_base_url", "openai_api_key", "OPENAI_API_KEY"),
        "grok_chat": ("grok", "xai_base_url", "xai_api_key", "XAI_API_KEY"),
        "grok_responses": ("grok", "xai_base_url", "xai_api_key", "XAI_API_KEY"),
        "anthropic_messages": (
            "anthropic",
            "anthropic_base_url",
            "anthropic_api_key",
            "ANTHROPIC_API_KEY",
        ),
        "gemini": ("gemini", "gemini_base_url", "gemini_api_key", "GEMINI_API_KEY"),
    }
    from spendguard_proxy.settings import Settings

    for name, (provider, base_url, key, env) in expected.items():
        adapter = ADAPTERS[name]
        assert (
            adapter.pricing_provider,
            adapter.base_url_setting,
            adapter.api_key_setting,
            adapter.api_key_env,
        ) == (provider, base_url, key, env)
        assert base_url in Settings.model_fields and key in Settings.model_fields


@pytest.mark.parametrize(
    ("name", "body", "sent_tier"),
    [
        ("openai_chat", BODIES["openai_chat"], "default"),
        ("openai_chat", {**BODIES["openai_chat"], "service_tier": "auto"}, "default"),
        ("openai_chat", {**BODIES["openai_chat"], "service_tier": "priority"}, "priority"),
        ("openai_chat", {**BODIES["openai_chat"], "service_tier": "flex"}, "flex"),
        ("grok_chat", BODIES["grok_chat"], None),  # xAI publishes no tiers: nothing added
        ("openai_responses", BODIES["openai_responses"], "default"),
        ("openai_responses", {**BODIES["openai_responses"], "service_tier": "auto"}, "default"),
        ("openai_responses", {**BODIES["openai_responses"], "service_tier": "fast"}, "fast"),
        ("anthropic_messages", BODIES["anthropic_messages"], "standard_only"),
        (
            "anthropic_messages",
            {**BODIES["anthropic_messages"], "service_tier": "auto"},
            "standard_only",
        ),
    ],
)
def test_the_tier_priced_is_sent_explicitly(name: str, body: dict, sent_tier: str | None) -> None:
    """An absent tier (or 'auto') takes the account's default, which may be priority."""
    assert _build(name, body)[2].get("service_tier") == sent_tier


def test_gemini_sends_the_standard_tier_unless_the_client_named_one() -> None:
    assert _build("gemini", BODIES["gemini"])[2]["serviceTier"] == "standard"
    flex = _build("gemini", {**BODIES["gemini"], "serviceTier": "flex"})[2]
    assert flex["serviceTier"] == "flex"
    snake = _build("gemini", {**BODIES["gemini"], "service_tier": "flex"})[2]
    assert snake["service_tier"] == "flex" and "serviceTier" not in snake


def test_responses_sends_the_tool_call_cap_the_hold_assumed() -> None:
    search = {**BODIES["openai_responses"], "tools": [{"type": "web_search"}]}
    assert _build("openai_responses", search)[2]["max_tool_calls"] == DEFAULT_TOOL_CALLS_MAX
    own = {**search, "max_tool_calls": 3}
    assert _build("openai_responses", own)[2]["max_tool_calls"] == 3
    assert get_adapter("openai_responses").preflight(own).fees == {"web_searches": 3}
    function_only = {
        **BODIES["openai_responses"],
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
    }
    assert "max_tool_calls" not in _build("openai_responses", function_only)[2]


def test_anthropic_sends_max_uses_on_web_search_and_fetch() -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "web_search_20260209", "name": "web_search_2", "max_uses": 2},
        {"type": "web_fetch_20250910", "name": "web_fetch"},
        {"name": "get_weather", "input_schema": {"type": "object"}},
    ]
    body = {**BODIES["anthropic_messages"], "tools": tools}
    sent = _build("anthropic_messages", body)[2]["tools"]
    assert [tool.get("max_uses") for tool in sent] == [DEFAULT_TOOL_CALLS_MAX, 2,
                                                       DEFAULT_TOOL_CALLS_MAX, None]
    assert get_adapter("anthropic_messages").preflight(body).fees == {
        "web_searches": DEFAULT_TOOL_CALLS_MAX + 2
    }
    assert body["tools"][0] == {"type": "web_search_20250305", "name": "web_search"}  # intact


def test_anthropic_sends_the_inference_geo_it_was_priced_at() -> None:
    """With no inference_geo the workspace default applies (maybe "us", dearer): the relay
    passes the geo it priced for models whose price table has the option."""
    adapter = get_adapter("anthropic_messages")

    def sent(body: dict, context: dict | None) -> dict:
        raw = adapter.build_upstream(body, max_tokens=5, stream=False, base_url="http://x",
                                     api_key="k", client_headers={}, price_context=context)[2]
        return json.loads(raw)

    body = BODIES["anthropic_messages"]
    assert sent(body, {"inference_geo": "global"})["inference_geo"] == "global"
    assert "inference_geo" not in sent(body, None)
    assert sent({**body, "inference_geo": "us"}, {"inference_geo": "global"})["inference_geo"] \
        == "us"
