"""Table layout shared by the tables: one column takes the width the others leave."""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content

# DataTable pads each cell by one on either side; a vertical scrollbar may appear.
CELL_PADDING = 2
SCROLLBAR_ALLOWANCE = 2


def remaining_width(total: int, fixed: Iterable[int], minimum: int) -> int:
    """Width left for the one flexible column beside `fixed` columns, at least `minimum`."""
    widths = list(fixed)
    used = sum(widths) + CELL_PADDING * (len(widths) + 1) + SCROLLBAR_ALLOWANCE
    return max(minimum, total - used)


# Where a name or an error may be cut and still read: between words, a hostname's
# labels, a path's parts.
_BREAKS = " ./:-_"


def clip_at_break(text: str, width: int) -> str:
    """`text` in at most `width` cells, shortened only at a break, with … where it was cut.

    "ro.mail.example.com/health" in 14 cells is "ro.mail…", not "ro.mail.examp…";
    only a single word longer than the room is cut inside.
    """
    if len(text) <= width:
        return text
    room = width - 1
    cut = max((i for i, char in enumerate(text[: room + 1]) if char in _BREAKS), default=0)
    kept = text[:cut].rstrip(_BREAKS) if cut else ""
    return (kept or text[:room]) + "…"


def same_drawing(before: Content | str | None, after: Content | str) -> bool:
    """Whether a table cell would draw the same: Content's == compares the text alone,
    and a cell whose style changes (a count turning red) must be redrawn too."""
    if isinstance(before, Content) and isinstance(after, Content):
        return (before.plain, before.spans) == (after.plain, after.spans)
    return before == after
