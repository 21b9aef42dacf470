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
