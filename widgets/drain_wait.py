"""A switchover waiting for replication to drain: what it waits for, and a way out."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from noc.model import ActionPlan


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
        with Vertical():
            yield Label(
                Content(f"SWITCHOVER {plan.source or '?'} → {plan.target}: waiting for lag"),
                id="title",
            )
            yield Static(id="progress")
            yield Static(
                Content.styled(
                    "Nothing changes until every link has drained; cancel and nothing will.",
                    "$foreground-muted",
                )
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
        self.query_one("#progress", Static).update(Content(progress or "reading replication…"))

    def on_button_pressed(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.cancelled = True
        self._show("cancelling: nothing was changed")
