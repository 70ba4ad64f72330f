"""Escalation is never a resolve (issue 12): when a replication link goes down, the lag
alert used to resolve (and a "resolved" message went out) about 10 s before
replication_link_down fired, so for those seconds nothing fired for a link that had got
worse. A worsening now hands over: the graver alert fires at once, the lesser episode
ends as "escalated", and no moment has nothing firing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_apis import FakeApis
from test_notify import apis, env, pagerduty, slack, webhook  # noqa: F401

from noc.alert_journal import AlertJournal
from noc.alerts import AlertBook, Condition
from noc.clock import FakeClock
from noc.model import AlertNotice, AlertState, Severity
from noc.notify import Notifier, Outbox

LINK = "suppression:ro>bg"
LAG = Condition(f"replication_lag:{LINK}", "replication_lag", Severity.WARNING, "bg",
                "replication lag 95 s", 95.0, for_seconds=60)  # fmt: skip
DOWN = Condition(f"replication_link_down:{LINK}", "replication_link_down", Severity.CRITICAL,
                 "bg", "replication link down", None, for_seconds=60)  # fmt: skip


def firing(book: AlertBook) -> list[str]:
    return [a.rule for a in book.alerts() if a.state is AlertState.FIRING]


def run(book: AlertBook, clock: FakeClock, *conditions: Condition) -> list[AlertNotice]:
    notices = book.evaluate(conditions)
    clock.advance(10)
    return notices


def test_lag_into_link_down_hands_over_with_no_gap_and_no_resolve() -> None:
    clock = FakeClock()
    book = AlertBook(clock)
    for _ in range(7):
        run(book, clock, LAG)
    assert firing(book) == ["replication_lag"]
    lag_episode = next(a for a in book.alerts() if a.rule == "replication_lag").id
    # The link goes down: the rules now say link down, not lag.
    notices = run(book, clock, DOWN)
    assert [(n.event, n.alert.rule) for n in notices] == [
        ("firing", "replication_link_down"),  # first: never a moment with nothing firing
        ("escalated", "replication_lag"),
    ]
    down, ended = notices[0].alert, notices[1].alert
    assert down.escalated_from == lag_episode and ended.escalated_to == down.id
    assert firing(book) == ["replication_link_down"]
    assert all(n.event != "resolved" for n in notices)
    # Still down: nothing more to say. Then the link comes back: a real resolve.
    assert run(book, clock, DOWN) == []
    assert [(n.event, n.alert.rule) for n in run(book, clock)] == [
        ("resolved", "replication_link_down")
    ]


def test_warning_into_critical_is_a_new_episode_without_a_resolve() -> None:
    clock = FakeClock()
    book = AlertBook(clock)
    warn = Condition("complaint_rate:ro", "complaint_rate", Severity.WARNING, "ro", "0.2 %")
    crit = Condition("complaint_rate:ro", "complaint_rate", Severity.CRITICAL, "ro", "0.4 %")
    (first,) = run(book, clock, warn)
    notices = run(book, clock, crit)
    assert [(n.event, n.alert.severity) for n in notices] == [
        ("firing", Severity.CRITICAL),
        ("escalated", Severity.WARNING),
    ]
    assert notices[0].alert.id != first.alert.id
    assert notices[0].alert.escalated_from == first.alert.id
    assert [a.severity for a in book.alerts() if a.state is AlertState.FIRING] == [
        Severity.CRITICAL
    ]
    # Easing back to a warning is not an escalation: the critical episode stays.
    assert run(book, clock, warn) == []


def test_a_link_that_was_only_pending_down_while_lag_fires_hands_over_too() -> None:
    clock = FakeClock()
    book = AlertBook(clock)
    for _ in range(7):
        run(book, clock, LAG)
    run(book, clock, LAG)
    notices = run(book, clock, DOWN)
    assert notices[0].event == "firing" and notices[0].alert.rule == "replication_link_down"


async def test_the_journal_keeps_the_handover_across_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    book = AlertBook(clock)
    journal = AlertJournal(tmp_path / "alerts.jsonl", clock)
    for _ in range(7):
        await journal.record(run(book, clock, LAG))
    await journal.record(run(book, clock, DOWN))
    restored = AlertBook(clock)
    AlertJournal(tmp_path / "alerts.jsonl", clock).restore(restored)
    (down,) = [a for a in restored.alerts() if a.state is AlertState.FIRING]
    (lag,) = [a for a in restored.alerts() if a.rule == "replication_lag"]
    assert down.escalated_from == lag.id and lag.escalated_to == down.id
    assert lag.state is AlertState.RESOLVED


@pytest.fixture
async def notifier(
    tmp_path: Path,
    apis: FakeApis,  # noqa: F811
    env: None,  # noqa: F811
) -> AsyncIterator[tuple[Notifier, FakeClock]]:
    clock = FakeClock()
    outbox = Outbox.open(tmp_path / "outbox.jsonl", clock)
    built = Notifier([pagerduty(apis), slack(), webhook()], outbox, clock, estate="mail-test")
    try:
        yield built, clock
    finally:
        await built.aclose()
        outbox.close()


async def test_channels_hear_the_graver_alert_then_an_escalation_never_a_resolve(
    apis: FakeApis,  # noqa: F811
    notifier: tuple[Notifier, FakeClock],
) -> None:
    sender, clock = notifier
    book = AlertBook(clock)
    for _ in range(7):
        for notice in run(book, clock, LAG):
            await sender.notify(notice)
    for notice in run(book, clock, DOWN):
        await sender.notify(notice)
    await sender.send_due()
    texts = [r.body["text"] for r in apis.of("slack")]
    assert texts[0].startswith("[FIRING] warning: replication lag")
    assert texts[1].startswith("[FIRING] critical: replication link down")
    assert "was replication_link_down" not in texts[1] and "was replication_lag" in texts[1]
    assert texts[2].startswith("[ESCALATED] warning: replication lag")
    assert not any("RESOLVED" in text for text in texts)
    pd = [(r.body["event_action"], r.body["dedup_key"]) for r in apis.of("pagerduty")]
    # The link-down incident opens before the lag incident is closed: no gap.
    assert [action for action, _ in pd] == ["trigger", "trigger", "resolve"]
    assert pd[2][1] == pd[0][1] != pd[1][1]
    hooks = [r.body for r in apis.of("webhook")]
    assert [h["event"] for h in hooks] == ["firing", "firing", "escalated"]
    assert hooks[2]["alert"]["escalated_to"] == hooks[1]["alert"]["id"]
