"""Replication lag on the overview: one row per link, a sparkline and the lag in words.

The sparkline is coloured against the link's threshold; the value says what the
colour means (✓ within, ▲ over, ✗ link down with a growing lower bound, ? unknown).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Label, Sparkline

from noc.model import EstateSnapshot, LinkState, LinkStatus

SPARK_POINTS = 60


def link_name(link: LinkStatus) -> str:
    return f"{link.spec.data_class} {link.spec.source}→{link.spec.target}"


def lag_state(link: LinkStatus) -> str:
    """The row's CSS class: -ok, -over, -down or -unknown."""
    sample = link.last
    if sample is None or (sample.lag_seconds is None and sample.link is not LinkState.DOWN):
        return "-unknown"
    if sample.link is LinkState.DOWN:
        return "-down"
    return "-over" if link.over_threshold else "-ok"


def lag_words(link: LinkStatus) -> Content:
    sample, threshold = link.last, link.spec.threshold_seconds
    if sample is None:
        return Content.styled("? waiting", "$foreground-muted")
    lag = sample.lag_seconds
    if sample.link is LinkState.DOWN:
        floor = f" ≥{lag:.0f}s↑" if lag is not None else ""
        return Content.styled(f"✗ link down{floor}", "bold $error")
    if lag is None:
        return Content.styled(f"? {sample.error or 'unknown'}", "$foreground-muted")
    if lag > threshold:
        return Content.styled(f"▲ {lag:.0f}s > {threshold:.0f}s", "bold $warning")
    return Content.styled(f"✓ {lag:.0f}s / {threshold:.0f}s", "$success")


def spark_data(link: LinkStatus) -> list[float]:
    return [p.lag_seconds or 0.0 for p in link.history[-SPARK_POINTS:]]


class LagRow(Horizontal):
    DEFAULT_CSS = """
    LagRow {
        height: 1;
    }
    LagRow > .name {
        width: 24;
    }
    LagRow > Sparkline {
        width: 1fr;
        min-width: 10;
    }
    LagRow > .value {
        width: 22;
        padding-left: 1;
    }
    LagRow.-ok Sparkline > .sparkline--max-color {
        color: $success;
    }
    LagRow.-over Sparkline > .sparkline--max-color, LagRow.-down Sparkline > .sparkline--max-color {
        color: $error;
    }
    LagRow.-over Sparkline > .sparkline--min-color, LagRow.-down Sparkline > .sparkline--min-color {
        color: $warning;
    }
    """

    def __init__(self, link: LinkStatus) -> None:
        super().__init__(classes=lag_state(link))
        self.link = link

    def compose(self) -> ComposeResult:
        yield Label(Content(link_name(self.link)), classes="name")
        yield Sparkline(spark_data(self.link), summary_function=max)
        yield Label(lag_words(self.link), classes="value")

    def show(self, link: LinkStatus) -> None:
        self.link = link
        self.set_classes(lag_state(link))
        self.query_one(Sparkline).data = spark_data(link)
        self.query_one(".value", Label).update(lag_words(link))


class ReplicationPanel(Vertical):
    DEFAULT_CSS = """
    ReplicationPanel {
        height: auto;
        display: none;
    }
    ReplicationPanel.-has-links {
        display: block;
    }
    """

    snapshot: reactive[EstateSnapshot | None] = reactive(None)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        links = () if snapshot is None else snapshot.replication
        self.set_class(bool(links), "-has-links")
        rows = list(self.query(LagRow))
        if [r.link.id for r in rows] == [link.id for link in links]:
            for row, link in zip(rows, links, strict=True):
                row.show(link)
        else:  # the set of links changed (first snapshot): new rows draw from their link
            self.remove_children()
            self.mount_all(LagRow(link) for link in links)
