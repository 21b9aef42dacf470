"""Where the tenant-level commands (agent, budget, usage, group, webhook) act.

``DbBackend`` calls the ledger functions on the database directly (the server's own code
path); ``HttpBackend`` talks to a running SpendGuard, as a hosted tenant without database
access does. Both return the API's JSON objects, so the output is the same either way.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from spendguard_proxy import ledger
from spendguard_proxy.cli.errors import CliError
from spendguard_proxy.errors import AuthenticationError, PermissionDenied

HTTP_TIMEOUT_S = 30

__all__ = ["CliError", "DbBackend", "HttpBackend", "parse_uuid"]


def parse_uuid(value: str, what: str = "agent id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CliError(f"Invalid {what}: {value!r} is not a UUID") from None


class DbBackend:
    def __init__(self, pool, tenant_id: uuid.UUID) -> None:
        self.pool = pool
        self.tenant_id = tenant_id

    @classmethod
    async def open(cls, pool, settings, api_key: str | None) -> DbBackend:
        """``settings``: a Settings or CliSettings (session.py)."""
        if settings.mode.value == "sidecar":
            return cls(pool, ledger.LOCAL_TENANT_ID)
        if not api_key:
            raise CliError("Hosted mode requires API key via --api-key or CAP_API_KEY")
        from spendguard_proxy.tenants import looks_like_key, resolve_key

        found = await resolve_key(pool, api_key) if looks_like_key(api_key) else None
        if found is None:
            raise AuthenticationError("Invalid or revoked API key")
        tenant_id, scopes = found
        if "cap:admin" not in scopes:
            raise PermissionDenied("This API key lacks the cap:admin scope")
        return cls(pool, tenant_id)

    async def create_agent(self, name: str | None) -> dict[str, Any]:
        agent = await ledger.create_agent(self.pool, self.tenant_id, name)
        return {"agent_id": agent["agent_id"]}

    async def list_agents(self) -> dict[str, Any]:
        return {"agents": await ledger.list_agents(self.pool, self.tenant_id)}

    async def get_agent(self, agent: str) -> dict[str, Any]:
        return await ledger.get_agent(self.pool, self.tenant_id, parse_uuid(agent))

    async def rename_agent(self, agent: str, name: str) -> dict[str, Any]:
        return await ledger.rename_agent(self.pool, self.tenant_id, parse_uuid(agent), name)

    async def delete_agent(self, agent: str) -> dict[str, Any]:
        return await ledger.delete_agent(self.pool, self.tenant_id, parse_uuid(agent))

    async def set_budget(
        self, agent: str, limit: int, topup: int | None, concurrency: str | None,
        policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``policy``: the policy fields to change, as in the API's body (None clears one)."""
        # The server's own body rules (imported here: they bring aiohttp and pydantic along).
        from spendguard_proxy.server.bodies import BudgetSet, validate

        agent_id = parse_uuid(agent)
        body = validate(
            BudgetSet,
            {"hard_limit_cents": limit, "topup_cents": topup, "concurrency": concurrency,
             **(policy or {})},
        )
        return await ledger.set_budget(
            self.pool,
            self.tenant_id,
            agent_id,
            hard_limit_cents=body.hard_limit_cents,
            topup_cents=body.topup_cents,
            concurrency=body.concurrency,
            policy=body.given(ledger.POLICY_FIELDS),
        )

    async def get_budget(self, agent: str) -> dict[str, Any]:
        return await ledger.get_budget(self.pool, self.tenant_id, parse_uuid(agent))

    async def usage(self, agent: str, limit: int, before: int | None) -> dict[str, Any]:
        return await ledger.list_usage(
            self.pool, self.tenant_id, parse_uuid(agent), limit=limit, before=before
        )

    # Webhooks (spendguard_proxy/webhooks): the server's own store and body rules.

    async def create_webhook(
        self, url: str, events: list[str] | None, settings
    ) -> dict[str, Any]:
        """``settings``: a full Settings (the mode, the URL rules and the secret key)."""
        from spendguard_proxy.webhooks import store
        from spendguard_proxy.webhooks.secret_box import box_for
        from spendguard_proxy.webhooks.validation import parse_create

        body = parse_create(_webhook_payload(url, events), settings)
        return await store.create_webhook(self.pool, self.tenant_id, body.url, body.events,
                                          box_for(settings), settings.webhook_max_per_tenant)

    async def list_webhooks(self) -> dict[str, Any]:
        from spendguard_proxy.webhooks import store

        return await store.list_webhooks(self.pool, self.tenant_id)

    async def delete_webhook(self, webhook: str) -> dict[str, Any]:
        from spendguard_proxy.webhooks import store

        return await store.delete_webhook(self.pool, self.tenant_id,
                                          parse_uuid(webhook, "webhook id"))

    async def webhook_deliveries(
        self, webhook: str, limit: int, before: int | None
    ) -> dict[str, Any]:
        from spendguard_proxy.errors import InvalidRequest
        from spendguard_proxy.server.webhook_routes import MAX_DELIVERIES_PAGE
        from spendguard_proxy.webhooks import store

        if not 1 <= limit <= MAX_DELIVERIES_PAGE:
            raise InvalidRequest(f"--limit must be between 1 and {MAX_DELIVERIES_PAGE}")
        return await store.list_deliveries(self.pool, self.tenant_id,
                                           parse_uuid(webhook, "webhook id"), limit=limit,
                                           before=before)

    # Budget groups (spendguard_proxy/groups.py): the server's own body rules.

    async def create_group(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields``: the body of POST /v1/groups."""
        from spendguard_proxy import groups
        from spendguard_proxy.server.bodies import GroupCreate, validate

        body = validate(GroupCreate, fields)
        return await groups.create_group(
            self.pool, self.tenant_id, name=body.name, hard_limit_cents=body.hard_limit_cents,
            topup_cents=body.topup_cents, period=body.period,
            alert_thresholds_pct=body.alert_thresholds_pct,
        )

    async def list_groups(self) -> dict[str, Any]:
        from spendguard_proxy import groups

        return {"groups": await groups.list_groups(self.pool, self.tenant_id)}

    async def get_group(self, group: str) -> dict[str, Any]:
        from spendguard_proxy import groups

        return await groups.get_group(self.pool, self.tenant_id, parse_uuid(group, "group id"))

    async def update_group(self, group: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes``: the body of PATCH /v1/groups/{id}."""
        from spendguard_proxy import groups
        from spendguard_proxy.server.bodies import GroupPatch, validate

        group_id = parse_uuid(group, "group id")
        body = validate(GroupPatch, changes)
        return await groups.update_group(self.pool, self.tenant_id, group_id,
                                         body.given(groups.GROUP_FIELDS))

    async def delete_group(self, group: str) -> dict[str, Any]:
        from spendguard_proxy import groups

        return await groups.delete_group(self.pool, self.tenant_id,
                                         parse_uuid(group, "group id"))


class HttpBackend:
    def __init__(self, base_url: str, api_key: str | None, mode) -> None:
        if mode.value == "hosted" and not api_key:
            raise CliError("Hosted mode requires API key via --api-key or CAP_API_KEY")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["x-api-key"] = self.api_key
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        # No redirects: urllib would resend the tenant key to wherever Location points.
        opener = urllib.request.build_opener(_no_redirect_handler())
        try:
            with opener.open(req, timeout=HTTP_TIMEOUT_S) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise CliError(_redirect_message(self.base_url, exc)) from None
            place = f" (at {self.base_url})" if exc.code == 404 else ""
            raise CliError(f"HTTP {exc.code}: {_detail(exc.read())}{place}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"Cannot reach SpendGuard at {self.base_url}: {reason}") from None

    def _agent_path(self, agent: str, suffix: str = "") -> str:
        from urllib.parse import quote

        return f"/v1/agents/{quote(agent, safe='')}{suffix}"

    async def create_agent(self, name: str | None) -> dict[str, Any]:
        return self._call("POST", "/v1/agents", {"name": name} if name else {})

    async def list_agents(self) -> dict[str, Any]:
        return self._call("GET", "/v1/agents")

    async def get_agent(self, agent: str) -> dict[str, Any]:
        return self._call("GET", self._agent_path(agent))

    async def rename_agent(self, agent: str, name: str) -> dict[str, Any]:
        return self._call("PATCH", self._agent_path(agent), {"name": name})

    async def delete_agent(self, agent: str) -> dict[str, Any]:
        return self._call("DELETE", self._agent_path(agent))

    async def set_budget(
        self, agent: str, limit: int, topup: int | None, concurrency: str | None,
        policy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"hard_limit_cents": limit}
        if topup is not None:
            payload["topup_cents"] = topup
        if concurrency is not None:
            payload["concurrency"] = concurrency
        payload.update(policy or {})  # a None is sent as null: it clears the field
        return self._call("POST", self._agent_path(agent, "/budget"), payload)

    async def get_budget(self, agent: str) -> dict[str, Any]:
        return self._call("GET", self._agent_path(agent, "/budget"))

    async def usage(self, agent: str, limit: int, before: int | None) -> dict[str, Any]:
        query = f"?limit={limit}" + (f"&before={before}" if before is not None else "")
        return self._call("GET", self._agent_path(agent, "/usage") + query)

    async def create_webhook(
        self, url: str, events: list[str] | None, settings=None
    ) -> dict[str, Any]:
        return self._call("POST", "/v1/webhooks", _webhook_payload(url, events))

    async def list_webhooks(self) -> dict[str, Any]:
        return self._call("GET", "/v1/webhooks")

    async def delete_webhook(self, webhook: str) -> dict[str, Any]:
        from urllib.parse import quote

        return self._call("DELETE", f"/v1/webhooks/{quote(webhook, safe='')}")

    async def webhook_deliveries(
        self, webhook: str, limit: int, before: int | None
    ) -> dict[str, Any]:
        from urllib.parse import quote

        query = f"?limit={limit}" + (f"&before={before}" if before is not None else "")
        return self._call("GET", f"/v1/webhooks/{quote(webhook, safe='')}/deliveries{query}")

    def _group_path(self, group: str) -> str:
        from urllib.parse import quote

        return f"/v1/groups/{quote(group, safe='')}"

    async def create_group(self, fields: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/groups", fields)

    async def list_groups(self) -> dict[str, Any]:
        return self._call("GET", "/v1/groups")

    async def get_group(self, group: str) -> dict[str, Any]:
        return self._call("GET", self._group_path(group))

    async def update_group(self, group: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", self._group_path(group), changes)

    async def delete_group(self, group: str) -> dict[str, Any]:
        return self._call("DELETE", self._group_path(group))


def _no_redirect_handler():
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None  # urllib then raises HTTPError with the 3xx answer

    return NoRedirect


def _redirect_message(base_url: str, exc) -> str:
    location = (exc.headers.get("Location") or "(no Location header)")[:300]
    return (f"SpendGuard at {base_url} answered HTTP {exc.code}, a redirect to {location}; "
            "not followed, so the API key is never sent elsewhere. Set --base-url/CAP_BASE_URL "
            "to the address that serves the API")


def _detail(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:500] or "request failed"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return json.dumps(body)[:500]


def _webhook_payload(url: str, events: list[str] | None) -> dict[str, Any]:
    return {"url": url} if events is None else {"url": url, "events": events}
