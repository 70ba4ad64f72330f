"""A banner across the screen when the picture cannot be trusted as it stands.

Shown when noc is cut off (last known status only), when vantages (agents feeding a
control plane) are cut off or stale and so do not vote, when every health check fails
while other sources answer (an estate-wide outage), when polls are stale, when the
regions' stores disagree on which region is active (split-brain risk), while
automated failover counts down, is held back, or has fired (with how it went:
verified or not, the RTO; no dialog covers the dashboard), and when a part of
noc itself has failed (a pane that could not draw, a poll loop that died): the
app sets `faults`, lines the snapshot does not carry.
"""

from __future__ import annotations

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from noc.model import AutoMode, EstateSnapshot


def _silent_vantages(snapshot: EstateSnapshot) -> str:
    """The vantages that do not vote, and why: "a stale (no report for 42s), b cut off"."""
    described = []
    for vantage in snapshot.vantages:
        if vantage.votes:
            continue
        why = ["cut off"] if vantage.cut_off else []
        if vantage.stale:
            why.append(f"stale (no report for {vantage.age_seconds:.0f}s)")
        described.append(f"{vantage.name} {', '.join(why)}")
    return ", ".join(described)


def banner_lines(snapshot: EstateSnapshot, automated: str | None = None) -> list[Content]:
    """`automated`: how this session's automated failover ended (see `Banner.automated`)."""
    lines: list[Content] = []
    silent = _silent_vantages(snapshot)
    if snapshot.cut_off and snapshot.vantages:
        # Attached to a control plane, and no vantage can vote: no verdict is current.
        lines.append(
            Content.styled(f"✗ no vantage can vote ({silent}): regions are not judged", "bold")
        )
    elif snapshot.cut_off:
        since = snapshot.cut_off_since.strftime("%H:%M:%S UTC") if snapshot.cut_off_since else "?"
        lines.append(
            Content.styled(
                f"✗ noc cannot reach anything since {since}: showing LAST KNOWN status, "
                "regions are not being declared down",
                "bold",
            )
        )
    elif snapshot.estate_outage:
        lines.append(
            Content.styled(
                "✗ ESTATE-WIDE OUTAGE: every health check is failing while noc still reaches "
                "the stores and DNS: this is not noc cut off",
                "bold",
            )
        )
    elif snapshot.stale:
        age = f"{snapshot.last_poll_age:.0f}s" if snapshot.last_poll_age is not None else "ever"
        lines.append(Content.styled(f"◌ STALE: no poll result for {age}", "bold"))
    if silent and not snapshot.cut_off:
        lines.append(Content.styled(f"◌ vantages not voting: {silent}", "bold"))
    if snapshot.authority.split:
        others = ", ".join(
            f"{store} says {active}" for store, active in snapshot.authority.disagreeing
        )
        lines.append(
            Content.styled(
                f"⚠ SPLIT-BRAIN RISK: stores disagree on the active region "
                f"({snapshot.active_region} by majority; {others})",
                "bold",
            )
        )
    if snapshot.notifications_problem:
        lines.append(Content.styled(f"✗ {snapshot.notifications_problem}", "bold"))
    for channel in snapshot.notifications:
        if channel.failing:
            status = f"HTTP {channel.last_status}" if channel.last_status else "no answer"
            retry = (
                f", retry in {channel.retry_in_seconds:.0f}s" if channel.retry_in_seconds else ""
            )
            lines.append(
                Content.styled(
                    f"✗ notifications to {channel.name} failing ({status}: {channel.last_error}); "
                    f"{channel.pending} waiting{retry}",
                    "bold",
                )
            )
    if snapshot.active_region is None:
        lines.append(Content.styled("? active region unknown: no flag store could be read", "bold"))
    automation = snapshot.automation
    if automation is not None and automation.mode is AutoMode.FIRED and automated:
        # One statement, not two: what fired, how it ended, and what may follow.
        lines.append(Content.styled(f"{FIRED_WITH_OUTCOME}{automated}{FIRED_TAIL}", "bold"))
    elif automation is not None and automation.mode in LOUD_AUTO_MODES:
        lines.append(Content.styled(LOUD_AUTO_MODES[automation.mode] + automation.detail, "bold"))
    return lines


FIRED_WITH_OUTCOME = "⚡ AUTOMATED FAILOVER FIRED "
# P pauses the automation; P again resumes it, which re-arms it.
FIRED_TAIL = ". It will not fail back; P, then P again, re-arms it."


# The automation's states an operator must see in words, not just as a status-bar mark.
LOUD_AUTO_MODES = {
    AutoMode.COUNTING: "⚡ AUTOMATED FAILOVER COUNTING DOWN: ",
    AutoMode.HELD: "⚡ AUTOMATED FAILOVER HELD BACK: ",
    AutoMode.FIRED: "⚡ AUTOMATED FAILOVER FIRED (it will not fail back; P re-arms): ",
}


class Banner(Widget):
    DEFAULT_CSS = """
    Banner {
        height: auto;
        display: none;
        background: $error-muted;
        color: $text-error;
        padding: 0 1;
    }
    Banner.-shown {
        display: block;
    }
    """

    # Repainted only when its words change, not with every snapshot.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)
    # noc's own failures, one line each: what the snapshot does not carry.
    faults: reactive[tuple[str, ...]] = reactive((), repaint=False)
    # How this session's automated failover went, as it goes: "ro → bg at 03:00:30
    # UTC: VERIFIED, RTO 4.0 s; t shows the timeline". Shown here, not in a dialog
    # over the dashboard: nobody confirmed it, and the keys must keep working.
    automated: reactive[str | None] = reactive(None, repaint=False)
    _lines: tuple[Content, ...] = ()

    def watch_faults(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_automated(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        lines = () if snapshot is None else tuple(banner_lines(snapshot, self.automated))
        lines += tuple(Content.styled(f"✗ {fault}", "bold") for fault in self.faults)
        self.set_class(bool(lines), "-shown")
        if lines != self._lines:
            self._lines = lines
            self.refresh(layout=True)

    def render(self) -> RenderResult:
        return Content("\n").join(self._lines)
