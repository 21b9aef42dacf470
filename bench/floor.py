"""``python -m bench.floor``: the bare aiohttp relay, the floor of SpendGuard's stack.

One process, uvloop, one pooled ``aiohttp.ClientSession`` to the upstream; ``POST
/v1/chat/completions`` forwards the body (and the Authorization header) and answers with the
upstream's status, content type and body. No budget, no database, no parsing. ``GET /health``
answers 200.
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web

FORWARD_HEADERS = ("Content-Type", "Authorization")


def make_app(upstream: str) -> web.Application:
    url = upstream.rstrip("/") + "/v1/chat/completions"
    app = web.Application()

    async def session_ctx(app: web.Application):
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        app["session"] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        yield
        await app["session"].close()

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARD_HEADERS if k in request.headers}
        async with app["session"].post(url, data=body, headers=headers) as upstream_resp:
            answer = await upstream_resp.read()
            return web.Response(body=answer, status=upstream_resp.status,
                                content_type=upstream_resp.content_type)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", relay)
    app.router.add_get("/health", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", required=True,
                        help="the provider's origin, e.g. http://127.0.0.1:8001")
    args = parser.parse_args(argv)
    web.run_app(make_app(args.upstream), host=args.host, port=args.port, access_log=None,
                print=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
