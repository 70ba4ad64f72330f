"""Deliverability in detail: one view for the estate and per region, against the
complaint limits, with each region's share of traffic (is the standby warm?)."""

from __future__ import annotations

from noc_widgets.deliverability_summary import complaint_words, percent
from noc_widgets.snapshot_screen import SnapshotScreen
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Label

from noc.model import DeliverabilityCounts, EstateSnapshot

SPARK = "▁▂▃▄▅▆▇█"


def text_sparkline(values: tuple[int, ...], width: int = 30) -> str:
    """A sparkline inside a table cell, where a Sparkline widget cannot go."""
    points = values[-width:]
    top = max(points, default=0)
    if not top:
        return SPARK[0] * len(points)
    return "".join(SPARK[min(len(SPARK) - 1, v * len(SPARK) // (top + 1))] for v in points)


class DeliverabilityScreen(SnapshotScreen):
    DEFAULT_CSS = """
    DeliverabilityScreen Label {
        text-style: bold;
        padding: 0 1;
        background: $panel;
        width: 100%;
    }
    """

    def __init__(self, warn_rate: float, critical_rate: float) -> None:
        super().__init__()
        self.warn_rate = warn_rate
        self.critical_rate = critical_rate

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(id="title")
            yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def prepare(self) -> None:
        table = self.query_one(DataTable)
        # Explicit widths: DataTable under-measures styled cells.
        # The verdict first: at 80 columns the counts may scroll, the verdict must not.
        for label, width in (("Scope", 7), ("Complaint rate", 26), ("Bounce", 7), ("Share", 5),
                             ("Sent", 9), ("Delivered", 9), ("Hard", 7), ("Soft", 7),
                             ("Complaints", 10), ("Per minute", 30)):  # fmt: skip
            table.add_column(label, width=width)

    def _row(self, scope: str, share: str, counts: DeliverabilityCounts | None) -> list[object]:
        if counts is None:
            return [scope, Content.styled("? unreadable", "$warning"), "?", share, *["?"] * 5]
        return [
            scope,
            complaint_words(counts.complaint_rate, self.warn_rate, self.critical_rate),
            percent(counts.bounce_rate),
            share,
            f"{counts.sent:,}",
            f"{counts.delivered:,}",
            f"{counts.hard_bounce:,}",
            f"{counts.soft_bounce:,}",
            f"{counts.complaint:,}",
        ]

    def draw(self, snapshot: EstateSnapshot) -> None:
        sample = snapshot.deliverability
        if sample is None:
            return
        self.query_one("#title", Label).update(
            Content(
                f"Deliverability, last {sample.window_minutes} min, all regions as one "
                f"(complaints: warn {self.warn_rate:.1%}, critical {self.critical_rate:.1%})"
            )
        )
        table = self.query_one(DataTable)
        table.clear()
        total = sample.estate.sent
        table.add_row(
            *self._row("estate", "100%", sample.estate),
            text_sparkline(sample.estate_complaint_series),
        )
        for region in sample.regions:
            sent = region.counts.sent if region.counts else 0
            share = f"{sent / total:.0%}" if total and region.counts else "?"
            active = " ★" if region.region == snapshot.active_region else ""
            table.add_row(
                *self._row(f"{region.region}{active}", share, region.counts),
                text_sparkline(region.complaint_series),
            )
