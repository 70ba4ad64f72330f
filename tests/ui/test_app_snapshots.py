"""Every screen and dialog pinned at 80x24 (SSH) and 200x60 (wall screen).

The clock is frozen and polling is off: the engine is fed the collectors' own
samples, so each picture is byte-identical from run to run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from support import (
    HTTP_503,
    REFUSED,
    TIMEOUT,
    estate_config,
    feed_data,
    feed_dns,
    feed_flags,
    feed_mail,
    feed_round,
    until,
    with_dns,
    with_mail,
    with_replication,
)
from textual.pilot import Pilot
from textual.screen import ModalScreen

from noc.app import NocApp
from noc.clock import FakeClock
from noc.config import NocConfig
from noc.failover import plan_action
from noc.model import (
    ActionKind,
    ActionResult,
    FailoverFlag,
    Fault,
    StoreOutcome,
    StoreResult,
)
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.force_dialog import ForceDialog

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((200, 60), id="200x60")]


class StillFaults:
    """A FaultInjector that only remembers: the fault panel's picture needs no servers."""

    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {"bg": Fault.SLOW}

    def region_ids(self) -> Sequence[str]:
        return ["ro", "bg", "pa"]

    def current_fault(self, region_id: str) -> Fault | None:
        return self.faults.get(region_id)

    async def inject(self, region_id: str, fault: Fault) -> None:
        self.faults[region_id] = fault


def make_app(tmp_path: Path, state: str, config: NocConfig | None = None, **kwargs: Any) -> NocApp:
    clock = FakeClock()
    scenario = {"data": with_replication, "dns": with_dns, "mail": with_mail}.get(
        state, lambda c: c
    )
    config = config or scenario(estate_config())
    app = NocApp(
        config,
        clock=clock,
        start_polling=False,
        state_path=tmp_path,
        config_path="noc.toml",
        **kwargs,
    )
    engine = app.scheduler.engine
    feed_round(engine, clock)
    feed_flags(engine, clock, "ro")
    if state == "ro-down":
        for _ in range(3):
            feed_round(engine, clock, {"ro": REFUSED, "pa/1": TIMEOUT})
        clock.advance(-25)
    elif state == "bg-down":
        for _ in range(3):
            feed_round(engine, clock, {"bg": HTTP_503})
    elif state == "cut-off":
        for _ in range(2):
            feed_round(engine, clock, {r: REFUSED for r in ("ro", "bg", "pa")})
    elif state == "failing":
        feed_round(engine, clock, {"ro/0": TIMEOUT})
        # One second after the failed probe: its retries (every 2 s) are still ahead.
        clock.advance(-29)
    elif state == "data":
        feed_data(engine, clock)
        feed_round(engine, clock)
        feed_flags(engine, clock, "ro")
    elif state == "dns":
        feed_dns(engine, clock)
    elif state == "mail":
        feed_mail(engine, clock)
    elif state == "split":
        feed_round(engine, clock)
        feed_flags(engine, clock, {"ro": "ro", "bg": "bg", "pa": "bg"})
    engine.evaluate_alerts()  # what the scheduler's alert tick does
    return app


def press(
    first: str, *then: str, shows: type[ModalScreen[Any]] = ModalScreen
) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Press a key that opens a dialog, type into it, and wait until the screen on top
    is a `shows`: actions run in workers, and a dialog appears once its audit record is
    on disk."""

    async def run(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.press(first)
        await wait_for_dialogs(pilot, 1)
        await pilot.press(*then)
        await until(pilot, lambda: isinstance(pilot.app.screen, shows), shows.__name__)
        await pilot.pause()

    return run


async def wait_for_dialogs(pilot: Pilot[None], count: int) -> None:
    await until(
        pilot,
        lambda: len(pilot.app.screen_stack) > count and isinstance(pilot.app.screen, ModalScreen),
        f"{count} dialogs open",
    )
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "state", ["normal", "failing", "ro-down", "cut-off", "split", "data", "dns"]
)
def test_main_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int], state: str) -> None:
    assert snap_compare(make_app(tmp_path, state), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_read_only(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tmp_path, "normal", read_only=True), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_failover_confirmation(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tmp_path, "normal"), terminal_size=size, run_before=press("f"))


@pytest.mark.parametrize("size", SIZES)
def test_failover_to_unhealthy_target(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(tmp_path, "bg-down"), terminal_size=size, run_before=press("f"))


@pytest.mark.parametrize("size", SIZES)
def test_force_confirmation(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    keys = ("f", "tab", "b", "g", "tab", *"drill", "enter")
    run_before = press(*keys, shows=ForceDialog)
    assert snap_compare(make_app(tmp_path, "bg-down"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_failback_refused(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tmp_path, "normal"), terminal_size=size, run_before=press("b"))


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        make_app(tmp_path, "normal"), terminal_size=size, run_before=press("question_mark")
    )


@pytest.mark.parametrize("size", SIZES)
def test_fault_panel(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = make_app(tmp_path, "normal", faults=StillFaults())
    assert snap_compare(app, terminal_size=size, run_before=press("x"))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "key", ["l", "u", "d"], ids=["lag-detail", "suppression", "deliverability"]
)
def test_data_detail_screens(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int], key: str
) -> None:
    async def open_detail(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, "data"), terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("size", SIZES)
def test_sync_dialog(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tmp_path, "data"), terminal_size=size, run_before=press("y"))


@pytest.mark.parametrize("size", SIZES)
def test_dns_detail(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def open_detail(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, "dns"), terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("key", ["a", "s"], ids=["ack", "silence"])
def test_alert_dialogs(snap_compare: Any, tmp_path: Path, size: tuple[int, int], key: str) -> None:
    async def open_dialog(pilot: Pilot[None]) -> None:
        await pilot.pause()
        pilot.app.query_one("#alerts").focus()
        await pilot.pause()
        await pilot.press(key)
        await wait_for_dialogs(pilot, 1)

    assert snap_compare(make_app(tmp_path, "ro-down"), terminal_size=size, run_before=open_dialog)


@pytest.mark.parametrize("size", SIZES)
def test_failover_result(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The outcome per store, as after a failover away from a region whose Redis died."""
    app = make_app(tmp_path, "normal")
    plan = plan_action(
        app.snapshot(), app.config, ActionKind.FAILOVER, "bg", {"operator": "op@noc1"}
    )
    flag = FailoverFlag("bg", "ro", "op@noc1", "ro lost", "2026-11-23T03:00:30Z", plan.action_id)
    result = ActionResult(
        plan,
        flag,
        (
            StoreResult("ro", StoreOutcome.UNREACHABLE, "connection refused"),
            StoreResult("bg", StoreOutcome.VERIFIED),
            StoreResult("pa", StoreOutcome.VERIFIED),
        ),
    )

    async def show(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.app.push_screen(ActionResultScreen(result))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=show)
