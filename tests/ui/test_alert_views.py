"""Looking closer at alerts: the detail view (Enter on a row), the history of past
episodes (`h`), and the `/` filter of the alert pane; the history file behind them.

Real files in a temporary state dir, the real app under Pilot, a frozen clock: the
pictures at 80x24 and 200x60 are the same from run to run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from support import burst, estate_config, feed_round
from support import until as wait_until
from test_app_snapshots import SIZES, make_app
from test_widget_repaints import RICH, Host, firing
from textual.pilot import Pilot
from textual.widgets import Input

from noc.alert_journal import (
    HISTORY_BYTES,
    HISTORY_FILE,
    AlertJournal,
    episode_story,
    read_history,
    rotated,
)
from noc.alerts import AlertBook, Condition
from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.model import Alert, AlertState, Severity
from noc.rules import RULES
from noc_widgets.ack_dialog import AckDialog
from noc_widgets.alert_detail import NEXT_STEPS, AlertDetailScreen
from noc_widgets.alert_history import AlertHistoryScreen
from noc_widgets.alert_pane import AlertPane

# The history is made the evening before the dashboard's frozen clock (03:00 UTC).
EVENING = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
DOWN = Condition("region_down:bg", "region_down", Severity.CRITICAL, "bg",
                 "bg down: every check failing", 2.0)  # fmt: skip
LAG = Condition("replication_lag:suppression:ro>bg", "replication_lag", Severity.WARNING, "bg",
                "replication lag suppression ro→bg 95 s", 95.0)  # fmt: skip
LINK = Condition("replication_link_down:suppression:ro>bg", "replication_link_down",
                 Severity.CRITICAL, "bg", "replication link suppression ro→bg down")  # fmt: skip


def write_history(state_dir: Path) -> None:
    """An evening of the estate, as the scheduler records it: bg went down, was acked
    and came back; a lag on bg worsened into a link down, which then recovered."""
    clock = FakeClock(EVENING)
    book = AlertBook(clock)
    journal = AlertJournal(state_dir / "alerts.jsonl", clock)
    journal.restore(book)

    async def evening() -> None:
        await journal.record(book.evaluate([DOWN]))
        clock.advance(120)
        ack = book.ack(f"{DOWN.id}@2026-11-22T21:00:00.000000Z", "root@noc1", "ISP ticket 4411")
        assert ack is not None
        await journal.record_ack(f"{DOWN.id}@2026-11-22T21:00:00.000000Z", ack)
        clock.advance(600)
        await journal.record(book.evaluate([]))
        clock.advance(3600)
        await journal.record(book.evaluate([LAG]))
        clock.advance(300)
        await journal.record(book.evaluate([LINK]))
        clock.advance(900)
        await journal.record(book.evaluate([]))

    asyncio.run(evening())


def screen_text(app: Any) -> str:
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(),
                      record=True)  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True))
    return str(console.export_text())


async def until(pilot: Pilot[None], done: Any) -> None:
    """Wait for what a worker (a file read off the loop) brings to the screen."""
    await wait_until(pilot, done)
    await pilot.pause()


async def recover(app: NocApp) -> None:
    """Every check answers again, round after round, until nothing fires."""
    clock = app.clock
    assert isinstance(clock, FakeClock)
    for _ in range(10):
        feed_round(app.scheduler.engine, clock)
        await app.scheduler.evaluate_alerts()
        if not any(a.state is AlertState.FIRING for a in app.snapshot().alerts):
            return
    raise AssertionError("the estate did not recover")


async def open_alert(pilot: Pilot[None], row: int = 0) -> AlertDetailScreen:
    await pilot.pause()
    pane = pilot.app.query_one(AlertPane)
    pane.focus()
    pane.move_cursor(row=row)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, AlertDetailScreen))
    screen = pilot.app.screen
    assert isinstance(screen, AlertDetailScreen)
    await until(pilot, lambda: screen._story_loaded)
    return screen


async def open_history(pilot: Pilot[None]) -> AlertHistoryScreen:
    await pilot.pause()
    await pilot.press("h")
    await until(pilot, lambda: isinstance(pilot.app.screen, AlertHistoryScreen))
    screen = pilot.app.screen
    assert isinstance(screen, AlertHistoryScreen)
    await until(pilot, lambda: screen._loaded)
    return screen


# --- pictures --------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_alert_detail_of_a_live_episode(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_alert(pilot)

    assert snap_compare(make_app(tmp_path, "ro-down"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_alert_history(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    write_history(tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await open_history(pilot)

    assert snap_compare(make_app(tmp_path, "ro-down"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_alert_detail_of_a_past_episode(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    """From the history: the escalated lag, with its moments and where it went."""
    write_history(tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        history = await open_history(pilot)
        table = history.query_one("#history")
        lag = [a.id for a in history.episodes].index(f"{LAG.id}@2026-11-22T22:12:00.000000Z")
        table.move_cursor(row=lag)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, AlertDetailScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: screen._story_loaded)  # type: ignore[attr-defined]

    assert snap_compare(make_app(tmp_path, "ro-down"), terminal_size=size, run_before=run_before)


# --- behaviour -------------------------------------------------------------------


async def test_enter_opens_the_selected_episodes_detail(tmp_path: Path) -> None:
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        second = app.snapshot().alerts[1]
        screen = await open_alert(pilot, row=1)
        assert screen.alert_id == second.id == app.selected_alert
        text = screen_text(app)
        assert second.key in text
        assert RULES[second.rule].meaning[:40] in text
        assert "Next step" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, AlertDetailScreen)


async def test_ack_from_the_detail_is_recorded_in_the_journal(tmp_path: Path) -> None:
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_alert(pilot)
        alert_id = screen.alert_id
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AckDialog))
        await pilot.press(*"calling the ISP", "enter")
        await until(pilot, lambda: app.screen is screen and screen.story.steps)
        acks = [r for r in read_jsonl(tmp_path / "alerts.jsonl").records if r["event"] == "ack"]
        assert [(r["alert_id"], r["note"]) for r in acks] == [(alert_id, "calling the ISP")]
        # The detail shows it, and the record's moments include it.
        assert "calling the ISP" in screen_text(app)
        assert any("acked by" in words for _, words in screen.story.steps)


async def test_a_story_read_between_the_ack_and_its_journal_line_is_read_again(
    tmp_path: Path,
) -> None:
    """The history that failed CI: the book holds the ack before its journal line
    lands; a snapshot drawn in between made the detail read the record without the
    ack, and nothing read it again: the ack never showed among the moments."""
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_alert(pilot)
        ack = app.scheduler.engine.alerts.ack(screen.alert_id, "root@noc1", "calling the ISP")
        assert ack is not None and app.scheduler.journal is not None
        app.refresh_snapshot()
        await until(pilot, lambda: screen.shown is not None and screen.shown.ack is not None)
        await until(pilot, lambda: screen._story_loaded and not screen._story_loading)
        assert not any("acked by" in words for _, words in screen.story.steps)
        await app.scheduler.journal.record_ack(screen.alert_id, ack)
        app.refresh_snapshot()
        await until(pilot, lambda: any("acked by" in words for _, words in screen.story.steps))


async def test_an_ack_typed_in_one_breath_keeps_the_whole_note(tmp_path: Path) -> None:
    """`a` and the note in one burst: the keys typed before the dialog is up are its,
    not the detail's (which took the first letters and, for an `s`, opened a silence)."""
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_alert(pilot)
        burst(app, ["a", *"calling the ISP now", "enter"])
        await until(pilot, lambda: app.screen is screen and screen.shown is not None
                    and screen.shown.ack is not None)  # fmt: skip
        acks = [r for r in read_jsonl(tmp_path / "alerts.jsonl").records if r["event"] == "ack"]
        assert [r["note"] for r in acks] == ["calling the ISP now"]


async def test_read_only_detail_offers_no_ack(tmp_path: Path) -> None:
    app = make_app(tmp_path, "ro-down", read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alert(pilot)
        await pilot.press("a")
        await pilot.pause(0.1)
        assert isinstance(app.screen, AlertDetailScreen)
        assert not (tmp_path / "alerts.jsonl").exists() or not [
            r for r in read_jsonl(tmp_path / "alerts.jsonl").records if r["event"] == "ack"
        ]


async def test_the_detail_follows_the_episode_as_it_resolves(tmp_path: Path) -> None:
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_alert(pilot)
        await recover(app)
        app.refresh_snapshot()
        await until(pilot, lambda: "resolved" in screen_text(app))
        assert screen.shown is not None and screen.shown.state is AlertState.RESOLVED
        await until(pilot, lambda: any(w == "resolved" for _, w in screen.story.steps))


async def test_the_filter_hides_and_restores_rows(tmp_path: Path) -> None:
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane = app.query_one(AlertPane)
        everything = pane.row_count
        assert everything >= 2
        await pilot.press("slash", "p", "a")
        await pilot.pause()
        assert pane.row_count == 1
        assert "/pa: 1 of 2 alerts" in screen_text(app)
        await pilot.press("enter")  # keeps the filter, back to the rows
        await pilot.pause()
        assert pane.has_focus and pane.filter_text == "pa" and pane.row_count == 1
        await pilot.press("escape")
        await pilot.pause()
        assert pane.filter_text == "" and pane.row_count == everything
        assert "/pa" not in screen_text(app)
        # Esc in the filter line clears it too; nothing that matches says so.
        await pilot.press("slash", *"nothing-like-this")
        await pilot.pause()
        assert "no alert matches /nothing-like-this" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert pane.row_count == everything
        assert not app.query_one("#alert-filter", Input).display


async def test_the_filter_keeps_the_most_severe_matching_alert_in_view() -> None:
    warnings = tuple(firing(n, Severity.WARNING, f"warning number {n}") for n in range(6))
    graver = tuple(firing(10 + n, Severity.CRITICAL, f"critical number {n}") for n in range(8))
    app = Host(AlertPane)
    async with app.run_test(size=(80, 24)) as pilot:
        app.feed(dataclasses.replace(RICH, alerts=(*graver, *warnings)))
        await pilot.pause()
        pane = app.query_one(AlertPane)
        pane.focus()
        for _ in range(13):
            await pilot.press("down")
        await pilot.pause()
        chosen = pane.selected_alert
        assert chosen == warnings[5].id
        # A filter every row matches: the operator's alert stays chosen, the root cause
        # stays in view (the view goes back to the top when the rows change).
        pane.filter_text = "number"
        await pilot.pause()
        assert pane.selected_alert == chosen
        assert "critical number 0" in app.screen_text()
        await pilot.press("down")  # the operator looks at the bottom again
        pane.filter_text = "critical"
        await pilot.pause()
        assert pane.row_count == 8
        assert "critical number 0" in app.screen_text()
        assert "warning number" not in app.screen_text()


async def test_history_survives_a_restart(tmp_path: Path) -> None:
    """An episode ends in one run of the dashboard, acked there; the next run on the
    same state dir lists it, with its ack, and its detail tells its moments."""
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        # What the scheduler's alert tick journals: ro and pa fire again here, since
        # make_app evaluated without a journal.
        await pilot.pause()
        screen = await open_alert(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, AckDialog))
        await pilot.press(*"failing over", "enter")
        await until(pilot, lambda: app.screen is screen)
        alert_id = screen.alert_id
        assert isinstance(app.clock, FakeClock)
        await recover(app)
    assert (tmp_path / HISTORY_FILE).exists()

    again = NocApp(estate_config(), clock=FakeClock(), start_polling=False, state_path=tmp_path)
    async with again.run_test(size=(80, 24)) as pilot:
        history = await open_history(pilot)
        past = next(a for a in history.episodes if a.id == alert_id)
        assert past.ack is not None and past.ack.note == "failing over"
        assert "failing over" not in screen_text(again)  # the Ack column names who
        assert past.ack.by in screen_text(again)
        await pilot.press("enter")  # the newest first: which one, the screen says
        await until(pilot, lambda: isinstance(again.screen, AlertDetailScreen))
        detail = again.screen
        assert isinstance(detail, AlertDetailScreen)
        await until(pilot, lambda: detail._story_loaded)
        assert detail.alert_id == history.episodes[0].id


def test_every_rule_has_a_next_step() -> None:
    assert set(RULES) <= set(NEXT_STEPS)


# --- the history file ------------------------------------------------------------


def test_history_keeps_what_compaction_drops(tmp_path: Path) -> None:
    """The journal compacts to its last resolved episodes, without acks; the history
    file keeps every ended episode, with its ack and the moment it fired."""
    write_history(tmp_path)
    journal_path = tmp_path / "alerts.jsonl"
    clock = FakeClock(EVENING + timedelta(hours=3))
    AlertJournal(journal_path, clock, compact_bytes=1).restore(AlertBook(clock))
    assert not [r for r in read_jsonl(journal_path).records if r["event"] == "ack"]
    past = read_history(journal_path)
    assert [a.key for a in past] == [LINK.id, LAG.id, DOWN.id]
    assert past[1].escalated_to == past[0].id
    assert past[2].ack is not None and past[2].ack.note == "ISP ticket 4411"
    steps = [words for _, words in episode_story(journal_path, past[2].id).steps]
    assert steps == [
        "condition became true (pending)",
        "firing",
        "acked by root@noc1: ISP ticket 4411",
        "resolved",
    ]


def test_history_file_rotates_at_its_bound(tmp_path: Path) -> None:
    journal_path = tmp_path / "alerts.jsonl"
    clock = FakeClock(EVENING)
    book = AlertBook(clock)
    journal = AlertJournal(journal_path, clock)
    journal.restore(book)
    history = tmp_path / HISTORY_FILE

    async def flap(times: int) -> None:
        for _ in range(times):
            await journal.record(book.evaluate([DOWN]))
            clock.advance(30)
            await journal.record(book.evaluate([]))
            clock.advance(30)

    ended = 0
    while not rotated(history).exists():
        asyncio.run(flap(100))
        ended += 100
    asyncio.run(flap(100))
    ended += 100
    assert history.stat().st_size < HISTORY_BYTES
    assert rotated(history).stat().st_size < HISTORY_BYTES + 4096
    past = read_history(journal_path, limit=500)
    assert len(past) == 500 < ended
    assert [a.since for a in past] == sorted((a.since for a in past), reverse=True)
    assert past[0].since == clock.utcnow() - timedelta(seconds=30)


STEPS = st.lists(
    st.tuples(
        st.sets(st.sampled_from(["down", "lag", "link"])),  # the conditions true now
        st.booleans(),  # ack whatever fires
        st.booleans(),  # restart before this step
    ),
    max_size=25,
)


@given(STEPS)
def test_history_is_every_ended_episode_across_restarts(steps: list[Any]) -> None:
    """Whatever fires, ends, escalates, is acked, and however often noc restarts (with
    a journal compacted at every record), the history lists every episode that ended,
    newest first, each with the last ack it had."""
    import tempfile

    conditions = {"down": DOWN, "lag": LAG, "link": LINK}
    with tempfile.TemporaryDirectory() as directory:
        journal_path = Path(directory) / "alerts.jsonl"
        clock = FakeClock(EVENING)
        ended: dict[str, Alert] = {}
        last_ack: dict[str, str] = {}

        async def life() -> None:
            book = AlertBook(clock)
            journal = AlertJournal(journal_path, clock, compact_bytes=1)
            journal.restore(book)
            for true_now, ack, restart in steps:
                if restart:
                    book = AlertBook(clock)
                    journal = AlertJournal(journal_path, clock, compact_bytes=1)
                    journal.restore(book)
                notices = book.evaluate([conditions[name] for name in sorted(true_now)])
                await journal.record(notices)
                for notice in notices:
                    if notice.event in ("resolved", "escalated"):
                        ended[notice.alert.id] = notice.alert
                if ack:
                    for alert in book.firing_episodes():
                        made = book.ack(alert.id, "op@noc1", f"note {clock.utcnow():%H%M%S}")
                        assert made is not None
                        await journal.record_ack(alert.id, made)
                        last_ack[alert.id] = made.note
                clock.advance(61)

        asyncio.run(life())
        past = read_history(journal_path)
        assert {a.id for a in past} == set(ended)
        assert [a.since for a in past] == sorted((a.since for a in past), reverse=True)
        for alert in past:
            assert (alert.ack.note if alert.ack else None) == last_ack.get(alert.id)
            assert alert.escalated_to == ended[alert.id].escalated_to
        history = Path(directory) / HISTORY_FILE
        if history.exists():
            records = [json.loads(line) for line in history.read_text().splitlines()]
            assert len({r["alert"]["id"] for r in records}) == len(records)


async def test_e_opens_the_episode_it_escalated_to(tmp_path: Path) -> None:
    await asyncio.to_thread(write_history, tmp_path)  # it runs a loop of its own
    app = make_app(tmp_path, "ro-down")
    async with app.run_test(size=(80, 24)) as pilot:
        history = await open_history(pilot)
        ids = [a.id for a in history.episodes]
        history.query_one("#history").move_cursor(row=ids.index(ids[1]))  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AlertDetailScreen))
        lag = app.screen
        assert isinstance(lag, AlertDetailScreen) and lag.alert_id.startswith(LAG.id)
        await pilot.press("e")
        await until(pilot, lambda: app.screen is not lag)
        link = app.screen
        assert isinstance(link, AlertDetailScreen) and link.alert_id == ids[0]
        await until(pilot, lambda: link._story_loaded)
        assert [words for _, words in link.story.steps] == [
            "condition became true (pending)",
            f"firing (took over from {LAG.id})",
            "resolved",
        ]
        await pilot.press("p")  # and back to where it came from
        await until(pilot, lambda: app.screen is not link)
        assert isinstance(app.screen, AlertDetailScreen) and app.screen.alert_id == lag.alert_id


def test_every_rule_has_a_next_step_on_the_command_line_too() -> None:
    from noc.next_steps import CLI_STEPS

    assert set(RULES) <= set(CLI_STEPS)
