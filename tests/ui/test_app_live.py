"""The screen follows the data: samples that arrive after the app is up reach every
widget. (Snapshot tests feed the engine before mounting; this feeds it afterwards.)"""

from __future__ import annotations

from pathlib import Path

from support import HTTP_503, estate_config, feed_round

from noc.app import NocApp
from noc.clock import FakeClock
from noc_widgets.alert_pane import AlertPane
from noc_widgets.health_table import HealthTable
from noc_widgets.region_list import RegionList
from noc_widgets.status_bar import StatusBar


async def test_widgets_follow_new_samples(tmp_path: Path) -> None:
    clock = FakeClock()
    app = NocApp(estate_config(), clock=clock, start_polling=False, state_path=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.query_one(HealthTable)
        assert str(table.get_row_at(0)[2]) == "? unknown"
        for _ in range(3):
            feed_round(app.scheduler.engine, clock, {"bg": HTTP_503})
        await app.scheduler.evaluate_alerts()
        app.refresh_snapshot()
        await pilot.pause()
        health = {
            table.get_row_at(i)[0]: str(table.get_row_at(i)[2]) for i in range(table.row_count)
        }
        assert health == {"ro": "✓ healthy", "bg": "✗ down", "pa": "✓ healthy"}
        assert "✗ down" in str(app.query_one(RegionList).render())
        assert "1 crit" in str(app.query_one(StatusBar).render())
        pane = app.query_one(AlertPane)
        assert "bg down" in str(pane.get_row_at(0)[2])
