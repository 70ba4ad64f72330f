"""The region map: a Braille world map with a labelled marker for every region.

The land is drawn once per widget size (two by four Braille dots a cell, from the
shipped land mask) and cached; a new snapshot only moves markers and labels. The
projection is equirectangular, stretched to fill the widget: the whole world in
longitude, latitudes cropped to +80..-58 where no one runs a datacentre.

Labels never overlap each other or a marker, and sit over the sea where the map has
room: each goes beside its marker, else above or below it, else further up or down
joined by a leader line (which may cross land). When they
cannot all fit, or the widget is too small for a map to mean anything, the
widget shows the compact region list instead, so a region is never missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from textual.app import RenderResult
from textual.content import Content
from textual.style import Style

from noc.model import RegionStatus
from noc_widgets.health_style import ACTIVE_MARK, COLOR
from noc_widgets.landmask import land_mask
from noc_widgets.region_list import (
    DETAILS,
    MUTED,
    WAITING,
    RegionsWidget,
    region_cells,
    region_lines,
)

LAT_TOP = 80.0
LAT_BOTTOM = -58.0
# Below this a map is a smudge of dots; the region list says more.
MIN_WIDTH = 40
MIN_HEIGHT = 10
MARKER = "●"

# Every label spelling the map may use: all keep the word ACTIVE, which the last
# entry of DETAILS drops (fine in a list, where ★ sits in a column, not on a map).
_MAP_DETAILS = DETAILS[:-1]

# The bit of each Braille dot, by (column, row) within the 2 x 4 cell (U+2800 block).
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BRAILLE_BLANK = 0x2800

Cell = tuple[int, int]  # (x, y): column and row in the widget


def project(lat: float, lon: float, width: int, height: int) -> Cell:
    """The cell holding (lat, lon) on a width x height map; off-map points clamp to the edge."""
    x = int((lon + 180.0) / 360.0 * width)
    y = int((LAT_TOP - lat) / (LAT_TOP - LAT_BOTTOM) * height)
    return min(max(x, 0), width - 1), min(max(y, 0), height - 1)


@lru_cache(maxsize=4)
def land_layer(width: int, height: int) -> tuple[str, ...]:
    """The map's land as Braille, one string of `width` cells per row, sea as spaces."""
    mask = land_mask()
    dot_width = 2 * width
    lons = [-180.0 + (x + 0.5) * 360.0 / dot_width for x in range(dot_width)]
    degrees_per_dot_row = (LAT_TOP - LAT_BOTTOM) / (4 * height)
    lats = [LAT_TOP - (dot_row + 0.5) * degrees_per_dot_row for dot_row in range(4 * height)]
    land = mask.grid(lats, lons)
    (left0, left1, left2, left3), (right0, right1, right2, right3) = _DOT_BITS
    rows: list[str] = []
    for y in range(height):
        # The four dot rows of this text row, each sampled across the whole width.
        d0, d1, d2, d3 = land[4 * y : 4 * y + 4]
        chars: list[str] = []
        for x in range(0, dot_width, 2):
            code = (
                d0[x] * left0 | d1[x] * left1 | d2[x] * left2 | d3[x] * left3
                | d0[x + 1] * right0 | d1[x + 1] * right1
                | d2[x + 1] * right2 | d3[x + 1] * right3
            )  # fmt: skip
            chars.append(chr(_BRAILLE_BLANK + code) if code else " ")
        rows.append("".join(chars))
    return tuple(rows)


def place_markers(cells: Sequence[Cell], width: int) -> list[Cell] | None:
    """One distinct cell per marker: a marker whose cell is taken moves along its row.

    Nearby regions (Bucharest and Sofia) share a cell on small maps; a marker a
    cell off is still in the right place at this scale, two in one cell are one.
    Moving only sideways keeps a cluster in one row, so every marker keeps the
    cells above and below it free for a leader line. None if the row is full.
    """
    taken: set[Cell] = set()
    placed: list[Cell] = []
    shifts = [0, *(dx for step in range(1, width) for dx in (step, -step))]
    for x, y in cells:
        for dx in shifts:
            cell = (x + dx, y)
            if cell not in taken and 0 <= cell[0] < width:
                break
        else:
            return None
        taken.add(cell)
        placed.append(cell)
    return placed


@dataclass(frozen=True, slots=True)
class LabelPlacement:
    """Where one label goes: its first cell, and the leader line joining it to its marker."""

    x: int
    y: int
    leader: tuple[tuple[int, int, str], ...] = ()  # (x, y, character), marker outwards

    def span(self, length: int) -> tuple[int, int]:
        """First and last cell on the label's row: its text and the leader's corner."""
        xs = [self.x, self.x + length - 1, *(x for x, y, _ in self.leader if y == self.y)]
        return min(xs), max(xs)

    def padded(self, length: int) -> tuple[int, int]:
        """First and last cell on the label's row, with a blank cell at each end of the
        text. Not beyond a leader's corner: the corner is no text to keep land dots
        off, and its other side is where a neighbouring marker's leader runs (Sofia's
        and Bucharest's markers are side by side on a wall screen's map)."""
        first, last = self.span(length)
        return (
            first - 1 if first == self.x else first,
            last + 1 if last == self.x + length - 1 else last,
        )

    def row_cells(self, length: int) -> set[Cell]:
        """The cells this label covers on its own row."""
        first, last = self.padded(length)
        return {(x, self.y) for x in range(first, last + 1)}

    def footprint(self, length: int) -> set[Cell]:
        """The cells this label claims: its row (text, corner, blank ends) and its leader."""
        cells = self.row_cells(length)
        cells.update((x, y) for x, y, _ in self.leader)
        return cells


def _candidates(marker: Cell, length: int, height: int) -> Iterator[LabelPlacement]:
    """Label positions for one marker, best first."""
    mx, my = marker
    # Beside the marker: the label reads as the marker's own words.
    yield LabelPlacement(mx + 2, my)
    yield LabelPlacement(mx - 1 - length, my)
    # Just above or below, flush with the marker's column.
    for dy in (-1, 1):
        yield LabelPlacement(mx, my + dy)
        yield LabelPlacement(mx - length + 1, my + dy)
    # Further out, stacked, with a leader line down (or up) to the marker.
    for distance in range(2, height):
        for ly, step, right, left in ((my - distance, -1, "╭", "╮"), (my + distance, 1, "╰", "╯")):
            if not 0 <= ly < height:
                continue
            stem = tuple((mx, y, "│") for y in range(my + step, ly, step))
            yield LabelPlacement(mx + 2, ly, (*stem, (mx, ly, right), (mx + 1, ly, "─")))
            yield LabelPlacement(mx - 1 - length, ly, (*stem, (mx, ly, left), (mx - 1, ly, "─")))


def _place_in_order(
    markers: Sequence[Cell],
    lengths: Sequence[int],
    order: Sequence[int],
    width: int,
    height: int,
    land: frozenset[Cell] = frozenset(),
) -> tuple[dict[int, LabelPlacement], int | None]:
    """Greedy placement in the given order: the placements made, and the first label that
    found no room (None if all did). No label's row, blank ends included, may cover a
    cell of `land`; its leader line may cross land."""
    taken: set[Cell] = set(markers)
    placements: dict[int, LabelPlacement] = {}
    for index in order:
        length = lengths[index]
        for candidate in _candidates(markers[index], length, height):
            if candidate.x < 0 or candidate.x + length > width:
                continue
            footprint = candidate.footprint(length)
            if footprint.isdisjoint(taken) and candidate.row_cells(length).isdisjoint(land):
                taken |= footprint
                placements[index] = candidate
                break
        else:
            return placements, index
    return placements, None


def place_labels(
    markers: Sequence[Cell],
    lengths: Sequence[int],
    width: int,
    height: int,
    land: frozenset[Cell] = frozenset(),
) -> list[LabelPlacement] | None:
    """Place one label per marker with no overlaps; None if they cannot all fit.

    Greedy, earlier markers first, so callers put the active region first. A label
    that finds no room goes first on the next try: a search of every arrangement
    is exponential, and this untangles the clusters real estates have.
    """
    order = list(range(len(markers)))
    for _ in range(2 * len(markers) + 1):
        placements, failed = _place_in_order(markers, lengths, order, width, height, land)
        if failed is None:
            return [placements[index] for index in range(len(markers))]
        order.remove(failed)
        order.insert(0, failed)
    return None


def map_label(region: RegionStatus, detail_index: int) -> Content:
    """A region's label on the map: `ro primary ✓ healthy ACTIVE`, words as the detail allows."""
    words = region_cells(region, _MAP_DETAILS[detail_index]).words()
    return Content(" ").join(word for word in words if word)


@dataclass(frozen=True, slots=True)
class MapLayout:
    """Everything the map draws over the land: markers, labels and leader lines."""

    regions: tuple[RegionStatus, ...]  # in placement order: the active region first
    markers: tuple[Cell, ...]
    labels: tuple[Content, ...]
    placements: tuple[LabelPlacement, ...]


def layout_regions(regions: Sequence[RegionStatus], width: int, height: int) -> MapLayout | None:
    """Markers and labels for every region, as spelled out as the map has room for."""
    ordered = tuple(sorted(regions, key=lambda region: not region.is_active))
    markers = place_markers([project(*r.location, width, height) for r in ordered], width)
    if markers is None:
        return None
    # Labels over the sea first, every spelling tried: a label over land hides the very
    # coast it names (Europe, on a wall screen). Only when no spelling fits in the sea
    # may labels cover land, as they did before, rather than lose the map altogether.
    for land in (land_cells(width, height), frozenset[Cell]()):
        for detail_index in range(len(_MAP_DETAILS)):
            labels = tuple(map_label(region, detail_index) for region in ordered)
            lengths = [label.cell_length for label in labels]
            placements = place_labels(markers, lengths, width, height, land)
            if placements is not None:
                return MapLayout(ordered, tuple(markers), labels, tuple(placements))
    return None


@lru_cache(maxsize=4)
def land_cells(width: int, height: int) -> frozenset[Cell]:
    """The cells of a width x height map that show land."""
    return frozenset(
        (x, y)
        for y, row in enumerate(land_layer(width, height))
        for x, char in enumerate(row)
        if char != " "
    )


class RegionMap(RegionsWidget):
    """A world map with every region's location, role, health, and which one is active."""

    COMPONENT_CLASSES = {"region-map--land", "region-map--leader"}

    DEFAULT_CSS = """
    RegionMap {
        width: 1fr;
        height: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        & > .region-map--land {
            color: $text-muted;
        }
        & > .region-map--leader {
            color: $foreground;
        }
    }
    """

    def render(self) -> RenderResult:
        width, height = self.content_size
        if self.snapshot is None:
            return self._centered(Content.styled(WAITING, MUTED), width, height)
        regions = self.snapshot.regions
        layout = None
        if width >= MIN_WIDTH and height >= MIN_HEIGHT:
            layout = layout_regions(regions, width, height)
        if layout is None:
            return Content("\n").join(region_lines(regions, width))
        return self._draw(layout, width, height)

    @staticmethod
    def _centered(content: Content, width: int, height: int) -> Content:
        # Not Content.center: in Textual 8.2 it pads past `width` on the right.
        return Content("\n" * (height // 2)) + content.pad_left((width - content.cell_length) // 2)

    def _draw(self, layout: MapLayout, width: int, height: int) -> Content:
        # Everything drawn over the land, by row: (x, piece), pieces never overlapping.
        overlay: dict[int, list[tuple[int, Content]]] = {}
        leader_style = self.get_visual_style("region-map--leader")
        for region, (mx, my), label, placement in zip(
            layout.regions, layout.markers, layout.labels, layout.placements, strict=True
        ):
            glyph = ACTIVE_MARK if region.is_active else MARKER
            overlay.setdefault(my, []).append(
                (mx, Content.styled(glyph, f"bold {COLOR[region.health]}"))
            )
            for x, y, char in placement.leader:
                overlay.setdefault(y, []).append((x, Content.styled(char, leader_style)))
            # The blank cells either end keep land dots from touching the text.
            first, last = placement.span(label.cell_length)
            padded_first, padded_last = placement.padded(label.cell_length)
            row = overlay.setdefault(placement.y, [])
            if padded_first < first and first > 0:
                row.append((first - 1, Content(" ")))
            if padded_last > last and last + 1 < width:
                row.append((last + 1, Content(" ")))
            row.append((placement.x, label))

        land_style = self.get_visual_style("region-map--land")
        lines: list[Content] = []
        for y, land in enumerate(land_layer(width, height)):
            parts: list[Content | tuple[str, Style]] = []
            x = 0
            for start, piece in sorted(overlay.get(y, ()), key=lambda item: item[0]):
                if start > x:
                    parts.append((land[x:start], land_style))
                parts.append(piece)
                x = start + piece.cell_length
            if x < width:
                parts.append((land[x:], land_style))
            lines.append(Content.assemble(*parts))
        return Content("\n").join(lines)
