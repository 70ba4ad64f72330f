"""The wall's map at wall sizes: region labels sit over the sea, never over land.

Checked twice at each size: from the map's own geometry (every label's row cells
are sea cells of the land layer the widget draws) and from the rendered screen
(no Braille land dot between a label's blank ends).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_alert_views import screen_text
from test_wall import wall_app

from noc_widgets.region_map import RegionMap, land_cells, layout_regions

WALL_SIZES = [(160, 45), (200, 60), (240, 67), (120, 40)]
SNAPSHOT_SIZES = [pytest.param(size, id=f"{size[0]}x{size[1]}") for size in WALL_SIZES[::2]]


def is_land_dot(char: str) -> bool:
    return 0x2801 <= ord(char) <= 0x28FF


@pytest.mark.parametrize("size", WALL_SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
async def test_labels_never_cover_the_land(tmp_path: Path, size: tuple[int, int]) -> None:
    app = wall_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        region_map = app.query_one(RegionMap)
        assert region_map.display and region_map.snapshot is not None
        width, height = region_map.content_size
        layout = layout_regions(region_map.snapshot.regions, width, height)
        assert layout is not None, "the map is shown, not the list"
        land = land_cells(width, height)
        lines = screen_text(app).splitlines()
        origin = region_map.content_region
        for label, placement in zip(layout.labels, layout.placements, strict=True):
            cells = placement.row_cells(label.cell_length)
            assert cells.isdisjoint(land), (label.plain, sorted(cells & land))
            first, last = placement.padded(label.cell_length)
            drawn = lines[origin.y + placement.y][origin.x + first : origin.x + last + 1]
            assert label.plain in drawn
            assert not any(is_land_dot(char) for char in drawn), drawn


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_wall_map_snapshot(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(wall_app(tmp_path), terminal_size=size)
