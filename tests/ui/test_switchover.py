"""A planned switchover: the source must be healthy, and nothing flips until replication
toward the target has drained; cancelling while it waits changes nothing.

The app runs against a real BIND with TSIG and real redis-servers; replication lag is
fed to the engine as the collector's samples, so the test decides when it drains.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from failover_support import (
    DOMAIN,
    MOVED,
    ORIGINAL,
    Estate,
    audit_events,
    make_failover_app,
    until,
)
from named import NamedServer
from support import REFUSED, feed_round
from textual.pilot import Pilot

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.failover import plan_action
from noc.model import ActionKind, LagBasis, LinkState, ReplicationSample
from noc.simulator import RedisServer
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.drain_wait import DrainWait
from noc_widgets.failover_dialog import FailoverDialog


def make_app(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> tuple[NocApp, FakeClock, Estate]:
    link: dict[str, Any] = {"data_class": "subscribers", "source": "ro", "target": "bg",
                            "url": region_stores["bg"].url}  # fmt: skip
    return make_failover_app(tmp_path, dns_primary, region_stores, replication=[link])


def lag(app: NocApp, clock: FakeClock, seconds: float, offset_bytes: int) -> None:
    spec = app.config.replication[0].spec()
    app.scheduler.engine.ingest_replication(
        "subscribers:ro>bg",
        ReplicationSample(spec, clock.monotonic(), clock.utcnow(), LinkState.UP, seconds,
                          LagBasis.HEARTBEAT, offset_lag_bytes=offset_bytes),
    )  # fmt: skip


async def confirm_switchover(pilot: Pilot[None], app: NocApp) -> None:
    app.selected_region = "bg"
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
    await pilot.press("tab", "b", "g", "tab", *"planned move", "enter")
    await until(pilot, lambda: isinstance(app.screen, DrainWait))


@asynccontextmanager
async def waiting_switchover(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> AsyncIterator[tuple[NocApp, FakeClock, Estate, Pilot[None]]]:
    """A switchover confirmed while ro>bg is 4800 bytes behind: it waits."""
    app, clock, estate = make_app(tmp_path, dns_primary, region_stores)
    lag(app, clock, 4.0, 4800)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        await confirm_switchover(pilot, app)
        yield app, clock, estate, pilot


async def test_switchover_waits_for_the_lag_to_drain_then_flips(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    async with waiting_switchover(tmp_path, dns_primary, region_stores) as running:
        app, clock, estate, pilot = running
        wait = app.screen
        assert isinstance(wait, DrainWait)
        await until(pilot, lambda: "4800 bytes behind" in wait.progress)
        assert await estate.records() == ORIGINAL  # nothing flips while it waits
        lag(app, clock, 0.4, 0)
        await until(pilot, lambda: isinstance(app.screen, ActionResultScreen))
        await until(pilot, lambda: "verified" in audit_events(tmp_path))
    assert await estate.records() == MOVED
    assert {estate.flag(r)["active"] for r in region_stores} == {"bg"}
    assert audit_events(tmp_path)[-2:] == ["executed", "verified"]


async def test_cancelling_a_switchover_while_it_waits_changes_nothing(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    async with waiting_switchover(tmp_path, dns_primary, region_stores) as running:
        app, _, estate, pilot = running
        await pilot.press("escape")
        await until(pilot, lambda: not app.operator_actions_running())
        assert not isinstance(app.screen, DrainWait)
    assert await estate.records() == ORIGINAL
    assert all(estate.flag(r) == {} for r in region_stores)
    assert audit_events(tmp_path) == ["planned", "confirmed", "cancelled"]
    assert "cancelled by the operator" in str(read_jsonl(tmp_path / "audit.jsonl").records[-1])


async def test_a_switchover_needs_a_healthy_source(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    app, clock, _ = make_app(tmp_path, dns_primary, region_stores)
    for _ in range(3):
        feed_round(app.scheduler.engine, clock, {"ro": REFUSED})
    plan = plan_action(app.snapshot(), app.config, ActionKind.SWITCHOVER, "bg", {"operator": "t"})
    source = next(c for c in plan.checks if c.name == "source healthy")
    assert not source.ok and not source.forceable
    assert "fail over instead" in source.detail
    assert not plan.allowed


async def test_a_switchover_with_nothing_to_drain_flips_at_once(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_app(tmp_path, dns_primary, region_stores)
    lag(app, clock, 0.2, 0)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        app.selected_region = "bg"
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        await pilot.press("tab", "b", "g", "tab", *"planned move", "enter")
        await until(pilot, lambda: "verified" in audit_events(tmp_path))
        assert isinstance(app.screen, ActionResultScreen)
    assert await estate.records() == MOVED


async def test_a_newer_action_stops_the_last_ones_dns_watch_and_its_post_hook(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    posted = tmp_path / "post.log"
    hook = tmp_path / "post.py"
    hook.write_text(
        "import os\n"
        f"with open({str(posted)!r}, 'a') as out:\n"
        "    out.write(os.environ['NOC_ACTION'] + ' ' + os.environ['NOC_TO'] + '\\n')\n"
    )
    # A resolver that never answers keeps the first action's watch going.
    dns = {"resolvers": [dns_primary.address, "127.0.0.1:9"],
           "records": [{"name": f"smtp.{DOMAIN}", "type": "A"}]}  # fmt: skip
    app, _, _ = make_failover_app(
        tmp_path, dns_primary, region_stores, dns=dns,
        failover={"cooldown_seconds": 0, "hooks": {"post": f"{sys.executable} {hook}"}},
    )  # fmt: skip
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
        await until(pilot, lambda: "verify_stopped" in audit_events(tmp_path))
    assert audit_events(tmp_path).count("executed") == 2
    # Only the newer action's post hook may run: the first one's state is gone.
    assert not posted.exists() or "failover bg" not in posted.read_text()
