"""Maintenance windows from the dashboard, driven with Pilot: `M` opens the dialog on
the highlighted region, the window goes through the operations layer (the same path
as `noc maintenance add`, audited), and the region map and alert pane say so."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from failover_support import until
from support import REFUSED, estate_config, feed_flags, feed_round
from test_app_snapshots import SIZES
from textual.screen import ModalScreen
from textual.widgets import Button, Input

from noc.app import NocApp
from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc_widgets.alert_pane import summary_cell
from noc_widgets.maintenance_dialog import MaintenanceDialog
from noc_widgets.region_map import RegionMap


def make_app(tmp_path: Path) -> tuple[NocApp, FakeClock]:
    clock = FakeClock()
    app = NocApp(
        estate_config(redis_urls={}), clock=clock, start_polling=False, state_path=tmp_path
    )
    feed_flags(app.scheduler.engine, clock, "ro")
    for _ in range(4):
        feed_round(app.scheduler.engine, clock, {"bg": REFUSED})
    return app, clock


def audit_events(tmp_path: Path) -> list[str]:
    return [r["event"] for r in read_jsonl(tmp_path / "audit.jsonl").records]


async def test_m_opens_a_window_on_the_selected_region_and_the_screen_says_so(
    tmp_path: Path,
) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.scheduler.evaluate_alerts()
        app.selected_region = "bg"
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceDialog))
        dialog = app.screen
        assert isinstance(dialog, MaintenanceDialog)
        assert dialog.query_one("#region", Input).value == "bg"
        confirm = dialog.query_one("#confirm", Button)
        assert confirm.disabled  # no reason yet
        dialog.query_one("#duration", Input).value = "9d"
        await pilot.press(*"disk swap")
        await pilot.pause()
        assert confirm.disabled and "at most 7 days" in str(dialog.query_one("#problem").render())
        dialog.query_one("#duration", Input).value = "45m"
        await pilot.pause()
        assert not confirm.disabled
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, ModalScreen))
        await until(pilot, lambda: "maintenance_add" in audit_events(tmp_path))
        window = app.snapshot().region("bg").maintenance  # type: ignore[union-attr]
        assert window is not None and window.reason == "disk swap"
        assert window.ends_at - window.starts_at == timedelta(minutes=45)
        app.refresh_snapshot()
        await pilot.pause()
        assert "MAINT" in str(app.query_one(RegionMap).render())
        bg_alerts = [a for a in app.snapshot().alerts if a.region == "bg"]
        assert bg_alerts and all(a.maintenance == window.id for a in bg_alerts)
        assert "MAINT" in str(summary_cell(bg_alerts[0], 60))

        # M again on bg offers to end it; ending is audited and the mark goes.
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceDialog))
        await pilot.click("#end")
        await until(pilot, lambda: "maintenance_end" in audit_events(tmp_path))
        assert app.snapshot().region("bg").maintenance is None  # type: ignore[union-attr]
    assert audit_events(tmp_path) == [
        "maintenance_add_intent", "maintenance_add", "maintenance_end_intent", "maintenance_end",
    ]  # fmt: skip


async def test_a_read_only_dashboard_offers_no_maintenance(tmp_path: Path) -> None:
    clock = FakeClock()
    app = NocApp(
        estate_config(redis_urls={}), clock=clock, start_polling=False, state_path=tmp_path,
        read_only=True,
    )  # fmt: skip
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("M")
        await pilot.pause()
        assert not isinstance(app.screen, MaintenanceDialog)
    assert not (tmp_path / "maintenance.jsonl").exists()


def maintenance_app(tmp_path: Path) -> NocApp:
    """ro down inside a maintenance window, as the snapshots show it."""
    from test_app_snapshots import make_app

    from noc.maintenance import window_json
    from noc.model import MaintenanceWindow

    app = make_app(tmp_path, "ro-down")
    now = app.clock.utcnow()
    window = MaintenanceWindow(
        "w0000001", "ro", now - timedelta(minutes=5), now + timedelta(hours=2),
        "kernel upgrade", "op@noc1", now - timedelta(minutes=5),
    )  # fmt: skip
    app.scheduler.engine.maintenance.apply({"event": "add", "window": window_json(window)})
    return app


@pytest.mark.parametrize("size", SIZES)
def test_a_region_in_maintenance(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(maintenance_app(tmp_path), terminal_size=size)
