"""The compact region list: one line per region, for terminals too narrow for the map.

`★ ro  Bucharest  primary  ✓ healthy  ACTIVE`: which region is active, where it
is, its role and its health as glyph, word and colour. When the width runs out
the line sheds whole words (the city, then the long role) instead of being cut
mid-word. The region map reuses these pieces for its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from noc.model import EstateSnapshot, Health, RegionStatus, RegionVotes, Role
from noc_widgets.health_style import ACTIVE_MARK, COLOR, GLYPH, health_content

WAITING = "waiting for first poll…"
ACTIVE_WORD = "ACTIVE"
ACTIVE_STYLE = "bold reverse"
_COLUMN_GAP = 2
# Not $text-muted: in a Content span its "auto" colour comes out as full white.
MUTED = "$foreground-muted"


@dataclass(frozen=True, slots=True)
class Detail:
    """How much of a region's line to spell out; more width affords more words."""

    name: bool
    long_role: bool
    active_word: bool
    long_notes: bool


# From most to least spelled out; the first that fits the width wins.
DETAILS: tuple[Detail, ...] = (
    Detail(name=True, long_role=True, active_word=True, long_notes=True),
    Detail(name=True, long_role=False, active_word=True, long_notes=False),
    Detail(name=False, long_role=False, active_word=True, long_notes=False),
    # Last resort: the ★ alone still marks the active region.
    Detail(name=False, long_role=False, active_word=False, long_notes=False),
)

_SHORT_ROLE = {Role.PRIMARY: "P", Role.SECONDARY: "S"}


@dataclass(frozen=True, slots=True)
class RegionCells:
    """One region's words, each a separate piece so lines can align them in columns."""

    mark: Content
    id: Content
    name: Content
    role: Content
    health: Content
    active: Content
    notes: Content

    def words(self) -> tuple[Content, ...]:
        """Every piece after the mark, in reading order (empty ones included)."""
        return (self.id, self.name, self.role, self.health, self.active, self.notes)

    def columns(self) -> tuple[Content, ...]:
        """The pieces of a list line, one per column.

        ACTIVE and the notes (DNS pointer, blocklist, store) share the last column,
        so a note on a passive region does not sit after a gap where ACTIVE would be.
        """
        flags = Content(" " * _COLUMN_GAP).join(flag for flag in (self.active, self.notes) if flag)
        return (self.mark, self.id, self.name, self.role, self.health, flags)


def _one_line(text: str) -> str:
    """Configured text made safe to lay out: a newline, tab or escape would break the grid."""
    return "".join(char if char.isprintable() else " " for char in text)


def region_cells(region: RegionStatus, detail: Detail) -> RegionCells:
    # Content.styled takes text as plain text, never markup, so names from the
    # configuration cannot inject styles; _one_line keeps them from breaking lines.
    role = region.role.value if detail.long_role else _SHORT_ROLE[region.role]
    # A problem is bold so it catches the eye on a wall screen; healthy stays calm.
    health = health_content(region.health, bold=region.health is not Health.HEALTHY)
    # reachable is None until the first read: only a failed read deserves a note.
    unreachable = region.store.reachable is False
    notes = []
    if region.dns_records:
        notes.append(Content.styled("◆ DNS" if detail.long_notes else "◆", "bold $accent"))
    if region.sending_listed:
        word = "✗ LISTED: degraded for sending" if detail.long_notes else "✗ LISTED"
        notes.append(Content.styled(word, "bold $error"))
    if unreachable:
        note = "store unreachable" if detail.long_notes else "store ✗"
        notes.append(Content.styled(note, "$warning"))
    if region.votes is not None:
        notes.append(votes_content(region.votes, long=detail.long_notes))
    if region.maintenance is not None:
        # Words, not a colour: its alerts page no one and automation leaves it alone.
        until = region.maintenance.until.astimezone(UTC)
        word = f"◑ MAINTENANCE until {until:%H:%M}" if detail.long_notes else "◑ MAINT"
        notes.append(Content.styled(word, "bold $warning"))
    return RegionCells(
        mark=Content.styled(ACTIVE_MARK, "bold") if region.is_active else Content(" "),
        id=Content.styled(_one_line(region.id), "bold"),
        name=Content(_one_line(region.name)) if detail.name else Content(),
        role=Content.styled(role, MUTED),
        health=health,
        active=Content.styled(ACTIVE_WORD, ACTIVE_STYLE)
        if region.is_active and detail.active_word
        else Content(),
        notes=Content(" ").join(notes),
    )


def votes_content(votes: RegionVotes, *, long: bool) -> Content:
    """How the vantages voted (a screen attached to a control plane): each vantage's
    verdict as a glyph, `a✗ b✓ c✓`, and a split below the quorum said in words."""
    each = Content(" ").join(
        Content.assemble(Content(_one_line(name)), Content.styled(GLYPH[health], COLOR[health]))
        for name, health in votes.by_vantage
    )
    count = f"{votes.down_votes}/{votes.vantages_reporting} down"
    parts = [Content.styled(f"{count}, quorum {votes.quorum}:", MUTED)] if long else []
    if votes.by_vantage:
        parts.append(each)
    elif not long:  # no vantage votes: the count (0/0) says so
        parts.append(Content.styled(count, MUTED))
    shown = Content(" ").join(parts)
    if votes.split:
        return Content(" ").join([Content.styled("SPLIT", "bold $warning"), shown])
    return shown


def _aligned(rows: Sequence[RegionCells]) -> tuple[list[Content], int]:
    """Lay the rows out in columns; return the lines and the widest line's length."""
    columns = list(zip(*(row.columns() for row in rows), strict=True))
    widths = [max(cell.cell_length for cell in column) for column in columns]
    # A column empty in every row (no notes anywhere, say) takes no space at all.
    shown = [i for i, width in enumerate(widths) if width]
    lines: list[Content] = []
    for r in range(len(rows)):
        parts: list[Content] = []
        for position, i in enumerate(shown):
            cell = columns[i][r]
            last = position == len(shown) - 1
            gap = 1 if i == 0 else _COLUMN_GAP
            parts.append(cell if last else cell.pad_right(widths[i] - cell.cell_length + gap))
        lines.append(Content.assemble(*parts).rstrip())
    total = sum(widths[i] for i in shown) + 1 + _COLUMN_GAP * max(len(shown) - 2, 0)
    return lines, total


# Fields of a region that the list and the map do not draw (a check's age moves every
# second; the store is drawn only as "unreachable"). Every other field is drawn, so a
# field added to RegionStatus repaints these widgets without anyone remembering to.
_NOT_DRAWN = frozenset({"checks", "store"})


def regions_shown(snapshot: EstateSnapshot | None) -> tuple[object, ...] | None:
    """Everything the list and the map draw of the regions.

    A new snapshot arrives every second (ages and the clock move); when this has
    not changed, repainting would only resend the same cells over the wire.
    """
    if snapshot is None:
        return None
    return tuple(
        (
            *(getattr(region, f.name) for f in fields(region) if f.name not in _NOT_DRAWN),
            region.store.reachable is False,
        )
        for region in snapshot.regions
    )


def region_lines(regions: Sequence[RegionStatus], width: int) -> list[Content]:
    """One aligned line per region, as spelled out as `width` cells allow."""
    if not regions:
        return [Content.styled("no regions configured", MUTED)]
    lines: list[Content] = []
    for detail in DETAILS:
        lines, total = _aligned([region_cells(region, detail) for region in regions])
        if total <= width:
            break
    return lines


class RegionsWidget(Widget):
    """A widget that draws the regions, repainted only when what it draws of them changes."""

    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)
    _shown: tuple[object, ...] | None = None

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        shown = regions_shown(snapshot)
        if shown != self._shown:
            self._shown = shown
            self.refresh(layout=True)


class RegionList(RegionsWidget):
    """Every region on its own line: the narrow-terminal stand-in for the region map."""

    DEFAULT_CSS = """
    RegionList {
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def render(self) -> RenderResult:
        if self.snapshot is None:
            return Content.styled(WAITING, MUTED)
        return Content("\n").join(region_lines(self.snapshot.regions, self.content_size.width))
