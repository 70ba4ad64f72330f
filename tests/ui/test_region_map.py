"""The region map and the compact region list: land mask, projection, labels, rendering."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import combinations

import pytest
from textual.app import App, ComposeResult
from textual.widget import Widget

from noc.model import (
    Authority,
    EstateSnapshot,
    Health,
    RegionStatus,
    Role,
    StoreStatus,
    Topology,
)
from noc_widgets.landmask import is_land, land_mask, parse
from noc_widgets.region_list import RegionList, region_lines
from noc_widgets.region_map import (
    LAT_BOTTOM,
    LAT_TOP,
    RegionMap,
    land_cells,
    land_layer,
    layout_regions,
    place_labels,
    place_markers,
    project,
)

BUCHAREST = (44.43, 26.10)
SOFIA = (42.70, 23.32)
PANAMA = (8.98, -79.52)
HONG_KONG = (22.32, 114.17)
SINGAPORE = (1.35, 103.82)


def region(
    region_id: str,
    name: str,
    location: tuple[float, float],
    health: Health = Health.HEALTHY,
    *,
    role: Role = Role.SECONDARY,
    active: bool = False,
    store_reachable: bool | None = True,
) -> RegionStatus:
    return RegionStatus(
        id=region_id,
        name=name,
        role=role,
        location=location,
        health=health,
        checks=(),
        store=StoreStatus(
            region_id=region_id,
            reachable=store_reachable,
            flag=None,
            error=None if store_reachable is not False else "connection refused",
            age_seconds=2.0,
        ),
        is_active=active,
    )


def estate(*regions: RegionStatus) -> EstateSnapshot:
    active = next((r.id for r in regions if r.is_active), None)
    return EstateSnapshot(
        estate="test",
        topology=Topology.ACTIVE_PASSIVE,
        generated_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        regions=regions,
        authority=Authority(active_region=active, source="flag", agreeing=(active or "",)),
        cut_off=False,
        cut_off_since=None,
        last_poll_age=1.0,
        stale=False,
    )


FIVE_REGIONS = estate(
    region("ro", "Bucharest", BUCHAREST, role=Role.PRIMARY, active=True),
    region("bg", "Sofia", SOFIA, Health.DEGRADED),
    region("pa", "Panama City", PANAMA, Health.DOWN, store_reachable=False),
    region("hk", "Hong Kong", HONG_KONG),
    region("sg", "Singapore", SINGAPORE, Health.UNKNOWN, store_reachable=None),
)


class WidgetApp(App[None]):
    """A bare app showing one widget, fed one snapshot once mounted."""

    def __init__(self, widget: RegionMap | RegionList, snapshot: EstateSnapshot | None) -> None:
        super().__init__()
        self.widget = widget
        self.initial = snapshot

    def compose(self) -> ComposeResult:
        yield self.widget

    def on_mount(self) -> None:
        self.widget.snapshot = self.initial


def screen_lines(widget: Widget) -> list[str]:
    """What the widget actually drew, row by row, trailing blanks removed."""
    return [widget.render_line(y).text.rstrip() for y in range(widget.size.height)]


# --- the land mask ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "land"),
    [
        (30.0, -40.0, False),  # mid-Atlantic
        (23.0, 10.0, True),  # Sahara
        (*BUCHAREST, True),
        (*SOFIA, True),
        (*PANAMA, True),
        (*HONG_KONG, True),
        (*SINGAPORE, True),  # small island, kept by the coverage threshold
        (0.0, -150.0, False),  # central Pacific
        (-60.0, 0.0, False),  # Southern Ocean
    ],
)
def test_land_and_sea(lat: float, lon: float, land: bool) -> None:
    assert is_land(lat, lon) is land


def test_mask_is_half_degree_and_wraps_longitude() -> None:
    mask = land_mask()
    assert (mask.width, mask.height) == (720, 360)
    assert is_land(40.0, 180.0) == is_land(40.0, -180.0)
    assert is_land(90.0, 0.0) == is_land(89.9, 0.0)  # the pole row, not past it


def test_mask_file_is_validated() -> None:
    with pytest.raises(ValueError, match="magic"):
        parse(b"NOPE\x02\xd0\x01\x68" + zlib.compress(bytes(32400)))
    with pytest.raises(ValueError, match="truncated"):
        parse(b"LMSK\x02\xd0\x01\x68" + zlib.compress(bytes(100)))


# --- projection and the land layer ----------------------------------------------


def test_projection_corners_and_clamping() -> None:
    assert project(LAT_TOP, -180.0, 200, 60) == (0, 0)
    assert project(LAT_BOTTOM + 0.01, 179.99, 200, 60) == (199, 59)
    # Beyond the cropped latitudes a marker sits on the edge, never off the map.
    assert project(89.0, 0.0, 200, 60) == (100, 0)
    assert project(-80.0, 180.0, 200, 60) == (199, 59)


def test_projection_places_cities_where_they_are() -> None:
    width, height = 200, 60
    ro, bg, pa = (project(*p, width, height) for p in (BUCHAREST, SOFIA, PANAMA))
    hk, sg = (project(*p, width, height) for p in (HONG_KONG, SINGAPORE))
    assert ro == (114, 15)  # (26.10 + 180) / 360 * 200, (80 - 44.43) / 138 * 60
    assert pa[0] < ro[0] < hk[0]  # west to east
    assert ro[1] <= bg[1] < hk[1] < pa[1] < sg[1]  # north to south
    assert ro[0] - bg[0] <= 2 and bg[1] - ro[1] <= 1  # neighbours, as the brief warns


def test_land_layer_is_braille_of_the_widget_size() -> None:
    layer = land_layer(120, 40)
    assert len(layer) == 40
    assert {len(row) for row in layer} == {120}
    assert set("".join(layer)) <= {" "} | {chr(c) for c in range(0x2801, 0x2900)}
    sahara_x, sahara_y = project(23.0, 10.0, 120, 40)
    atlantic_x, atlantic_y = project(30.0, -40.0, 120, 40)
    assert layer[sahara_y][sahara_x] == "⣿"
    assert layer[atlantic_y][atlantic_x] == " "
    assert land_layer(120, 40) is layer  # cached per size


# --- markers and labels -------------------------------------------------------


def test_markers_sharing_a_cell_are_pulled_apart() -> None:
    markers = place_markers([(10, 5), (10, 5), (10, 5)], 40)
    assert markers is not None
    assert markers == [(10, 5), (11, 5), (9, 5)]  # sideways, keeping the row


def test_markers_stay_on_the_map() -> None:
    assert place_markers([(0, 0), (0, 0), (0, 0)], 3) == [(0, 0), (1, 0), (2, 0)]
    assert place_markers([(0, 0), (0, 0)], 1) is None


def _assert_no_collisions(layout_width: int, layout_height: int) -> None:
    layout = layout_regions(FIVE_REGIONS.regions, layout_width, layout_height)
    assert layout is not None
    footprints = []
    for marker, label, placement in zip(
        layout.markers, layout.labels, layout.placements, strict=True
    ):
        length = label.cell_length
        assert placement.x >= 0 and placement.x + length <= layout_width
        assert 0 <= placement.y < layout_height
        text_cells = {(x, placement.y) for x in range(placement.x, placement.x + length)}
        assert text_cells.isdisjoint(layout.markers)
        footprint = placement.footprint(length)
        assert marker not in footprint
        footprints.append(footprint)
    for a, b in combinations(footprints, 2):
        assert a.isdisjoint(b)


@pytest.mark.parametrize("size", [(200, 60), (120, 40), (80, 24), (60, 16), (40, 10)])
def test_labels_never_overlap(size: tuple[int, int]) -> None:
    _assert_no_collisions(*size)


def test_neighbouring_labels_sit_beside_their_markers() -> None:
    """ro and bg, one cell apart at 120x40, end up on either side of each other, their
    labels over the sea (leader lines reach it), not over the land they name."""
    layout = layout_regions(FIVE_REGIONS.regions, 120, 40)
    assert layout is not None
    by_id = {
        r.id: (m, p)
        for r, m, p in zip(layout.regions, layout.markers, layout.placements, strict=True)
    }
    (ro_x, _), ro_label = by_id["ro"]
    (bg_x, _), bg_label = by_id["bg"]
    assert ro_label.x > ro_x and bg_label.x < bg_x
    land = land_cells(120, 40)
    for label, placement in zip(layout.labels, layout.placements, strict=True):
        assert placement.row_cells(label.cell_length).isdisjoint(land)


def test_crowded_markers_stack_with_leader_lines() -> None:
    """Five regions in one spot: labels stack above and below, joined by leaders."""
    markers = place_markers([(30, 10)] * 5, 60)
    assert markers is not None
    placements = place_labels(markers, [20] * 5, 60, 20)
    assert placements is not None
    assert any(p.leader for p in placements)
    footprints = [p.footprint(20) for p in placements]
    for a, b in combinations(footprints, 2):
        assert a.isdisjoint(b)
    for placement in placements:
        assert placement.x >= 0 and placement.x + 20 <= 60


def test_labels_that_cannot_fit_give_up() -> None:
    assert place_labels([(5, 1)], [50], 40, 3) is None


def test_active_region_is_placed_first() -> None:
    layout = layout_regions(FIVE_REGIONS.regions, 120, 40)
    assert layout is not None
    assert layout.regions[0].id == "ro"


# --- the region list ----------------------------------------------------------


def test_region_lines_spell_out_as_width_allows() -> None:
    wide = [line.plain for line in region_lines(FIVE_REGIONS.regions, 80)]
    assert wide[0] == "★ ro  Bucharest    primary    ✓ healthy   ACTIVE"
    assert wide[2] == "  pa  Panama City  secondary  ✗ down      store unreachable"
    narrow = [line.plain for line in region_lines(FIVE_REGIONS.regions, 34)]
    assert narrow[0] == "★ ro  P  ✓ healthy   ACTIVE"
    assert narrow[2] == "  pa  S  ✗ down      store ✗"
    assert all(len(line) <= 34 for line in narrow)


def test_region_lines_escape_configured_text() -> None:
    snapshot = estate(region("x1", "[bold]Evil[/]\nCity", (0.0, 0.0), active=True))
    (line,) = region_lines(snapshot.regions, 80)
    assert "[bold]Evil[/] City" in line.plain


# --- the widgets in an app ----------------------------------------------------


async def test_map_shows_every_region_health_and_the_active_one() -> None:
    app = WidgetApp(RegionMap(), FIVE_REGIONS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        lines = screen_lines(app.widget)
    text = "\n".join(lines)
    # The labels sit over the sea, joined to their markers by leader lines.
    assert sum(line.count("★") for line in lines) == 1
    # Five labels fit over the sea at this size only in their short spelling.
    for label in (
        "ro P ✓ healthy ACTIVE",
        "bg S ▲ degraded",
        "pa S ✗ down store ✗",
        "hk S ✓ healthy",
        "sg S ? unknown",
    ):
        assert label in text
    assert text.count("ACTIVE") == 1
    assert sum(line.count("●") for line in lines) == 4  # the active one is a ★


async def test_map_untangles_a_cluster_with_leader_lines() -> None:
    """Seven Balkan regions within a few cells: every label whole, one on a leader."""
    balkans = estate(
        region("ro", "Bucharest", BUCHAREST, role=Role.PRIMARY, active=True),
        region("bg", "Sofia", SOFIA, Health.DEGRADED),
        region("rs", "Belgrade", (44.80, 20.46), Health.DOWN),
        region("hu", "Budapest", (47.50, 19.04)),
        region("md", "Chisinau", (47.00, 28.86)),
        region("gr", "Athens", (37.98, 23.73)),
        region("tr", "Istanbul", (41.01, 28.97)),
    )
    app = WidgetApp(RegionMap(), balkans)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        text = "\n".join(screen_lines(app.widget))
    assert "⣿" in text  # still a map, not the list fallback
    for label in (
        "ro Bucharest primary ✓ healthy ACTIVE",
        "bg Sofia secondary ▲ degraded",
        "rs Belgrade secondary ✗ down",
        "hu Budapest secondary ✓ healthy",
        "md Chisinau secondary ✓ healthy",
        "gr Athens secondary ✓ healthy",
        "tr Istanbul secondary ✓ healthy",
    ):
        assert label in text
    assert "│" in text and ("╰─" in text or "╭─" in text or "─╯" in text or "─╮" in text)


async def test_map_waits_for_the_first_poll() -> None:
    app = WidgetApp(RegionMap(), None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        lines = screen_lines(app.widget)
    assert lines[15].strip() == "waiting for first poll…"
    assert all(not line for i, line in enumerate(lines) if i != 15)


async def test_map_too_small_falls_back_to_the_list() -> None:
    app = WidgetApp(RegionMap(), FIVE_REGIONS)
    async with app.run_test(size=(38, 9)) as pilot:
        await pilot.pause()
        lines = screen_lines(app.widget)
    assert lines[:5] == [line.plain for line in region_lines(FIVE_REGIONS.regions, 38)]
    assert "⣿" not in "".join(lines)


async def test_map_redraws_on_a_new_snapshot_and_on_resize() -> None:
    app = WidgetApp(RegionMap(), FIVE_REGIONS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        failed_over = estate(
            region("ro", "Bucharest", BUCHAREST, Health.DOWN, role=Role.PRIMARY),
            region("bg", "Sofia", SOFIA, active=True),
        )
        app.widget.snapshot = failed_over
        await pilot.pause()
        text = "\n".join(screen_lines(app.widget))
        assert "ro Bucharest primary ✗ down" in text
        assert "bg Sofia secondary ✓ healthy ACTIVE" in text and "★" in text
        await pilot.resize_terminal(90, 30)
        await pilot.pause()
        lines = screen_lines(app.widget)
    assert len(lines) == 30
    assert all(len(line) <= 90 for line in lines)
    assert "ACTIVE" in "\n".join(lines)


async def test_list_shows_one_line_per_region() -> None:
    app = WidgetApp(RegionList(), FIVE_REGIONS)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.widget.size.height == 5  # height: auto
        lines = screen_lines(app.widget)
    assert lines[0] == "★ ro  Bucharest    primary    ✓ healthy   ACTIVE"
    for region_id, health in (("bg", "degraded"), ("pa", "down"), ("hk", "healthy")):
        assert any(line.split()[0] == region_id and health in line for line in lines)


async def test_list_sheds_words_not_letters_when_narrow() -> None:
    app = WidgetApp(RegionList(), FIVE_REGIONS)
    async with app.run_test(size=(30, 10)) as pilot:
        await pilot.pause()
        lines = screen_lines(app.widget)
    assert lines[0] == "★ ro  P  ✓ healthy   ACTIVE"
    assert "…" not in "".join(lines)


async def test_list_waits_for_the_first_poll() -> None:
    app = WidgetApp(RegionList(), None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert screen_lines(app.widget) == ["waiting for first poll…"]


# --- snapshots ------------------------------------------------------------------


def test_snapshot_map_wall(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(WidgetApp(RegionMap(), FIVE_REGIONS), terminal_size=(200, 60))


def test_snapshot_map_medium(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(WidgetApp(RegionMap(), FIVE_REGIONS), terminal_size=(120, 40))


def test_snapshot_list_narrow(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(WidgetApp(RegionList(), FIVE_REGIONS), terminal_size=(80, 24))
