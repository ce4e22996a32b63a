"""The floor: a bare relay with no auth, logging, metrics or validation.

What any Python gateway on this path costs at least: read the body, swap the credential, POST it
upstream over a pooled keep-alive aiohttp session, send the answer back: whole for JSON, and
for an event stream piece by piece as it arrives (one read, one write; nothing parsed).
Two servers, same client:
  python bench/relay_floor.py --server uvicorn --port P --upstream http://127.0.0.1:U
  python bench/relay_floor.py --server aiohttp --port P --upstream http://127.0.0.1:U
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvloop

HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "te",
       "trailer", "upgrade", "proxy-authorization", "proxy-connection", "x-api-key",
       "authorization", "content-encoding"}
KEY = "sk-ant-api03-bench-upstream-key-0123456789abcdef"  # = bench.gateway.UPSTREAM_KEY
# Both credential headers: the bench upstreams take x-api-key (Anthropic) or Bearer (OpenAI).
CREDENTIAL = {"x-api-key": KEY, "authorization": f"Bearer {KEY}"}


POOL = {"limit": 256}  # --pool-limit: bench scale runs it unlimited (0), like ccgate's default


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL["limit"]),
                                 auto_decompress=False)


def asgi_app(upstream: str) -> Any:
    state: dict[str, aiohttp.ClientSession] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            msg = await receive()
            body, more = body + msg.get("body", b""), msg.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() not in HOP}
        headers.update(CREDENTIAL)
        qs = scope["query_string"].decode()
        url = upstream + scope["path"] + ("?" + qs if qs else "")
        s = state.get("s") or state.setdefault("s", session())
        async with s.post(url, data=body, headers=headers) as r:
            out = [(k.lower().encode(), v.encode()) for k, v in r.headers.items()
                   if k.lower() not in HOP]
            if r.content_type == "text/event-stream":
                await send({"type": "http.response.start", "status": r.status, "headers": out})
                async for chunk in r.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await r.read()
            await send({"type": "http.response.start", "status": r.status, "headers": out})
            await send({"type": "http.response.body", "body": data})

    return app


async def aiohttp_main(upstream: str, port: int) -> None:
    import asyncio

    from aiohttp import web

    s = session()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers.update(CREDENTIAL)
        async with s.post(upstream + request.path_qs, data=body, headers=headers) as r:
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
            if r.content_type == "text/event-stream":
                resp = web.StreamResponse(status=r.status, headers=out)
                await resp.prepare(request)
                async for chunk in r.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            data = await r.read()
            return web.Response(status=r.status, body=data, headers=out)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", choices=["uvicorn", "aiohttp"], default="uvicorn")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--pool-limit", type=int, default=256,
                    help="aiohttp connection pool limit (0: none, for thousands of streams)")
    args = ap.parse_args()
    POOL["limit"] = args.pool_limit
    if not args.upstream.startswith("http://127."):
        raise SystemExit("the floor relay only talks to loopback upstreams")
    if args.server == "aiohttp":
        uvloop.run(aiohttp_main(args.upstream, args.port))
    else:
        import uvicorn

        uvicorn.run(asgi_app(args.upstream), host="127.0.0.1", port=args.port, loop="uvloop",
                    http="httptools", lifespan="off", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
