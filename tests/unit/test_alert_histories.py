"""Histories, not scripts: random flaps, time, acks, silences, restarts and
compactions over the alert book, its journal and the notifier's outbox.

A state machine (Hypothesis RuleBasedStateMachine) drives one AlertBook with a
fake clock; every transition goes to a real AlertJournal file and through a real
Notifier into a real Outbox file (a webhook channel that is never sent to, so
every message it was asked to send stays countable). A restart builds a new book,
journal, outbox and notifier from the same files, as noc does on start. After
every step:

- alert ids are unique in what the pane shows (book.alerts());
- only legal transitions: pending -> firing -> resolved; an episode seen resolved
  never shows as pending or firing again, a firing one never goes back to pending;
- each episode fires (and resolves) at most once, across restarts;
- no episode is paged twice: at most one "firing" message per episode in the outbox;
- a restart keeps every firing episode (same id) with its ack, the resolved tail
  and the silences.

A kill -9 at random moments of a compaction leaves the journal whole. Also a
Pilot test: the alert pane fed fire/resolve/fire/resolve of one rule and
region shows one row per episode and does not raise.

Bounded by default (a few seconds); NOC_LONG_HISTORIES=1 runs the long profile.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from support import REFUSED, estate_config, feed_flags, feed_round
from textual.app import App, ComposeResult

from noc.alert_journal import AlertJournal
from noc.alerts import AlertBook, AlertPolicy, Condition
from noc.clock import FakeClock
from noc.config import NotifyConfig
from noc.engine import Engine
from noc.model import AlertState, Severity
from noc.notify import Notifier, Outbox
from noc_widgets.alert_pane import AlertPane

CONDITIONS = (
    Condition("region_down:ro", "region_down", Severity.CRITICAL, "ro", "ro down"),
    Condition("region_down:bg", "region_down", Severity.CRITICAL, "bg", "bg down"),
    Condition(
        "replication_lag:suppression:ro>bg",
        "replication_lag",
        Severity.WARNING,
        "bg",
        "lag ro→bg",
        for_seconds=30,
    ),
    Condition("split_brain", "split_brain", Severity.CRITICAL, None, "two regions active"),
)
KEYS = tuple(c.id for c in CONDITIONS)
# Small, so that compaction happens many times in a history.
COMPACT_BYTES = 3000
CHANNEL = NotifyConfig(kind="webhook", name="hook", secret_env="NOC_T_HISTORY_HOOK")

LONG = bool(os.environ.get("NOC_LONG_HISTORIES"))  # the profile tests/conftest.py loads
HISTORY_SETTINGS = settings(
    settings() if LONG else settings(max_examples=40, stateful_step_count=40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

LEGAL_NEXT = {
    AlertState.PENDING: {AlertState.PENDING, AlertState.FIRING},
    AlertState.FIRING: {AlertState.FIRING, AlertState.RESOLVED},
    AlertState.RESOLVED: {AlertState.RESOLVED},
}


class AlertHistories(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="noc-histories-"))
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.true_now: set[str] = set()
        self.seen_state: dict[str, AlertState] = {}
        self.fired: Counter[str] = Counter()
        self.resolved: Counter[str] = Counter()
        self.acked: dict[str, str] = {}  # episode id -> the ack's note
        self.policy = AlertPolicy()
        self.outbox: Outbox | None = None
        self.notifier: Notifier | None = None

    # --- the parts, built as noc builds them on start ---

    def _open(self) -> None:
        self.book = AlertBook(self.clock, self.policy)
        self.journal = AlertJournal(
            self.dir / "alerts.jsonl", self.clock, compact_bytes=COMPACT_BYTES
        )
        assert self.journal.restore(self.book) == []
        self.outbox = Outbox.open(self.dir / "outbox.jsonl", self.clock)
        self.notifier = Notifier([CHANNEL], self.outbox, self.clock, estate="histories")

    def _close(self) -> None:
        if self.notifier is not None:
            self.loop.run_until_complete(self.notifier.aclose())
            self.notifier = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None

    def teardown(self) -> None:
        self._close()
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize(keep_firing=st.sampled_from([0.0, 10.0]))
    def start(self, keep_firing: float) -> None:
        self.policy = AlertPolicy(keep_firing_seconds=keep_firing)
        self._open()

    # --- what happens to the estate and to the operator ---

    def _evaluate(self) -> None:
        notices = self.book.evaluate(c for c in CONDITIONS if c.id in self.true_now)
        for notice in notices:
            if notice.event == "firing":
                self.fired[notice.alert.id] += 1
            else:
                self.resolved[notice.alert.id] += 1
                assert self.fired[notice.alert.id] == 1, "resolved without having fired"
                self.acked.pop(notice.alert.id, None)

        async def deliver() -> None:
            assert self.notifier is not None
            await self.journal.record(notices)
            for notice in notices:
                await self.notifier.notify(notice)
            await self.notifier.firing_now(self.book.alerts())

        self.loop.run_until_complete(deliver())

    @rule(key=st.sampled_from(KEYS), holds=st.booleans())
    def condition(self, key: str, holds: bool) -> None:
        """A probe answers: the condition is true or not (flapping at no time apart)."""
        (self.true_now.add if holds else self.true_now.discard)(key)
        self._evaluate()

    @rule(key=st.sampled_from(KEYS), times=st.integers(1, 3))
    def flap(self, key: str, times: int) -> None:
        """A region that answers 200, 503, 200, ... faster than the clock moves."""
        for _ in range(times):
            self.true_now.add(key)
            self._evaluate()
            self.true_now.discard(key)
            self._evaluate()

    @rule(seconds=st.sampled_from([0.5, 1, 5, 11, 31, 120, 3700]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._evaluate()

    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        firing = [a for a in self.book.alerts() if a.state is AlertState.FIRING]
        if not firing:
            return
        alert = data.draw(st.sampled_from(firing))
        note = f"note {len(self.acked)}"
        ack = self.book.ack(alert.id, "op@noc1", note)
        assert ack is not None
        self.acked[alert.id] = note
        self.loop.run_until_complete(self.journal.record_ack(alert.id, ack))

    @rule(
        matchers=st.sampled_from([{"region": "bg"}, {"rule": "region_down"}, {}]),
        seconds=st.sampled_from([10, 600]),
    )
    def silence(self, matchers: dict[str, str], seconds: float) -> None:
        silence = self.book.silence(matchers, seconds, "op@noc1", "maintenance")
        self.loop.run_until_complete(self.journal.record_silence(silence))

    @rule()
    def compact(self) -> None:
        self.loop.run_until_complete(self.journal.compact())

    @rule()
    def restart(self) -> None:
        before = self.book.alerts()
        firing = {a.id: a for a in before if a.state is AlertState.FIRING}
        resolved = [a.id for a in before if a.state is AlertState.RESOLVED]
        silences = {s.id for s in self.book.silences()}
        self._close()
        self._open()
        after = self.book.alerts()
        assert {a.id: a for a in after if a.state is AlertState.FIRING}.keys() == firing.keys()
        for alert in after:
            if alert.id in firing and alert.id in self.acked:
                assert alert.ack is not None and alert.ack.note == self.acked[alert.id]
        assert [a.id for a in after if a.state is AlertState.RESOLVED] == resolved
        assert {s.id for s in self.book.silences()} == silences
        # Pending episodes are not journalled: they start again on the next true probe.
        self._evaluate()

    # --- what must hold after every step ---

    @invariant()
    def ids_are_unique(self) -> None:
        ids = [a.id for a in self.book.alerts()]
        assert len(ids) == len(set(ids)), ids

    @invariant()
    def transitions_are_legal(self) -> None:
        for alert in self.book.alerts():
            before = self.seen_state.get(alert.id)
            assert before is None or alert.state in LEGAL_NEXT[before], (alert.id, before)
            self.seen_state[alert.id] = alert.state

    @invariant()
    def each_episode_fires_and_resolves_once(self) -> None:
        assert all(count == 1 for count in self.fired.values())
        assert all(count == 1 for count in self.resolved.values())

    @invariant()
    @precondition(lambda self: self.outbox is not None)
    def no_episode_paged_twice(self) -> None:
        assert self.outbox is not None
        pages = Counter(
            m.notice.alert_id for m in self.outbox.pending.values() if m.notice.event == "firing"
        )
        assert all(count == 1 for count in pages.values()), pages
        # And every page is about an episode the book fired.
        assert set(pages) <= set(self.fired)


AlertHistories.TestCase.settings = HISTORY_SETTINGS
TestAlertHistories = AlertHistories.TestCase


# --- the pane ----------------------------------------------------------------------


class PaneApp(App[None]):
    def compose(self) -> ComposeResult:
        yield AlertPane(id="alerts")


async def test_alert_pane_shows_each_episode_of_a_flapping_region_once() -> None:
    """fire, resolve, fire, resolve of region_down:bg, snapshot by snapshot as the
    dashboard gets them: no DuplicateKey, one row per episode."""
    clock = FakeClock()
    engine = Engine(estate_config(), clock)
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(AlertPane)
        for _ in range(2):
            for answer in ({"bg": REFUSED}, {}):
                for _ in range(3):  # three failures make it down, three successes healthy
                    feed_flags(engine, clock, "ro")
                    feed_round(engine, clock, answer)
                    engine.evaluate_alerts()
                    pane.snapshot = engine.snapshot()
                    await pilot.pause()
        rows = [pane.get_row_at(i) for i in range(pane.row_count)]
        episodes = [a for a in engine.snapshot().alerts if a.key == "region_down:bg"]
        assert [a.state for a in episodes] == [AlertState.RESOLVED, AlertState.RESOLVED]
        assert len({a.id for a in episodes}) == 2
        assert pane.row_count == len(engine.snapshot().alerts) == len(rows)
        pane.snapshot = replace(engine.snapshot(), alerts=(*episodes, *episodes))
        await pilot.pause()  # the same episode twice in one snapshot: still one row each
        assert pane.row_count == 2


# --- kill -9 while compacting ---------------------------------------------------------

COMPACTING_CHILD = """
import sys
from pathlib import Path
from noc.alert_journal import AlertJournal
from noc.alerts import AlertBook
from noc.clock import FakeClock
clock = FakeClock()
path = Path(sys.argv[1])
while True:  # every pass re-reads the file, folds it and rewrites it compacted
    book = AlertBook(clock)
    journal = AlertJournal(path, clock, compact_bytes=0)
    journal.restore(book)
    print("compacted", flush=True)
"""


def test_a_kill_during_compaction_loses_nothing(tmp_path: Path) -> None:
    """A process that does nothing but compact the journal is killed with SIGKILL at
    random moments: each time the journal reads back whole, with the firing episode,
    its ack, the silence and the resolved tail."""
    clock = FakeClock()
    path = tmp_path / "alerts.jsonl"
    book = AlertBook(clock)
    journal = AlertJournal(path, clock)
    journal.restore(book)

    async def history() -> None:
        for _ in range(60):  # more than the resolved tail
            await journal.record(book.evaluate([CONDITIONS[1]]))
            clock.advance(1)
            await journal.record(book.evaluate([]))
        await journal.record(book.evaluate([CONDITIONS[0]]))
        firing = book.alerts()[0]
        ack = book.ack(firing.id, "op@noc1", "on it")
        assert ack is not None
        await journal.record_ack(firing.id, ack)
        await journal.record_silence(book.silence({"region": "bg"}, 3600, "op@noc1", "works"))

    asyncio.run(history())
    expected = [(a.id, a.state, a.ack.note if a.ack else None) for a in book.alerts()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", COMPACTING_CHILD, str(path)],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert child.stdout is not None
            child.stdout.readline()  # it is compacting now, in a loop
            time.sleep(random.uniform(0, 0.05))
        finally:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        restored = AlertBook(clock)
        assert AlertJournal(path, clock).restore(restored) == []
        got = [(a.id, a.state, a.ack.note if a.ack else None) for a in restored.alerts()]
        assert got == expected
        assert [s.comment for s in restored.silences()] == ["works"]
