"""The alert pane: firing by severity, then pending, then recently resolved.

Each row says what a NOC operator needs before acting: severity and state in
glyph and word, the summary, since when, and whether someone acked it, a silence
mutes it, a down region inhibits it, or it is flapping.
"""

from __future__ import annotations

from datetime import datetime

from noc_widgets.column_fit import remaining_width
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from noc.model import Alert, AlertState, EstateSnapshot, Severity

SEVERITY_STYLE = {
    Severity.CRITICAL: ("✗ CRIT", "bold $error"),
    Severity.WARNING: ("▲ WARN", "bold $warning"),
    Severity.INFO: ("• info", "$foreground-muted"),
}
STATE_STYLE = {
    AlertState.FIRING: ("firing", "bold"),
    AlertState.PENDING: ("pending", "italic"),
    AlertState.RESOLVED: ("✓ resolved", "$success"),
}


# (key, label, width); the summary takes the width that is left.
COLUMNS = (
    ("severity", "Sev", 6),
    ("state", "State", 10),
    ("summary", "Alert", 0),
    ("age", "For", 4),
)
SUMMARY_MIN_WIDTH = 24
NO_ALERTS = Content.styled("✓ no alerts", "$success")


def _age(since: datetime, now: datetime) -> str:
    """Coarse on purpose: a row that changes every second is repainted every second."""
    seconds = max(0.0, (now - since).total_seconds())
    if seconds < 60:
        return "<1m"
    if seconds < 120:
        return "1m"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def marks(alert: Alert) -> Content:
    parts: list[Content] = []
    if alert.ack:
        parts.append(Content.styled(f"ACK {alert.ack.by}: {alert.ack.note}", "$accent"))
    if alert.silenced_by:
        parts.append(Content.styled("SILENCED", "reverse"))
    if alert.inhibited_by:
        parts.append(Content.styled(f"INHIBITED by {alert.inhibited_by}", "$foreground-muted"))
    if alert.flapping:
        parts.append(Content.styled("FLAPPING", "bold $warning"))
    return Content(" ").join(parts)


def row(alert: Alert, now: datetime) -> tuple[Content, ...]:
    severity, severity_style = SEVERITY_STYLE[alert.severity]
    state, state_style = STATE_STYLE[alert.state]
    dim = alert.muted or alert.state is AlertState.RESOLVED
    summary = Content.styled(alert.summary, "$foreground-muted" if dim else "")
    flags = marks(alert)
    return (
        Content.styled(severity, "$foreground-muted" if dim else severity_style),
        Content.styled(state, state_style),
        Content.assemble(flags, " ", summary) if flags else summary,
        Content(_age(alert.since, now)),
    )


class AlertPane(DataTable[Content]):
    DEFAULT_CSS = """
    AlertPane {
        height: auto;
        max-height: 9;
        border-top: solid $foreground-muted;
    }
    """

    class AlertHighlighted(Message):
        def __init__(self, alert_id: str | None) -> None:
            super().__init__()
            self.alert_id = alert_id

    # Children update themselves; repainting the whole widget per snapshot would
    # resend every line of it down an SSH link once a second.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", show_header=True)
        self._shown: list[tuple[str, tuple[Content, ...]]] = []
        self._widths: dict[str, int] = {}

    def on_mount(self) -> None:
        self._build_columns()

    def on_resize(self) -> None:
        if self._summary_width() != self._widths.get("summary"):
            self._build_columns()

    def _summary_width(self) -> int:
        fixed = [width for key, _, width in COLUMNS if key != "summary"]
        return remaining_width(self.size.width, fixed, SUMMARY_MIN_WIDTH)

    def _build_columns(self) -> None:
        self.clear(columns=True)
        self._widths = {
            key: self._summary_width() if key == "summary" else width for key, _, width in COLUMNS
        }
        for key, label, _ in COLUMNS:
            self.add_column(label, key=key, width=self._widths[key])
        self._shown = []
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        if snapshot is None:
            return
        rows = [(a.id, row(a, snapshot.generated_at)) for a in snapshot.alerts]
        if not rows:
            rows = [("", (Content(""), Content(""), NO_ALERTS, Content("")))]
        if rows != self._shown and self._widths:
            self._show(rows)

    def _show(self, rows: list[tuple[str, tuple[Content, ...]]]) -> None:
        """Rebuild the rows (there are few), keeping the operator's selection."""
        selected = self.selected_alert
        self.clear()
        for alert_id, cells in rows:
            self.add_row(*cells, key=alert_id or "none")
        self._shown = rows
        ids = [alert_id for alert_id, _ in rows]
        if selected in ids:
            self.move_cursor(row=ids.index(selected))

    @property
    def selected_alert(self) -> str | None:
        if not self._shown or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row][0] or None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key: RowKey = event.row_key
        self.post_message(self.AlertHighlighted(key.value if key.value != "none" else None))
