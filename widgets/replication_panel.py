"""Replication lag on the overview: one row per link, a sparkline and the lag in words.

The sparkline is drawn on a fixed scale from 0 to half again the threshold, each
bar coloured by whether it is over the threshold. (Textual's Sparkline scales to
its data's own range, so a steady 0.2 s lag would draw as full bars: a lag trend
must be read against its threshold.) The value says what the colour means
(✓ within, ▲ over, ✗ link down with a growing lower bound, ? unknown).
"""

from __future__ import annotations

from noc_widgets.text_cell import TextCell
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Label

from noc.model import EstateSnapshot, LinkState, LinkStatus


def link_name(link: LinkStatus) -> str:
    return f"{link.spec.data_class} {link.spec.source}→{link.spec.target}"


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


BARS = "▁▂▃▄▅▆▇█"


def lag_sparkline(link: LinkStatus, width: int) -> Content:
    """The last `width` readings, 0 to 1.5 x threshold (higher readings are clipped),
    right-aligned in `width` cells."""
    threshold = link.spec.threshold_seconds
    ceiling = threshold * 1.5
    parts = []
    for point in link.history[-width:]:
        lag = point.lag_seconds
        if lag is None:
            parts.append(Content.styled(" ", ""))
            continue
        level = min(len(BARS) - 1, int(min(lag, ceiling) / ceiling * (len(BARS) - 1) + 0.5))
        parts.append(Content.styled(BARS[level], "$error" if lag > threshold else "$success"))
    # Right-aligned: the newest reading sits next to the value it explains.
    return Content.assemble(Content(" " * (width - len(parts))), *parts)


class LagRow(Horizontal):
    DEFAULT_CSS = """
    LagRow {
        height: 1;
    }
    LagRow > .name {
        width: 24;
    }
    LagRow > .spark {
        width: 1fr;
        min-width: 10;
    }
    LagRow > .value {
        width: 22;
        padding-left: 1;
    }
    """

    def __init__(self, link: LinkStatus) -> None:
        super().__init__()
        self.link = link

    def compose(self) -> ComposeResult:
        yield Label(Content(link_name(self.link)), classes="name")
        yield TextCell(classes="spark")
        yield TextCell(lag_words(self.link), classes="value")

    def on_resize(self) -> None:
        self.show(self.link)

    def show(self, link: LinkStatus) -> None:
        self.link = link
        spark = self.query_one(".spark", TextCell)
        spark.show(lag_sparkline(link, max(1, spark.size.width)))
        self.query_one(".value", TextCell).show(lag_words(link))


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

    # Children update themselves; repainting the whole widget per snapshot would
    # resend every line of it down an SSH link once a second.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)

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
