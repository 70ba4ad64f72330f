"""The main screen in every theme, both layouts, wall mode, the region board, a slow
link and NO_COLOR, each at 80x24 (SSH) and 200x60 (wall screen).

The estate shows every health at once (ro down and active, bg healthy, pa
degraded); the clock is frozen, so each picture is the same from run to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import estate_config
from test_app_snapshots import SIZES, make_app
from textual.pilot import Pilot

from noc_themes import THEMES


def app_with(tmp_path: Path, read_only: bool = False, **ui: Any) -> Any:
    return make_app(tmp_path, "ro-down", config=estate_config(ui=ui), read_only=read_only)


async def next_view(pilot: Pilot[None]) -> None:
    await pilot.press("v")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("theme", list(THEMES))
def test_every_theme(snap_compare: Any, tmp_path: Path, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(tmp_path, theme=theme), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_wall_mode(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = app_with(tmp_path, read_only=True, mode="wall", theme="wall")
    assert snap_compare(app, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_region_board(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_with(tmp_path), terminal_size=size, run_before=next_view)


@pytest.mark.parametrize("size", SIZES)
def test_mail_flow_view(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """Queues, rejections and MTA-STS per region: bg's held queue and 5xx spike in the
    alerts' colours, pa's exporter unreachable and its MX outside the policy."""

    async def third_view(pilot: Pilot[None]) -> None:
        await next_view(pilot)
        await next_view(pilot)

    app = make_app(tmp_path, "mail")
    assert snap_compare(app, terminal_size=size, run_before=third_view)


def test_wall_mode_region_board_paused(snap_compare: Any, tmp_path: Path) -> None:
    app = app_with(tmp_path, read_only=True, mode="wall")
    assert snap_compare(app, terminal_size=(200, 60), run_before=next_view)


def test_low_bandwidth_clocks_have_no_seconds(snap_compare: Any, tmp_path: Path) -> None:
    app = app_with(tmp_path, read_only=True, mode="wall", low_bandwidth=True)
    assert snap_compare(app, terminal_size=(80, 24))


def test_no_color(snap_compare: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(app_with(tmp_path), terminal_size=(80, 24))
