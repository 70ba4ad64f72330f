"""One alert episode in full (Enter on an alert row): what it is, what it means, who
is on it, what mutes it, where it came from or went, what the record says happened
to it, and what to do next.

It follows the snapshot: an episode that resolves while it is open says so at once
(the live book keeps recently resolved episodes); one that has left the book is
drawn from the history the journal keeps. The record's moments are read off the
event loop (the app's `AlertSources.story`), again whenever the episode changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Label, Static

from noc.model import Alert, AlertState, EstateSnapshot, Interface, Silence
from noc.next_steps import NEXT_STEPS as NEXT_STEPS  # re-exported: the views' table
from noc.next_steps import next_step
from noc_widgets.alert_pane import SEVERITY_STYLE, STATE_STYLE
from noc_widgets.snapshot_screen import SnapshotScreen

LABEL_WIDTH = 10


class Story(Protocol):
    """What the record says of an episode (noc.alert_journal.EpisodeStory)."""

    @property
    def steps(self) -> tuple[tuple[datetime, str], ...]: ...

    @property
    def past(self) -> Alert | None: ...


@dataclass(frozen=True)
class NoStory:
    steps: tuple[tuple[datetime, str], ...] = ()
    past: Alert | None = None


@dataclass(frozen=True)
class AlertSources:
    """What the alert views read besides the snapshot, given by the app."""

    meanings: Mapping[str, str]  # rule -> what it means (noc.rules.RULES)
    keys: Mapping[str, str]  # binding id -> the key that does it now
    story: Callable[[str], Awaitable[Story]]  # episode id -> its record (off the loop)
    history: Callable[[], Awaitable[Sequence[Alert]]]  # past episodes, newest first
    silences: Callable[[], Sequence[Silence]]  # the silences in force
    operable: bool  # False when read-only: no ack, no silence
    # The app's acts on an episode, called rather than messaged: the keys typed after
    # `a` must be held for the dialog by the time they come back up unhandled, and a
    # message would reach the app only after them.
    ack: Callable[[str], None]
    silence: Callable[[str], None]
    # Moves whenever the record is written: the book shows an ack before its journal
    # line lands, and a story read in between would miss it for good.
    record_mark: Callable[[], object] = lambda: None


def utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def duration(seconds: float) -> str:
    """ "45s", "12m", "3h 05m", "2d 4h": as precise as a reader needs."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def episode_words(alert_id: str) -> str:
    """ "replication_link_down:x, started 22:17:00 UTC": an episode id as it is read."""
    key, _, started = alert_id.rpartition("@")
    if not key:
        return alert_id
    return f"{key}, started {started[:10]} {started[11:19]} UTC"


def _ago(moment: datetime, now: datetime) -> str:
    return f"{utc(moment)} ({duration((now - moment).total_seconds())} ago)"


def _line(label: str, value: Content | str, style: str = "") -> tuple[Content, Content]:
    text = value if isinstance(value, Content) else Content.styled(value, style)
    return Content.styled(label, "bold"), text


def hanging(rows: list[tuple[Content, Content]], indent: int, width: int) -> Content:
    """Label and value per row, a value's wrapped lines under its first one: at 80
    columns the labels stay a column of their own."""
    lines: list[Content] = []
    for label, value in rows:
        wrapped = value.wrap(max(20, width - indent)) or [Content("")]
        for number, part in enumerate(wrapped):
            head = label if number == 0 else Content("")
            lines.append(Content.assemble(head, " " * (indent - head.cell_length), part))
    return Content("\n").join(lines)


class AlertDetailScreen(SnapshotScreen):
    DEFAULT_CSS = """
    AlertDetailScreen #title {
        text-style: bold;
        padding: 0 1;
        background: $panel;
        width: 100%;
    }
    AlertDetailScreen #facts, AlertDetailScreen #steps {
        padding: 0 1;
    }
    AlertDetailScreen #steps-title {
        text-style: bold;
        padding: 0 1;
        margin-top: 1;
        background: $panel;
        width: 100%;
    }
    """

    BINDINGS = [
        Binding("a", "ack", "Ack", id="alert_detail.ack"),
        Binding("s", "silence", "Silence", id="alert_detail.silence"),
        Binding("e", "open_escalated_to", "Escalated to", id="alert_detail.escalated_to"),
        Binding("p", "open_escalated_from", "Came from", id="alert_detail.escalated_from"),
    ]

    def __init__(self, alert_id: str, sources: AlertSources) -> None:
        super().__init__()
        self.alert_id = alert_id
        self.sources = sources
        self.story: Story = NoStory()
        self._story_loaded = False
        self._story_loading = False
        # The episode as last read from the record: a change reads the record again.
        self._story_of: object = None
        self.shown: Alert | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(id="title")
            yield Static(id="facts")
            yield Label("What the record says (journal and history)", id="steps-title")
            yield Static(id="steps")
        yield Footer()

    # --- what is shown ---------------------------------------------------------

    def _live(self, snapshot: EstateSnapshot) -> Alert | None:
        return next((a for a in snapshot.alerts if a.id == self.alert_id), None)

    def draw(self, snapshot: EstateSnapshot) -> None:
        live = self._live(snapshot)
        alert = live or self.story.past
        self.shown = alert
        # Read the record again when the episode moved on (fired, acked, ended).
        mark = (
            None
            if live is None
            else (live.state, live.ack, live.escalated_to, live.since, self.sources.record_mark())
        )
        if mark != self._story_of or not (self._story_loaded or self._story_loading):
            self._story_of, self._story_loading = mark, True
            self.run_worker(
                self._load_story(), group="alert-story", exclusive=True, exit_on_error=False
            )
        title = self.query_one("#title", Label)
        facts = self.query_one("#facts", Static)
        if alert is None:
            title.update(Content(f"Alert {self.alert_id}"))
            facts.update(
                Content.styled("reading the record…", "italic")
                if not self._story_loaded
                else Content.styled(
                    "This episode is neither live nor in the history kept.", "$warning"
                )
            )
        else:
            title.update(self._title(alert))
            facts.update(
                hanging(self._facts(alert, live, snapshot.generated_at), LABEL_WIDTH, self._width)
            )
        self._draw_steps()
        self.refresh_bindings()

    def _title(self, alert: Alert) -> Content:
        severity, severity_style = SEVERITY_STYLE[alert.severity]
        state, state_style = STATE_STYLE[alert.state]
        return Content.assemble(
            Content.styled(severity, severity_style),
            "  ",
            Content.styled(state, state_style),
            "  ",
            alert.key,
        )

    @property
    def _width(self) -> int:
        """Room for text: the screen less the padding and a scrollbar."""
        return max(40, self.size.width - 4)

    def _facts(
        self, alert: Alert, live: Alert | None, now: datetime
    ) -> list[tuple[Content, Content]]:
        lines = [
            _line(
                "Rule", f"{alert.rule}: {self.sources.meanings.get(alert.rule, '(unknown rule)')}"
            ),
            _line("Summary", alert.summary),
            _line("Labels", self._labels(alert)),
        ]
        if alert.value is not None:
            lines.append(_line("Value", f"{alert.value:g}"))
        started = alert.started_at or alert.since
        lines.append(_line("Started", _ago(started, now)))
        if alert.state is AlertState.RESOLVED:
            how = "escalated" if alert.escalated_to else "resolved"
            took = duration((alert.since - started).total_seconds())
            lines.append(
                _line("Ended", f"{how} {_ago(alert.since, now)}, after {took}", "$success")
            )
            if live is None:
                lines.append(_line("", "from the history: no longer in the live book", "italic"))
        else:
            lines.append(_line("Since", f"{alert.state.value} since {_ago(alert.since, now)}"))
        lines.append(self._ack_line(alert, live))
        lines.append(self._muted_line(alert))
        if alert.flapping:
            lines.append(_line("Flapping", "yes: it keeps firing and resolving", "bold $warning"))
        if alert.escalated_from:
            key = self.sources.keys.get("alert_detail.escalated_from", "p")
            lines.append(
                _line("Came from", f"{episode_words(alert.escalated_from)} ({key} opens it)")
            )
        if alert.escalated_to:
            key = self.sources.keys.get("alert_detail.escalated_to", "e")
            lines.append(_line("Became", f"{episode_words(alert.escalated_to)} ({key} opens it)"))
        lines.append(
            _line("Next step", next_step(alert, Interface.DASHBOARD, self.sources.keys), "$accent")
        )
        return lines

    @staticmethod
    def _labels(alert: Alert) -> str:
        labels = [f"rule={alert.rule}"]
        if alert.region:
            labels.append(f"region={alert.region}")
        labels.append(f"key={alert.key}")
        return "  ".join(labels)

    def _ack_line(self, alert: Alert, live: Alert | None) -> tuple[Content, Content]:
        # The book drops the ack when an episode ends; the history keeps it.
        ack = alert.ack or (self.story.past.ack if self.story.past is not None else None)
        if ack is not None:
            note = f": {ack.note}" if ack.note else ""
            return _line("Ack", f"{ack.by} at {utc(ack.at)}{note}", "$accent")
        if live is not None and live.state is AlertState.FIRING and self.sources.operable:
            key = self.sources.keys.get("alert_detail.ack", "a")
            return _line("Ack", f"nobody yet ({key} acks it)", "$warning")
        return _line("Ack", "nobody", "$foreground-muted")

    def _muted_line(self, alert: Alert) -> tuple[Content, Content]:
        if alert.silenced_by:
            silence = next((s for s in self.sources.silences() if s.id == alert.silenced_by), None)
            if silence is None:
                return _line("Muted", f"by silence {alert.silenced_by}", "reverse")
            return _line(
                "Muted",
                f"by silence {silence.id} ({silence.describe()}), {silence.author} until "
                f"{utc(silence.ends_at)}: {silence.comment}",
                "reverse",
            )
        if alert.inhibited_by:
            return _line(
                "Muted",
                f"inhibited by {alert.inhibited_by}: a consequence of the region being down",
                "$foreground-muted",
            )
        if alert.maintenance:
            return _line(
                "Muted",
                f"by maintenance window {alert.maintenance} on {alert.region}: it pages "
                "no one until the window ends, then pages if still firing",
                "bold $warning",
            )
        return _line("Muted", "no", "$foreground-muted")

    def _draw_steps(self) -> None:
        steps = self.query_one("#steps", Static)
        if not self.story.steps:
            words = "reading…" if not self._story_loaded else "nothing recorded for this episode"
            steps.update(Content.styled(words, "italic $foreground-muted"))
            return
        rows = [
            (Content.styled(f"{at:%Y-%m-%d %H:%M:%S}", "bold"), Content(words))
            for at, words in self.story.steps
        ]
        steps.update(hanging(rows, len("2026-11-23 03:00:00  "), self._width))

    async def _load_story(self) -> None:
        try:
            story = await self.sources.story(self.alert_id)
        finally:
            self._story_loading = False  # a failed read is tried again with the next snapshot
        self.story, self._story_loaded = story, True
        if self.snapshot is not None and self.is_attached:
            self.draw(self.snapshot)

    # --- keys ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        alert = self.shown
        if action == "ack":
            return self.sources.operable and alert is not None and alert.state is AlertState.FIRING
        if action == "silence":
            return self.sources.operable and alert is not None
        if action == "open_escalated_to":
            return alert is not None and alert.escalated_to is not None
        if action == "open_escalated_from":
            return alert is not None and alert.escalated_from is not None
        return True

    def action_ack(self) -> None:
        self.sources.ack(self.alert_id)

    def action_silence(self) -> None:
        self.sources.silence(self.alert_id)

    def action_open_escalated_to(self) -> None:
        if self.shown is not None and self.shown.escalated_to:
            self._open(self.shown.escalated_to)

    def action_open_escalated_from(self) -> None:
        if self.shown is not None and self.shown.escalated_from:
            self._open(self.shown.escalated_from)

    def _open(self, alert_id: str) -> None:
        screen = AlertDetailScreen(alert_id, self.sources)
        screen.snapshot = self.snapshot
        self.app.push_screen(screen)
