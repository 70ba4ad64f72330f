"""Dialogs are live and leave the dashboard as they found it (issue 17, item 4).

Driven with Pilot against real redis-servers: the footer is whole again as soon as
a dialog closes; keys typed ahead in one burst (or pasted) land in the fields they
name; the failover dialog's rules re-evaluate while it is open, and what is
confirmed is the plan on screen, decided again on fresh facts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from failover_support import until
from support import HTTP_503, burst, estate_config, feed_round, stored_flag
from textual import events
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.widgets._footer import FooterKey

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.model import ActionPlan, AlertState, FailoverFlag
from noc.simulator import RedisServer
from noc_widgets.ack_dialog import AckDialog
from noc_widgets.failover_dialog import FailoverDialog
from noc_widgets.force_dialog import ForceDialog
from noc_widgets.region_board import RegionBoard
from noc_widgets.silence_dialog import SilenceDialog

# What the footer must offer on the main screen whenever no dialog is open.
FOOTER_ACTIONS = {"f": "Failover", "b": "Failback", "a": "Ack", "s": "Silence"}


@pytest.fixture
def stores(redis_servers: Callable[..., list[RedisServer]]) -> dict[str, RedisServer]:
    return dict(zip(("ro", "bg", "pa"), redis_servers(3), strict=True))


def make_app(tmp_path: Path, stores: dict[str, RedisServer]) -> NocApp:
    clock = FakeClock()
    app = NocApp(
        estate_config({rid: s.url for rid, s in stores.items()}),
        clock=clock,
        start_polling=False,
        state_path=tmp_path,
    )
    # pa's checks fail for a few rounds: an alert fires, so `a` has something to ack.
    for _ in range(4):
        feed_round(app.scheduler.engine, clock, {"pa": HTTP_503})
        app.scheduler.engine.evaluate_alerts()
    return app


def footer_keys(app: NocApp) -> dict[str, str]:
    """The footer's keys as drawn now: key -> its words, live (not dimmed) ones only."""
    return {
        key.key: key.description
        for key in app.screen_stack[0].query(FooterKey)
        if not key.has_class("-disabled")
    }


async def settle(pilot: Pilot[None]) -> None:
    """Let queued messages run: no clock moves, no poll happens meanwhile."""
    for _ in range(5):
        await pilot.pause()


@pytest.mark.parametrize(
    ("key", "dialog"),
    [("f", FailoverDialog), ("b", FailoverDialog), ("a", AckDialog), ("s", SilenceDialog)],
)
async def test_the_footer_is_whole_as_soon_as_a_dialog_is_cancelled(
    tmp_path: Path, stores: dict[str, RedisServer], key: str, dialog: type[ModalScreen[object]]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.scheduler.read_flags()
        app.refresh_snapshot()
        firing = [a for a in app.snapshot().alerts if a.state is AlertState.FIRING]
        app.selected_alert = firing[0].id
        await settle(pilot)
        assert FOOTER_ACTIONS.items() <= footer_keys(app).items()
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, dialog))
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        # The cancelled action's audit record is written off the loop; then the footer
        # comes back whole with no key, focus change or poll to prompt it.
        await until(pilot, lambda: not app.operator_actions_running())
        await settle(pilot)
        assert FOOTER_ACTIONS.items() <= footer_keys(app).items()


async def test_keys_typed_ahead_in_one_burst_land_where_they_say(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.scheduler.read_flags()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        dialog = app.screen
        burst(app, ["tab", "b", "g", "tab", *"reason"])
        await settle(pilot)
        assert dialog.query_one("#typed", Input).value == "bg"
        assert dialog.query_one("#reason", Input).value == "reason"
        await pilot.press("escape")


async def test_keys_typed_before_the_dialog_is_up_are_its_own(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    """`f Tab bg Tab reason Enter` in one burst: the plan is still being read from
    the stores when the rest arrives; the keys wait for the dialog, and the failover
    runs with the id and reason typed, end to end."""
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.scheduler.read_flags()
        burst(app, ["f", "tab", "b", "g", "tab", *"typed ahead", "enter"])
        await until(pilot, lambda: app.operator_actions_running() > 0)
        await until(pilot, lambda: not app.operator_actions_running())
        # Nothing reached the dashboard meanwhile: no other view, region or dialog.
        assert app.selected_region is None or app.selected_region == "ro"
    records = read_jsonl(tmp_path / "audit.jsonl").records
    confirmed = [r for r in records if r["event"] == "confirmed"]
    assert len(confirmed) == 1 and confirmed[0]["reason"] == "typed ahead"
    assert {stored_flag(s)["active"] for s in stores.values()} == {"bg"}


async def test_keys_pressed_without_pauses_reach_the_dialog(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    """The same through Pilot's own presses, one call, no pause between keys."""
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.scheduler.read_flags()
        await pilot.press("f", "tab", "b", "g", "tab", *"pressed", "enter")
        await until(pilot, lambda: not app.operator_actions_running())
    confirmed = [r for r in read_jsonl(tmp_path / "audit.jsonl").records
                 if r["event"] == "confirmed"]  # fmt: skip
    assert [r["reason"] for r in confirmed] == ["pressed"]


async def test_keys_typed_for_a_dialog_that_never_opens_start_nothing(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    """Planning fails (every store gone): the keys typed for the dialog are
    dropped, not replayed on the dashboard (`b` would start a failback)."""
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.scheduler.read_flags()
        planning = app.operations.plan
        app.operations.plan = failing_plan  # type: ignore[method-assign]
        burst(app, ["f", "b", "v"])
        await until(pilot, lambda: any("cannot be read" in n.message for n in app._notifications))
        await settle(pilot)
        assert len(app.screen_stack) == 1 and not app._keys_ahead.holding
        assert not app.operator_actions_running()
        assert not app.query_one(RegionBoard).display  # `v` did not turn the view
        # The dashboard takes keys again at once.
        app.operations.plan = planning  # type: ignore[method-assign]
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        await pilot.press("escape")


async def failing_plan(*args: Any, **kwargs: Any) -> ActionPlan:
    raise ConnectionError("the stores cannot be read")


async def test_a_paste_with_tabs_fills_the_fields_in_turn(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.scheduler.read_flags()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        dialog = app.screen
        assert app._driver is not None
        # Pasted while Cancel has the focus, as the dialog opens.
        app._driver.send_message(events.Paste("\tbg\tpasted reason"))
        await settle(pilot)
        assert dialog.query_one("#typed", Input).value == "bg"
        assert dialog.query_one("#reason", Input).value == "pasted reason"
        await pilot.press("escape")


async def test_a_cooldown_running_out_while_the_dialog_is_open_stops_refusing(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    clock = app.clock
    assert isinstance(clock, FakeClock)
    cooldown = app.config.failover.cooldown_seconds
    written = clock.utcnow() - timedelta(seconds=cooldown - 2)
    flag = FailoverFlag("ro", "bg", "op@test", "drill", written.isoformat(), "a1b2c3")
    for store in app.scheduler.stores.values():
        assert await store.write(flag) is None
    async with app.run_test(size=(80, 24)) as pilot:
        await app.scheduler.read_flags()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog)
        assert dialog.plan.needs_force
        assert "Refused unless you break glass" in verdict_text(dialog)
        assert str(dialog.query_one("#confirm", Button).label) == "Break glass…"
        # Three seconds later, on the app's next snapshot (the clock tick draws one).
        clock.advance(3)
        app.refresh_snapshot()
        await settle(pilot)
        assert dialog.plan.allowed
        assert "Refused" not in verdict_text(dialog)
        assert str(dialog.query_one("#confirm", Button).label) == "Failover"
        await pilot.press("tab", "b", "g", "tab", *"cooldown passed", "enter")
        # No break-glass step: the plan on screen passes, and it is the one acted on.
        await until(pilot, lambda: not app.operator_actions_running())
        assert not any(isinstance(s, ForceDialog) for s in app.screen_stack)
    records = read_jsonl(tmp_path / "audit.jsonl").records
    confirmed = [r for r in records if r["event"] == "confirmed"]
    assert len(confirmed) == 1 and confirmed[0]["forced"] is False
    assert confirmed[0]["overridden"] == []
    assert {stored_flag(s)["active"] for s in stores.values()} == {"bg"}


def verdict_text(dialog: FailoverDialog) -> str:
    return str(dialog.query_one("#verdict", Static).render())


async def open_break_glass(app: NocApp, pilot: Pilot[None], stores: dict[str, RedisServer]) -> None:
    """A failover to bg 2 s before the cooldown of the last one ends, at the
    break-glass step."""
    clock = app.clock
    assert isinstance(clock, FakeClock)
    written = clock.utcnow() - timedelta(seconds=app.config.failover.cooldown_seconds - 2)
    flag = FailoverFlag("ro", "bg", "op@test", "drill", written.isoformat(), "a1b2c3")
    for store in app.scheduler.stores.values():
        assert await store.write(flag) is None
    await app.scheduler.read_flags()
    await pilot.press("f")
    await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
    await pilot.press("tab", "b", "g", "tab", *"past the cooldown", "enter")
    await until(pilot, lambda: isinstance(app.screen, ForceDialog))


async def test_the_break_glass_step_is_live_a_cooldown_running_out_needs_no_override(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_break_glass(app, pilot, stores)
        breaking = app.screen
        assert isinstance(breaking, ForceDialog)
        assert "This bypasses 1 safety rule" in str(
            breaking.query_one("#bypasses", Static).render()
        )
        assert breaking.query_one("#confirm", Button).disabled
        assert isinstance(app.clock, FakeClock)
        app.clock.advance(3)
        app.refresh_snapshot()
        await settle(pilot)
        said = str(breaking.query_one("#bypasses", Static).render())
        assert "Every rule passes now" in said
        assert not breaking.query_one("#force", Input).display
        confirm = breaking.query_one("#confirm", Button)
        assert str(confirm.label) == "Failover" and not confirm.disabled
        await pilot.press("tab", "enter")  # Cancel → Failover: no FORCE to type
        await until(pilot, lambda: not app.operator_actions_running())
    confirmed = [r for r in read_jsonl(tmp_path / "audit.jsonl").records
                 if r["event"] == "confirmed"]  # fmt: skip
    assert len(confirmed) == 1
    assert confirmed[0]["forced"] is False and confirmed[0]["overridden"] == []
    assert {stored_flag(s)["active"] for s in stores.values()} == {"bg"}


async def test_the_break_glass_step_refuses_once_a_rule_no_override_may_bypass_fails(
    tmp_path: Path, stores: dict[str, RedisServer]
) -> None:
    app = make_app(tmp_path, stores)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_break_glass(app, pilot, stores)
        breaking = app.screen
        assert isinstance(breaking, ForceDialog)
        await pilot.press("tab", *"FORCE")  # Cancel → (confirm is off) → the FORCE field
        await settle(pilot)
        assert breaking.query_one("#force", Input).value == "FORCE"
        assert not breaking.query_one("#confirm", Button).disabled
        # The estate's flag stores stop answering with the dialog open: the flag
        # could not be written anywhere, and that no override bypasses.
        for server in stores.values():
            server.stop()
        await app.scheduler.read_flags()
        app.refresh_snapshot()
        await settle(pilot)
        said = str(breaking.query_one("#bypasses", Static).render())
        assert "Refused now: no override may bypass" in said, said
        assert breaking.query_one("#confirm", Button).disabled
        await pilot.press("escape")
        await until(pilot, lambda: not app.operator_actions_running())
    events = [r["event"] for r in read_jsonl(tmp_path / "audit.jsonl").records]
    assert "confirmed" not in events and "cancelled" in events
