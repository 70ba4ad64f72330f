"""The alert pane with `[alerts] group_by = ["region"]`: groups first, worst on top,
folded to one row each at 80x24; Enter opens a group (its members under it) and
Enter on a member opens its detail, as on any alert.

The estate: replication and suppression data with ro down and pa degraded (pa's
link, complaints and checks: three alerts; bg's lag and sync: two), under a frozen
clock so each picture is the same from run to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import REFUSED, TIMEOUT, estate_config, feed_data, feed_flags, feed_round
from support import with_replication as replicated
from test_app_snapshots import SIZES
from textual.pilot import Pilot

from noc.app import NocApp
from noc.clock import FakeClock
from noc.grouping import group_alerts
from noc.model import Severity
from noc_widgets.alert_detail import AlertDetailScreen
from noc_widgets.alert_pane import AlertPane


def grouped_app(tmp_path: Path) -> NocApp:
    clock = FakeClock()
    config = replicated(estate_config(alerts={"group_by": ["region"]}))
    app = NocApp(
        config, clock=clock, start_polling=False, state_path=tmp_path, config_path="noc.toml"
    )
    engine = app.scheduler.engine
    feed_data(engine, clock)
    feed_round(engine, clock)
    feed_flags(engine, clock, "ro")
    for _ in range(3):
        feed_round(engine, clock, {"ro": REFUSED, "pa/1": TIMEOUT})
    clock.advance(-25)
    engine.evaluate_alerts()
    return app


async def open_pa(pilot: Pilot[None]) -> None:
    pane = pilot.app.query_one(AlertPane)
    pane.toggle_group("group:region=pa")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_groups_first(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(grouped_app(tmp_path), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_a_group_opened(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(grouped_app(tmp_path), terminal_size=size, run_before=open_pa)


async def test_groups_lead_the_pane_and_enter_opens_one_then_a_members_detail(
    tmp_path: Path,
) -> None:
    app = grouped_app(tmp_path)
    groups = group_alerts(app.snapshot().alerts, ("region",))
    pa = next(g for g in groups if g.key == "group:region=pa")
    assert pa.severity is Severity.CRITICAL  # its worst member's
    assert len(pa.members) == 3
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(AlertPane)
        pane.focus()
        await pilot.pause()
        keys = [key for key, _ in pane._shown]
        # Groups of two or more first, worst first (then the longest firing); then
        # the lone alerts, as before.
        assert keys[:2] == [g.key for g in groups if len(g.members) > 1]
        assert all(g.severity is Severity.CRITICAL for g in groups[:2])
        assert "region_down:ro" in keys[2]
        pane.move_cursor(row=keys.index(pa.key))
        await pilot.press("enter")
        await pilot.pause()
        keys = [key for key, _ in pane._shown]
        at = keys.index(pa.key)
        assert keys[at + 1 : at + 4] == [m.id for m in pa.members]
        pane.move_cursor(row=at + 1)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AlertDetailScreen)
        await pilot.press("escape")
        await pilot.pause()
        pane.move_cursor(row=at)
        await pilot.press("enter")  # folds it again
        await pilot.pause()
        assert not set(m.id for m in pa.members) & {key for key, _ in pane._shown}


def test_a_group_row_carries_its_next_step() -> None:
    from datetime import timedelta

    from noc_widgets.alert_pane import group_row

    app = grouped_app(Path("/nonexistent-never-written"))
    groups = group_alerts(app.snapshot().alerts, ("region",))
    pa = next(g for g in groups if g.key == "group:region=pa")
    now = pa.since + timedelta(minutes=3)
    wide = group_row(pa, now, 200, expanded=False, keys={"lag_detail": "l"})
    assert "→ the replica no longer follows its source" in str(wide[2])
    assert "region pa: 3 alerts" in str(wide[2])
    assert str(wide[1]) == "▸ 3 firing"
    narrow = group_row(pa, now, 40, expanded=True)
    assert narrow[2].cell_length <= 40 and str(narrow[1]).startswith("▾")
