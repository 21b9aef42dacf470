"""Agents, budgets, runs and usage: the reference SpendGuard admin contract (DESIGN §3)."""

from __future__ import annotations

from aiohttp import web

from spendguard_proxy import ledger
from spendguard_proxy.server.auth import requires, tenant_of
from spendguard_proxy.server.bodies import (
    AgentCreate,
    AgentRename,
    BudgetSet,
    parse_body,
    parse_uuid,
    query_int,
)
from spendguard_proxy.server.keys import POOL

ADMIN = "cap:admin"
routes = web.RouteTableDef()


def _agent_id(request: web.Request):
    return parse_uuid(request.match_info["agent_id"], "agent_id")


@routes.post("/v1/agents")
@requires(ADMIN)
async def create_agent(request: web.Request) -> web.Response:
    body = await parse_body(request, AgentCreate)
    agent = await ledger.create_agent(request.app[POOL], tenant_of(request), body.name)
    return web.json_response({"agent_id": agent["agent_id"]})


@routes.get("/v1/agents")
@requires(ADMIN)
async def list_agents(request: web.Request) -> web.Response:
    agents = await ledger.list_agents(request.app[POOL], tenant_of(request))
    return web.json_response({"agents": agents})


@routes.get("/v1/agents/{agent_id}")
@requires(ADMIN)
async def get_agent(request: web.Request) -> web.Response:
    agent = await ledger.get_agent(request.app[POOL], tenant_of(request), _agent_id(request))
    return web.json_response(agent)


@routes.patch("/v1/agents/{agent_id}")
@requires(ADMIN)
async def rename_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    body = await parse_body(request, AgentRename)
    agent = await ledger.rename_agent(request.app[POOL], tenant_of(request), agent_id, body.name)
    return web.json_response(agent)


@routes.delete("/v1/agents/{agent_id}")
@requires(ADMIN)
async def delete_agent(request: web.Request) -> web.Response:
    result = await ledger.delete_agent(request.app[POOL], tenant_of(request), _agent_id(request))
    return web.json_response(result)


@routes.post("/v1/agents/{agent_id}/budget")
@requires(ADMIN)
async def set_budget(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    body = await parse_body(request, BudgetSet)
    budget = await ledger.set_budget(
        request.app[POOL],
        tenant_of(request),
        agent_id,
        hard_limit_cents=body.hard_limit_cents,
        topup_cents=body.topup_cents,
        concurrency=body.concurrency,
        policy=body.given(ledger.POLICY_FIELDS),
    )
    return web.json_response(budget)


@routes.get("/v1/agents/{agent_id}/budget")
@requires(ADMIN)
async def get_budget(request: web.Request) -> web.Response:
    budget = await ledger.get_budget(request.app[POOL], tenant_of(request), _agent_id(request))
    return web.json_response(budget)


@routes.post("/v1/agents/{agent_id}/runs")
@requires(ADMIN)
async def create_run(request: web.Request) -> web.Response:
    run = await ledger.create_run(request.app[POOL], tenant_of(request), _agent_id(request))
    return web.json_response(run)


@routes.get("/v1/agents/{agent_id}/usage")
@requires(ADMIN)
async def usage(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    limit = query_int(request, "limit", 50, 1, 1000)
    before = query_int(request, "before", None, 1, 2**63 - 1)
    result = await ledger.list_usage(
        request.app[POOL], tenant_of(request), agent_id, limit=limit, before=before
    )
    return web.json_response(result)
