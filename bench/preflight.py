"""CPU per call of the pure request path: preflight (field table, input bound), model lookup,
price resolution and the worst-case quote — everything SpendGuard does to a body before the
ledger sees it. ``python -m bench.preflight``; best of several rounds, so a busy machine
inflates it little."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from spendguard_proxy import billing
from spendguard_proxy.pricing.sources import load_bundled
from spendguard_proxy.providers.registry import get_adapter

PROMPT = "Summarise the ledger design of a strict budget proxy in three short sentences."
BODIES = {
    "openai_chat": {"model": "gpt-4o-mini", "max_tokens": 32,
                    "messages": [{"role": "user", "content": PROMPT}]},
    "openai_responses": {"model": "gpt-5.5", "input": PROMPT, "max_output_tokens": 64,
                         "tools": [{"type": "web_search"}]},
    "anthropic_messages": {"model": "claude-sonnet-4-6", "max_tokens": 64,
                           "system": [{"type": "text", "text": "Be brief.",
                                       "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                           "messages": [{"role": "user", "content": PROMPT}]},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
               "generationConfig": {"maxOutputTokens": 64}},
}
MODELS = {"gemini": "gemini-2.5-flash"}


def per_call_us(name: str, body: dict, rounds: int = 7, calls: int = 2000) -> float:
    adapter, table = get_adapter(name), load_bundled()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            pre = adapter.preflight(body, model=MODELS.get(name))
            card = table.lookup(adapter.pricing_provider, pre.model)
            prices = card.resolve(datetime.now(UTC), pre.price_context)
            billing.worst_case_quote(card, prices=prices, input_tokens=pre.input_tokens,
                                     media_tokens=pre.media_tokens,
                                     cache_write=pre.cache_write, fees=pre.fees)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return round(best, 1)


def run() -> dict[str, float]:
    return {name: per_call_us(name, body) for name, body in BODIES.items()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
