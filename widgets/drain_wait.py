"""A switchover waiting for something to drain, and a way out: replication lag toward
the target, or, for a failback to a region with [regions.mta], its deferred mail queue."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from noc.model import ActionKind, ActionPlan


def waits_for(plan: ActionPlan) -> tuple[str, str, str]:
    """(what the title says it waits for, what must happen first, what it reads)."""
    if plan.kind is ActionKind.FAILBACK:
        return (
            f"waiting for {plan.target}'s mail queue to drain",
            f"Nothing changes until {plan.target}'s deferred queue is down to its threshold",
            "reading the mail queue…",
        )
    return (
        "waiting for replication lag to drain",
        "Nothing changes until every link has drained",
        "reading replication…",
    )


class DrainWait(ModalScreen[None]):
    DEFAULT_CSS = """
    DrainWait {
        align: center middle;
        background: $background 60%;
    }
    DrainWait > Vertical {
        width: 80;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    DrainWait #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    DrainWait #progress {
        margin: 1 0;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel switchover", id="dialog.cancel")]

    progress: reactive[str] = reactive("")

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.plan = plan
        # Read by the waiting worker: the flip happens only while this stays False.
        self.cancelled = False
        # Set by the worker when it stops waiting; the dialog then closes itself.
        self.finished = False

    def compose(self) -> ComposeResult:
        plan = self.plan
        title, condition, _ = waits_for(plan)
        kind = "FAILBACK" if plan.kind is ActionKind.FAILBACK else "SWITCHOVER"
        with Vertical():
            yield Label(
                Content(f"{kind} {plan.source or '?'} → {plan.target}: {title}"),
                id="title",
            )
            yield Static(id="progress")
            yield Static(
                Content.styled(f"{condition}; cancel and nothing will.", "$foreground-muted")
            )
            yield Button("Cancel switchover", id="cancel", variant="error")

    def on_screen_resume(self) -> None:
        if self.finished:
            self.dismiss(None)

    def on_mount(self) -> None:
        self._show(self.progress)
        self.query_one(Button).focus()

    def watch_progress(self, progress: str) -> None:
        # The waiting worker may report before the dialog has composed: on_mount shows it.
        if self.is_mounted and not self.cancelled:
            self._show(progress)

    def _show(self, progress: str) -> None:
        reading = waits_for(self.plan)[2]
        self.query_one("#progress", Static).update(Content(progress or reading))

    def on_button_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.cancelled = True
        self._show("cancelling: nothing was changed")
