"""Table layout shared by the tables: one column takes the width the others leave."""

from __future__ import annotations

from collections.abc import Iterable

# DataTable pads each cell by one on either side; a vertical scrollbar may appear.
CELL_PADDING = 2
SCROLLBAR_ALLOWANCE = 2


def remaining_width(total: int, fixed: Iterable[int], minimum: int) -> int:
    """Width left for the one flexible column beside `fixed` columns, at least `minimum`."""
    widths = list(fixed)
    used = sum(widths) + CELL_PADDING * (len(widths) + 1) + SCROLLBAR_ALLOWANCE
    return max(minimum, total - used)
