"""A planned switchover: the source must be healthy, and nothing flips until replication
toward the target has drained; cancelling while it waits changes nothing.

The app runs against a real BIND with TSIG and real redis-servers; replication lag is
fed to the engine as the collector's samples, so the test decides when it drains.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from named import NamedServer, Zone, named_servers  # noqa: F401
from support import REFUSED, feed_round
from test_failover_actuators import DOMAIN, KEY, MOVED, ORIGINAL, ZONE_TEXT, Estate, failover_config
from textual.pilot import Pilot

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.failover import plan_action
from noc.model import ActionKind, LagBasis, LinkState, ReplicationSample
from noc.simulator import RedisServer
from widgets.action_result import ActionResultScreen
from widgets.drain_wait import DrainWait
from widgets.failover_dialog import FailoverDialog


@pytest.fixture
def named(named_servers: Callable[..., NamedServer]) -> NamedServer:  # noqa: F811
    return named_servers([Zone(DOMAIN, ZONE_TEXT, allow_update=True)], tsig=KEY)


@pytest.fixture
def stores(redis_servers: Callable[..., list[RedisServer]]) -> dict[str, RedisServer]:
    return dict(zip(("ro", "bg", "pa"), redis_servers(3), strict=True))


def make_app(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer]
) -> tuple[NocApp, FakeClock, Estate]:
    link: dict[str, Any] = {"data_class": "subscribers", "source": "ro", "target": "bg",
                            "url": stores["bg"].url}  # fmt: skip
    config = failover_config(named, stores, replication=[link])
    clock = FakeClock()
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    feed_round(app.scheduler.engine, clock)
    return app, clock, Estate(config, app.scheduler, clock, app.audit, named, stores)


def lag(app: NocApp, clock: FakeClock, seconds: float, offset_bytes: int) -> None:
    spec = app.config.replication[0].spec()
    app.scheduler.engine.ingest_replication(
        "subscribers:ro>bg",
        ReplicationSample(spec, clock.monotonic(), clock.utcnow(), LinkState.UP, seconds,
                          LagBasis.HEARTBEAT, offset_lag_bytes=offset_bytes),
    )  # fmt: skip


async def until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


async def confirm_switchover(pilot: Pilot[None], app: NocApp) -> None:
    app.selected_region = "bg"
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
    await pilot.press("tab", "b", "g", "tab", *"planned move", "enter")
    await until(pilot, lambda: isinstance(app.screen, DrainWait))


def events(tmp_path: Path) -> list[str]:
    return [r["event"] for r in read_jsonl(tmp_path / "audit.jsonl").records]


async def test_switchover_waits_for_the_lag_to_drain_then_flips(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_app(tmp_path, named, stores)
    lag(app, clock, 4.0, 4800)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        await confirm_switchover(pilot, app)
        wait = app.screen
        assert isinstance(wait, DrainWait)
        await until(pilot, lambda: "4800 bytes behind" in wait.progress)
        assert await estate.records() == ORIGINAL  # nothing flips while it waits
        lag(app, clock, 0.4, 0)
        await until(pilot, lambda: isinstance(app.screen, ActionResultScreen))
        await until(pilot, lambda: "verified" in events(tmp_path))
    assert await estate.records() == MOVED
    assert {estate.flag(r)["active"] for r in stores} == {"bg"}
    assert events(tmp_path)[-2:] == ["executed", "verified"]


async def test_cancelling_a_switchover_while_it_waits_changes_nothing(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_app(tmp_path, named, stores)
    lag(app, clock, 4.0, 4800)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        await confirm_switchover(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: not app.operator_actions_running())
        assert not isinstance(app.screen, DrainWait)
    assert await estate.records() == ORIGINAL
    assert all(estate.flag(r) == {} for r in stores)
    assert events(tmp_path) == ["planned", "confirmed", "cancelled"]
    assert "cancelled by the operator" in str(read_jsonl(tmp_path / "audit.jsonl").records[-1])


async def test_a_switchover_needs_a_healthy_source(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer]
) -> None:
    app, clock, _ = make_app(tmp_path, named, stores)
    for _ in range(3):
        feed_round(app.scheduler.engine, clock, {"ro": REFUSED})
    plan = plan_action(app.snapshot(), app.config, ActionKind.SWITCHOVER, "bg", {"operator": "t"})
    source = next(c for c in plan.checks if c.name == "source healthy")
    assert not source.ok and not source.forceable
    assert "fail over instead" in source.detail
    assert not plan.allowed


async def test_a_switchover_with_nothing_to_drain_flips_at_once(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_app(tmp_path, named, stores)
    lag(app, clock, 0.2, 0)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        app.selected_region = "bg"
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        await pilot.press("tab", "b", "g", "tab", *"planned move", "enter")
        await until(pilot, lambda: "verified" in events(tmp_path))
        assert isinstance(app.screen, ActionResultScreen)
    assert await estate.records() == MOVED


async def test_a_newer_action_stops_the_last_ones_dns_watch_and_its_post_hook(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer]
) -> None:
    posted = tmp_path / "post.log"
    hook = tmp_path / "post.py"
    hook.write_text(
        "import os\n"
        f"with open({str(posted)!r}, 'a') as out:\n"
        "    out.write(os.environ['NOC_ACTION'] + ' ' + os.environ['NOC_TO'] + '\\n')\n"
    )
    # A resolver that never answers keeps the first action's watch going.
    dns = {"resolvers": [named.address, "127.0.0.1:9"],
           "records": [{"name": f"smtp.{DOMAIN}", "type": "A"}]}  # fmt: skip
    config = failover_config(
        named, stores, dns=dns,
        failover={"cooldown_seconds": 0, "hooks": {"post": f"{sys.executable} {hook}"}},
    )  # fmt: skip
    clock = FakeClock()
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    feed_round(app.scheduler.engine, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        app.selected_region = "bg"
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        await pilot.press("tab", "b", "g", "tab", *"drill", "enter")
        await until(pilot, lambda: isinstance(app.screen, ActionResultScreen))
        await pilot.press("escape")
        await app.scheduler.read_flags()
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        await pilot.press("tab", "r", "o", "tab", *"back", "enter")
        await until(pilot, lambda: "verify_stopped" in events(tmp_path))
    assert events(tmp_path).count("executed") == 2
    # Only the newer action's post hook may run: the first one's state is gone.
    assert not posted.exists() or "failover bg" not in posted.read_text()
