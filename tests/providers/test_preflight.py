from __future__ import annotations

import pytest

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers.registry import ADAPTERS, get_adapter

MSG = [{"role": "user", "content": "hi"}]

BAD = [
    ("openai_chat", [], "JSON object"),
    ("openai_chat", "text", "JSON object"),
    ("openai_chat", {"messages": MSG}, "model"),
    ("openai_chat", {"model": "", "messages": MSG}, "model"),
    ("openai_chat", {"model": 5, "messages": MSG}, "model"),
    ("openai_chat", {"model": "gpt-4o"}, "messages"),
    ("openai_chat", {"model": "gpt-4o", "messages": "hi"}, "messages"),
    ("openai_chat", {"model": "gpt-4o", "messages": ["hi"]}, "messages[0]"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "max_tokens": 0}, "max_tokens"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "max_tokens": True}, "max_tokens"),
    (
        "openai_chat",
        {"model": "gpt-4o", "messages": MSG, "max_completion_tokens": "9"},
        "max_completion_tokens",
    ),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "max_tokens": 1.5}, "max_tokens"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "stream": "yes"}, "stream"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "stream": 1}, "stream"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "n": 0}, "n"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "tools": {}}, "tools"),
    ("openai_chat", {"model": "gpt-4o", "messages": MSG, "stream_options": []}, "stream_options"),
    (
        "openai_chat",
        {"model": "gpt-4o", "messages": MSG, "stream_options": {"include_usage": "true"}},
        "include_usage",
    ),
    ("grok_chat", {"model": None, "messages": MSG}, "model"),
    ("openai_responses", {"input": "hi"}, "model"),
    ("openai_responses", {"model": "gpt-4.1", "input": 5}, "input"),
    ("openai_responses", {"model": "gpt-4.1", "input": [5]}, "input[0]"),
    ("openai_responses", {"model": "gpt-4.1", "input": "x", "instructions": ["a"]}, "instructions"),
    (
        "openai_responses",
        {"model": "gpt-4.1", "input": "x", "max_output_tokens": -1},
        "max_output_tokens",
    ),
    ("openai_responses", {"model": "gpt-4.1", "input": "x", "stream": "true"}, "stream"),
    ("grok_responses", {"model": "grok-4", "input": "x", "tools": ["web_search"]}, "tools[0]"),
    ("anthropic_messages", {"model": "claude-sonnet-4-6"}, "messages"),
    ("anthropic_messages", {"model": "claude-sonnet-4-6", "messages": {}}, "messages"),
    ("anthropic_messages", {"model": "claude-sonnet-4-6", "messages": MSG, "system": 3}, "system"),
    (
        "anthropic_messages",
        {"model": "claude-sonnet-4-6", "messages": MSG, "max_tokens": False},
        "max_tokens",
    ),
    (
        "anthropic_messages",
        {"model": "claude-sonnet-4-6", "messages": MSG, "thinking": "on"},
        "thinking",
    ),
    (
        "anthropic_messages",
        {
            "model": "claude-sonnet-4-6",
            "messages": MSG,
            "thinking": {"type": "enabled", "budget_tokens": "1k"},
        },
        "thinking.budget_tokens",
    ),
    ("gemini", {"contents": "hi"}, "contents"),
    ("gemini", {}, "contents"),
    ("gemini", {"contents": [], "generationConfig": []}, "generationConfig"),
    ("gemini", {"contents": [], "generationConfig": {"maxOutputTokens": 0}}, "maxOutputTokens"),
    (
        "gemini",
        {"contents": [], "generation_config": {"max_output_tokens": "5"}},
        "max_output_tokens",
    ),
]


@pytest.mark.parametrize(("name", "body", "mentions"), BAD)
def test_bad_shapes_are_invalid_requests(name: str, body: object, mentions: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        get_adapter(name).preflight(body, model="gemini-2.5-flash" if name == "gemini" else None)
    assert mentions in raised.value.message
    assert raised.value.status == 400


def test_gemini_needs_a_model_from_the_path() -> None:
    with pytest.raises(InvalidRequest, match="model"):
        get_adapter("gemini").preflight({"contents": []}, model=None)


def test_openai_chat_fields() -> None:
    body = {
        "model": "gpt-4o",
        "messages": MSG,
        "max_tokens": 300,
        "max_completion_tokens": 200,
        "n": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    pre = get_adapter("openai_chat").preflight(body)
    assert (pre.model, pre.stream, pre.requested_max_tokens, pre.choices) == (
        "gpt-4o",
        True,
        200,
        3,
    )
    assert pre.max_tokens_field == "max_completion_tokens" and pre.client_wants_usage
    search = get_adapter("openai_chat").preflight(
        {"model": "gpt-4o-search-preview", "messages": MSG, "web_search_options": {}}
    )
    assert search.fees == {"web_searches": 1} and search.input_unbounded


def test_responses_builtin_tools_and_stored_context() -> None:
    adapter = get_adapter("openai_responses")
    plain = adapter.preflight(
        {
            "model": "gpt-4.1",
            "input": "hi",
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
        }
    )
    assert plain.fees == {} and not plain.input_unbounded
    searching = adapter.preflight(
        {
            "model": "gpt-4.1",
            "input": "hi",
            "tools": [{"type": "web_search"}, {"type": "file_search"}],
        }
    )
    assert searching.fees == {"web_searches": 8, "storage_searches": 8}
    assert searching.input_unbounded
    capped = adapter.preflight(
        {
            "model": "gpt-4.1",
            "input": "hi",
            "max_tool_calls": 3,
            "tools": [{"type": "web_search_preview"}],
        }
    )
    assert capped.fees == {"web_searches": 3}
    chained = adapter.preflight(
        {"model": "gpt-4.1", "input": "and then?", "previous_response_id": "resp_1"}
    )
    assert chained.input_unbounded
    with pytest.raises(InvalidRequest, match="tools='x_search'"):
        get_adapter("grok_responses").preflight(
            {"model": "grok-4", "input": "x", "tools": [{"type": "x_search"}]}
        )


def test_anthropic_cache_thinking_and_web_search() -> None:
    adapter = get_adapter("anthropic_messages")
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 2000,
        "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        "messages": MSG,
        "thinking": {"type": "enabled", "budget_tokens": 1500},
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
    }
    pre = adapter.preflight(body)
    assert pre.cache_write == "5m" and pre.thinking_budget == 1500
    assert pre.fees == {"web_searches": 3}
    assert pre.requested_max_tokens == 2000 and pre.input_unbounded
    plain = adapter.preflight({"model": "claude-sonnet-4-6", "messages": MSG})
    assert plain.cache_write is None and plain.thinking_budget is None and plain.fees == {}
    assert plain.requested_max_tokens is None and not plain.input_unbounded


def test_gemini_grounding_and_candidates() -> None:
    adapter = get_adapter("gemini")
    body = {
        "contents": [{"role": "user", "parts": [{"text": "news?"}]}],
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"maxOutputTokens": 500, "candidateCount": 2},
    }
    pre = adapter.preflight(body, model="models/gemini-2.5-flash", stream=True)
    assert pre.fees == {"web_searches": 1} and pre.stream  # one fee per grounded prompt
    assert (pre.model, pre.requested_max_tokens, pre.choices) == ("gemini-2.5-flash", 500, 2)
    assert pre.max_tokens_field == "generationConfig.maxOutputTokens"
    plain = adapter.preflight({"contents": []}, model="gemini-2.5-flash")
    assert plain.fees == {} and not plain.stream and plain.requested_max_tokens is None


# Embeddings take strings or token arrays only (their own tests).
GENERATIVE = sorted(set(ADAPTERS) - {"openai_embeddings"})


@pytest.mark.parametrize("name", GENERATIVE)
def test_odd_but_valid_content_is_estimated_not_rejected(name: str) -> None:
    weird = [
        {
            "role": "user",
            "content": [
                {"type": "mystery", "payload": {"deep": [[["x"]]]}},
                {"type": "image_url", "image_url": "not-a-url"},
                {"type": "input_file", "file_id": "file-1"},
            ],
        }
    ]
    key = {"openai_responses": "input", "grok_responses": "input"}.get(name, "messages")
    body = {"contents": weird} if name == "gemini" else {"model": "m", key: weird}
    pre = get_adapter(name).preflight(body, model="gemini-2.5-flash")
    assert pre.input_tokens > 0 and pre.input_unbounded
