"""Clients of several principals calling a malicious upstream through a real Gateway, recording what each receives.

Every client answers sampling with `<its principal>:<prompt>`, elicitation with `{"who": <its principal>}` and
roots with `file:///<its principal>`, and records every prompt, message, log and progress text it was shown. A
cross-delivery is any text carrying another principal's tag reaching a client, or a call result showing that
another principal answered for it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client, types

from bastion.auth.principal import Principal
from bastion.core.gateway import Gateway
from bastion.testing import client_transport


@dataclass
class Seen:
    """What one principal's client was shown and what its calls returned."""

    principal: str
    texts: list[str] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)

    def foreign(self, principals: list[str]) -> list[str]:
        """Texts and answers that belong to another principal (must stay empty)."""
        others = [p for p in principals if p != self.principal]
        bad = [t for t in self.texts if any(f"{o}-" in t for o in others)]
        for report in self.reports:
            if any(f"{o}-" in report["tag"] for o in others):
                bad.append(f"result of {report['tag']}")
            answers = json.dumps([report["sampling"], report["elicitation"], report["roots"]])
            bad += [
                f"{report['tag']} answered by {o}"
                for o in others
                if f'"{o}:' in answers or f"/{o}" in answers
            ]
        return bad

    def answered(self) -> int:
        """Calls whose sampling, elicitation and roots were all answered by this principal's own client."""
        me = self.principal
        return sum(
            1
            for r in self.reports
            if r["sampling"].get("result", {}).get("content", {}).get("text", "").startswith(f"{me}:")
            and r["elicitation"].get("result", {}).get("content") == {"who": me}
            and r["roots"].get("result", {}).get("roots", [{}])[0].get("uri") == f"file:///{me}"
        )


@contextlib.asynccontextmanager
async def principal_client(gateway: Gateway, seen: Seen, *, level: str = "debug") -> AsyncIterator[Client]:
    """An SDK client of `seen.principal` that answers every server->client request as that principal."""
    me = seen.principal

    async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = " ".join(m.content.text for m in params.messages if isinstance(m.content, types.TextContent))
        seen.texts.append(prompt)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"{me}:{prompt}"), model="m"
        )

    async def elicitation(ctx: Any, params: Any) -> types.ElicitResult:
        seen.texts.append(str(params.message))
        return types.ElicitResult(action="accept", content={"who": me})

    async def roots(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=f"file:///{me}", name=me)])

    async def logs(params: types.LoggingMessageNotificationParams) -> None:
        seen.texts.append(str(params.data))

    async with Client(
        client_transport(gateway, principal=Principal(name=me, method="api_key")),
        mode="legacy",
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=roots,
        logging_callback=logs,
    ) as client:
        await client.set_logging_level(level)  # type: ignore[arg-type]
        yield client


async def probe(client: Client, seen: Seen, tag: str) -> None:
    """One call of the `probe` tool; its report (what the upstream got back) is recorded."""

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.texts.append(message or "")

    result = await client.call_tool("probe__probe", {"tag": tag}, progress_callback=progress)
    text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    seen.reports.append(json.loads(text))


async def storm(gateway: Gateway, principals: list[str], calls: int, *, wave: int = 8) -> dict[str, Seen]:
    """`calls` probe calls per principal, `wave` at a time per principal, all principals at once."""
    seen = {p: Seen(p) for p in principals}

    async def run(principal: str) -> None:
        async with principal_client(gateway, seen[principal]) as client:
            for start in range(0, calls, wave):
                async with anyio.create_task_group() as tg:
                    for i in range(start, min(calls, start + wave)):
                        tg.start_soon(probe, client, seen[principal], f"{principal}-{i}")

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            for principal in principals:
                tg.start_soon(run, principal)
    return seen
