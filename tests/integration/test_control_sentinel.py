"""The control plane behind Redis Sentinel: a real primary, a real replica and a real
`redis-server --sentinel`; one `noc agent` and a screen's reader, both through the
Sentinel client (`[control] sentinels`, `service_name`).

The primary is killed (SIGKILL). Until Sentinel has promoted the replica, the reader
cannot read (a screen says "control plane unreachable": the lost seconds are a gap,
and nothing fills them in); then the agent's reports reach the new primary on their
own, and the reader sees them fresh, with the leader, without a restart of either."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from processes import leaves_no_process
from replication_fixtures import wait_for_link
from sentinel import SERVICE, SentinelProcess

from noc.clock import SystemClock
from noc.config import load_config
from noc.control import SharedReader
from noc.simulator import HealthEndpoint, RedisServer

SETTLE_SECONDS = 60.0


def _config(path: Path, sentinel: SentinelProcess, url: str) -> Path:
    path.write_text(
        '[estate]\nname = "mail-test"\ntopology = "active-passive"\n'
        "[health]\ninterval_seconds = 0.3\nfailure_threshold = 2\ntimeout_seconds = 1\n"
        f'[control]\nsentinels = ["{sentinel.address}"]\nservice_name = "{SERVICE}"\n'
        "report_interval_seconds = 0.5\nlease_seconds = 2\ntimeout_seconds = 0.5\n"
        f'[[regions]]\nid = "ro"\nrole = "primary"\n'
        f'[[regions.checks]]\nurl = "{url}"\nbody_contains = "healthy"\n'
    )
    return path


def _last_seen(server: RedisServer) -> datetime | None:
    client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=1)
    try:
        text = client.hget("noc:mail-test:vantages", "a")
    except redis.ConnectionError:
        return None
    finally:
        client.close()
    return datetime.fromisoformat(json.loads(str(text))["last_seen"]) if text else None


async def _until(what: str, ready: Callable[[], Any]) -> Any:
    for _ in range(int(SETTLE_SECONDS / 0.05)):
        if value := ready():
            return value
        await asyncio.sleep(0.05)
    pytest.fail(f"never: {what}")


@pytest.mark.slow
async def test_sentinel_promotes_and_agents_and_screens_carry_on(
    tmp_path: Path, health_endpoint: Callable[..., Any]
) -> None:
    endpoint: HealthEndpoint = await health_endpoint("ro")
    primary = RedisServer()
    primary.start()
    replica = RedisServer(["--replicaof", "127.0.0.1", str(primary.port)])
    replica.start()
    sentinel = SentinelProcess(primary.port)
    try:
        wait_for_link(replica, "up")
        sentinel.start()
        path = _config(tmp_path / "noc.toml", sentinel, endpoint.url)
        config = load_config(path).config
        assert config.control is not None
        reader = SharedReader(config, config.control, SystemClock())
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
        env["XDG_STATE_HOME"] = str(tmp_path / "state")
        with leaves_no_process():
            with (tmp_path / "a.log").open("wb") as log:
                agent = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "noc", "agent", "--config", str(path),
                    "--vantage", "a", stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
                )  # fmt: skip
            try:
                shown = None
                async with asyncio.timeout(SETTLE_SECONDS):
                    while shown is None or shown.leader is None:
                        shown = await reader.read()
                        await asyncio.sleep(0.1)
                assert shown.leader is not None and shown.leader.vantage == "a"
                await _until("the replica has a's report", lambda: _last_seen(replica))

                before = _last_seen(primary)
                assert before is not None
                primary.kill()
                killed = time.monotonic()
                # Unreadable until the promotion: the gap a screen shows.
                failures = 0
                promoted_at = None
                async with asyncio.timeout(SETTLE_SECONDS):
                    while True:
                        try:
                            after = await reader.read()
                        except (redis.RedisError, OSError):
                            failures += 1
                            await asyncio.sleep(0.1)
                            continue
                        promoted_at = promoted_at or time.monotonic()
                        if (
                            after is not None
                            and after.vantages[0].last_seen > before
                            and after.leader is not None
                        ):
                            break
                        await asyncio.sleep(0.1)
                assert sentinel.primary() == ("127.0.0.1", replica.port)
                assert failures > 0
                # The leader could not renew through the gap: it stepped down and led
                # again once the new primary answered, with a newer token (the counter
                # had reached the replica).
                assert after.leader is not None and after.leader.vantage == "a"
                assert after.leader.term > shown.leader.term
                gap = (after.vantages[0].last_seen - before).total_seconds()
                print(
                    f"control plane gap: {gap:.2f} s between reports "
                    f"(report interval 0.5 s, Sentinel down-after 1 s); reader back "
                    f"{time.monotonic() - killed:.2f} s after SIGKILL, {failures} reads failed"
                )
            finally:
                agent.terminate()
                assert await agent.wait() == 0
                await reader.aclose()
    finally:
        sentinel.stop()
        replica.stop()
        primary.stop()
