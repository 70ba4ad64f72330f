"""The second confirmation for a forced action: says what it overrides; type FORCE."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from noc.model import ActionPlan

FORCE_WORD = "FORCE"


class ForceDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ForceDialog {
        align: center middle;
        background: $background 60%;
    }
    ForceDialog > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ForceDialog #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
        background: $error;
        color: $text;
    }
    ForceDialog Static, ForceDialog Input {
        margin: 1 0 0 0;
    }
    ForceDialog #buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    ForceDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        failed = "\n".join(f"  ✗ {c.name}: {c.detail}" for c in self.plan.failed)
        with Vertical():
            yield Label(
                Content(f"FORCED {self.plan.kind.value.upper()} to {self.plan.target}"), id="title"
            )
            yield Static(
                Content(f"This overrides:\n{failed}\nand is recorded in the audit log as forced.")
            )
            yield Input(placeholder=f"type {FORCE_WORD} to proceed", id="force")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Force", id="confirm", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value.strip() != FORCE_WORD

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self.query_one("#force", Input).value.strip() == FORCE_WORD:
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
