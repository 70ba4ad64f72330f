"""One replication link's last hour: a plotext chart with its threshold, and the periods
spent pending (over the threshold, inside the sustain window) and firing."""

from __future__ import annotations

from dataclasses import dataclass

from noc_widgets.replication_panel import lag_words, link_name
from noc_widgets.snapshot_screen import SnapshotScreen
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Footer, Label
from textual_plotext import PlotextPlot

from noc.model import EstateSnapshot, LagPoint, LinkStatus


@dataclass(frozen=True)
class LagSeries:
    minutes: list[float]  # minutes before now (negative)
    lag: list[float]
    pending: tuple[list[float], list[float]]
    firing: tuple[list[float], list[float]]


def lag_series(
    points: tuple[LagPoint, ...], threshold: float, sustain: float, now: float
) -> LagSeries:
    """Split the history: over the threshold for under `sustain` is pending, longer firing."""
    series = LagSeries([], [], ([], []), ([], []))
    run_started: float | None = None
    for point in points:
        if point.lag_seconds is None:
            run_started = None
            continue
        minute = (point.at - now) / 60
        series.minutes.append(minute)
        series.lag.append(point.lag_seconds)
        if point.lag_seconds <= threshold:
            run_started = None
            continue
        run_started = point.at if run_started is None else run_started
        xs, ys = series.firing if point.at - run_started >= sustain else series.pending
        xs.append(minute)
        ys.append(point.lag_seconds)
    return series


class LagDetailScreen(SnapshotScreen):
    DEFAULT_CSS = """
    LagDetailScreen #title {
        text-style: bold;
        padding: 0 1;
        background: $panel;
        width: 100%;
    }
    LagDetailScreen #facts {
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("left", "cycle(-1)", "Previous link", id="detail.previous"),
        Binding("right", "cycle(1)", "Next link", id="detail.next"),
    ]

    def __init__(self, link_id: str) -> None:
        super().__init__()
        self.link_id = link_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(id="title")
            yield Label(id="facts")
            yield PlotextPlot()
        yield Footer()

    def _links(self) -> tuple[LinkStatus, ...]:
        return () if self.snapshot is None else self.snapshot.replication

    def action_cycle(self, step: int) -> None:
        ids = [link.id for link in self._links()]
        if self.link_id in ids:
            self.link_id = ids[(ids.index(self.link_id) + step) % len(ids)]
            self.watch_snapshot(self.snapshot)

    def draw(self, snapshot: EstateSnapshot) -> None:
        link = next((link for link in self._links() if link.id == self.link_id), None)
        if link is None:
            return
        spec, sample = link.spec, link.last
        self.query_one("#title", Label).update(
            Content(f"Replication lag: {link_name(link)} ({spec.kind.value}), last hour")
        )
        facts = [lag_words(link)]
        if sample is not None and sample.offset_lag_bytes is not None:
            facts.append(Content(f"  offset behind: {sample.offset_lag_bytes:,} bytes"))
        facts.append(
            Content(f"  threshold {spec.threshold_seconds:.0f}s for {spec.sustain_seconds:.0f}s")
        )
        if sample is not None and sample.error:
            facts.append(Content.styled(f"  {sample.error}", "$warning"))
        self.query_one("#facts", Label).update(Content.assemble(*facts))
        # The engine's "now": the last point plus how long ago it was taken.
        now = link.history[-1].at + (link.age_seconds or 0.0) if link.history else 0.0
        self._plot(
            lag_series(link.history, spec.threshold_seconds, spec.sustain_seconds, now),
            spec.threshold_seconds,
        )

    def _plot(self, series: LagSeries, threshold: float) -> None:
        widget = self.query_one(PlotextPlot)
        plt = widget.plt
        plt.clear_figure()
        plt.xlabel("minutes ago")
        plt.ylabel("lag s")
        plt.xlim(-60, 0)
        if series.lag:
            plt.plot(series.minutes, series.lag, marker="braille", label="lag")
        if series.pending[0]:
            plt.scatter(*series.pending, marker="braille", color="orange", label="pending")
        if series.firing[0]:
            plt.scatter(*series.firing, marker="braille", color="red", label="firing")
        plt.hline(threshold, "orange")
        widget.refresh()
