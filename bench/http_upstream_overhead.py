"""Per-call latency of the HTTP upstream hop, measured three ways against the same upstream server.

1. `httpx`: one bare httpx POST per call with a prebuilt body, response read (the floor any HTTP client pays);
2. `transport`: `StreamableHttpClientTransport` send -> receive (Bastion's client transport alone);
3. `gateway`: a client session -> pipeline -> routing -> upstream connection -> HTTP transport -> back.

Upstream `stub` is a minimal Starlette app in a subprocess that answers tools/call with canned JSON (so the
numbers are Bastion's, not the server's); `sdk` is bench/upstream_server.py, the official SDK server (SSE
responses). Rounds alternate the three ways and the medians are printed.

Run: .venv/bin/python bench/http_upstream_overhead.py [--upstream stub|sdk] [--calls 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.protocol import jsonrpc
from bastion.transports.streamable_http_client import StreamableHttpClientTransport
from micro_session import Out  # bench/ is on sys.path when a bench script runs

HERE = Path(__file__).resolve().parent
INIT = jsonrpc.request(
    0,
    "initialize",
    {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}},
)
CALL = {"name": "echo", "arguments": {"text": "x" * 100}}


def serve_stub(port: int) -> None:
    """A tiny handshake-era MCP server: JSON responses, a session id, no GET stream."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    tools = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    init = {
        "protocolVersion": "2025-11-25",
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "stub", "version": "1"},
    }

    async def mcp(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405)
        message = orjson.loads(await request.body())
        if "id" not in message or "method" not in message:
            return Response(status_code=202)
        method = message["method"]
        if method == "tools/call":
            result: Any = {"content": [{"type": "text", "text": message["params"]["arguments"]["text"]}]}
        elif method == "tools/list":
            result = tools
        elif method == "initialize":
            result = init
        else:
            body = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}}
            return Response(orjson.dumps(body), 400, media_type="application/json")
        body = orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result})
        return Response(body, media_type="application/json", headers={"mcp-session-id": "stub-session"})

    app = Starlette(routes=[Route("/mcp", mcp, methods=["POST", "GET", "DELETE"])])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


async def bare_httpx(url: str, n: int) -> tuple[float, float]:
    async with httpx.AsyncClient() as client:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        init = await client.post(url, content=orjson.dumps(INIT), headers=headers)
        headers["mcp-session-id"] = init.headers.get("mcp-session-id", "")
        headers["mcp-protocol-version"] = "2025-11-25"
        await client.post(
            url, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers=headers
        )
        body = orjson.dumps(jsonrpc.request(1, "tools/call", CALL))
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                await response.aread()
        return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


async def transport_only(url: str, n: int) -> tuple[float, float]:
    transport = StreamableHttpClientTransport(url, {}, timeout=30, name="bench")
    await transport.start()
    incoming = transport.receive()
    await transport.send(INIT)
    await anext(incoming)
    transport.set_protocol_version("2025-11-25")
    await transport.send(jsonrpc.notification("notifications/initialized"))
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, n + 1):
        await transport.send(jsonrpc.request(i, "tools/call", CALL))
        while "method" in (await anext(incoming)).message:
            pass  # progress or logging on the stream: not the answer yet
    elapsed = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    await transport.aclose()
    return elapsed


async def through_gateway(url: str, n: int) -> tuple[float, float]:
    config = parse_config(
        {"servers": {"up": {"transport": "streamable-http", "url": url, "protocol": "legacy"}}}
    )
    gateway = Gateway(config)
    await gateway.start()
    out = Out()
    session = await gateway.open_session(transport="memory", outbound=out)
    loop = asyncio.get_running_loop()

    async def call(i: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        out.waiters[i] = loop.create_future()
        future = out.waiters[i]
        await session.handle(jsonrpc.request(i, method, params))
        return await future

    await call(0, "initialize", INIT["params"])
    await session.handle(jsonrpc.notification("notifications/initialized"))
    params = {**CALL, "name": "up__echo"}
    assert "result" in await call(1, "tools/call", params)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(2, n + 2):
        await call(i, "tools/call", params)
    elapsed = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    await gateway.aclose()
    return elapsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(args: argparse.Namespace) -> None:
    port = _free_port()
    if args.upstream == "stub":
        argv = [sys.executable, __file__, "--serve-stub", str(port)]
    else:
        argv = [sys.executable, str(HERE / "upstream_server.py"), "http", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise SystemExit("upstream did not start")
            await asyncio.sleep(0.05)
        ways = {"httpx": bare_httpx, "transport": transport_only, "gateway": through_gateway}
        wall: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        for way in ways.values():  # warm-up: imports, pools, caches
            await way(url, 50)
        for _ in range(args.rounds):
            for name, way in ways.items():
                w, c = await way(url, args.calls)
                wall[name].append(w)
                cpu[name].append(c)
        med = {
            name: (statistics.median(wall[name]) * 1e6, statistics.median(cpu[name]) * 1e6) for name in ways
        }
        print(f"upstream={args.upstream} calls={args.calls} rounds={args.rounds} (medians, us/call)")
        print(f"  {'':<10} {'wall':>9} {'cpu (this process)':>20}")
        for name, (w, c) in med.items():
            print(f"  {name:<10} {w:9.1f} {c:20.1f}")
        for name in ("transport", "gateway"):
            dw, dc = med[name][0] - med["httpx"][0], med[name][1] - med["httpx"][1]
            print(f"  {name} - httpx: wall {dw:+.1f}, cpu {dc:+.1f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", choices=["stub", "sdk"], default="stub")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve-stub", type=int, default=0, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_stub:
        serve_stub(parsed.serve_stub)
    else:
        asyncio.run(main(parsed))
