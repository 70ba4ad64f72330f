"""Wall mode: read-only, no footer, views rotate (paused by any key), a big clock, and a
critical banner that never flashes faster than the photosensitivity limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import HTTP_503, estate_config, feed_round
from test_app_snapshots import make_app as make_state
from textual.widgets import Digits, Footer

from noc.app import NocApp, verdicts
from noc.check import Status, verdict
from noc.clock import FakeClock
from noc.rotation import PAUSE_SECONDS, Rotation
from noc_widgets.critical_banner import PULSE_SECONDS, CriticalBanner
from noc_widgets.mail_flow import MailFlowView
from noc_widgets.region_board import RegionBoard
from noc_widgets.wall_header import WallHeader

ROTATE = 20.0


def test_rotation_moves_on_when_the_period_is_up() -> None:
    rotation = Rotation(["estate", "regions"], ROTATE, now=0)
    assert not rotation.tick(ROTATE - 1)
    assert rotation.tick(ROTATE)
    assert rotation.current == "regions"
    assert rotation.tick(2 * ROTATE)
    assert rotation.current == "estate"


def test_a_key_pauses_the_rotation_until_the_screen_is_left_alone() -> None:
    rotation = Rotation(["estate", "regions"], ROTATE, now=0)
    rotation.key_pressed(5)
    assert not rotation.tick(ROTATE + 10)
    assert rotation.paused(5 + PAUSE_SECONDS - 1)
    # Resuming gives the view on screen a full period before it moves on.
    assert not rotation.tick(5 + PAUSE_SECONDS)
    assert not rotation.tick(5 + PAUSE_SECONDS + ROTATE - 1)
    assert rotation.tick(5 + PAUSE_SECONDS + ROTATE)


def test_showing_a_view_restarts_its_period() -> None:
    rotation = Rotation(["estate", "regions"], ROTATE, now=0)
    rotation.show("regions", 15)
    assert rotation.seconds_left(15) == ROTATE
    assert not rotation.tick(30)


def wall_app(tmp_path: Path, **ui: Any) -> NocApp:
    config = estate_config(ui={"mode": "wall", "rotate_seconds": ROTATE, **ui})
    return make_state(tmp_path, "ro-down", config=config, read_only=True)


def fake_clock(app: NocApp) -> FakeClock:
    assert isinstance(app.clock, FakeClock)
    return app.clock


async def test_wall_mode_rotates_and_any_key_pauses(tmp_path: Path) -> None:
    app = wall_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        assert not app.query_one(Footer).display
        assert not app.query_one(RegionBoard).display
        # The rotation's once-a-second tick is run here rather than waited for, so that
        # the result does not depend on how busy the machine is.
        fake_clock(app).advance(ROTATE)
        app._rotate()
        await pilot.pause()
        assert app.query_one(RegionBoard).display
        assert not app.query_one("#estate").display
        await pilot.press("left_square_bracket")
        fake_clock(app).advance(ROTATE)
        app._rotate()
        app.refresh_snapshot()
        await pilot.pause()
        assert app.query_one(RegionBoard).display, "a key paused the rotation"
        assert "paused" in app.query_one(WallHeader).rotation


async def test_wall_clock_has_seconds_except_on_a_slow_link(tmp_path: Path) -> None:
    for low_bandwidth, shown in ((False, "03:01:35"), (True, "03:01")):
        app = wall_app(tmp_path, low_bandwidth=low_bandwidth)
        async with app.run_test(size=(120, 40)):
            assert app.query_one(Digits).value == shown


async def test_critical_banner_changes_at_most_once_a_second(tmp_path: Path) -> None:
    app = wall_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        banner = app.query_one(CriticalBanner)
        assert banner.has_class("-shown")
        clock = fake_clock(app)
        changes, lit = 0, banner.has_class("-lit")
        # Ten seconds of repaints at 20 a second, far above any refresh ceiling.
        for _ in range(200):
            clock.advance(0.05)
            app.refresh_snapshot()
            if banner.has_class("-lit") != lit:
                changes, lit = changes + 1, not lit
        await pilot.pause()
        assert PULSE_SECONDS >= 1 / 3
        assert 5 <= changes <= 10 / PULSE_SECONDS


async def test_banner_holds_still_on_a_slow_link(tmp_path: Path) -> None:
    app = wall_app(tmp_path, low_bandwidth=True)
    async with app.run_test(size=(120, 40)):
        banner = app.query_one(CriticalBanner)
        for _ in range(30):
            fake_clock(app).advance(0.5)
            app.refresh_snapshot()
            assert banner.has_class("-shown") and not banner.has_class("-lit")


async def test_no_critical_banner_when_only_a_secondary_is_degraded(tmp_path: Path) -> None:
    app = wall_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        engine = app.scheduler.engine
        for _ in range(3):
            feed_round(engine, fake_clock(app), {"bg/1": HTTP_503})
        app.refresh_snapshot()
        await pilot.pause()
        assert verdict(app.snapshot()).status is Status.WARNING
        assert not app.query_one(CriticalBanner).has_class("-shown")


async def test_v_shows_the_next_view_in_any_mode(tmp_path: Path) -> None:
    app = make_state(tmp_path, "ro-down")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("v")
        await pilot.pause()
        board = app.query_one(RegionBoard)
        assert board.display and board.snapshot is not None
        assert board.snapshot.generated_at == app.clock.utcnow()
        await pilot.press("v")
        await pilot.pause()
        mail = app.query_one(MailFlowView)
        assert mail.display and not board.display and mail.snapshot is not None
        await pilot.press("v")
        await pilot.pause()
        assert app.query_one("#estate").display and not board.display and not mail.display


def test_only_what_an_operator_acts_on_repaints_at_once(tmp_path: Path) -> None:
    app = make_state(tmp_path, "normal")
    clock, engine = fake_clock(app), app.scheduler.engine
    before = verdicts(app.snapshot())
    clock.advance(7)
    feed_round(engine, clock)  # new latencies and ages: drift, shown at the next tick
    assert verdicts(app.snapshot()) == before
    feed_round(engine, clock, {"bg/1": HTTP_503})  # a failure: shown now
    assert verdicts(app.snapshot()) != before
