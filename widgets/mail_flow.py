"""The mail flow view: each region's queues, rejections and MTA-STS standing.

A row per region: the MTA's active, deferred and held messages, the oldest deferred
message's age ("≥" where the exporter only says it is at least that old), the
rejections a minute by reply class, and whether the region's MX is inside the
domain's MTA-STS policy (a failover to a region outside it is refused; the live MX
outside it is mta_sts_mismatch): ✓ in, ✗ outside, and why the exporter could not
be read. Figures over their alert's threshold take the
alert's colour; the words say the same without colour. Above the table, the policy
itself: mode, id, its mx patterns and the live MX set.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import DataTable, Label

from noc.model import (
    AlertState,
    EstateSnapshot,
    MtaSample,
    MtaStsSample,
    RegionStatus,
    Severity,
    mx_matches,
)
from noc_widgets.column_fit import clip_at_break, remaining_width, same_drawing
from noc_widgets.health_style import ACTIVE_MARK
from noc_widgets.view import SnapshotView

# (key, label, width); the last column takes what the others leave.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("region", "Region", 6),
    ("active", "Active", 6),
    ("deferred", "Deferred", 8),
    ("hold", "Hold", 6),
    ("oldest", "Oldest", 7),
    ("4xx", "4xx/min", 7),
    ("5xx", "5xx/min", 7),
)
STATUS_MIN_WIDTH = 12
NOT_READ = "—"
_ERROR = "$text-error"
_WARNING = "$text-warning"
# A figure under a firing alert takes its severity's colour; one still pending, italic.
_SEVERITY_STYLE = {Severity.CRITICAL: _ERROR, Severity.WARNING: _WARNING, Severity.INFO: "bold"}
_PENDING = "italic"


def age_text(seconds: float | None, lower_bound: bool) -> str:
    """ "42s", "17m", "3h05", "2d04"; "≥" before a floor; "—" for no deferred mail."""
    if seconds is None:
        return NOT_READ
    whole = int(seconds)
    if whole < 60:
        text = f"{whole}s"
    elif whole < 3600:
        text = f"{whole // 60}m"
    elif whole < 86400:
        text = f"{whole // 3600}h{whole % 3600 // 60:02d}"
    else:
        text = f"{whole // 86400}d{whole % 86400 // 3600:02d}"
    return f"≥{text}" if lower_bound else text


def policy_standing(region: RegionStatus, policy: MtaStsSample | None) -> tuple[str, str | None]:
    """What MTA-STS says of the region's MX, and the style it takes (None: plain)."""
    if policy is None:
        return "", None
    if policy.error is not None:
        return "policy unread", _WARNING
    if policy.mode in (None, "none"):
        return f"mode {policy.mode or 'unset'}", None
    if not region.mx_host:
        return "no MX host", None
    live = region.mx_host.lower().rstrip(".") in policy.live_mx
    if any(mx_matches(pattern, region.mx_host) for pattern in policy.mx_patterns):
        return ("✓ live MX" if live else "✓ in policy"), None
    if live:
        return "✗ live MX outside", _ERROR
    return "✗ outside policy", _WARNING


def policy_line(policy: MtaStsSample | None) -> Content:
    if policy is None:
        return Content.styled("MTA-STS not read ([email] mta_sts = true to read it)", "dim")
    if policy.error is not None:
        return Content.styled(f"MTA-STS {policy.domain}: {policy.error}", _WARNING)
    if policy.policy_id is None:
        return Content(f"MTA-STS {policy.domain}: no policy published (_mta-sts TXT)")
    patterns = ", ".join(policy.mx_patterns) or "none"
    live = ", ".join(policy.live_mx) or "none"
    return Content(
        f"MTA-STS {policy.domain}: {policy.mode} · id {policy.policy_id} · "
        f"mx: {patterns} · live MX: {live}"
    )


def _alert_styles(snapshot: EstateSnapshot) -> dict[tuple[str, str | None], str]:
    """(rule, region) of each queue or rejection alert -> the style of its figures."""
    styles: dict[tuple[str, str | None], str] = {}
    for alert in snapshot.alerts:
        if alert.rule not in ("queue_backlog", "rejections"):
            continue
        if alert.state is AlertState.PENDING:
            styles[(alert.rule, alert.region)] = _PENDING
        elif alert.state is AlertState.FIRING:
            styles[(alert.rule, alert.region)] = _SEVERITY_STYLE[alert.severity]
    return styles


def row_cells(
    region: RegionStatus,
    sample: MtaSample | None,
    policy: MtaStsSample | None,
    styles: Mapping[tuple[str, str | None], str],
    status_width: int,
) -> dict[str, Content]:
    """The cells of one region's row, by column key."""
    name = f"{ACTIVE_MARK} {region.id}" if region.is_active else f"  {region.id}"
    cells = {"region": Content.styled(name, "bold") if region.is_active else Content(name)}
    backlog = styles.get(("queue_backlog", region.id))
    rejecting = styles.get(("rejections", region.id))
    read = sample is not None and sample.error is None

    def figure(value: int | float | None, style: str | None) -> Content:
        text = NOT_READ if value is None or not read else f"{value:.0f}"
        return Content.styled(text, style) if style and text != NOT_READ else Content(text)

    rates = (sample.rejections_per_minute if sample else None) or {}
    cells["active"] = figure(sample.queue_active if sample else None, None)
    cells["deferred"] = figure(sample.queue_deferred if sample else None, backlog)
    cells["hold"] = figure(sample.queue_hold if sample else None, backlog)
    oldest = (
        age_text(sample.oldest_deferred_seconds, sample.oldest_is_lower_bound)
        if sample and read
        else NOT_READ
    )
    cells["oldest"] = Content.styled(oldest, backlog) if backlog else Content(oldest)
    for cls in ("4xx", "5xx"):
        rate = rates.get(cls)
        cells[cls] = figure(rate, rejecting if rate else None)
    standing, style = policy_standing(region, policy)
    words = [standing] if standing else []
    if sample is None:
        words.append("no [regions.mta]")
    elif sample.error is not None:
        words.append(f"exporter: {sample.error}")
    text = clip_at_break(" · ".join(words), status_width)
    status_style = _WARNING if sample is not None and sample.error else style
    cells["status"] = Content.styled(text, status_style) if status_style else Content(text)
    return cells


class MailFlowView(SnapshotView):
    VIEW_ID = "mail"
    TITLE = "Mail flow"

    DEFAULT_CSS = """
    MailFlowView {
        layout: vertical;
        padding: 0 1;
        & > #mail-policy { width: 1fr; height: auto; margin-bottom: 1; }
        & > DataTable { height: 1fr; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: dict[str, dict[str, Content]] = {}
        self._status_width = 0
        self._policy_shown: Content | None = None

    def compose(self) -> ComposeResult:
        yield Label(id="mail-policy")
        yield DataTable[Content](id="mail-queues", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self._rebuild()

    def on_resize(self) -> None:
        if self._width_for_status() != self._status_width:
            self._rebuild()

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        if snapshot is None or not self.is_mounted:
            return
        line = policy_line(snapshot.mta_sts)
        # Label.update repaints even when nothing changed; a wall runs for days.
        if not same_drawing(self._policy_shown, line):
            self._policy_shown = line
            self.query_one("#mail-policy", Label).update(line)
        if self._shown and list(self._shown) != [region.id for region in snapshot.regions]:
            self._rebuild()  # a region gone, added or reordered: a configuration reload
            return
        self._fill(snapshot)

    def _fill(self, snapshot: EstateSnapshot) -> None:
        """Add new rows and change only the cells whose words changed."""
        table = self.query_one(DataTable)
        styles = _alert_styles(snapshot)
        for region in snapshot.regions:
            row = row_cells(
                region,
                snapshot.mta_of(region.id),
                snapshot.mta_sts,
                styles,
                self._status_width,
            )
            before = self._shown.get(region.id)
            if before is None:
                table.add_row(*row.values(), key=region.id)
            else:
                for column, value in row.items():
                    if not same_drawing(before.get(column), value):
                        table.update_cell(region.id, column, value)
            self._shown[region.id] = row

    def _width_for_status(self) -> int:
        return remaining_width(
            self.size.width - 2, (width for _, _, width in COLUMNS), STATUS_MIN_WIDTH
        )

    def _rebuild(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self._shown = {}
        self._status_width = self._width_for_status()
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.add_column("MTA-STS", key="status", width=self._status_width)
        if self.snapshot is not None:
            self._fill(self.snapshot)
