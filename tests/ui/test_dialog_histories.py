"""Histories of the failover and failback dialogs while the world moves under them.

A Hypothesis state machine drives the real app through App.run_test()/Pilot, its
flag stores real redis-servers: an operator opens the failover or failback dialog,
cancels it or confirms it (breaking glass when the rules ask for it), while a
region dies or comes back and the injected clock moves on (a cooldown passing)
with the dialog open or not.

After every step:
- no action ran on a plan that differs from the facts at the moment it was
  confirmed: each `confirmed` audit record has the source, target and failing
  rules that the snapshot on screen at the confirm implied, and overrides every
  rule it did not pass; nothing executed that was not confirmed;
- whenever no dialog is open and no operator action runs, the footer offers
  f Failover, b Failback, a Ack and s Silence;
- the app raised nothing and noc logged no error.

Bounded by default (a few examples, well under a minute); NOC_LONG_HISTORIES=1
loads the long profile (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from support import REFUSED, estate_config, feed_round
from test_app_histories import ErrorLog, until
from test_dialogs_live import FOOTER_ACTIONS, footer_keys
from textual.pilot import Pilot

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock, iso_utc
from noc.model import ActionPlan, FailoverFlag
from noc.simulator import RedisServer
from noc_widgets.failover_dialog import FailoverDialog
from noc_widgets.force_dialog import ForceDialog

REGIONS = ("ro", "bg", "pa")
LONG = os.environ.get("NOC_LONG_HISTORIES") == "1"


class DialogHistories(RuleBasedStateMachine):
    stores: dict[str, RedisServer] = {}  # set by the test: started once for all examples
    _tmp: Any = None  # pytest's tmp_path_factory
    reached: Counter[str] = Counter()  # audit events over every history of the run

    def __init__(self) -> None:
        super().__init__()
        for server in self.stores.values():  # each history starts from empty stores
            client = redis.Redis.from_url(server.url)
            try:
                client.flushall()
            finally:
                client.close()
        self.loop = asyncio.new_event_loop()
        self.state_dir: Path = self._tmp.mktemp("state")
        self.clock = FakeClock()
        self.errors = ErrorLog()
        for name in ("noc", "noc_widgets"):
            logging.getLogger(name).addHandler(self.errors)
        self.app = NocApp(
            estate_config({rid: s.url for rid, s in self.stores.items()}),
            clock=self.clock,
            start_polling=False,
            state_path=self.state_dir,
        )
        self.down: set[str] = set()
        self._feed(rounds=1)
        # action id -> the plan the facts implied when the operator confirmed it.
        self.truth: dict[str, ActionPlan] = {}
        self.forced: set[str] = set()
        self.jobs: asyncio.Queue[Any] = asyncio.Queue()
        self.session = self.loop.create_task(self._session())
        self.do(self._settle)

    # --- the harness (as in test_app_histories) --------------------------------

    def do(self, step: Callable[[], Awaitable[Any]]) -> Any:
        done = self.loop.create_future()
        self.jobs.put_nowait((step, done))
        self.loop.run_until_complete(
            asyncio.wait({done, self.session}, return_when="FIRST_COMPLETED")
        )
        if not done.done():
            self.session.result()
            raise AssertionError("the app's session ended on its own")
        return done.result()

    async def _session(self) -> None:
        async with self.app.run_test(size=(80, 24)) as pilot:
            self.pilot: Pilot[None] = pilot
            await self.app.scheduler.read_flags()
            while (job := await self.jobs.get()) is not None:
                step, done = job
                try:
                    done.set_result(await step())
                except Exception as exc:
                    done.set_exception(exc)

    def teardown(self) -> None:
        try:
            # A dialog left open holds its act's worker: closed, so the worker ends
            # inside the session, not cut off by it.
            self.do(self._close_everything)
            self.jobs.put_nowait(None)
            self.loop.run_until_complete(self.session)
        finally:
            for name in ("noc", "noc_widgets"):
                logging.getLogger(name).removeHandler(self.errors)
            self.loop.close()

    async def _close_everything(self) -> None:
        for _ in range(5):
            if self._idle():
                break
            await self.pilot.press("escape")
            await until(self.pilot, lambda: not self.app.operator_actions_running(), steps=50)
        # What the histories got to (printed at the end, `pytest -s`): a run that
        # never confirms, or never breaks glass, tests less than it seems to.
        path = self.state_dir / "audit.jsonl"
        for record in read_jsonl(path).records if path.exists() else []:
            if record["event"] in ("confirmed", "executed", "refused", "cancelled"):
                forced = " (break glass)" if record.get("forced") else ""
                self.reached[f"{record['event']}{forced}"] += 1

    async def _settle(self) -> None:
        for _ in range(5):
            await self.pilot.pause()

    def _feed(self, rounds: int) -> None:
        """Probe rounds with the regions in `down` refusing (30 s of clock each)."""
        engine = self.app.scheduler.engine
        for _ in range(rounds):
            feed_round(engine, self.clock, dict.fromkeys(self.down, REFUSED))
        engine.evaluate_alerts()

    def _dialog(self) -> FailoverDialog | None:
        screen = self.app.screen
        return screen if isinstance(screen, FailoverDialog) else None

    def _idle(self) -> bool:
        return len(self.app.screen_stack) == 1 and not self.app.operator_actions_running()

    async def _back_to_main(self) -> None:
        """Close what an act left open (its result screen) once the act has ended."""
        pilot, app = self.pilot, self.app
        await until(pilot, lambda: not app.operator_actions_running() or self._dialog() is not None)
        for _ in range(5):
            if len(app.screen_stack) == 1 or self._dialog() is not None:
                break
            await pilot.press("escape")
            await pilot.pause()

    # --- the world --------------------------------------------------------------

    @rule(region=st.sampled_from(REGIONS), dies=st.booleans())
    def region_changes(self, region: str, dies: bool) -> None:
        """A region dies or comes back, dialog open or not; the app's next snapshot
        (as a poll result would) re-judges any open dialog."""
        (self.down.add if dies else self.down.discard)(region)

        async def go() -> None:
            self._feed(rounds=3)
            self.app.refresh_snapshot()
            await self._settle()

        self.do(go)

    @precondition(lambda self: self._dialog() is not None)
    @rule(dies=st.booleans())
    def the_target_changes(self, dies: bool) -> None:
        """The open dialog's own target dies or comes back: the change that matters
        most to what is on screen, so it is drawn as often as any other."""
        dialog = self._dialog()
        assert dialog is not None
        self.region_changes(dialog.plan.target, dies)

    @rule(seconds=st.sampled_from([5, 120, 700]))
    def time_passes(self, seconds: int) -> None:
        """The clock moves on: a cooldown (600 s) runs out, health goes stale."""

        async def go() -> None:
            self.clock.advance(seconds)
            self.app.refresh_snapshot()
            await self._settle()

        self.do(go)

    # --- the operator -----------------------------------------------------------

    @initialize(recent_failover=st.booleans())
    def first_dialog(self, recent_failover: bool) -> None:
        """Every history starts with the failover dialog open: what the world does
        to it next is the point. After a recent failover to bg, within its cooldown,
        acting again needs the break glass until the clock moves on."""
        if recent_failover:

            async def flag() -> None:
                written = self.clock.utcnow() - timedelta(seconds=60)
                recent = FailoverFlag("bg", "ro", "op@test", "drill", iso_utc(written), "a1b2c3")
                for store in self.app.scheduler.stores.values():
                    assert await store.write(recent) is None
                await self.app.scheduler.read_flags()
                self.app.refresh_snapshot()

            self.do(flag)
        self.open_dialog("b" if recent_failover else "f")

    @precondition(lambda self: self._idle())
    @rule(key=st.sampled_from(["f", "b"]))
    def open_dialog(self, key: str) -> None:
        async def go() -> None:
            await self.pilot.press(key)
            # A dialog opens (to act, or showing why not) or the act ends at once.
            await until(
                self.pilot,
                lambda: self._dialog() is not None or not self.app.operator_actions_running(),
            )
            await self._settle()

        self.do(go)

    @precondition(lambda self: self._idle())
    @rule()
    def next_region(self) -> None:
        """`]`: the failover's target is the highlighted region."""

        async def go() -> None:
            await self.pilot.press("right_square_bracket")
            await self._settle()

        self.do(go)

    @precondition(lambda self: self._dialog() is not None)
    @rule()
    def cancel(self) -> None:
        async def go() -> None:
            await self.pilot.press("escape")
            await self._back_to_main()
            await until(self.pilot, self._idle)

        self.do(go)

    @precondition(
        lambda self: (
            (dialog := self._dialog()) is not None and dialog._confirmable_plan(dialog.plan)
        )
    )
    @rule(break_glass=st.booleans())
    def confirm(self, break_glass: bool) -> None:
        async def go() -> None:
            pilot, app = self.pilot, self.app
            dialog = self._dialog()
            assert dialog is not None
            await pilot.press("tab", *dialog.plan.target, "tab", *"history")
            await pilot.pause()
            # The facts at the moment of the confirm: what the plan must be judged on.
            truth = app.operations.reevaluate(dialog.plan, app.snapshot())
            assert truth is not None
            self.truth[truth.action_id] = truth
            await pilot.press("enter")
            if await until(
                pilot,
                lambda: isinstance(app.screen, ForceDialog) or not app.operator_actions_running(),
            ) and isinstance(app.screen, ForceDialog):
                if break_glass:
                    self.forced.add(truth.action_id)
                    await pilot.press("tab", *"FORCE", "enter")
                else:
                    await pilot.press("escape")
            await until(pilot, lambda: not app.operator_actions_running())
            await self._back_to_main()

        self.do(go)

    # --- what must hold after every step ---------------------------------------

    @invariant()
    def nothing_ran_on_a_plan_other_than_the_facts(self) -> None:
        path = self.state_dir / "audit.jsonl"
        records = read_jsonl(path).records if path.exists() else []
        confirmed = {r["action_id"]: r for r in records if r["event"] == "confirmed"}
        executed = {r["action_id"] for r in records if r["event"] == "executed"}
        assert executed <= set(confirmed), (executed, confirmed)
        for action_id, record in confirmed.items():
            truth = self.truth.get(action_id)
            assert truth is not None, f"confirmed without a confirm: {record}"
            assert (record["from"], record["to"]) == (truth.source, truth.target), record
            failing = {c["check"] for c in record["preflight"] if c["blocking"] and not c["ok"]}
            assert failing == {c.name for c in truth.failed}, (record, truth.failed)
            assert failing <= set(record["overridden"]), record
            assert truth.allowed or (truth.needs_force and action_id in self.forced), record

    @invariant()
    def the_footer_is_whole_when_nothing_is_open(self) -> None:
        self.do(self._settle)
        if self._idle():
            assert FOOTER_ACTIONS.items() <= footer_keys(self.app).items()

    @invariant()
    def nothing_raised(self) -> None:
        assert self.app._exception is None, self.app._exception
        assert self.app.is_running
        assert not self.errors.records, [
            (r.getMessage(), r.exc_info and r.exc_info[1]) for r in self.errors.records
        ]


SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much]


@pytest.mark.timeout(0 if LONG else 300)
def test_dialog_histories(
    tmp_path_factory: pytest.TempPathFactory,
    redis_servers: Callable[..., list[RedisServer]],
) -> None:
    DialogHistories._tmp = tmp_path_factory
    DialogHistories.stores = dict(zip(REGIONS, redis_servers(3), strict=True))
    machine = DialogHistories.TestCase
    if LONG:
        machine.settings = settings(
            deadline=None, suppress_health_check=SLOW_OK, report_multiple_bugs=False
        )
    else:
        # Found histories are reported unshrunk here (the long run shrinks): bounded.
        machine.settings = settings(
            max_examples=6,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=SLOW_OK,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            report_multiple_bugs=False,
        )
    DialogHistories.reached.clear()
    machine().runTest()
    print("dialog histories reached:", dict(DialogHistories.reached))
