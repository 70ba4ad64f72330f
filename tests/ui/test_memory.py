"""What a dashboard that runs for weeks keeps: bounded by what is on screen, not by time.

The demo soak (bench/soak.py) found the growth; these pin each cause down on the
real widgets, fast.
"""

from __future__ import annotations

import gc
from pathlib import Path

from support import HTTP_503, estate_config, feed_round
from textual.widgets._footer import FooterKey

from noc.app import NocApp
from noc.clock import FakeClock
from noc_widgets.footer import NocFooter
from noc_widgets.health_table import HealthTable

# Enough updates for the old growth (a table's worth of cells per update) to break the
# bound of twice what is shown; more rounds only cost time.
ROUNDS = 12
# Likewise for screens opened and closed: the old growth was a footer's keys per screen.
SCREENS = 6
# The style caches of closed screens pile up only as the garbage collector leaves them:
# enough screens that some always do.
CACHE_SCREENS = 20


async def test_health_table_keeps_only_the_renders_of_what_it_shows(tmp_path: Path) -> None:
    clock = FakeClock()
    app = NocApp(estate_config(), clock=clock, start_polling=False, state_path=tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(HealthTable)
        for round_number in range(ROUNDS):
            # bg fails every other round: its cells change each time, as ages and
            # latencies do on a live dashboard.
            feed_round(app.scheduler.engine, clock, {"bg": HTTP_503} if round_number % 2 else {})
            app.refresh_snapshot()
            await pilot.pause()
        shown_cells = (table.row_count + 1) * len(table.columns)
        # DataTable's private caches, read because they are what grew: before the fix,
        # about one table's worth of cells per update, up to 10,000.
        assert len(table._cell_render_cache) <= 2 * shown_cells
        assert len(table._row_render_cache) <= 2 * (table.row_count + 1)
        assert len(table._line_cache) <= 2 * table.size.height


async def test_footer_lets_go_of_the_keys_it_replaced(tmp_path: Path) -> None:
    app = NocApp(estate_config(), clock=FakeClock(), start_polling=False, state_path=tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(SCREENS):  # each screen change rebuilds the footer's keys
            await pilot.press("question_mark")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
        footer = app.query_one(NocFooter)
        live = len(footer.query(FooterKey))
        # Textual's watcher list of `compact` (private: it is what grew): one entry per
        # key ever shown before the fix, every screen's worth; now the live keys only.
        watchers = getattr(footer, "__watchers")["compact"]
        assert len(watchers) <= live + 1
        gc.collect()
        orphans = [w for w in gc.get_objects() if isinstance(w, FooterKey) and not w.is_attached]
        assert len(orphans) <= live


async def test_closed_views_do_not_outlive_the_style_cache_trim(tmp_path: Path) -> None:
    """Textual's class-wide background-style cache holds the style cache of every
    widget it has styled, closed ones included, up to 1,024: the app empties it now
    and then, so what stays is what is on screen."""
    from textual._styles_cache import StylesCache

    from noc.app import _trim_style_cache

    def style_caches() -> int:
        gc.collect()
        return sum(1 for thing in gc.get_objects() if isinstance(thing, StylesCache))

    app = NocApp(estate_config(), clock=FakeClock(), start_polling=False, state_path=tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        # The cache is class-wide and bounded (1,024): earlier tests in this process may
        # have filled it, and then nothing more piles up to be seen. Start it empty.
        _trim_style_cache()
        on_screen = style_caches()
        for _ in range(CACHE_SCREENS):
            await pilot.press("question_mark")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
        piled_up = style_caches()
        _trim_style_cache()
        trimmed = style_caches()
    assert piled_up > on_screen  # the closed help screens' widgets, kept by the cache
    assert trimmed <= on_screen + 5
