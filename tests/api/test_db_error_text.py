"""Database driver text never reaches a client.

The probe got ``invalid input for query argument $6 … int64`` back in a 400. A value the
database refuses is the client's to fix, so it stays a 400 — with a generic message that says
what kind of value is wrong — while the driver's text (which quotes the value and the query's
arguments) is logged by class and SQLSTATE only.
"""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from spendguard_proxy.server.keys import POOL
from spendguard_proxy.server.middlewares import errors_middleware
from spendguard_proxy.server.runner import start_site

DRIVER_WORDS = ("query argument", "int64", "$1", "invalid byte sequence", "UTF8", "0x00",
                "SELECT", "bigint")


def _assert_generic(body: dict) -> None:
    assert body["detail"].startswith("Invalid value in the request")
    assert body["error"]["type"] == "invalid_request"
    for word in DRIVER_WORDS:
        assert word not in body["detail"], body["detail"]


async def test_a_nul_byte_in_an_agent_name_is_a_generic_400(http, proxy_url, caplog):
    """PostgreSQL refuses NUL in text (SQLSTATE 22021); the old answer quoted its message."""
    caplog.set_level(logging.WARNING, logger="spendguard_proxy.server.middlewares")
    async with http.post(f"{proxy_url}/v1/agents", json={"name": "agent\x00SECRETNAME"}) as r:
        body = await r.json()
    assert r.status == 400
    _assert_generic(body)
    assert "NUL byte" in body["detail"]  # what to fix
    logged = [rec.getMessage() for rec in caplog.records]
    assert any("CharacterNotInRepertoireError" in line and "22021" in line for line in logged)
    assert not any("SECRETNAME" in line for line in logged)


@pytest.fixture(scope="module")
async def db_probe(pool, settings):
    """A server (the production runner and errors middleware) whose handler sends the query
    parameter to PostgreSQL as a bigint: asyncpg's own refusal and PostgreSQL's, for real."""
    app = web.Application(middlewares=[errors_middleware])
    app[POOL] = pool

    async def handler(request: web.Request) -> web.Response:
        value = request.query["v"]
        if request.query.get("as") == "int":  # asyncpg refuses to encode it ($1 … int64)
            await pool.fetchval("SELECT $1::bigint", int(value))
        else:  # PostgreSQL refuses it (numeric_value_out_of_range, invalid_text_representation)
            await pool.fetchval("SELECT $1::text::bigint", value)
        return web.json_response({})

    app.router.add_get("/probe", handler)
    runner, port = await start_site(app, settings)
    yield f"http://127.0.0.1:{port}/probe"
    await runner.cleanup()


@pytest.mark.parametrize(("query", "hint"), [
    ({"as": "int", "v": str(2**70)}, "out of range"),  # the probe's "$6 … int64", as $1
    ({"v": str(2**70)}, "out of range"),
    ({"v": "12abc"}, "wrong format"),
])
async def test_values_the_database_refuses_are_a_generic_400(http, db_probe, caplog, query,
                                                             hint):
    caplog.set_level(logging.WARNING, logger="spendguard_proxy.server.middlewares")
    async with http.get(db_probe, params=query) as r:
        body = await r.json()
    assert r.status == 400, body  # input to fix, not 503 "database unavailable"
    _assert_generic(body)
    assert hint in body["detail"]
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "database refused a value on GET /probe" in logged
    assert query["v"] not in logged
    if query.get("as") == "int":
        assert "(SQLSTATE 22000, argument $1, OverflowError)" in logged  # where, not what
