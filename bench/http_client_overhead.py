"""Client CPU per upstream HTTP request: httpx's pooled AsyncClient against Bastion's `H1Client` (issue #18).

Both POST the same small JSON body, sequentially, to a trivial uvicorn app in a subprocess (so the server's work
is not counted) and read the whole response; the figure is the process CPU time (utime+stime) of this process per
request. Rounds alternate the clients. `bench/http_upstream_overhead.py` measures the whole transport and gateway
hop instead.

Run: .venv/bin/python bench/http_client_overhead.py [requests] [rounds]
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from typing import Final

import httpx
import uvloop

from bastion.transports.h1 import H1Client

BODY: Final = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
HEADERS: Final = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
SERVER: Final = r"""
import sys, uvicorn
REPLY = b'{"jsonrpc":"2.0","id":1,"result":{}}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": REPLY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", loop="uvloop", http="httptools")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def cpu_per_request(client: httpx.AsyncClient | H1Client, url: str, n: int) -> float:
    """Microseconds of this process's CPU per request."""
    for _ in range(50):  # warm the connection
        async with client.stream("POST", url, content=BODY, headers=HEADERS) as response:
            async for _chunk in response.aiter_bytes():
                pass
    start = time.process_time()
    for _ in range(n):
        async with client.stream("POST", url, content=BODY, headers=HEADERS) as response:
            async for _chunk in response.aiter_bytes():
                pass
    return (time.process_time() - start) / n * 1e6


async def main(n: int, rounds: int) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        url = f"http://127.0.0.1:{port}/mcp"
        for round_no in range(1, rounds + 1):
            async with httpx.AsyncClient(trust_env=False) as plain:
                httpx_us = await cpu_per_request(plain, url, n)
            lean = H1Client(
                {},
                timeout=10,
                connect_timeout=10,
                max_connections=8,
                max_keepalive_connections=8,
                keepalive_expiry=4,
            )
            try:
                h1_us = await cpu_per_request(lean, url, n)
            finally:
                await lean.aclose()
            print(
                f"round {round_no}: httpx {httpx_us:.0f} us CPU/request, H1Client {h1_us:.0f} us CPU/request"
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    uvloop.run(main(*(args + [3000, 2][len(args) :])))
