"""The recorded official-client request bodies are well-formed (DESIGN.md §10).

`tests/providers/recorded/` is made by `scripts/record_client_bodies.py` (run in a separate
venv with the pinned clients). These checks only guard the recordings' shape; the tests that
feed them through the adapters' field classification build on them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RECORDED = Path(__file__).parent / "recorded"
FILES = sorted(RECORDED.glob("*__*.json"))
KEYS = {
    "client",
    "client_version",
    "api",
    "scenario",
    "call",
    "method",
    "path",
    "query",
    "headers",
    "body",
}
API_PATHS = {
    "openai.chat_completions": re.compile(r"^/v1/chat/completions$"),
    "openai.responses": re.compile(r"^/v1/responses$"),
    "openai.embeddings": re.compile(r"^/v1/embeddings$"),
    "anthropic.messages": re.compile(r"^/v1/messages$"),
    "anthropic.count_tokens": re.compile(r"^/v1/messages/count_tokens$"),
    "gemini.generate_content": re.compile(r"^(/v1|/v1beta)?/models/[\w.-]+:generateContent$"),
    "gemini.stream_generate_content": re.compile(
        r"^(/v1|/v1beta)?/models/[\w.-]+:streamGenerateContent$"
    ),
    "gemini.count_tokens": re.compile(r"^(/v1|/v1beta)?/models/[\w.-]+:countTokens$"),
}
HEADER_PREFIXES = ("anthropic-", "openai-", "x-goog-", "x-stainless-")
SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_recordings_exist_for_every_official_client() -> None:
    clients = {_load(p)["client"] for p in FILES}
    assert {"openai", "openai-agents", "langchain-openai", "anthropic", "google-genai"} <= clients
    versions = (RECORDED / "VERSIONS.txt").read_text()
    for client in clients:
        assert re.search(rf"^{re.escape(client)}==\S+$", versions, re.MULTILINE), client


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_recording_is_well_formed(path: Path) -> None:
    doc = _load(path)
    assert isinstance(doc, dict)
    assert KEYS <= doc.keys()
    assert doc["method"] == "POST"
    assert API_PATHS[doc["api"]].match(doc["path"]), (doc["api"], doc["path"])
    assert isinstance(doc["body"], dict) and doc["body"]
    assert path.name.startswith(f"{doc['client']}__{doc['api']}__{doc['scenario']}")
    for name, value in doc["headers"].items():
        assert (
            name == name.lower() and name.startswith(HEADER_PREFIXES) or name in SECRET_HEADERS
        ), name
        if name in SECRET_HEADERS:
            assert value == "<redacted>"
    if doc["api"].startswith(("openai.", "anthropic.")):
        assert isinstance(doc["body"].get("model"), str)
    if doc["api"].startswith("gemini."):
        assert isinstance(doc["body"].get("contents"), list)
    if doc["api"] == "gemini.stream_generate_content":
        assert doc["query"] == {"alt": "sse"}


def test_no_secret_leaks_into_recordings() -> None:
    for path in FILES:
        assert "sk-recording-not-a-key" not in path.read_text(), path.name


# ---------------------------------------------------------------- through the field tables

# Recorded API -> the adapter that relays it. count_tokens is not relayed (it is free and
# SpendGuard has no route for it): listed so that no recording is silently left out.
ADAPTER_FOR_API = {
    "openai.chat_completions": "openai_chat",
    "openai.responses": "openai_responses",
    "openai.embeddings": "openai_embeddings",
    "anthropic.messages": "anthropic_messages",
    "gemini.generate_content": "gemini",
    "gemini.stream_generate_content": "gemini",
    "anthropic.count_tokens": None,
    "gemini.count_tokens": None,
}
_GEMINI_MODEL = re.compile(r"/models/([\w.-]+):")


def test_every_recorded_api_is_accounted_for() -> None:
    assert {_load(p)["api"] for p in FILES} <= ADAPTER_FOR_API.keys()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_recorded_body_passes_its_adapter_and_can_be_priced(path: Path) -> None:
    """No official client's request is refused, and each can be held with the bundled
    prices (no unpriced tier, tool or cache TTL among them)."""
    from datetime import UTC, datetime

    from spendguard_proxy import billing
    from spendguard_proxy.pricing.sources import load_bundled
    from spendguard_proxy.providers.registry import get_adapter

    doc = _load(path)
    name = ADAPTER_FOR_API[doc["api"]]
    if name is None:
        assert doc["api"].endswith(".count_tokens")  # the only APIs SpendGuard does not relay
        return
    adapter = get_adapter(name)
    model = stream = None
    if name == "gemini":
        model = _GEMINI_MODEL.search(doc["path"]).group(1)
        stream = doc["api"] == "gemini.stream_generate_content"
    kwargs = {"headers": doc["headers"]} if name != "openai_embeddings" else {}
    pre = adapter.preflight(doc["body"], model=model, stream=stream, **kwargs)
    card = load_bundled().lookup(adapter.pricing_provider, pre.model)
    billing.worst_case_quote(
        card,
        prices=card.resolve(datetime.now(UTC), pre.price_context),
        input_tokens=pre.input_tokens,
        media_tokens=pre.media_tokens,
        cache_write=pre.cache_write,
        fees=pre.fees,
    )
    url, _, raw = adapter.build_upstream(
        doc["body"], max_tokens=4096, stream=pre.stream, base_url="http://up.test",
        api_key="k", client_headers=doc["headers"], model=pre.model,
    )
    assert url.startswith("http://up.test") and json.loads(raw)
