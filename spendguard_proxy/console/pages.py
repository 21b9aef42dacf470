"""Overview, agents and the agent page, plus the live stream that keeps them current."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from spendguard_proxy import groups, ledger
from spendguard_proxy.console import charts, live, queries, sessions
from spendguard_proxy.console.app import (
    FEED,
    PREFIX,
    form_of,
    is_hosted,
    pool_of,
    render,
    session_of,
    tenant_of,
)
from spendguard_proxy.console.forms import FormErrors, check, collect, error_for_field
from spendguard_proxy.errors import NotFound, SpendGuardError
from spendguard_proxy.server.bodies import AgentCreate, BudgetSet, parse_uuid, query_int

routes = web.RouteTableDef()
LEDGER_PAGE_ROWS = 50
POLICY_FIELDS = ("period", "rpm_limit", "tpm_limit", "allowed_models", "alert_thresholds_pct",
                 "group_id")


def policy_fields() -> tuple[str, ...]:
    """The policy fields both the API model and ``ledger.set_budget`` accept (DESIGN §11)."""
    if "policy" not in inspect.signature(ledger.set_budget).parameters:
        return ()
    return tuple(f for f in POLICY_FIELDS if f in BudgetSet.model_fields)


def _now() -> datetime:
    return datetime.now(UTC)


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    pool, tenant = pool_of(request), tenant_of(request)
    by = "model" if request.query.get("by") == "model" else "provider"
    now = _now()
    # Independent reads on separate pooled connections: the page waits for the slowest one,
    # not for their sum.
    rows, holds, top, cutoffs, overruns = await asyncio.gather(
        queries.spend_per_day(pool, tenant, now, by=by),
        queries.live_holds(pool, tenant),
        queries.top_agents(pool, tenant, now),
        queries.recent_cutoffs(pool, tenant),
        queries.recent_overruns(pool, tenant),
    )
    return render(request, "overview.html", {
        "title": "Overview",
        "by": by,
        "totals": queries.totals_from_days(rows, now),
        "holds": holds,
        "chart": charts.stacked_by_day(rows, now.date()),
        "top": top,
        "cutoffs": cutoffs,
        "overruns": overruns,
        "live_url": f"{PREFIX}/live",
    })


@routes.get("/agents")
async def agents(request: web.Request) -> web.Response:
    return await _agents_page(request, {}, FormErrors())


async def _agents_page(
    request: web.Request, values: dict[str, Any], errors: FormErrors, status: int = 200
) -> web.Response:
    search = request.query.get("q", "").strip()[:200] or None
    rows = await queries.agents_table(pool_of(request), tenant_of(request), search)
    return render(request, "agents.html", {
        "title": "Agents",
        "agents": rows[: queries.AGENTS_SHOWN_MAX],
        "more": len(rows) > queries.AGENTS_SHOWN_MAX,
        "q": search or "",
        "values": values,
        "errors": errors,
    }, status=status)


@routes.post("/agents")
async def create_agent(request: web.Request) -> web.Response:
    form = await form_of(request)
    body, errors = check(AgentCreate, collect(form, texts=["name"]))
    if body is None:
        return await _agents_page(request, form, errors, status=400)
    agent = await ledger.create_agent(pool_of(request), tenant_of(request), body.name)
    raise web.HTTPSeeOther(f"{PREFIX}/agents/{agent['agent_id']}?saved=agent")


def _agent_id(request: web.Request) -> uuid.UUID:
    try:
        return parse_uuid(request.match_info["agent_id"], "agent_id")
    except SpendGuardError:
        raise NotFound("No such agent") from None


@routes.get("/agents/{agent_id}")
async def agent_page(request: web.Request) -> web.Response:
    return await _render_agent(request, _agent_id(request), None, FormErrors())


async def _render_agent(
    request: web.Request,
    agent_id: uuid.UUID,
    values: dict[str, Any] | None,
    errors: FormErrors,
    status: int = 200,
) -> web.Response:
    pool, tenant = pool_of(request), tenant_of(request)
    agent = await ledger.get_agent(pool, tenant, agent_id)
    try:
        budget = await ledger.get_budget(pool, tenant, agent_id)
    except NotFound:
        budget = None
    before = query_int(request, "before", None, 1, 2**63 - 1)
    fields = policy_fields()
    usage, by_model, runs, groups = await asyncio.gather(
        ledger.list_usage(pool, tenant, agent_id, limit=LEDGER_PAGE_ROWS, before=before),
        queries.agent_spend_by_model(pool, agent_id),
        queries.agent_runs(pool, agent_id),
        _groups(pool, tenant) if "group_id" in fields else _nothing(),
    )
    return render(request, "agent.html", {
        "title": agent["name"] or agent["agent_id"],
        "agent": agent,
        "budget": budget,
        "values": values if values is not None else _budget_values(budget),
        "errors": errors,
        "policy_fields": fields,
        "group_options": [("", "(none)")] + [(g["group_id"], g["name"]) for g in groups],
        "usage": usage,
        "before": before,
        "by_model": charts.horizontal(
            [(f"{m['provider']}:{m['model']}", m["spent"]) for m in by_model]
        ),
        "model_rows": by_model,
        "runs": runs,
        "saved": request.query.get("saved"),
        "live_url": f"{PREFIX}/live?agent={agent_id}",
    }, status=status)


async def _nothing() -> list:
    return []


async def _groups(pool, tenant: uuid.UUID) -> list[dict[str, Any]]:
    return await groups.list_groups(pool, tenant)


def _budget_values(budget: dict[str, Any] | None) -> dict[str, Any]:
    if budget is None:
        return {"concurrency": "exclusive", "period": "none"}
    values = {k: budget.get(k) for k in ("hard_limit_cents", "concurrency", *POLICY_FIELDS)}
    for name in ("allowed_models", "alert_thresholds_pct"):
        if values.get(name):
            values[name] = ", ".join(str(v) for v in values[name])
    return {k: ("" if v is None else v) for k, v in values.items()}


@routes.post("/agents/{agent_id}/budget")
async def set_budget(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    pool, tenant = pool_of(request), tenant_of(request)
    await ledger.get_agent(pool, tenant, agent_id)  # another tenant's agent: 404 first
    form = await form_of(request)
    fields = policy_fields()
    raw = collect(
        form,
        integers=[f for f in ("hard_limit_cents", "topup_cents", "rpm_limit", "tpm_limit")
                  if f in ("hard_limit_cents", "topup_cents") or f in fields],
        texts=[f for f in ("concurrency", "period", "group_id")
               if f == "concurrency" or f in fields],
        int_lists=[f for f in ("alert_thresholds_pct",) if f in fields],
        text_lists=[f for f in ("allowed_models",) if f in fields],
    )
    body, errors = check(BudgetSet, raw)
    if body is None:
        return await _render_agent(request, agent_id, form, errors, status=400)
    kwargs: dict[str, Any] = {
        "hard_limit_cents": body.hard_limit_cents,
        "topup_cents": body.topup_cents,
        "concurrency": body.concurrency,
    }
    if fields:
        kwargs["policy"] = {f: getattr(body, f) for f in fields if f in body.model_fields_set}
    try:
        await ledger.set_budget(pool, tenant, agent_id, **kwargs)
    except SpendGuardError as exc:
        field = error_for_field(exc.message, ("hard_limit_cents", "topup_cents", *fields))
        errors = FormErrors(exc.message, {field: exc.message} if field else {})
        return await _render_agent(request, agent_id, form, errors, status=exc.status)
    raise web.HTTPSeeOther(f"{PREFIX}/agents/{agent_id}?saved=budget")


@routes.get("/live")
async def live_stream(request: web.Request) -> web.StreamResponse:
    pool, session = pool_of(request), session_of(request)
    agent_id = None
    if "agent" in request.query:
        agent_id = parse_uuid(request.query["agent"], "agent")
        await ledger.get_agent(pool, session.tenant_id, agent_id)
    hosted = is_hosted(request)

    async def session_ok() -> bool:
        return await sessions.still_valid(pool, session, hosted=hosted)

    return await live.stream(request, request.config_dict[FEED], session.tenant_id, agent_id,
                             session_ok)
