"""Clients see one server, Bastion, in both eras (the upstreams are listed in metadata), and an upstream that
leaves and rejoins is announced once each way, not once per state change."""

from __future__ import annotations

import anyio
import pytest

from bastion import __version__
from bastion.protocol import versions
from bastion.testing import running_gateway
from bastion.upstream.connection import State
from tests.core.test_session_raw import Collect, init
from tests.servers import calc, dual

pytestmark = pytest.mark.anyio
BASTION = {"name": "bastion", "version": __version__}


async def test_a_handshake_era_client_sees_bastions_server_info_and_the_upstreams_in_metadata():
    async with running_gateway({"dual": dual.build()}) as gw:
        assert gw.upstreams["dual"].modern  # its results carry the upstream's own serverInfo
        out = Collect()
        session = await gw.open_session(transport="memory", outbound=out)
        await session.handle(init(1))
        initialized = (await out.reply(1))["result"]
        assert initialized["serverInfo"] == BASTION
        [upstream] = initialized["_meta"]["dev.bastion/upstreams"]
        assert upstream["name"] == "dual" and upstream["serverInfo"]["name"] == "dual"
        await session.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await session.handle(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "dual__chatty", "arguments": {}},
            }
        )
        result = (await out.reply(2))["result"]
        assert result["_meta"][versions.META_SERVER_INFO] == BASTION
        assert "resultType" not in result
        await session.aclose()


async def test_list_changes_are_announced_once_until_the_client_lists_again():
    async with running_gateway({"calc": calc.build()}) as gw:
        out = Collect()
        session = await gw.open_session(transport="memory", outbound=out)
        await session.handle(init(1))
        await out.reply(1)
        await session.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
        conn = gw.upstreams["calc"]

        def tools_changed() -> int:
            return sum(1 for m, _ in out.messages if m.get("method") == "notifications/tools/list_changed")

        async def leave_and_rejoin() -> None:
            await conn.mark_down("test")
            with anyio.fail_after(30):
                while conn.state is State.READY:
                    await anyio.sleep(0.01)
                assert await conn.wait_ready(30)  # its state listeners (the notices) ran before this returns

        for round_id in (2, 3):
            await session.handle({"jsonrpc": "2.0", "id": round_id, "method": "tools/list"})
            await out.reply(round_id)
            await leave_and_rejoin()  # leaving and rejoining: two changes, one notice
            assert tools_changed() == round_id - 1
        await session.aclose()
