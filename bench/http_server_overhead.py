"""Latency Bastion's client-facing HTTP side adds per call, measured on the wire.

Two servers run in a child process under uvicorn (uvloop + httptools, as `bastion serve` runs):
  baseline: a bare ASGI app that parses the JSON-RPC POST and answers it at once (HTTP + JSON cost only);
  bastion:  `create_app(gateway)` in front of an instant in-process upstream (the whole Bastion path:
            security middleware, session lookup, pipeline, routing, upstream correlation, reply).
A keep-alive client sends sequential `tools/call` POSTs to each; the difference of the medians is Bastion's cost.
Run: .venv/bin/python bench/http_server_overhead.py [calls]
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import socket
import statistics
import sys
import time
from typing import Any

import orjson


async def baseline(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    request = orjson.loads(b"".join(chunks))
    body = orjson.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": {"content": []}})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _serve(kind: str, sock: socket.socket) -> None:
    import uvicorn

    if kind == "baseline":
        app: Any = baseline
    else:
        from bastion.core.gateway import Gateway
        from bastion.server.app import create_app
        from micro_session import InstantUpstream, instant_config  # bench/ is on the child's sys.path too

        app = create_app(Gateway(instant_config(), transports={"up": InstantUpstream}))
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def _post(
    conn: http.client.HTTPConnection, payload: bytes, headers: dict[str, str]
) -> tuple[int, bytes, Any]:
    conn.request("POST", "/mcp", body=payload, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), response


def _measure(port: int, calls: int, modern: bool) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    base = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "host": "127.0.0.1",
    }
    headers = dict(base)
    params: dict[str, Any] = {"name": "up__echo", "arguments": {"text": "x" * 100}}
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers.update(
            {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "up__echo"}
        )
    else:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench"}}
        _, _, response = _post(
            conn, orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}), base
        )
        sid = response.getheader("mcp-session-id")
        if sid:
            headers["mcp-session-id"] = sid
            _post(conn, b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers)
    samples = []
    for i in range(1, calls + 1):
        payload = orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params})
        started = time.perf_counter()
        status, body, _ = _post(conn, payload, headers)
        samples.append(time.perf_counter() - started)
        assert status == 200 and b'"result"' in body, body[:200]
    return samples[calls // 10 :]  # drop the warm-up


def _run(kind: str, calls: int, modern: bool) -> list[float]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(kind, sock), daemon=True)
    child.start()
    try:
        return _measure(port, calls, modern)
    finally:
        child.terminate()
        child.join(10)
        sock.close()


def main(calls: int) -> None:
    report = {}
    for era, modern in (("handshake", False), ("2026-07-28", True)):
        base = _run("baseline", calls, modern)
        ours = _run("bastion", calls, modern)
        report[era] = {
            "baseline_p50_us": round(statistics.median(base) * 1e6, 1),
            "bastion_p50_us": round(statistics.median(ours) * 1e6, 1),
            "added_p50_us": round((statistics.median(ours) - statistics.median(base)) * 1e6, 1),
            "bastion_p99_us": round(sorted(ours)[int(len(ours) * 0.99)] * 1e6, 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
