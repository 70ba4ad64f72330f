"""Past alert episodes, newest first (`h`): when each started, when and how it ended,
how long it lasted, and who acked it. Enter opens an episode's detail.

The list is read from the record (the history file and the journal) off the event
loop, when the view opens and again whenever an episode ends while it is open; it is
bounded by the reader (noc.alert_journal.HISTORY_KEPT).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Label

from noc.model import Alert, AlertState, EstateSnapshot
from noc_widgets.alert_detail import AlertDetailScreen, AlertSources, duration
from noc_widgets.alert_pane import SEVERITY_STYLE
from noc_widgets.column_fit import remaining_width
from noc_widgets.snapshot_screen import SnapshotScreen

# (key, label, width); the alert's key takes the width that is left.
# No severity column (80 columns are few): the alert's key is coloured by it.
COLUMNS = (
    ("started", "Started UTC", 14),
    ("ended", "Ended", 8),
    ("took", "Took", 6),
    ("alert", "Alert", 0),
    ("how", "How", 9),
    ("ack", "Ack", 10),
)
ALERT_MIN_WIDTH = 18


def _ended(alert: Alert) -> str:
    """The end's time alone when it is the start's day, else with its date."""
    started = alert.started_at or alert.since
    if started.date() == alert.since.date():
        return f"{alert.since:%H:%M:%S}"
    return f"{alert.since:%m-%d %H:%M}"


def history_row(alert: Alert) -> tuple[Content, ...]:
    started = alert.started_at or alert.since
    _, style = SEVERITY_STYLE[alert.severity]
    how = (
        Content.styled("escalated", "$warning")
        if alert.escalated_to
        else Content.styled("resolved", "$success")
    )
    return (
        Content(f"{started:%m-%d %H:%M:%S}"),
        Content(_ended(alert)),
        Content(duration((alert.since - started).total_seconds())),
        Content.styled(alert.key, style),
        how,
        Content.styled(alert.ack.by, "$accent") if alert.ack else Content("—"),
    )


class AlertHistoryScreen(SnapshotScreen):
    DEFAULT_CSS = """
    AlertHistoryScreen #title {
        text-style: bold;
        padding: 0 1;
        background: $panel;
        width: 100%;
    }
    AlertHistoryScreen DataTable {
        height: 1fr;
    }
    """

    def __init__(self, sources: AlertSources) -> None:
        super().__init__()
        self.sources = sources
        self.episodes: Sequence[Alert] = ()
        self._loaded = False
        # The ended episodes the live book listed at the last read: one more ended
        # since, and the list is read again.
        self._ended_seen: frozenset[str] | None = None
        self._widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Alert history: reading the record…", id="title")
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def prepare(self) -> None:
        self._build_columns()

    def on_resize(self) -> None:
        if self._alert_width() != self._widths.get("alert"):
            self._build_columns()

    def _alert_width(self) -> int:
        fixed = [width for key, _, width in COLUMNS if key != "alert"]
        return remaining_width(self.size.width, fixed, ALERT_MIN_WIDTH)

    def _build_columns(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self._widths = {
            key: self._alert_width() if key == "alert" else width for key, _, width in COLUMNS
        }
        for key, label, _ in COLUMNS:
            table.add_column(label, key=key, width=self._widths[key])
        self._fill()

    def draw(self, snapshot: EstateSnapshot) -> None:
        ended = frozenset(a.id for a in snapshot.alerts if a.state is AlertState.RESOLVED)
        if ended != self._ended_seen:
            self._ended_seen = ended
            self.run_worker(
                self._load(), group="alert-history", exclusive=True, exit_on_error=False
            )

    async def _load(self) -> None:
        episodes = await self.sources.history()
        selected = self.selected_episode
        self.episodes, self._loaded = episodes, True
        if self.is_attached:
            self._fill(selected)

    def _fill(self, selected: str | None = None) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for alert in self.episodes:
            table.add_row(*history_row(alert), key=alert.id)
        ids = [alert.id for alert in self.episodes]
        if selected in ids:
            table.move_cursor(row=ids.index(selected), scroll=False)
        title = self.query_one("#title", Label)
        if not self._loaded:
            return
        if not self.episodes:
            title.update(Content("Alert history: no episode has ended yet"))
        else:
            title.update(
                Content(
                    f"Alert history: the last {len(self.episodes)} episodes that ended, "
                    "newest first (Enter opens one)"
                )
            )

    @property
    def selected_episode(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.episodes or table.cursor_row >= len(self.episodes):
            return None
        return self.episodes[table.cursor_row].id

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        alert_id = event.row_key.value
        if alert_id is None:
            return
        screen = AlertDetailScreen(alert_id, self.sources)
        screen.snapshot = self.snapshot
        self.app.push_screen(screen)
