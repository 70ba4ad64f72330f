"""Deliverability on the overview: one line for the whole estate, and the complaint trend."""

from __future__ import annotations

from noc_widgets.text_cell import TextCell
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Sparkline

from noc.model import DeliverabilitySample, EstateSnapshot


def percent(rate: float | None) -> str:
    return "no data" if rate is None else f"{rate:.2%}"


def complaint_words(rate: float | None, warn: float, critical: float) -> Content:
    if rate is None:
        return Content.styled("? complaints no data", "$foreground-muted")
    if rate > critical:
        return Content.styled(f"✗ complaints {rate:.2%} > {critical:.1%}", "bold $error")
    if rate > warn:
        return Content.styled(f"▲ complaints {rate:.2%} > {warn:.1%}", "bold $warning")
    return Content.styled(f"✓ complaints {rate:.2%}", "$success")


def warm_shares(sample: DeliverabilitySample, active: str | None) -> str:
    """Each non-active region's share of mail sent: a standby with no share is cold."""
    total = sample.estate.sent
    if not total:
        return ""
    shares = [
        f"{r.region} {r.counts.sent / total:.0%}"
        for r in sample.regions
        if r.counts is not None and r.region != active
    ]
    return "warm " + " ".join(shares) if shares else ""


def summary(
    sample: DeliverabilitySample, active: str | None, warn: float, critical: float
) -> Content:
    estate = sample.estate
    parts = [
        Content.styled(f"Mail {sample.window_minutes}m  ", "bold"),
        Content(f"sent {estate.sent:,}  bounce {percent(estate.bounce_rate)}  "),
        complaint_words(estate.complaint_rate, warn, critical),
    ]
    shares = warm_shares(sample, active)
    if shares:
        parts.append(Content(f"  {shares}"))
    if sample.missing:
        parts.append(Content.styled(f"  ? unread: {', '.join(sample.missing)}", "$warning"))
    return Content.assemble(*parts)


class DeliverabilitySummary(Horizontal):
    DEFAULT_CSS = """
    DeliverabilitySummary {
        height: 1;
        display: none;
    }
    DeliverabilitySummary.-shown {
        display: block;
    }
    DeliverabilitySummary > TextCell {
        width: 1fr;
    }
    DeliverabilitySummary > Sparkline {
        width: 20;
    }
    DeliverabilitySummary > Sparkline > .sparkline--max-color {
        color: $error;
    }
    """

    # Children update themselves; repainting the whole widget per snapshot would
    # resend every line of it down an SSH link once a second.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)

    def __init__(self, warn_rate: float, critical_rate: float) -> None:
        super().__init__()
        self.warn_rate = warn_rate
        self.critical_rate = critical_rate

    def compose(self) -> ComposeResult:
        yield TextCell()
        yield Sparkline([], summary_function=max)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        sample = None if snapshot is None else snapshot.deliverability
        self.set_class(sample is not None, "-shown")
        if sample is None or snapshot is None or not self.is_mounted:
            return
        self.query_one(TextCell).show(
            summary(sample, snapshot.active_region, self.warn_rate, self.critical_rate)
        )
        # Only a changed series is repainted: every repaint is bytes down an SSH link.
        series = [float(n) for n in sample.estate_complaint_series]
        spark = self.query_one(Sparkline)
        if list(spark.data or ()) != series:
            spark.data = series
