"""Maintenance windows: the store's history, what a window does to alerts, the
automation and a plan, and what an operator may type.

The store is the real one on a real file (a temp state dir); time is a FakeClock, so
a window scheduled ahead starts, and a window ends, when the test moves the clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from support import REFUSED, estate_config, feed_flags, feed_round

from noc.alerts import AlertBook
from noc.alerts import Condition as AlertCondition
from noc.auto import AutoFailover
from noc.clock import FakeClock
from noc.engine import Engine
from noc.maintenance import (
    KEPT_FINISHED,
    MaintenanceBook,
    MaintenanceError,
    MaintenanceStore,
    new_window,
    parse_duration,
    parse_start,
)
from noc.model import ActionKind, ActuatorFacts, AlertState, AutoMode, MaintenanceWindow, Severity
from noc.safety import safety_rules

REGIONS = ("ro", "bg", "pa")
NOW = FakeClock().utcnow()


def window(
    clock: FakeClock, region: str = "ro", minutes: float = 120, ahead: float = 0
) -> MaintenanceWindow:
    start = clock.utcnow() + timedelta(minutes=ahead) if ahead else None
    return new_window(
        region, REGIONS, timedelta(minutes=minutes), "kernel upgrade", "op@noc1",
        clock.utcnow(), starts_at=start,
    )  # fmt: skip


# --- what an operator types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("1d", 86400), ("45s", 45), ("30", 1800)],
)
def test_durations_are_read_as_operators_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "2x", "h2", "2h junk", "-1h"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(MaintenanceError, match="not a duration"):
        parse_duration(text)


def test_a_start_is_an_iso_time_a_time_of_day_or_an_offset() -> None:
    now = datetime(2026, 12, 3, 19, 0, tzinfo=UTC)
    assert parse_start("2026-12-03T22:00Z", now) == datetime(2026, 12, 3, 22, 0, tzinfo=UTC)
    assert parse_start("2026-12-03T22:00", now) == datetime(2026, 12, 3, 22, 0, tzinfo=UTC)
    assert parse_start("22:00", now) == datetime(2026, 12, 3, 22, 0, tzinfo=UTC)
    # A time of day that has passed is tomorrow's.
    assert parse_start("06:30", now) == datetime(2026, 12, 4, 6, 30, tzinfo=UTC)
    assert parse_start("+30m", now) == now + timedelta(minutes=30)
    with pytest.raises(MaintenanceError, match="not a time"):
        parse_start("tomorrow", now)


@pytest.mark.parametrize(
    ("region", "minutes", "ahead_minutes", "reason", "said"),
    [
        ("xx", 60, 0, "work", "no region 'xx'"),
        ("ro", 60, 0, "  ", "needs a reason"),
        ("ro", 0, 0, "work", "more than zero"),
        ("ro", 8 * 24 * 60, 0, "work", "at most 7 days"),
        ("ro", 60, -60, "work", "has passed"),
        ("ro", 60, 91 * 24 * 60, "work", "more than 90 days ahead"),
    ],
)
def test_a_window_that_cannot_be_is_refused_with_why(
    region: str, minutes: float, ahead_minutes: float, reason: str, said: str
) -> None:
    with pytest.raises(MaintenanceError, match=said):
        new_window(
            region, REGIONS, timedelta(minutes=minutes), reason, "op", NOW,
            starts_at=NOW + timedelta(minutes=ahead_minutes),
        )  # fmt: skip


# --- what a window does ----------------------------------------------------------------


def test_alerts_of_a_region_in_maintenance_are_marked_and_muted_only_while_it_lasts() -> None:
    clock = FakeClock()
    book = MaintenanceBook()
    alerts = AlertBook(clock, single_round=True, maintenance_of=book.of_region)
    planned = window(clock, "ro", minutes=30, ahead=10)
    book.apply({"event": "add", "window": _json(planned)})
    down = [
        AlertCondition("region_down:ro", "region_down", Severity.CRITICAL, "ro", "ro down"),
        AlertCondition("region_down:bg", "region_down", Severity.CRITICAL, "bg", "bg down"),
    ]
    alerts.evaluate(down)
    assert {a.region: a.maintenance for a in alerts.alerts()} == {"ro": None, "bg": None}
    clock.advance(10 * 60)  # the scheduled window starts by the clock alone
    marked = {a.region: a for a in alerts.alerts()}
    assert marked["ro"].maintenance == planned.id and marked["ro"].muted
    assert marked["bg"].maintenance is None and not marked["bg"].muted
    clock.advance(30 * 60)  # and ends by itself
    assert all(a.maintenance is None for a in alerts.alerts())


def test_the_snapshot_shows_the_window_on_its_region() -> None:
    clock = FakeClock()
    engine = Engine(estate_config(), clock)
    planned = window(clock, "bg", minutes=60, ahead=5)
    engine.maintenance.apply({"event": "add", "window": _json(planned)})
    assert all(r.maintenance is None for r in engine.snapshot().regions)
    clock.advance(5 * 60)
    shown = {r.id: r.maintenance for r in engine.snapshot().regions}
    assert shown == {"ro": None, "bg": planned, "pa": None}


def _down_estate(clock: FakeClock, *, auto_after: float = 60) -> Engine:
    config = estate_config(failover={"auto": True, "auto_after_seconds": auto_after})
    engine = Engine(config, clock)
    feed_flags(engine, clock, "ro")
    for _ in range(4):
        feed_round(engine, clock, {"ro": REFUSED})
    return engine


def test_automation_does_not_act_on_a_region_in_maintenance() -> None:
    clock = FakeClock()
    engine = _down_estate(clock)
    auto = AutoFailover(engine.config, clock, None)
    planned = window(clock, "ro", minutes=10)
    engine.maintenance.apply({"event": "add", "window": _json(planned)})
    for _ in range(5):  # down far past auto_after_seconds, inside the window
        auto.observe(engine.snapshot())
        assert auto.due(engine.snapshot()) is None
        clock.advance(60)
        feed_round(engine, clock, {"ro": REFUSED})
    status = auto.status()
    assert status is not None and status.mode is AutoMode.HELD
    assert "ro in maintenance" in status.detail
    # The window over and ro still down: the count starts now, and then it acts.
    clock.advance(10 * 60)
    auto.observe(engine.snapshot())
    assert auto.due(engine.snapshot()) is None
    clock.advance(61)
    auto.observe(engine.snapshot())
    assert auto.due(engine.snapshot()) == "bg"


def test_automation_never_fails_over_onto_a_region_in_maintenance() -> None:
    clock = FakeClock()
    engine = _down_estate(clock, auto_after=1)
    auto = AutoFailover(engine.config, clock, None)
    for region in ("bg", "pa"):
        engine.maintenance.apply({"event": "add", "window": _json(window(clock, region))})
    auto.observe(engine.snapshot())
    clock.advance(2)
    assert auto.due(engine.snapshot()) is None
    assert auto.held is not None and "maintenance" in auto.held


def test_a_plan_names_the_window_and_refuses_moving_onto_it_unless_forced() -> None:
    clock = FakeClock()
    engine = _down_estate(clock)
    engine.maintenance.apply({"event": "add", "window": _json(window(clock, "bg"))})
    engine.maintenance.apply({"event": "add", "window": _json(window(clock, "ro"))})
    snapshot = engine.snapshot()
    onto, _ = safety_rules(
        snapshot, engine.config, ActionKind.FAILOVER, "bg", ActuatorFacts(), clock.utcnow()
    )
    rules = [r for r in onto if r.name == "maintenance window"]
    arriving = next(r for r in rules if r.detail.startswith("bg"))
    assert not arriving.ok and arriving.forceable and "kernel upgrade" in arriving.detail
    leaving = next(r for r in rules if r.detail.startswith("ro"))
    assert leaving.ok and "automated failover leaves it alone" in leaving.detail
    elsewhere, _ = safety_rules(
        snapshot, engine.config, ActionKind.FAILOVER, "pa", ActuatorFacts(), clock.utcnow()
    )
    assert [r.ok for r in elsewhere if r.name == "maintenance window"] == [True]


def test_without_a_window_a_plan_has_no_maintenance_line() -> None:
    clock = FakeClock()
    engine = _down_estate(clock)
    rules, _ = safety_rules(
        engine.snapshot(), engine.config, ActionKind.FAILOVER, "bg", ActuatorFacts(),
        clock.utcnow(),
    )  # fmt: skip
    assert all(r.name != "maintenance window" for r in rules)


# --- the store -------------------------------------------------------------------------


def test_a_torn_last_line_loses_no_window_reported_before_it(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "maintenance.jsonl"
    store = MaintenanceStore(path, clock)
    kept = store.add(window(clock, "ro"))
    with path.open("ab") as handle:  # a kill -9 in the middle of the next write
        handle.write(b'{"event":"add","window":{"id":"half')
    again = MaintenanceStore(path, clock)
    again.reload()
    assert again.book.all() == (kept,)
    assert again.damaged_lines == (2,)
    later = again.add(window(clock, "bg"))
    assert {w.id for w in MaintenanceStore(path, clock).book.all()} == set()  # not read yet
    third = MaintenanceStore(path, clock)
    third.reload()
    assert {w.id for w in third.book.all()} == {kept.id, later.id}
    assert third.damaged_lines == ()
    assert (tmp_path / "maintenance.jsonl.torn").exists()


def test_the_file_is_compacted_and_keeps_what_the_book_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("noc.maintenance.COMPACT_RECORDS", 20)
    monkeypatch.setattr("noc.maintenance.KEPT_FINISHED", 5)
    clock = FakeClock()
    path = tmp_path / "maintenance.jsonl"
    store = MaintenanceStore(path, clock)
    live = store.add(window(clock, "pa", minutes=7 * 24 * 60))
    for _ in range(30):
        added = store.add(window(clock, "ro", minutes=1))
        store.end(added.id, "op@noc1")
        clock.advance(61)
    lines = path.read_bytes().count(b"\n")
    assert lines <= 20
    reread = MaintenanceStore(path, clock)
    reread.reload()
    assert reread.book.get(live.id) == live
    # The live window and the five most recently finished; the file stays bounded.
    assert len(reread.book.all()) == 6


class WindowStoreHistory(RuleBasedStateMachine):
    """Random histories of adds (now or ahead), ends, time passing, restarts and
    writes torn by a kill, against a model: the set of windows ever reported."""

    windows = Bundle("windows")

    @initialize()
    def start(self) -> None:
        import tempfile

        self.directory = tempfile.TemporaryDirectory()
        self.path = Path(self.directory.name) / "maintenance.jsonl"
        self.clock = FakeClock()
        self.store = MaintenanceStore(self.path, self.clock)
        self.reported: dict[str, MaintenanceWindow] = {}

    def teardown(self) -> None:
        self.directory.cleanup()

    @rule(
        target=windows,
        region=st.sampled_from(REGIONS),
        minutes=st.integers(1, 180),
        ahead=st.sampled_from([0, 0, 5, 60]),
    )
    def add(self, region: str, minutes: int, ahead: int) -> str:
        added = self.store.add(window(self.clock, region, minutes, ahead))
        self.reported[added.id] = added
        return added.id

    @precondition(lambda self: bool(self.reported))
    @rule(window_id=windows)
    def end(self, window_id: str) -> None:
        known = self.reported[window_id]
        now = self.clock.utcnow()
        if now >= known.until:
            with pytest.raises(MaintenanceError, match="already over"):
                self.store.end(window_id, "op@noc2")
            return
        ended = self.store.end(window_id, "op@noc2")
        assert ended.ended_at == now and ended.ended_by == "op@noc2"
        self.reported[window_id] = ended

    @rule(minutes=st.sampled_from([1, 5, 30, 120]))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes * 60)

    @rule()
    def restart(self) -> None:
        self.store = MaintenanceStore(self.path, self.clock)
        self.store.reload()

    @rule(cut=st.integers(1, 60))
    def killed_mid_write(self, cut: int) -> None:
        """A write torn by a kill: part of a record nobody was told about."""
        torn = b'{"event":"add","window":{"id":"torn0000","region":"ro","starts_at":"20'
        with self.path.open("ab") as handle:
            handle.write(torn[:cut])

    @invariant()
    def nothing_is_lost(self) -> None:
        if not hasattr(self, "store"):
            return
        self.store.reload()
        assert len(self.reported) <= KEPT_FINISHED  # the bounded profile stays under
        assert {w.id: w for w in self.store.book.all()} == self.reported

    @invariant()
    def the_active_set_is_the_windows_covering_now(self) -> None:
        if not hasattr(self, "store"):
            return
        now = self.clock.utcnow()
        expected: dict[str, set[str]] = {}
        for each in self.reported.values():
            if each.starts_at <= now < each.until:
                expected.setdefault(each.region, set()).add(each.id)
        active = self.store.book.active(now)
        assert set(active) == set(expected)
        for region, shown in active.items():
            assert shown.id in expected[region]
            assert shown.until == max(self.reported[i].until for i in expected[region])


# Every step is a real fsynced write: the long profile (NOC_LONG_HISTORIES=1) runs far
# past the default per-test timeout.
TestWindowStoreHistory = pytest.mark.timeout(0 if os.environ.get("NOC_LONG_HISTORIES") else 120)(
    WindowStoreHistory.TestCase
)


def _json(w: MaintenanceWindow) -> dict[str, object]:
    from noc.maintenance import window_json

    return window_json(w)


def test_alert_state_is_untouched_by_a_window() -> None:
    """A window mutes pages; it neither resolves nor holds back an alert's state."""
    clock = FakeClock()
    book = MaintenanceBook()
    alerts = AlertBook(clock, single_round=True, maintenance_of=book.of_region)
    book.apply({"event": "add", "window": _json(window(clock, "ro"))})
    condition = AlertCondition("region_down:ro", "region_down", Severity.CRITICAL, "ro", "down")
    notices = alerts.evaluate([condition])
    assert [n.event for n in notices] == ["firing"]
    assert notices[0].alert.maintenance is not None
    assert alerts.alerts()[0].state is AlertState.FIRING
