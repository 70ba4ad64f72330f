"""Histories of the running dashboard, not scripts: a Hypothesis state machine drives
the real app through App.run_test()/Pilot against real HTTP health endpoints on
loopback.

Each step is what an incident is made of: an endpoint's answer changes (up, 503,
slow past the timeout, a garbage body, connection refused, flapping), a polling
round passes, noc is quit and started again on the same state dir, an operator
acks or silences through the dialogs, switches views, or opens a failover or
failback and cancels it at the dialog.

After every step:
- the app is alive and raised nothing (app._exception), and noc logged no error;
- every DataTable and ListView on screen has unique keys;
- the alert pane shows exactly the engine's alerts, in the same order.

The clock is a FakeClock moved by the polling rule, so hours of flapping take
seconds; the probes themselves are real HTTP requests.

Bounded by default (a few examples, about a minute in all); NOC_LONG_HISTORIES=1
loads the long profile (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, ListView

from noc.app import NocApp
from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.model import AlertState
from noc.simulator import EndpointMode, HealthEndpoint
from noc_widgets.ack_dialog import AckDialog
from noc_widgets.alert_pane import AlertPane
from noc_widgets.failover_dialog import FailoverDialog
from noc_widgets.silence_dialog import SilenceDialog

REGIONS = ("ro", "bg")
INTERVAL_SECONDS = 10.0
# Short, so an endpoint that is SLOW costs a third of a second of real time a probe.
TIMEOUT_SECONDS = 0.3
MODES = list(EndpointMode)


class ErrorLog(logging.Handler):
    """Every ERROR or worse that noc logs while the machine runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def estate(urls: dict[str, str]) -> NocConfig:
    return parse_config(
        {
            "estate": {"name": "histories", "topology": "active-passive"},
            "health": {
                "interval_seconds": INTERVAL_SECONDS,
                "failure_threshold": 2,
                "timeout_seconds": TIMEOUT_SECONDS,
            },
            "regions": [
                {"id": rid, "role": "primary" if rid == "ro" else "secondary",
                 "checks": [{"url": urls[rid]}]}
                for rid in REGIONS
            ],
        }
    )  # fmt: skip


async def until(pilot: Pilot[None], condition: Callable[[], bool], steps: int = 250) -> bool:
    for _ in range(steps):
        if condition():
            return True
        await pilot.pause(0.02)
    return condition()


class DashboardHistories(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.state_dir: Path = self._tmp.mktemp("state")
        self.clock = FakeClock()
        self.errors = ErrorLog()
        logging.getLogger("noc").addHandler(self.errors)
        logging.getLogger("noc_widgets").addHandler(self.errors)
        self.endpoints = {
            rid: HealthEndpoint(rid, slow_seconds=TIMEOUT_SECONDS * 3) for rid in REGIONS
        }
        for endpoint in self.endpoints.values():
            self.run(endpoint.start())
        self.config = estate({rid: e.url for rid, e in self.endpoints.items()})
        self.starts = 0
        self._start_app()

    _tmp: Any = None  # set by the test: pytest's tmp_path_factory

    def run(self, coroutine: Any) -> Any:
        """Run something that does not touch the app (the endpoints) on the loop."""
        return self.loop.run_until_complete(coroutine)

    def do(self, step: Callable[[], Awaitable[Any]]) -> Any:
        """Run `step()` inside the app's session: one task holds run_test() open from
        start to quit, because Textual keeps the active app in context variables that
        must be set and reset in the same context."""
        done = self.loop.create_future()
        self.jobs.put_nowait((step, done))
        self.loop.run_until_complete(
            asyncio.wait({done, self.session}, return_when="FIRST_COMPLETED")
        )
        if not done.done():
            self.session.result()  # the session ended: its exception, if any
            raise AssertionError("the app's session ended on its own")
        return done.result()

    async def _session(self, app: NocApp) -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            self.pilot = pilot
            while (job := await self.jobs.get()) is not None:
                step, done = job
                try:
                    done.set_result(await step())
                except Exception as exc:
                    done.set_exception(exc)

    def _start_app(self) -> None:
        self.app = NocApp(
            self.config, clock=self.clock, start_polling=False, state_path=self.state_dir
        )
        self.jobs: asyncio.Queue[Any] = asyncio.Queue()
        self.session = self.loop.create_task(self._session(self.app))
        self.starts += 1
        self.do(lambda: self.pilot.pause())

    def _stop_app(self) -> None:
        self.jobs.put_nowait(None)
        self.loop.run_until_complete(self.session)

    def teardown(self) -> None:
        try:
            self._stop_app()
        finally:
            for endpoint in self.endpoints.values():
                self.run(endpoint.stop())
            logging.getLogger("noc").removeHandler(self.errors)
            logging.getLogger("noc_widgets").removeHandler(self.errors)
            self.loop.close()

    # --- the world --------------------------------------------------------------

    @rule(region=st.sampled_from(REGIONS), mode=st.sampled_from(MODES))
    def endpoint_answers(self, region: str, mode: EndpointMode) -> None:
        self.run(self.endpoints[region].set_mode(mode))

    @rule(region=st.sampled_from(REGIONS), down=st.integers(1, 3), up=st.integers(1, 3))
    def outage(self, region: str, down: int, up: int) -> None:
        """A region goes down for a few rounds and comes back: an incident's unit, and
        repeated, a flap slower than the probes (which EndpointMode.FLAP is not)."""
        self.endpoint_answers(region, EndpointMode.UNAVAILABLE)
        self.polls(down)
        self.endpoint_answers(region, EndpointMode.HEALTHY)
        self.polls(up)

    @rule(rounds=st.integers(1, 3))
    def polls(self, rounds: int) -> None:
        async def go() -> None:
            for _ in range(rounds):
                await self.app.scheduler.collect_once()
                self.clock.advance(INTERVAL_SECONDS)
                await self.app.scheduler.evaluate_alerts()
                self.app.refresh_snapshot()
                await self.pilot.pause()

        self.do(go)

    @rule()
    def restart(self) -> None:
        """Quit and start again on the same state dir (alert journal, audit)."""
        self._stop_app()
        assert self.app._exception is None, self.app._exception
        self._start_app()

    # --- the operator -----------------------------------------------------------

    def _on_main_screen(self) -> bool:
        return len(self.app.screen_stack) == 1

    def _firing(self) -> list[str]:
        return [a.id for a in self.app.snapshot().alerts if a.state is AlertState.FIRING]

    @precondition(lambda self: self._firing())
    @rule(data=st.data(), cancel=st.booleans())
    def ack(self, data: st.DataObject, cancel: bool) -> None:
        alert_id = data.draw(st.sampled_from(self._firing()))

        async def go() -> None:
            pilot, app = self.pilot, self.app
            await self._back_to_main()
            pane = app.query_one(AlertPane)
            shown = [key.value for key in pane.rows]
            if alert_id not in shown:
                return
            pane.focus()
            pane.move_cursor(row=shown.index(alert_id))
            await pilot.pause()
            await pilot.press("a")
            if not await until(pilot, lambda: isinstance(app.screen, AckDialog)):
                return  # no longer firing when the key landed: said, not opened
            await pilot.press("escape") if cancel else await pilot.press(*"on it", "enter")
            await until(pilot, lambda: not isinstance(app.screen, ModalScreen))

        self.do(go)

    @rule(cancel=st.booleans())
    def silence(self, cancel: bool) -> None:
        async def go() -> None:
            pilot, app = self.pilot, self.app
            await self._back_to_main()
            await pilot.press("s")
            assert await until(pilot, lambda: isinstance(app.screen, SilenceDialog))
            await pilot.press("escape") if cancel else await pilot.press(*"drill", "enter")
            await until(pilot, lambda: not isinstance(app.screen, ModalScreen))

        self.do(go)

    @rule(key=st.sampled_from(["v", "u", "d", "n", "l", "question_mark"]))
    def view(self, key: str) -> None:
        async def go() -> None:
            await self._back_to_main()
            await self.pilot.press(key)
            await self.pilot.pause()

        self.do(go)

    @rule(key=st.sampled_from(["f", "b"]))
    def failover_cancelled_at_the_dialog(self, key: str) -> None:
        async def go() -> None:
            pilot, app = self.pilot, self.app
            await self._back_to_main()
            await pilot.press(key)
            if await until(pilot, lambda: isinstance(app.screen, FailoverDialog)):
                await pilot.press("escape")
            await until(pilot, lambda: not app.operator_actions_running())

        self.do(go)

    async def _back_to_main(self) -> None:
        for _ in range(5):
            if self._on_main_screen():
                break
            await self.pilot.press("escape")
            await self.pilot.pause()
        # The overview, not a rotated view, so the alert pane is on screen.
        while self.app.rotation.current != "estate":
            await self.pilot.press("v")
            await self.pilot.pause()

    # --- what must hold after every step ---------------------------------------

    @invariant()
    def nothing_raised(self) -> None:
        assert self.app._exception is None, self.app._exception
        assert self.app.is_running
        assert not self.errors.records, [
            (r.getMessage(), r.exc_info and r.exc_info[1]) for r in self.errors.records
        ]

    @invariant()
    def keys_are_unique(self) -> None:
        for table in self.app.screen.query(DataTable):
            keys = [key.value for key in table.rows]
            assert len(keys) == len(set(keys)), (table, keys)
        for listing in self.app.screen.query(ListView):
            ids = [item.id for item in listing.children if item.id]
            assert len(ids) == len(set(ids)), (listing, ids)

    @invariant()
    def the_alert_pane_says_what_the_engine_says(self) -> None:
        async def repaint() -> None:
            self.app.refresh_snapshot()
            await self.pilot.pause()

        self.do(repaint)
        engine = [a.id for a in self.app.snapshot().alerts] or ["none"]
        pane = self.app.screen_stack[0].query_one(AlertPane)
        assert [key.value for key in pane.rows] == engine


SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much]
LONG = os.environ.get("NOC_LONG_HISTORIES") == "1"


@pytest.mark.timeout(0 if LONG else 300)
def test_dashboard_histories(tmp_path_factory: pytest.TempPathFactory) -> None:
    DashboardHistories._tmp = tmp_path_factory
    machine = DashboardHistories.TestCase
    if LONG:  # the profile conftest loaded
        machine.settings = settings(
            deadline=None, suppress_health_check=SLOW_OK, report_multiple_bugs=False
        )
    else:
        # No shrinking here: a found history is reported as found (the long run
        # shrinks), so the bounded run stays about a minute even when it fails.
        machine.settings = settings(
            max_examples=6,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=SLOW_OK,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            report_multiple_bugs=False,
        )
    # This machine found the DuplicateKey crash of rule+region alert ids (down -> up ->
    # down put one id in the pane twice); episode ids fixed it, and it must stay fixed.
    machine().runTest()
