"""Hot reload: a valid new policy takes effect, an invalid one is refused and the old one stays."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from bastion.auth.principal import Principal
from bastion.errors import ConfigError
from bastion.policy.holder import PolicyHolder

DEV = Principal(name="alice", roles=frozenset({"dev"}))

ALLOW_A = """
policy:
  roles:
    dev:
      rules:
        - {id: a, tools: ["s__a"]}
"""
ALLOW_B = ALLOW_A.replace("s__a", "s__b").replace("id: a", "id: b")
BAD_CEL = ALLOW_A.replace('tools: ["s__a"]', 'tools: ["s__a"], when: "args.x.startsWith("')
BAD_YAML = "policy: [unclosed"


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # like an editor: replace by rename


def test_reload_swaps_in_a_valid_policy(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    write(file, ALLOW_A)
    holder = PolicyHolder.from_file(file)
    assert holder.engine.decide(DEV, "tool", "s", "a", {}).allowed
    write(file, ALLOW_B)
    assert holder.reload() and holder.generation == 1
    assert not holder.engine.decide(DEV, "tool", "s", "a", {}).allowed
    assert holder.engine.decide(DEV, "tool", "s", "b", {}).allowed


@pytest.mark.parametrize("bad", [BAD_CEL, BAD_YAML, "policy: {mode: sometimes}"])
def test_an_invalid_new_policy_keeps_the_old_one(
    tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "policy.yaml"
    write(file, ALLOW_A)
    holder = PolicyHolder.from_file(file)
    before = holder.engine
    write(file, bad)
    with caplog.at_level(logging.ERROR, logger="bastion.policy"):
        assert not holder.reload()
    assert holder.engine is before and holder.generation == 0
    assert holder.engine.decide(DEV, "tool", "s", "a", {}).allowed
    assert "rejected, keeping the previous policy" in caplog.text


def test_an_invalid_first_policy_refuses_to_start(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    write(file, BAD_CEL)
    with pytest.raises(ConfigError) as info:
        PolicyHolder.from_file(file)
    assert info.value.path == "policy.roles.dev.rules[0].when"


async def test_the_watcher_reloads_on_file_change(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    write(file, ALLOW_A)
    holder = PolicyHolder.from_file(file)
    stop, ready = anyio.Event(), anyio.Event()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: holder.watch(stop=stop, ready=ready))
            await ready.wait()
            write(file, ALLOW_B)
            while holder.generation == 0:
                await anyio.sleep(0.02)
            stop.set()
    assert holder.engine.decide(DEV, "tool", "s", "b", {}).allowed
