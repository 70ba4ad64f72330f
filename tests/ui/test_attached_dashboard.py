"""A dashboard attached to the control plane (a real redis-server) draws the agents'
shared verdicts, each vantage's per region, probes nothing itself, and says so when
the control plane goes away."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from support import HTTP_503, estate_config, feed_round
from textual.pilot import Pilot

from noc.app import NocApp
from noc.clock import FakeClock, SystemClock
from noc.config import NocConfig
from noc.control import ControlKeys, SharedReader, connect, report_of
from noc.engine import Engine
from noc.lease import LeaderLease
from noc.model import ProbeError
from noc.simulator import RedisServer
from noc_widgets.banner import Banner
from noc_widgets.health_table import HealthTable
from noc_widgets.region_list import RegionList
from noc_widgets.status_bar import StatusBar

# Long enough that the reports stay fresh for the whole test.
REPORT_SECONDS = 600.0
# Pilot pauses to wait for the screen to follow the control plane before giving up.
MAX_PAUSES = 200


def _config(port: int) -> NocConfig:
    return estate_config(
        {},
        health={"interval_seconds": 30, "failure_threshold": 2, "quorum": 2},
        control={
            "redis_url": f"redis://127.0.0.1:{port}/0",
            "report_interval_seconds": REPORT_SECONDS,
            "timeout_seconds": 0.5,
        },
    )


def _publish(
    server: RedisServer,
    config: NocConfig,
    name: str,
    errors: dict[str, Any],
    seen: datetime | None = None,
) -> None:
    """What `noc agent --vantage name` publishes after two rounds that saw `errors`
    (at `seen`, or now)."""
    clock = FakeClock(datetime.now(UTC))
    engine = Engine(config, clock)
    for _ in range(2):
        feed_round(engine, clock, errors)
    assert config.control is not None
    body = report_of(name, engine.snapshot(), REPORT_SECONDS, seen or datetime.now(UTC))
    client = redis.Redis(port=server.port)
    try:
        client.hset(ControlKeys.of(config, config.control).vantages, name, json.dumps(body))
    finally:
        client.close()


async def _until(pilot: Pilot[Any], shown: Callable[[], bool]) -> None:
    for _ in range(MAX_PAUSES):
        if shown():
            return
        await pilot.pause(0.05)
    raise AssertionError("the screen never showed it")


async def test_an_attached_dashboard_draws_every_vantages_verdict(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = _config(redis_server.port)
    errors: dict[str, ProbeError] = {"ro": HTTP_503}
    _publish(redis_server, config, "a", errors)
    _publish(redis_server, config, "b", {})
    _publish(redis_server, config, "c", {})
    # A fourth vantage that stopped reporting long ago: stale, it does not vote.
    _publish(redis_server, config, "d", errors, datetime.now(UTC) - timedelta(hours=1))
    assert config.control is not None
    reader = SharedReader(config, config.control, SystemClock())
    app = NocApp(config, read_only=True, state_path=tmp_path, shared=reader)
    async with app.run_test(size=(160, 40)) as pilot:
        region_list = app.query_one(RegionList)
        await _until(pilot, lambda: "SPLIT" in str(region_list.render()))
        lines = str(region_list.render()).splitlines()
        ro = next(line for line in lines if line.lstrip(" ★").startswith("ro"))
        assert "✓ healthy" in ro
        assert "SPLIT a✗ b✓ c✓" in ro
        bg = next(line for line in lines if line.lstrip(" ★").startswith("bg"))
        assert "a✓ b✓ c✓" in bg
        banner = app.query_one(Banner)
        # An hour and the seconds the test took.
        assert "◌ vantages not voting: d stale (no report for 36" in str(banner.render())
        table = app.query_one(HealthTable)
        assert str(table.get_row_at(0)[2]) == "✓ healthy"
        # Attached, it probes nothing itself: no poll loop was started.
        assert not app.scheduler._tasks

        # Every vantage sees ro down now: down by quorum, on the same screen.
        _publish(redis_server, config, "b", errors)
        await _until(pilot, lambda: "✗ down" in str(region_list.render()))
        assert "a✗ b✗ c✓" in str(region_list.render())

        redis_server.stop()
        await _until(pilot, lambda: any("control plane unreachable" in f for f in banner.faults))
        # The last picture stays on the screen.
        assert "✗ down" in str(region_list.render())


async def test_an_attached_dashboard_says_which_agent_leads(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = _config(redis_server.port)
    _publish(redis_server, config, "a", {})
    _publish(redis_server, config, "b", {})
    assert config.control is not None
    keys = ControlKeys.of(config, config.control)
    reader = SharedReader(config, config.control, SystemClock())
    app = NocApp(config, read_only=True, state_path=tmp_path, shared=reader)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            bar = app.query_one(StatusBar)
            await _until(pilot, lambda: "♛ no leader" in str(bar.render()))
            # Agent b takes the lease as `noc agent` does (noc.lease).
            agent_client = connect(config.control)
            try:
                lease = LeaderLease(agent_client, keys.leader, keys.token)
                acquired, _, _ = await lease.try_acquire("b", datetime.now(UTC), 60)
            finally:
                await agent_client.aclose()
            assert acquired
            await _until(pilot, lambda: "♛ leader b" in str(bar.render()))
            client.delete(keys.leader)
            await _until(pilot, lambda: "♛ no leader" in str(bar.render()))
    finally:
        client.close()
