"""The drill schedule on the dashboard: the next drill's date and mode in the status
bar, and an overdue drill as a warning alert (with its next step)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import estate_config, feed_flags, feed_round
from test_app_snapshots import SIZES
from textual.pilot import Pilot

from noc.app import NocApp
from noc.clock import FakeClock
from noc.drills import write_report
from noc.model import AlertState, Interface, Severity
from noc.next_steps import builtin_step
from noc.simulator import RedisServer
from noc_widgets.status_bar import StatusBar

# FakeClock's wall starts on 2026-11-23.


def make_app(tmp_path: Path, stores: list[RedisServer], **drills: object) -> NocApp:
    urls = dict(zip(("ro", "bg", "pa"), (s.url for s in stores), strict=True))
    clock = FakeClock()
    config = estate_config(urls, drills=drills) if drills else estate_config(urls)
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    feed_round(app.scheduler.engine, clock)
    return app


async def test_an_overdue_drill_is_a_warning_and_loud_in_the_status_bar(
    tmp_path: Path, redis_servers: Callable[..., list[RedisServer]]
) -> None:
    # Onboarded in August: the first drill was due within 60 days, on 2026-09-30.
    app = make_app(tmp_path, redis_servers(3), onboarded="2026-08-01")
    async with app.run_test(size=(160, 40)) as pilot:
        await app.scheduler.evaluate_alerts()
        app.refresh_snapshot()
        await pilot.pause()
        alert = next(a for a in app.snapshot().alerts if a.rule == "drill_overdue")
        assert alert.severity is Severity.WARNING and alert.state is AlertState.FIRING
        assert alert.summary == "drill OVERDUE since 2026-09-30: region_down"
        assert "noc drill run" in builtin_step(alert.rule, alert.region, Interface.DASHBOARD, {})
        assert "⏲ DRILL OVERDUE region_down" in str(app.query_one(StatusBar).render())


async def test_the_status_bar_names_the_next_drill_after_the_last_one(
    tmp_path: Path, redis_servers: Callable[..., list[RedisServer]]
) -> None:
    report = {"id": "drill-20261101T100000Z-region_down-ro", "mode": "region_down",
              "region": "ro", "started_at": "2026-11-01T10:00:00Z", "met": True, "steps": [],
              "deviations": [], "timeline": [], "rto_target_s": 300, "rpo_target_s": 60,
              **{f"{p}_s": 1.0 for p in ("detect", "declare", "route", "restore", "verify",
                                         "rto", "rpo")}}  # fmt: skip
    write_report(tmp_path, report, kept=10)
    app = make_app(tmp_path, redis_servers(3))
    async with app.run_test(size=(160, 40)) as pilot:
        await app.scheduler.evaluate_alerts()
        app.refresh_snapshot()
        await pilot.pause()
        assert "⏲ drill 2027-01-31 partition" in str(app.query_one(StatusBar).render())
        assert not any(a.rule == "drill_overdue" for a in app.snapshot().alerts)


async def test_no_onboarding_date_and_no_drill_shows_no_schedule(
    tmp_path: Path, redis_servers: Callable[..., list[RedisServer]]
) -> None:
    app = make_app(tmp_path, redis_servers(3))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        assert "drill" not in str(app.query_one(StatusBar).render()).lower()


@pytest.mark.parametrize("size", SIZES)
def test_an_overdue_drill_on_the_screen(
    snap_compare: Any,
    tmp_path: Path,
    redis_servers: Callable[..., list[RedisServer]],
    size: tuple[int, int],
) -> None:
    """The status bar's drill and its warning in the alert pane, at 80x24 and wall size."""
    app = make_app(tmp_path, redis_servers(3), onboarded="2026-08-01")
    assert isinstance(app.clock, FakeClock)
    feed_flags(app.scheduler.engine, app.clock, "ro")

    async def overdue(pilot: Pilot[None]) -> None:
        await app.scheduler.evaluate_alerts()
        app.refresh_snapshot()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=overdue)
