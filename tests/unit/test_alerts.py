"""The alert lifecycle under a fake clock, and its journal across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import REFUSED, estate_config, feed_flags, feed_round

from noc.alert_journal import AlertJournal
from noc.alerts import AlertBook, AlertPolicy, Condition
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.engine import Engine
from noc.model import AlertState, Severity

LAG = Condition("replication_lag:suppression:ro>bg", "replication_lag", Severity.WARNING, "bg",
                "replication lag suppression ro→bg 95 s", 95.0, for_seconds=60)  # fmt: skip
DOWN = Condition("region_down:bg", "region_down", Severity.CRITICAL, "bg", "bg down")
OTHER = Condition("region_degraded:pa", "region_degraded", Severity.WARNING, "pa", "pa degraded")


def book(**policy: float) -> AlertBook:
    return AlertBook(FakeClock(), AlertPolicy(**policy))  # type: ignore[arg-type]


def tick(alerts: AlertBook, seconds: float, *conditions: Condition) -> list[str]:
    alerts.clock.advance(seconds)  # type: ignore[attr-defined]
    return [f"{n.event}:{n.alert.key}" for n in alerts.evaluate(conditions)]


def state(alerts: AlertBook, alert_id: str) -> AlertState | None:
    return next((a.state for a in alerts.alerts() if a.key == alert_id), None)


def test_pending_then_firing_after_the_sustain_window() -> None:
    alerts = book()
    assert tick(alerts, 0, LAG) == []
    assert state(alerts, LAG.id) is AlertState.PENDING
    assert tick(alerts, 59, LAG) == []
    assert tick(alerts, 1, LAG) == [f"firing:{LAG.id}"]
    assert state(alerts, LAG.id) is AlertState.FIRING


def test_a_spike_shorter_than_the_window_never_pages() -> None:
    alerts = book()
    tick(alerts, 0, LAG)
    tick(alerts, 30, LAG)
    assert tick(alerts, 1) == []
    assert state(alerts, LAG.id) is None


def test_resolves_and_is_listed_as_recently_resolved() -> None:
    alerts = book()
    tick(alerts, 0, DOWN)
    assert tick(alerts, 5) == [f"resolved:{DOWN.id}"]
    assert state(alerts, DOWN.id) is AlertState.RESOLVED


def test_keep_firing_after_recovery() -> None:
    alerts = book(keep_firing_seconds=120)
    tick(alerts, 0, DOWN)
    assert tick(alerts, 60) == []
    assert state(alerts, DOWN.id) is AlertState.FIRING
    assert tick(alerts, 30, DOWN) == []  # back before the keep-firing window ends: no new page
    assert tick(alerts, 60) == []
    assert tick(alerts, 120) == [f"resolved:{DOWN.id}"]


def test_flapping_is_detected() -> None:
    alerts = book(flap_transitions=4, flap_window_seconds=600)
    for _ in range(2):
        tick(alerts, 10, DOWN)
        tick(alerts, 10)
    tick(alerts, 10, DOWN)
    firing = next(a for a in alerts.alerts() if a.state is AlertState.FIRING)
    assert firing.flapping


def test_order_firing_by_severity_then_pending_then_resolved() -> None:
    alerts = book()
    tick(alerts, 0, OTHER, DOWN, Condition("x", "region_down", Severity.CRITICAL, "ro", "x"))
    tick(alerts, 1, OTHER, DOWN, LAG)
    ids = [(a.key, a.state.value) for a in alerts.alerts()]
    assert ids == [
        (DOWN.id, "firing"),
        (OTHER.id, "firing"),
        (LAG.id, "pending"),
        ("x", "resolved"),
    ]


def test_ack_is_not_a_silence_and_ends_with_the_alert() -> None:
    alerts = book()
    tick(alerts, 0, DOWN)
    assert alerts.ack(LAG.id, "op@noc1", "looking") is None  # not firing: nothing to ack
    ack = alerts.ack(DOWN.id, "op@noc1", "on it")
    assert ack is not None
    firing = alerts.alerts()[0]
    assert firing.ack == ack and not firing.muted
    tick(alerts, 1)
    tick(alerts, 1, DOWN)
    assert alerts.alerts()[0].ack is None


def test_silence_needs_a_comment_mutes_matching_and_expires() -> None:
    alerts = book()
    with pytest.raises(ValueError, match="comment"):
        alerts.silence({"region": "bg"}, 3600, "op@noc1", " ")
    with pytest.raises(ValueError, match="matchers"):
        alerts.silence({"host": "bg"}, 3600, "op@noc1", "maintenance")
    silence = alerts.silence(
        {"rule": "region_down", "region": "bg"}, 3600, "op@noc1", "maintenance"
    )
    tick(alerts, 0, DOWN, OTHER)
    by_id = {a.key: a for a in alerts.alerts()}
    assert by_id[DOWN.id].silenced_by == silence.id and by_id[DOWN.id].muted
    assert by_id[OTHER.id].silenced_by is None
    assert alerts.silences() == (silence,)
    assert alerts.expire(silence.id) is not None
    assert alerts.silences() == ()
    assert {a.key: a for a in alerts.alerts()}[DOWN.id].silenced_by is None


def test_silence_ends_by_itself() -> None:
    alerts = book()
    alerts.silence({"region": "bg"}, 60, "op@noc1", "reboot")
    tick(alerts, 61, DOWN)
    assert alerts.alerts()[0].silenced_by is None
    assert alerts.silences() == ()


def test_region_down_inhibits_its_own_lag_alert() -> None:
    alerts = book()
    tick(alerts, 0, DOWN, LAG)
    tick(alerts, 60, DOWN, LAG)
    lag = next(a for a in alerts.alerts() if a.key == LAG.id)
    assert lag.inhibited_by == DOWN.id and lag.muted


def test_single_round_fires_without_the_window() -> None:
    alerts = AlertBook(FakeClock(), single_round=True)
    assert alerts.evaluate([LAG]) != []


def test_engine_rules_fire_on_region_down_and_split_brain() -> None:
    clock = FakeClock()
    engine = Engine(estate_config(), clock)
    feed_round(engine, clock)
    feed_flags(engine, clock, {"ro": "ro", "bg": "bg", "pa": "bg"})
    for _ in range(3):
        feed_round(engine, clock, {"pa": REFUSED})
    fired = {n.alert.key for n in engine.evaluate_alerts() if n.event == "firing"}
    assert fired == {"region_down:pa", "split_brain"}
    assert [a.key for a in engine.snapshot().alerts][:2] == ["region_down:pa", "split_brain"]


def test_journal_restores_firing_acks_and_silences(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    clock = FakeClock()
    first = AlertBook(clock)
    journal = AlertJournal(path, clock)

    async def run() -> None:
        await journal.record(first.evaluate([DOWN, OTHER]))
        ack = first.ack(DOWN.id, "op@noc1", "on it")
        assert ack is not None
        await journal.record_ack(DOWN.id, ack)
        await journal.record_silence(first.silence({"region": "pa"}, 3600, "op@noc1", "known"))
        clock.advance(5)
        await journal.record(first.evaluate([DOWN]))  # pa degraded resolves

    asyncio.run(run())
    with path.open("a") as handle:
        handle.write('{"ts": "2026-11-23T03:00:05Z", "event": "al')  # a torn last line
    restarted = AlertBook(clock)
    lines = len(path.read_text().splitlines())
    damaged = AlertJournal(path, clock).restore(restarted)
    assert damaged == [lines]
    # Rewritten without the torn line, so the next record does not run on from it.
    assert read_jsonl(path).damaged_lines == []
    # Still firing after the restart, with its ack: no second page for the same incident.
    assert restarted.evaluate([DOWN]) == []
    alerts = {a.key: a for a in restarted.alerts()}
    assert alerts[DOWN.id].state is AlertState.FIRING
    assert alerts[DOWN.id].ack is not None and alerts[DOWN.id].ack.note == "on it"
    assert alerts[OTHER.id].state is AlertState.RESOLVED
    assert [s.comment for s in restarted.silences()] == ["known"]
    # Its condition is gone now: it resolves, once.
    assert [n.event for n in restarted.evaluate([])] == ["resolved"]


def test_restored_firing_alert_waits_for_data_before_resolving() -> None:
    """Right after a restart nothing has answered yet: a firing alert restored from the
    journal must not resolve (and then fire and page again) for lack of data."""
    clock = FakeClock()
    engine = Engine(estate_config(), clock)
    engine.alerts.restore_firing(
        next(n.alert for n in AlertBook(clock, single_round=True).evaluate([DOWN]))
    )
    assert engine.evaluate_alerts() == []  # no data yet: nothing is judged
    feed_flags(engine, clock, "ro")
    feed_round(engine, clock, {"bg": REFUSED})
    feed_round(engine, clock, {"bg": REFUSED})
    feed_round(engine, clock, {"bg": REFUSED})
    assert engine.evaluate_alerts() == []  # still down: still firing, no second page
    for _ in range(3):  # recovery needs three successes
        feed_flags(engine, clock, "ro")
        feed_round(engine, clock)
    assert [(n.event, n.alert.key) for n in engine.evaluate_alerts()] == [
        ("resolved", "region_down:bg")
    ]


# --- a book that runs for months stays the size of what is live -----------------


def test_flip_times_of_gone_conditions_are_forgotten_after_the_flap_window() -> None:
    alerts = book(flap_window_seconds=600)
    for n in range(10_000):  # distinct ids, each firing once and resolving
        fleeting = Condition(f"region_down:r{n}", "region_down", Severity.CRITICAL, f"r{n}", "down")
        tick(alerts, 1, fleeting)
        tick(alerts, 1)
    # Only the conditions whose flips are still inside the window are remembered
    # (the flap verdict needs them); the other thousands are gone.
    assert len(alerts._flips) <= 600 // 2 + 1
    assert len(alerts.alerts()) <= 50  # and the resolved list is the bounded one


def test_a_flapping_condition_is_still_seen_flapping() -> None:
    alerts = book(flap_window_seconds=600, flap_transitions=4)
    for _ in range(3):
        tick(alerts, 1, DOWN)
        tick(alerts, 1)
    tick(alerts, 1, DOWN)
    firing = next(a for a in alerts.alerts() if a.state is AlertState.FIRING)
    assert firing.rule == DOWN.rule and firing.flapping
