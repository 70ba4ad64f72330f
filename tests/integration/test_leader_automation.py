"""Automated failover run by the leading agent, end to end: a real BIND zone, three
real region stores, a real redis-server as the control plane, two `noc agent`
processes.

The first leader is killed (SIGKILL) before anything happens; the standby takes over;
then ro dies for every vantage and the new leader fails over to bg on the vantages'
shared verdict: the flag moves in every store, DNS moves, its writes carry its token
(every store's fence is at its term), and the dead leader never acted."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis
from failover_support import DOMAIN, KEY, SMTP
from named import NamedServer
from processes import leaves_no_process
from test_leader import Agents, _leader, _until

from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

LEASE_SECONDS = 2.0


def _config(
    path: Path,
    control: RedisServer,
    stores: dict[str, RedisServer],
    urls: dict[str, str],
    named: NamedServer,
) -> Path:
    lines = [
        '[estate]\nname = "mail-test"\ntopology = "active-passive"\n',
        "[health]\ninterval_seconds = 0.3\nfailure_threshold = 2\ntimeout_seconds = 1\n"
        "quorum = 1\n",
        f'[control]\nredis_url = "{control.url}"\nreport_interval_seconds = 0.5\n'
        f"lease_seconds = {LEASE_SECONDS}\n",
        f'[dns]\nresolvers = ["{named.address}"]\n'
        f'records = [{{name = "{SMTP}", type = "A"}}, {{name = "{DOMAIN}", type = "MX"}}]\n',
        "[failover]\nauto = true\nauto_after_seconds = 1\nstore_timeout_seconds = 1\n"
        f'[failover.dns]\nserver = "{named.address}"\nzone = "{DOMAIN}"\n'
        f'key_name = "{KEY.name}"\nkey_secret = "{KEY.secret}"\n',
    ]
    roles = {"ro": "primary", "bg": "secondary", "pa": "secondary"}
    for octet, (rid, role) in zip((10, 20, 30), roles.items(), strict=True):
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nredis_url = "{stores[rid].url}"\n'
            f'service_ips = ["192.0.2.{octet}"]\nmx_host = "mx.{rid}.{DOMAIN}."\n'
            f'[[regions.checks]]\nurl = "{urls[rid]}"\nbody_contains = "healthy"\n'
        )
    path.write_text("\n".join(lines))
    return path


@pytest.mark.slow
async def test_the_new_leader_fails_over_on_the_shared_verdict_with_its_token(
    tmp_path: Path,
    redis_server: RedisServer,
    region_stores: dict[str, RedisServer],
    dns_primary: NamedServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    endpoints = {rid: await health_endpoint(rid) for rid in ("ro", "bg", "pa")}
    config = _config(
        tmp_path / "noc.toml", redis_server, region_stores,
        {rid: e.url for rid, e in endpoints.items()}, dns_primary,
    )  # fmt: skip
    agents = Agents(tmp_path, config, "")
    control = redis.Redis(port=redis_server.port, decode_responses=True)
    stores = {
        rid: redis.Redis(port=s.port, decode_responses=True) for rid, s in region_stores.items()
    }
    with leaves_no_process():
        try:
            await agents.start("a")
            first = await _until("a leads", lambda: _leader(control))
            await agents.start("b")
            agents.processes["a"].kill()
            await agents.processes["a"].wait()
            second = await _until(
                "b leads", lambda: (h := _leader(control)) and h.vantage == "b" and h
            )
            assert second.token == first.token + 1

            await endpoints["ro"].set_mode(EndpointMode.UNAVAILABLE)
            await _until(
                "the flag names bg in every store",
                lambda: all(s.hget("noc:failover", "active") == "bg" for s in stores.values()),
            )
            assert all(s.get("noc:failover:fence") == str(second.token) for s in stores.values())
            flag = stores["ro"].hgetall("noc:failover")
            assert flag["operator"].startswith("noc-auto@"), flag
            said_b = await _until(
                "b says it acted",
                lambda: "AUTOMATED FAILOVER ro → bg" in (t := agents.said("b")) and t,
            )
            assert f"(term {second.token})" in said_b
            assert "AUTOMATED FAILOVER" not in agents.said("a")
            state = json.loads(control.get("noc:mail-test:automation") or "{}")
            assert state["fired"] and "ro → bg" in state["fired"], state
        finally:
            await agents.stop_all()
            control.close()
            for client in stores.values():
                client.close()
