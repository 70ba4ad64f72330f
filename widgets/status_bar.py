"""The status bar: estate, topology, active region, lock, UTC clock, poll age, liveness."""

from __future__ import annotations

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from noc.model import AlertState, AutoMode, AutoStatus, DrillDue, EstateSnapshot, Severity
from noc_widgets.health_style import ACTIVE_MARK, age_text


def liveness(snapshot: EstateSnapshot) -> Content:
    """LIVE, STALE or DISCONNECTED: loud when noc itself is the problem."""
    if snapshot.cut_off:
        return Content.styled(" ✗ DISCONNECTED ", "bold $text-error on $error-muted")
    if snapshot.stale:
        return Content.styled(" ◌ STALE ", "bold $text-warning on $warning-muted")
    if snapshot.last_poll_age is None:
        return Content.styled(" … STARTING ", "$foreground-muted")
    return Content.styled(" ● LIVE ", "bold $text-success")


def alert_counts(snapshot: EstateSnapshot) -> Content:
    """Unmuted firing alerts by severity, and pending ones: words, not colour alone."""
    firing = [a for a in snapshot.alerts if a.state is AlertState.FIRING and not a.muted]
    critical = sum(1 for a in firing if a.severity is Severity.CRITICAL)
    warning = len(firing) - critical
    pending = sum(1 for a in snapshot.alerts if a.state is AlertState.PENDING)
    if not (critical or warning or pending):
        return Content.styled("✓ no alerts", "$success")
    parts = []
    if critical:
        parts.append(Content.styled(f"✗ {critical} crit", "bold $error"))
    if warning:
        parts.append(Content.styled(f"▲ {warning} warn", "bold $warning"))
    if pending:
        parts.append(Content.styled(f"◔ {pending} pend", "$foreground-muted"))
    return Content(" ").join(parts)


AUTO_MARKS = {
    AutoMode.ARMED: ("⚡ AUTO armed", "$success"),
    AutoMode.COUNTING: ("⚡ AUTO counting", "bold $warning"),
    AutoMode.PAUSED: ("⏸ AUTO paused", "bold $warning"),
    AutoMode.HELD: ("⚡ AUTO held", "bold $error"),
    AutoMode.FIRED: ("⚡ AUTO FIRED", "bold $text-error on $error-muted"),
}


def automation_mark(status: AutoStatus) -> Content:
    """The automated failover's state: always on screen when it is configured."""
    text, style = AUTO_MARKS.get(status.mode, ("AUTO off", "$foreground-muted"))
    return Content.styled(text, style)


def poll_age(snapshot: EstateSnapshot, *, coarse: bool = False, verb: str = "polled") -> str:
    if snapshot.last_poll_age is None:
        return "no poll yet"
    return f"{verb} {age_text(snapshot.last_poll_age, coarse=coarse)} ago"


def drill_mark(drill: DrillDue) -> tuple[Content, int | None]:
    """The next drill's date and mode; overdue, loud and never shed for space."""
    if drill.overdue:
        return Content.styled(f"⏲ DRILL OVERDUE {drill.mode}", "bold $warning"), None
    return Content(f"⏲ drill {drill.due:%Y-%m-%d} {drill.mode}"), 0


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    # Repainted only when the line changes (a clock without seconds: once a minute).
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)

    def __init__(self, *, seconds: bool = True) -> None:
        """`seconds=False` for low bandwidth: a clock without seconds, ages in 10 s steps."""
        super().__init__()
        self.seconds = seconds

    _line: Content | None = None

    def watch_snapshot(self) -> None:
        self._repaint_if_changed()

    def on_resize(self) -> None:
        self._repaint_if_changed()

    def _repaint_if_changed(self) -> None:
        line = self._compose_line()
        if self._line is None or (line.plain, line.spans) != (self._line.plain, self._line.spans):
            self._line = line
            self.refresh()

    def render(self) -> RenderResult:
        return self._line if self._line is not None else self._compose_line()

    def _compose_line(self) -> Content:
        snapshot = self.snapshot
        if snapshot is None:
            return Content.styled(" noc  starting…", "$foreground-muted")
        separator = Content.styled(" │ ", "$foreground-muted")
        active = snapshot.active_region
        clock = snapshot.generated_at.strftime("%H:%M:%S UTC" if self.seconds else "%H:%M UTC")
        # (part, shed order): when the bar is too narrow, parts go whole, lowest
        # first, rather than the line being cut at the edge; None never goes.
        parts: list[tuple[Content, int | None]] = [
            (Content.styled(f" {snapshot.estate}", "bold"), None),
            (Content(snapshot.topology.value), 0),
            (
                Content.styled(f"{ACTIVE_MARK} active {active}", "bold $accent")
                if active
                else Content.styled("active ? unknown", "bold $error"),
                None,
            ),
        ]
        if snapshot.authority.split:
            parts.append((Content.styled("⚠ SPLIT", "bold $error"), None))
        if snapshot.read_only:
            parts.append((Content.styled("⊘ READ-ONLY", "bold reverse"), None))
        if snapshot.automation is not None:
            parts.append((automation_mark(snapshot.automation), None))
        if snapshot.vantages:
            # Attached: which agent runs automation and sends the pages (noc.lease).
            leader = snapshot.leader
            parts.append(
                (Content(f"♛ leader {leader.vantage}"), 4)
                if leader is not None
                else (Content.styled("♛ no leader", "bold $error"), None)
            )
        if snapshot.drill is not None:
            parts.append(drill_mark(snapshot.drill))
        age = poll_age(snapshot, coarse=not self.seconds)
        parts.append((alert_counts(snapshot), 3))
        parts.extend([(Content(clock), 2), (Content(age), 1), (liveness(snapshot), None)])
        while separator.join(part for part, _ in parts).cell_length > self.size.width:
            sheddable = [entry for entry in parts if entry[1] is not None]
            if not sheddable:
                break
            parts.remove(min(sheddable, key=lambda entry: entry[1] or 0))
        return separator.join(part for part, _ in parts)
