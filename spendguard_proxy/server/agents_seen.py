"""Which agents exist, asked before a provider call's body is read.

A call for an agent that does not exist (or is another tenant's) is a 404 without reading,
parsing or counting its body: an attacker with one valid key cannot make the server parse
megabytes for a random agent id. Only agents found are cached (briefly): a new agent is
usable at once, and a deleted one is still refused by the reserve itself.
"""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from spendguard_proxy import ledger

_MAX_ENTRIES = 100_000


class AgentsSeen:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._until: dict[tuple[uuid.UUID, uuid.UUID], float] = {}

    async def require(self, pool, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> None:
        """NotFound (404) unless the tenant has this agent."""
        key = (tenant_id, agent_id)
        now = time.monotonic()
        if self._until.get(key, 0.0) > now:
            return
        await ledger.get_agent(pool, tenant_id, agent_id)
        if len(self._until) >= _MAX_ENTRIES:
            self._until.clear()
        self._until[key] = now + self.ttl_s


AGENTS_SEEN = web.AppKey("agents_seen", AgentsSeen)
