"""A hosted instance as pricing authority, a sidecar pricing calls with its signed table."""

from __future__ import annotations

import aiohttp
import pytest

from spendguard_proxy.errors import PricingError
from spendguard_proxy.pricing.signing import generate_keypair
from spendguard_proxy.settings import Mode, PricingSource
from tests.conftest import running_proxy
from tests.invariants import assert_ledger_invariants
from tests.relay.helpers import agent_headers, charges, chat_body


async def test_sidecar_uses_the_hosted_instances_signed_table(relay_settings, dsn, pool,
                                                              budgeted_agent):
    keys = generate_keypair()
    authority = relay_settings.model_copy(update={
        "mode": Mode.hosted, "pricing_signing_private_key": keys.private_key})
    async with running_proxy(authority, dsn) as hosted_url, aiohttp.ClientSession() as http:
        async with http.get(f"{hosted_url}/v1/public/pricing") as r:  # no key needed
            assert r.status == 200 and r.headers["ETag"]
            served = await r.json()
        sidecar = relay_settings.model_copy(update={
            "pricing_source": PricingSource.remote,
            "pricing_url": f"{hosted_url}/v1/public/pricing",
            "pricing_signing_public_key": keys.public_key})
        async with running_proxy(sidecar, dsn) as sidecar_url:
            agent_id = await budgeted_agent()
            async with http.post(f"{sidecar_url}/v1/chat/completions", json=chat_body(),
                                 headers=agent_headers(agent_id)) as r:
                assert r.status == 200
            [row] = await charges(pool, agent_id)
            assert row["billing_breakdown"]["model"] == "gpt-4o-mini"
            assert any(m["id"] == "gpt-4o-mini" for m in served["models"]["openai"])
            await assert_ledger_invariants(pool, agent_id)


async def test_sidecar_refuses_to_start_on_a_tampered_table(relay_settings, dsn):
    keys = generate_keypair()
    authority = relay_settings.model_copy(update={"pricing_signing_private_key": keys.private_key})
    async with running_proxy(authority, dsn) as hosted_url, aiohttp.ClientSession() as http:
        async with http.get(f"{hosted_url}/v1/public/pricing") as r:
            doc = await r.json()
        [mini] = [m for m in doc["models"]["openai"] if m["id"] == "gpt-4o-mini"]
        mini["prices"][0]["cents"]["output_mtok"] = "1"  # cheaper, unsigned

        from aiohttp import web

        async def tampered(_request):
            return web.json_response(doc)

        app = web.Application()
        app.router.add_get("/pricing", tampered)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/pricing"
            sidecar = relay_settings.model_copy(update={
                "pricing_source": PricingSource.remote, "pricing_url": url,
                "pricing_signing_public_key": keys.public_key})
            with pytest.raises(PricingError, match="signature verification failed"):
                async with running_proxy(sidecar, dsn):
                    pass
        finally:
            await runner.cleanup()
