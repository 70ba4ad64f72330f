"""The dashboard survives its own parts failing, and leaves cleanly.

- a pane that raises while applying a snapshot is marked, logged and retried; the
  rest of the screen goes on following the data;
- a worker that raises is said on screen and in the log;
- keys typed after `q` never touch a view that is being taken down.

A failing pane is a real widget with one method made to raise (fault injection):
nothing else is replaced.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from failover_support import until
from support import (
    HTTP_503,
    estate_config,
    feed_data,
    feed_dns,
    feed_round,
    with_dns,
    with_replication,
)
from textual import events
from textual.pilot import Pilot

from noc.app import OPERATOR_GROUP, NocApp
from noc.clock import FakeClock
from noc.model import EstateSnapshot
from noc_widgets.alert_pane import AlertPane
from noc_widgets.banner import Banner
from noc_widgets.health_table import HealthTable


def make_app(tmp_path: Path, *, data: bool = False) -> tuple[NocApp, FakeClock]:
    clock = FakeClock()
    config = with_dns(with_replication(estate_config())) if data else estate_config()
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    feed_round(app.scheduler.engine, clock)
    if data:
        feed_data(app.scheduler.engine, clock)
        feed_dns(app.scheduler.engine, clock)
    return app, clock


def health(app: NocApp) -> dict[str, str]:
    table = app.query_one(HealthTable)
    return {table.get_row_at(i)[0]: str(table.get_row_at(i)[2]) for i in range(table.row_count)}


def errors_notified(app: NocApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


async def test_a_failing_pane_is_marked_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app, clock = make_app(tmp_path)
    drawn = AlertPane.watch_snapshot

    def broken(pane: AlertPane, snapshot: EstateSnapshot | None) -> None:
        # As a drawing bug would: with a snapshot to draw, not with none.
        if snapshot is not None:
            raise KeyError("region_down:bg")

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        monkeypatch.setattr(AlertPane, "watch_snapshot", broken)
        with caplog.at_level(logging.ERROR, logger="noc"):
            for _ in range(3):
                feed_round(app.scheduler.engine, clock, {"bg": HTTP_503})
            await app.scheduler.evaluate_alerts()
            app.refresh_snapshot()
            await pilot.pause()
            # The same failure once more: logged once, not with every snapshot.
            app.refresh_snapshot()
            await pilot.pause()
        pane = app.query_one(AlertPane)
        assert pane.has_class("-pane-failed")
        title = str(pane.border_title)
        assert "alert pane failed at" in title and "UTC: KeyError" in title, title
        assert "see noc.log" in title
        banner = app.query_one(Banner)
        assert banner.has_class("-shown")
        assert "alert pane failed at" in str(banner.render())
        assert any("alert pane failed" in message for message in errors_notified(app))
        failures = [r for r in caplog.records if "failed to draw" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info is not None
        # Every other pane followed the data.
        assert health(app)["bg"] == "✗ down"
        assert app._exception is None
        # Fixed (here: the method back): the next snapshot retries it and the marks go.
        monkeypatch.setattr(AlertPane, "watch_snapshot", drawn)
        app.refresh_snapshot()
        await pilot.pause()
        assert not pane.has_class("-pane-failed")
        assert pane.border_title is None
        assert "failed" not in str(banner.render())
        assert "bg down" in str(pane.get_row_at(0)[2])
    assert app._exception is None


async def test_a_worker_that_raises_is_reported_not_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = make_app(tmp_path)

    async def planner_bug() -> None:
        raise ValueError("no such region in the plan")

    async with app.run_test(size=(120, 40)) as pilot:
        with caplog.at_level(logging.ERROR, logger="noc"):
            app.run_worker(planner_bug(), name="failover", group=OPERATOR_GROUP,
                           exit_on_error=False)  # fmt: skip
            await until(pilot, lambda: bool(errors_notified(app)))
        assert "failover failed: ValueError: no such region in the plan" in errors_notified(app)[0]
        logged = [r for r in caplog.records if r.getMessage() == "failover failed"]
        assert logged and logged[0].exc_info is not None
    assert app._exception is None


async def test_pressing_f_with_an_unusable_state_dir_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit cannot be written (its path is a directory): the action's worker
    raises, and the operator sees it instead of nothing."""
    app, _ = make_app(tmp_path)
    (tmp_path / "audit.jsonl").mkdir()
    async with app.run_test(size=(120, 40)) as pilot:
        with caplog.at_level(logging.ERROR, logger="noc"):
            await pilot.press("f")
            await until(pilot, lambda: bool(errors_notified(app)))
        # The record names its file (a directory here) instead of a bare IsADirectoryError.
        assert "cannot write a record to" in errors_notified(app)[0]
        assert any(r.exc_info for r in caplog.records)
    assert app._exception is None


VIEW_KEYS = ["u", "n", "d", "l"]  # suppression, DNS, deliverability, lag


async def press_at_once(pilot: Pilot[None], *keys: str) -> None:
    """Keys queued together, as a terminal delivers a fast typist's: the second is
    handled while the first one's effect (an exit) is under way."""
    for key in keys:
        pilot.app.post_message(events.Key(key, key))
    await pilot.pause()
    await pilot.pause()


@pytest.mark.parametrize("view", VIEW_KEYS)
async def test_a_view_key_right_after_q_is_ignored(tmp_path: Path, view: str) -> None:
    app, _ = make_app(tmp_path, data=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await press_at_once(pilot, "q", view)
    assert app._exception is None
    assert app.return_code == 0


@pytest.mark.parametrize("view", VIEW_KEYS)
async def test_quitting_from_a_view_while_snapshots_arrive(tmp_path: Path, view: str) -> None:
    app, clock = make_app(tmp_path, data=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(view)
        await pilot.pause()
        assert app.screen is not app.screen_stack[0]
        feed_round(app.scheduler.engine, clock, {"bg": HTTP_503})
        await press_at_once(pilot, "q")
        # Poll results and timers still arriving during the shutdown.
        for _ in range(3):
            app._engine_changed()
            app.refresh_snapshot()
    assert app._exception is None


async def test_the_dashboard_under_a_detail_view_stays_current(tmp_path: Path) -> None:
    """The main screen is fed while a view is on top: back on it, nothing is stale."""
    app, clock = make_app(tmp_path, data=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("u")
        await pilot.pause()
        for _ in range(3):
            feed_round(app.scheduler.engine, clock, {"bg": HTTP_503})
        app.refresh_snapshot()
        await pilot.press("escape")
        await pilot.pause()
        assert health(app)["bg"] == "✗ down"
