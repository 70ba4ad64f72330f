"""The alert pane: firing by severity, then pending, then recently resolved.

One row per alert episode (its id is the row key: an alert that fires, resolves
and fires again is two rows). Each row says what a NOC operator needs before
acting: severity and state in glyph and word, the summary, since when, and
whether someone acked it, a silence mutes it, a down region inhibits it, or it
is flapping.

What stays in view when rows change (a new alert fires, one resolves): the rows are
sorted with firing alerts first, most severe first, so the top row is the root
cause. Whenever the rows change, the view goes back to the top, so the most severe
firing alert is on screen even at 80x24 where the pane shows a handful of rows; the
cursor stays on the alert it was on (by its episode id, not its row number), so
the alert an operator is about to ack or silence never changes under them, even
when new rows push it below the view. Only the operator's own cursor keys scroll
the view away from the top, and the next change of rows brings it back.

Grouped (`[alerts] group_by`, noc.grouping): alerts sharing a cause are one row
first, worst group on top: its severity is its worst member's, the State column says
how many members it has (▸ 6 folded, ▾ 6 open), and the summary gives the group and
its next step. Enter on a group opens or folds it; its members show under it, indented,
and Enter on a member opens its detail as on any alert. A lone alert stays a plain row.

`/` filters the rows (k9s style, see AlertFilter): only alerts whose rule, region,
key or summary contain the typed text stay, in the same order, so the most severe
firing alert that matches is the one kept in view. The pane's title says the filter
and how many alerts it hides; Esc clears it. Enter on a row opens its detail.
"""

from __future__ import annotations

from datetime import datetime

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from noc.grouping import GROUP_PREFIX, AlertGroup, group_alerts
from noc.model import Alert, AlertState, EstateSnapshot, Interface, Severity
from noc_widgets.column_fit import clip_at_break, remaining_width

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
# Marks never cut the summary shorter than this: the alert itself comes first.
SUMMARY_KEPT = 20
NO_ALERTS = Content.styled("✓ no alerts", "$success")


def matches(alert: Alert, text: str) -> bool:
    """Whether the filter `text` (any case) is in the alert's rule, region, key or summary."""
    wanted = text.strip().casefold()
    if not wanted:
        return True
    fields = (alert.rule, alert.region or "", alert.key, alert.summary)
    return any(wanted in field.casefold() for field in fields)


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


# A mark: (its long form, its short form, its style).
Mark = tuple[str, str, str]


def marks(alert: Alert) -> list[Mark]:
    """What is being done about the alert. The short forms drop what the detail view
    (Enter) shows in full: the ack's note, what inhibits it."""
    found: list[Mark] = []
    if alert.ack:
        who = f"ACK {alert.ack.by}"
        found.append((f"{who}: {alert.ack.note}" if alert.ack.note else who, who, "$accent"))
    if alert.silenced_by:
        found.append(("SILENCED", "SILENCED", "reverse"))
    if alert.inhibited_by:
        found.append((f"INHIBITED by {alert.inhibited_by}", "INHIBITED", "$foreground-muted"))
    if alert.maintenance:
        found.append(("MAINTENANCE: pages no one", "MAINT", "bold $warning"))
    if alert.flapping:
        found.append(("FLAPPING", "FLAPPING", "bold $warning"))
    return found


def summary_cell(alert: Alert, width: int) -> Content:
    """The summary, then the marks, in `width` cells.

    The summary comes first: its head is what tells one alert from the next (the
    region, the resolver and the value it answers), and a mark in front of it (an
    ack's note) pushed that off the row. What gives way, in order: the marks' long
    forms, then the summary's tail, cut at a word; the short marks stay.
    """
    dim = alert.muted or alert.state is AlertState.RESOLVED
    summary_style = "$foreground-muted" if dim else ""
    found = marks(alert)
    if not found:
        return Content.styled(clip_at_break(alert.summary, width), summary_style)
    long_marks = " ".join(long for long, _, _ in found)
    if len(alert.summary) + 1 + len(long_marks) <= width:
        chosen = [(long, style) for long, _, style in found]
        summary = alert.summary
    else:
        chosen = [(short, style) for _, short, style in found]
        room = width - sum(1 + len(short) for short, _ in chosen)
        summary = clip_at_break(alert.summary, max(room, SUMMARY_KEPT))
    parts = [Content.styled(summary, summary_style)]
    parts.extend(Content.styled(text, style) for text, style in chosen)
    return Content(" ").join(parts)


def row(alert: Alert, now: datetime, summary_width: int = 1000) -> tuple[Content, ...]:
    severity, severity_style = SEVERITY_STYLE[alert.severity]
    state, state_style = STATE_STYLE[alert.state]
    dim = alert.muted or alert.state is AlertState.RESOLVED
    return (
        Content.styled(severity, "$foreground-muted" if dim else severity_style),
        Content.styled(state, state_style),
        summary_cell(alert, summary_width),
        Content(_age(alert.since, now)),
    )


MEMBER_INDENT = "  "


def group_row(
    group: AlertGroup,
    now: datetime,
    summary_width: int,
    *,
    expanded: bool,
    keys: dict[str, str] | None = None,
) -> tuple[Content, ...]:
    """A group's row: its worst severity, its size, its title and next step."""
    severity, severity_style = SEVERITY_STYLE[group.severity]
    firing = bool(group.firing)
    dim = group.muted or not firing
    fold = "▾" if expanded else "▸"
    state = f"{fold} {len(group.members)} {'firing' if firing else 'pend'}"
    step = group.next_step(Interface.DASHBOARD, keys)
    title = group.title()
    title_style = "$foreground-muted" if dim else "bold"
    if len(title) + 3 + len(step) > summary_width:
        # Narrow (80x24): the group's name and size, then as much of the step as fits;
        # which rules are in it is one Enter away.
        title = title.partition(" (")[0]
    room = summary_width - len(title) - 3
    tail = clip_at_break(step, room) if room >= SUMMARY_KEPT else ""
    summary = Content.assemble(
        Content.styled(clip_at_break(title, summary_width), title_style),
        Content.styled(f" → {tail}", "$accent") if tail else Content(""),
    )
    return (
        Content.styled(severity, "$foreground-muted" if dim else severity_style),
        Content.styled(state, "bold" if firing else "italic"),
        summary,
        Content(_age(group.since, now)),
    )


class AlertPane(DataTable[Content]):
    DEFAULT_CSS = """
    AlertPane {
        height: auto;
        max-height: 9;
        border-top: solid $foreground-muted;
    }
    """

    BINDINGS = [
        Binding("escape", "clear_filter", "Clear filter", show=False, id="alerts.clear_filter"),
    ]

    class AlertHighlighted(Message):
        def __init__(self, alert_id: str | None) -> None:
            super().__init__()
            self.alert_id = alert_id

    class AlertChosen(Message):
        """Enter on an alert row: open its detail."""

        def __init__(self, alert_id: str) -> None:
            super().__init__()
            self.alert_id = alert_id

    class FilterCleared(Message):
        """Esc on the pane cleared its filter (the filter line closes too)."""

    # Children update themselves; repainting the whole widget per snapshot would
    # resend every line of it down an SSH link once a second.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)
    # The `/` filter; "" shows every alert.
    filter_text: reactive[str] = reactive("", repaint=False)

    def __init__(
        self,
        *,
        id: str | None = None,
        group_by: tuple[str, ...] = (),
        keys: dict[str, str] | None = None,
    ) -> None:
        super().__init__(id=id, cursor_type="row", show_header=True)
        self.group_by = group_by
        self.keys = keys or {}
        self.expanded: set[str] = set()  # the group keys shown open
        self._shown: list[tuple[str, tuple[Content, ...]]] = []
        self._widths: dict[str, int] = {}
        self._filter_changed = False

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
        # Keyed by episode id, unique in the book by construction (noc.alerts); a
        # repeat is still skipped here, since a table dies of a duplicate key.
        shown_ids: set[str] = set()
        summary_width = self._widths.get("summary", self._summary_width())
        rows: list[tuple[str, tuple[Content, ...]]] = []
        total = 0
        if self.group_by and not self.filter_text:
            # Groups first (a filter looks for alerts: it shows them flat, as before).
            now = snapshot.generated_at
            for group in group_alerts(snapshot.alerts, self.group_by):
                if len(group.members) < 2:
                    continue
                is_open = group.key in self.expanded
                rows.append(
                    (group.key, group_row(group, now, summary_width, expanded=is_open,
                                          keys=self.keys))
                )  # fmt: skip
                for member in group.members:
                    shown_ids.add(member.id)
                    total += 1
                    if is_open:
                        cells = row(member, now, summary_width - len(MEMBER_INDENT))
                        indented = Content.assemble(MEMBER_INDENT, cells[2])
                        rows.append((member.id, (cells[0], cells[1], indented, cells[3])))
        for alert in snapshot.alerts:
            if alert.id not in shown_ids:
                shown_ids.add(alert.id)
                total += 1
                if matches(alert, self.filter_text):
                    rows.append((alert.id, row(alert, snapshot.generated_at, summary_width)))
        if not rows:
            empty = (
                Content.styled(f"no alert matches /{self.filter_text}", "$foreground-muted")
                if total
                else NO_ALERTS
            )
            rows = [("", (Content(""), Content(""), empty, Content("")))]
        self._show_filter(len(rows) if rows[0][0] else 0, total)
        if (rows != self._shown or self._filter_changed) and self._widths:
            self._filter_changed = False
            self._show(rows)

    def watch_filter_text(self) -> None:
        # A new filter is a new list, even with the same rows: back to its top.
        self._filter_changed = True
        self.watch_snapshot(self.snapshot)

    def _show_filter(self, shown: int, total: int) -> None:
        """The filter in the pane's title, with what it hides: a filter left on must
        never pass for "no other alerts"."""
        title = (
            f"/{self.filter_text}: {shown} of {total} alerts (Esc clears)"
            if self.filter_text
            else None
        )
        if self.border_title != title:
            self.border_title = title

    def action_clear_filter(self) -> None:
        if self.filter_text:
            self.filter_text = ""
            self.post_message(self.FilterCleared())

    def _show(self, rows: list[tuple[str, tuple[Content, ...]]]) -> None:
        """Rebuild the rows (there are few), keeping the operator's selection."""
        selected = self.selected_alert
        self.clear()
        for alert_id, cells in rows:
            self.add_row(*cells, key=alert_id or "none")
        self._shown = rows
        ids = [alert_id for alert_id, _ in rows]
        if selected in ids:
            self.move_cursor(row=ids.index(selected), scroll=False)
        # The top row is the most severe firing alert: it stays in view (see above).
        # After the refresh: the table scrolls its cursor into view then, and this
        # must come after that.
        self.call_after_refresh(self.scroll_to, y=0, animate=False)

    @property
    def selected_alert(self) -> str | None:
        if not self._shown or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row][0] or None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key: RowKey = event.row_key
        self.post_message(self.AlertHighlighted(key.value if key.value != "none" else None))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        chosen = event.row_key.value
        if chosen and chosen.startswith(GROUP_PREFIX):
            self.toggle_group(chosen)
        elif chosen and chosen != "none":
            self.post_message(self.AlertChosen(chosen))

    def toggle_group(self, key: str) -> None:
        """Open a folded group (its members under it), or fold an open one."""
        if key in self.expanded:
            self.expanded.discard(key)
        else:
            self.expanded.add(key)
        self.watch_snapshot(self.snapshot)
