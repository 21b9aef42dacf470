"""GET /v1/models[/{id}]: the priced models, in OpenAI's shape or Gemini's."""

from __future__ import annotations

import openai
import pytest


async def test_openai_sdk_lists_and_gets_priced_models(relay_url):
    client = openai.AsyncOpenAI(base_url=f"{relay_url}/v1", api_key="unused", max_retries=0)
    try:
        ids = [m.id async for m in client.models.list()]
        assert {"gpt-4o-mini", "claude-opus-5-5", "gemini-4-argon", "grok-4.7"} <= set(ids)
        model = await client.models.retrieve("gpt-4.1-2025-04-14")  # a dated snapshot
        assert model.id == "gpt-4.1-2025-04-14" and model.owned_by == "openai"
        with pytest.raises(openai.NotFoundError, match="not priced"):
            await client.models.retrieve("gpt-unknown")
    finally:
        await client.close()


async def test_gemini_style_requests_get_gemini_shapes_and_pages(http, relay_url):
    headers = {"x-goog-api-key": "unused"}
    seen: list[str] = []
    token = ""
    for _ in range(20):
        async with http.get(f"{relay_url}/v1beta/models",
                            params={"pageSize": "10", "pageToken": token}) as r:
            assert r.status == 200
            page = await r.json()
        seen += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert "models/gemini-2.5-pro" in seen and all(n.startswith("models/gemini") for n in seen)
    assert len(seen) == len(set(seen)) > 10
    async with http.get(f"{relay_url}/v1/models/gemini-2.5-pro", headers=headers) as r:
        model = await r.json()
    assert model["name"] == "models/gemini-2.5-pro" and model["outputTokenLimit"] > 0
    assert "generateContent" in model["supportedGenerationMethods"]
    async with http.get(f"{relay_url}/v1beta/models", params={"pageSize": "0"}) as r:
        assert r.status == 400 and "pageSize" in (await r.json())["error"]["message"]
