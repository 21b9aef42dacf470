from __future__ import annotations

import pytest

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.providers.reference import (
    anthropic_native_to_reference,
    anthropic_reference_to_native,
    gemini_native_to_reference,
    gemini_reference_to_native,
)

MSG = [{"role": "user", "content": "hi"}]


def test_anthropic_reference_to_native_keeps_only_the_reference_fields() -> None:
    body = {
        "model": "claude-sonnet-4-6",
        "messages": MSG,
        "system": "be nice",
        "temperature": 0.3,
        "max_tokens": 50,
        "extra": "dropped",
    }
    assert anthropic_reference_to_native(body) == {
        "model": "claude-sonnet-4-6",
        "messages": MSG,
        "system": "be nice",
        "temperature": 0.3,
        "max_tokens": 50,
    }
    assert anthropic_reference_to_native({"model": "m", "messages": MSG, "stream": True})["stream"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": MSG},
        {"model": "m"},
        {"model": "m", "messages": "hi"},
        {"model": "m", "messages": MSG, "system": 5},
        {"model": "m", "messages": MSG, "temperature": "hot"},
        {"model": "m", "messages": MSG, "temperature": True},
        {"model": "m", "messages": MSG, "max_tokens": 0},
        {"model": "m", "messages": MSG, "stream": "yes"},
    ],
)
def test_anthropic_reference_rejects_bad_shapes(body: dict) -> None:
    with pytest.raises(InvalidRequest):
        anthropic_reference_to_native(body)


def test_anthropic_native_to_reference() -> None:
    answer = {
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "Hel"},
            {"type": "text", "text": "lo"},
        ],
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100},
    }
    out = anthropic_native_to_reference(answer, {"totals": {"realized_microcents": 7}})
    assert out == {
        "completion": "Hel\nlo",
        "raw": answer,
        "usage": {"tokens_in": 10, "tokens_out": 5},
        "billing_breakdown": {"totals": {"realized_microcents": 7}},
    }
    assert anthropic_native_to_reference({"content": []}, None)["completion"] is None


def test_gemini_reference_round_trip() -> None:
    model, body, stream = gemini_reference_to_native(
        {"model": "models/gemini-2.5-flash", "prompt": "hi", "temperature": 1, "max_tokens": 64}
    )
    assert (model, stream) == ("gemini-2.5-flash", False)
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 1},
    }
    assert "generationConfig" not in gemini_reference_to_native({"model": "g", "prompt": ""}).body
    for bad in (
        {"model": "g"},
        {"prompt": "x"},
        {"model": "g", "prompt": ["x"]},
        {"model": "g", "prompt": "x", "max_tokens": -2},
    ):
        with pytest.raises(InvalidRequest):
            gemini_reference_to_native(bad)
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [{"text": "plan", "thought": True}, {"text": "A"}, {"text": "B"}]
                }
            }
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
    }
    assert gemini_native_to_reference(answer) == {
        "completion": "A\nB",
        "usage": {"tokens_in": 3, "tokens_out": 2},
    }
    assert gemini_native_to_reference({}) == {
        "completion": None,
        "usage": {"tokens_in": None, "tokens_out": None},
    }
