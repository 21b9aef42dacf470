"""Adapter name -> adapter. Adding a provider: one module plus one line here."""

from __future__ import annotations

from spendguard_proxy.providers.anthropic import ANTHROPIC_MESSAGES
from spendguard_proxy.providers.base import Adapter
from spendguard_proxy.providers.gemini import GEMINI
from spendguard_proxy.providers.openai_chat import GROK_CHAT, OPENAI_CHAT
from spendguard_proxy.providers.openai_embeddings import OPENAI_EMBEDDINGS
from spendguard_proxy.providers.openai_responses import GROK_RESPONSES, OPENAI_RESPONSES

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        OPENAI_CHAT,
        OPENAI_RESPONSES,
        OPENAI_EMBEDDINGS,
        GROK_CHAT,
        GROK_RESPONSES,
        ANTHROPIC_MESSAGES,
        GEMINI,
    )
}


def get_adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"no provider adapter named {name!r}; known: {sorted(ADAPTERS)}") from None
