"""Automated failover (STOP pattern): fires once, never fails back, has a pause switch.

The app runs against a real BIND with TSIG and real redis-servers; the engine is
fed health samples on a fake clock, so "down for 90 s" takes no real time.
"""

from __future__ import annotations

from pathlib import Path

from failover_support import MOVED, make_failover_app, until
from named import NamedServer
from support import REFUSED, feed_round
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets._toast import Toast

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.auto import AutoFailover
from noc.clock import FakeClock, iso_utc
from noc.model import AutoMode, FailoverFlag, Interface, Severity
from noc.next_steps import builtin_step
from noc.simulator import RedisServer
from noc_widgets.ack_dialog import AckDialog
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.banner import Banner
from noc_widgets.region_board import RegionBoard

AUTO = {"auto": True, "auto_after_seconds": 90, "cooldown_seconds": 600}


def audit_records(tmp_path: Path) -> list[dict[str, object]]:
    return read_jsonl(tmp_path / "audit.jsonl").records


async def test_fires_once_after_the_active_region_is_down_long_enough_and_never_fails_back(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_failover_app(tmp_path, dns_primary, region_stores, failover=AUTO)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        app._auto_tick()
        assert app.snapshot().automation is not None
        assert app.snapshot().automation.mode is AutoMode.ARMED  # type: ignore[union-attr]
        for _ in range(3):  # ro is declared down
            feed_round(app.scheduler.engine, clock, {"ro": REFUSED})
        app._auto_tick()
        status = app.snapshot().automation
        assert status is not None and status.mode is AutoMode.COUNTING
        assert status.detail == "ro down 0/90 s"
        clock.advance(60)
        app._auto_tick()
        assert not app.operator_actions_running()  # not yet: 60 of 90 s
        clock.advance(31)
        app._auto_tick()
        await until(pilot, lambda: not app.operator_actions_running())
        # Its result is in the banner, not a dialog over the dashboard.
        assert len(app.screen_stack) == 1
        assert {estate.flag(r)["active"] for r in region_stores} == {"bg"}
        assert await estate.records() == MOVED
        confirmed = next(r for r in audit_records(tmp_path) if r["event"] == "confirmed")
        assert confirmed["confirmation"] == "automatic"
        assert str(confirmed["operator"]).startswith("noc-auto@")
        assert "ro down for 91 s" in str(confirmed["reason"])
        status = app.snapshot().automation
        assert status is not None and status.mode is AutoMode.FIRED
        assert "AUTOMATED FAILOVER FIRED" in str(app.query_one(Banner).render())
        # It pages like any critical alert, through the configured channels.
        app._auto_tick()
        paged = [n for n in app.scheduler.engine.evaluate_alerts() if n.event == "firing"]
        fired = next(n.alert for n in paged if n.alert.rule == "automated_failover")
        assert fired.severity is Severity.CRITICAL and "ro → bg" in fired.summary

        # ro comes back and bg dies: automation has fired, and never fails back.
        await app.scheduler.read_flags()
        for _ in range(3):
            feed_round(app.scheduler.engine, clock, {"bg": REFUSED})
        for _ in range(5):
            clock.advance(60)
            app._auto_tick()
            await pilot.pause(0.05)
        assert not app.operator_actions_running()
    executed = [r for r in audit_records(tmp_path) if r["event"] == "executed"]
    assert len(executed) == 1
    assert {estate.flag(r)["active"] for r in region_stores} == {"bg"}
    # A restart does not re-arm it: only an operator's resume does.
    again = AutoFailover(estate.config, FakeClock(), tmp_path / "automation.jsonl")
    assert again.fired is not None and again.fired.startswith("ro → bg")


async def fire_automated_failover(app: NocApp, clock: FakeClock, pilot: Pilot[None]) -> None:
    """ro down past auto_after_seconds: the automation fails over to bg by itself."""
    await app.scheduler.read_flags()
    for _ in range(3):
        feed_round(app.scheduler.engine, clock, {"ro": REFUSED})
    app._auto_tick()
    clock.advance(91)
    app._auto_tick()
    await until(pilot, lambda: app.auto.fired is not None)


def overlaps(one: Widget, other: Widget) -> bool:
    return bool(one.region.intersection(other.region).area)


async def test_after_an_automated_failover_the_banner_says_how_it_went_and_keys_keep_working(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    """No dialog over the dashboard: the banner says what happened, whether DNS
    verified it and the RTO; `t` opens the timeline; every key works at once."""
    app, clock, estate = make_failover_app(tmp_path, dns_primary, region_stores, failover=AUTO)
    async with app.run_test(size=(80, 24)) as pilot:
        await fire_automated_failover(app, clock, pilot)
        banner = app.query_one(Banner)
        # While the automation acts and DNS is watched, the dashboard stays in front.
        assert len(app.screen_stack) == 1
        await until(pilot, lambda: "VERIFIED" in str(banner.render()))
        said = str(banner.render())
        # (The fake clock stands still while DNS moves: an RTO of 0.0 s.)
        assert "\n⚡ AUTOMATED FAILOVER FIRED ro → bg at " in f"\n{said}"
        assert "VERIFIED, RTO " in said and "t shows the timeline" in said
        assert "It will not fail back; P, then P again, re-arms it." in said
        # Its alert's detail names the way to the timeline too.
        assert builtin_step(
            "automated_failover", None, Interface.DASHBOARD, app._key_names()
        ).startswith("its result and timeline: t on the dashboard")
        assert len(app.screen_stack) == 1
        assert not [t for t in app.screen.query(Toast) if overlaps(t, banner)]
        # Keys typed right after it reach the dashboard: a view, a region, the timeline.
        await pilot.press("v")
        await until(pilot, lambda: app.query_one(RegionBoard).display)
        await pilot.press("v", "right_square_bracket")
        await until(pilot, lambda: app.selected_region == "bg")
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ActionResultScreen))
        shown = app.screen
        assert isinstance(shown, ActionResultScreen) and shown.result.success
        assert [event for event, _ in shown.result.timeline][-1] == "all_moved"
        await pilot.pause()
        dialog = shown.query_one("#dialog")
        assert not [t for t in shown.query(Toast) if overlaps(t, dialog)]
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        # Re-armed by an operator: the banner stops telling of it; `t` still shows it.
        await pilot.press("P")  # paused, then resumed: armed again
        await until(pilot, lambda: app.auto.paused)
        await pilot.press("P")
        await until(pilot, lambda: not app.auto.fired)
        await until(pilot, lambda: "FIRED" not in str(banner.render()))
        assert app.last_result is not None and app.last_result.result.success
    assert {estate.flag(r)["active"] for r in region_stores} == {"bg"}


async def test_paused_automation_does_nothing_and_the_pause_survives_a_restart(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_failover_app(tmp_path, dns_primary, region_stores, failover=AUTO)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        await pilot.press("P")
        await until(pilot, lambda: app.auto.paused)
        for _ in range(3):
            feed_round(app.scheduler.engine, clock, {"ro": REFUSED})
        app._auto_tick()
        clock.advance(200)
        app._auto_tick()
        await pilot.pause(0.1)
        assert not app.operator_actions_running()
        status = app.snapshot().automation
        assert status is not None and status.mode is AutoMode.PAUSED
    assert all(estate.flag(r) == {} for r in region_stores)
    assert "auto_paused" in [r["event"] for r in audit_records(tmp_path)]
    # A new process reads the switch where the operator left it.
    again = AutoFailover(estate.config, FakeClock(), tmp_path / "automation.jsonl")
    assert again.paused


async def test_a_failing_safety_rule_holds_the_automation_and_says_why(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_failover_app(tmp_path, dns_primary, region_stores, failover=AUTO)
    # A failback to ro a minute ago: failing over again now would be a flap.
    recent = FailoverFlag("ro", "bg", "op@test", "validated", iso_utc(clock.utcnow()), "fb1")
    for store in app.scheduler.stores.values():
        assert await store.write(recent) is None
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        clock.advance(60)
        for _ in range(3):
            feed_round(app.scheduler.engine, clock, {"ro": REFUSED})
        app._auto_tick()
        clock.advance(91)
        app._auto_tick()
        await until(pilot, lambda: app.auto.held is not None)
        await until(pilot, lambda: not app.operator_actions_running())
        status = app.snapshot().automation
        assert status is not None and status.mode is AutoMode.HELD
        assert status.detail.startswith("cooldown: last bg -> ro")
        assert "AUTOMATED FAILOVER HELD BACK: cooldown" in str(app.query_one(Banner).render())
    assert {estate.flag(r)["active"] for r in region_stores} == {"ro"}
    assert [r["event"] for r in audit_records(tmp_path)] == ["auto_held"]


async def test_the_cooldown_is_acked_from_the_dashboard_with_a_note(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    app, clock, estate = make_failover_app(tmp_path, dns_primary, region_stores, failover=AUTO)
    recent = FailoverFlag("bg", "ro", "op@test", "ro lost", iso_utc(clock.utcnow()), "fo1")
    for store in app.scheduler.stores.values():
        assert await store.write(recent) is None
    async with app.run_test(size=(120, 40)) as pilot:
        await app.scheduler.read_flags()
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, AckDialog))
        await pilot.press(*"bg validated", "enter")
        await until(pilot, lambda: "cooldown_ack" in estate.flag("pa"))
    assert all("bg validated" in estate.flag(r)["cooldown_ack"] for r in region_stores)
    ack = next(r for r in audit_records(tmp_path) if r["event"] == "cooldown_ack")
    assert ack["note"] == "bg validated" and ack["action_id"] == "fo1"
