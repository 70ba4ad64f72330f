"""Suppression sync in detail: counts per region and list, and every ordered pair with
what it still lacks, the oldest unsynced age against the SLO, and a few examples."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Label

from noc.model import EstateSnapshot
from noc_widgets.snapshot_screen import SnapshotScreen


class SuppressionScreen(SnapshotScreen):
    DEFAULT_CSS = """
    SuppressionScreen Label {
        text-style: bold;
        padding: 0 1;
        background: $panel;
        width: 100%;
    }
    SuppressionScreen DataTable {
        height: auto;
        max-height: 50%;
        margin-bottom: 1;
    }
    """

    def __init__(self, slo_seconds: float) -> None:
        super().__init__()
        self.slo_seconds = slo_seconds

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(id="title")
            yield DataTable(id="pairs", cursor_type="row", zebra_stripes=True)
            yield Label("Entries per region and list")
            yield DataTable(id="counts", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def prepare(self) -> None:
        pairs = self.query_one("#pairs", DataTable)
        # Explicit widths: DataTable under-measures styled cells.
        for label, width in (("From", 6), ("To", 6), ("List", 12), ("Unsynced", 9),
                             ("Oldest", 16), ("Examined", 16), ("Examples", 40)):  # fmt: skip
            pairs.add_column(label, width=width)
        self.query_one("#counts", DataTable).add_columns("Region", "List", "Entries")

    def draw(self, snapshot: EstateSnapshot) -> None:
        sample = snapshot.suppression
        if sample is None:
            return
        self.query_one("#title", Label).update(
            Content(
                f"Suppression sync: entries of the last {sample.lookback_seconds / 60:.0f} min "
                f"a region still lacks (SLO {self.slo_seconds:.0f}s)"
            )
        )
        pairs = self.query_one("#pairs", DataTable)
        pairs.clear()
        for pair in sample.pairs:
            age = pair.oldest_unsynced_age_seconds
            if pair.error:
                oldest = Content.styled(f"? {pair.error}", "$warning")
            elif age is None:
                oldest = Content.styled("✓ in sync", "$success")
            elif age > self.slo_seconds:
                oldest = Content.styled(f"✗ {age:.0f}s > SLO", "bold $error")
            else:
                oldest = Content.styled(f"✓ {age:.0f}s", "$success")
            examined = f"{pair.examined:,}"
            if pair.rebuilding:  # still reading a store in full: unsynced is a lower bound
                examined += f" (rebuilding {pair.rebuild_progress:.0%})"
            elif pair.truncated:
                examined += " (capped)"
            pairs.add_row(
                pair.source,
                pair.target,
                pair.list,
                "?" if pair.unsynced is None else f"{pair.unsynced:,}",
                oldest,
                examined,
                Content(", ".join(pair.examples)),
            )
        counts = self.query_one("#counts", DataTable)
        counts.clear()
        for count in sample.counts:
            entries = f"{count.count:,}" if count.count is not None else f"? {count.error}"
            counts.add_row(count.region, count.list, Content(entries))
