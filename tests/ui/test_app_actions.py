"""Failover by keyboard, driven with Pilot against real redis-servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from failover_support import until
from support import HTTP_503, estate_config, feed_round, stored_flag
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import Button, Footer

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.recovery import STEP_EVENTS
from noc.simulator import RedisServer
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.failover_dialog import FailoverDialog
from noc_widgets.force_dialog import ForceDialog
from noc_widgets.status_bar import StatusBar

FLAG_KEY = "noc:failover"


@pytest.fixture
def stores(redis_servers: Callable[..., list[RedisServer]]) -> dict[str, RedisServer]:
    return dict(zip(("ro", "bg", "pa"), redis_servers(3), strict=True))


def make_app(tmp_path: Path, stores: dict[str, RedisServer], *, read_only: bool = False) -> NocApp:
    clock = FakeClock()
    app = NocApp(
        estate_config({rid: s.url for rid, s in stores.items()}),
        clock=clock,
        read_only=read_only,
        start_polling=False,
        state_path=tmp_path,
    )
    feed_round(app.scheduler.engine, clock)
    return app


def events(tmp_path: Path) -> list[str]:
    records = read_jsonl(tmp_path / "audit.jsonl").records
    return [r["event"] for r in records if r["event"] not in STEP_EVENTS]


async def open_dialog(pilot: Pilot[None], app: NocApp, key: str = "f") -> FailoverDialog:
    await app.scheduler.read_flags()
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
    assert isinstance(app.screen, FailoverDialog)
    return app.screen


async def test_cancel_has_focus_and_escape_writes_nothing(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(pilot, app)
        assert dialog.plan.target == "bg"
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ModalScreen))
        await until(pilot, lambda: "cancelled" in events(tmp_path))
    assert all(stored_flag(s) == {} for s in stores.values())
    assert events(tmp_path) == ["planned", "cancelled"]


async def test_wrong_typed_id_cannot_confirm(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(pilot, app)
        await pilot.press("tab", "p", "a", "tab", *"drill", "enter")
        await pilot.pause()
        assert app.screen is dialog
        assert dialog.query_one("#confirm", Button).disabled
        await pilot.click("#confirm")
        assert app.screen is dialog
        await pilot.press("escape")
    assert all(stored_flag(s) == {} for s in stores.values())


async def test_read_only_removes_failover(tmp_path: Path, stores: dict[str, RedisServer]) -> None:
    app = make_app(tmp_path, stores, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f", "b")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ModalScreen)
        assert app.check_action("failover", ()) is False
        footer_keys = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "failover" not in footer_keys and "failback" not in footer_keys
        assert app.query_one(Footer) is not None
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Fail over" not in titles and "Fail back" not in titles
        assert "READ-ONLY" in str(app.query_one(StatusBar).render())
    assert events(tmp_path) == []


async def test_keyboard_failover_with_one_store_dead(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    stores["ro"].stop()
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(pilot, app)
        assert [s.reachable for s in dialog.plan.stores] == [False, True, True]
        await pilot.press("tab", "b", "g", "tab", *"ro lost", "enter")
        await until(pilot, lambda: isinstance(app.screen, ActionResultScreen))
        assert isinstance(app.screen, ActionResultScreen)
        result = app.screen.result
        assert result.success
        assert result.verified == ("bg", "pa")
        await pilot.press("escape")
        await pilot.pause()
        assert app.snapshot().active_region == "bg"
    assert stored_flag(stores["bg"])["active"] == "bg"
    assert stored_flag(stores["pa"])["reason"] == "ro lost"
    assert events(tmp_path) == ["planned", "confirmed", "executed", "verified"]
    verified = read_jsonl(tmp_path / "audit.jsonl").records[-1]
    assert verified["stores"]["ro"] == "unreachable"


async def test_forced_failover_needs_a_second_confirmation(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    for _ in range(3):
        feed_round(app.scheduler.engine, app.clock, {"bg": HTTP_503})  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(pilot, app)
        assert dialog.plan.needs_force
        await pilot.press("tab", "b", "g", "tab", *"bg is all we have", "enter")
        await until(pilot, lambda: isinstance(app.screen, ForceDialog))
        assert app.focused is not None and app.focused.id == "cancel"
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "force"
        await pilot.press(*"FORCE", "enter")
        await until(pilot, lambda: isinstance(app.screen, ActionResultScreen))
    confirmed = next(
        r for r in read_jsonl(tmp_path / "audit.jsonl").records if r["event"] == "confirmed"
    )
    assert confirmed["forced"] is True
    assert confirmed["overridden"] == ["target healthy"]
    assert stored_flag(stores["ro"])["active"] == "bg"


async def test_help_lists_the_keys(tmp_path: Path, stores: dict[str, RedisServer]) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        keys = {key: text for key, text, _ in app.screen.keys}  # type: ignore[attr-defined]
        assert (
            keys["f"] == "Failover"
            and keys["r"] == "Refresh"
            and keys["q"] == "Quit"
            and keys["?"] == "Help"
        )


async def test_ack_and_silence_by_keyboard_are_journaled_and_audited(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    for _ in range(3):
        feed_round(app.scheduler.engine, app.clock, {"pa": HTTP_503})  # type: ignore[arg-type]
    app.scheduler.engine.evaluate_alerts()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one("#alerts")
        pane.focus()
        await pilot.pause()
        assert (app.selected_alert or "").startswith("region_down:pa@")  # an episode
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        await pilot.press(*"rebooting pa-1", "enter")
        await until(pilot, lambda: not isinstance(app.screen, ModalScreen))
        await until(pilot, lambda: "ack" in events(tmp_path))
        alert = app.snapshot().alerts[0]
        assert alert.ack is not None and alert.ack.note == "rebooting pa-1"
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        await pilot.press(*"planned maintenance, ask Ana", "enter")
        await until(pilot, lambda: "silence" in events(tmp_path))
        assert app.snapshot().alerts[0].silenced_by is not None
    journal = [r["event"] for r in read_jsonl(tmp_path / "alerts.jsonl").records]
    assert journal == ["ack", "silence"]
    silence = read_jsonl(tmp_path / "alerts.jsonl").records[-1]["silence"]
    assert silence["matchers"] == {"region": "pa", "rule": "region_down"}
