"""The break-glass override: the second confirmation of an action the rules refuse.

It names every rule it bypasses (each one, with why it failed) and says it is
recorded; the operator types FORCE to go on. Only rules marked forceable can get
here: the lock, the DNS key and "never zero active" are never bypassed.
"""

from __future__ import annotations

from noc_widgets.failover_dialog import PreflightView, plan_title
from noc_widgets.fitted_modal import FittedModal
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, Label, Static

from noc.model import ActionPlan

FORCE_WORD = "FORCE"


class ForceDialog(FittedModal[bool]):
    BODY_ID = "rules"

    DEFAULT_CSS = """
    ForceDialog {
        align: center middle;
        background: $background 60%;
    }
    ForceDialog > #dialog {
        width: 96;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ForceDialog #title {
        margin: 0;
        text-style: bold;
        width: 100%;
        content-align: center middle;
        background: $error;
        color: $text;
    }
    ForceDialog Static, ForceDialog Input {
        margin: 1 0 0 0;
    }
    ForceDialog #rules {
        height: auto;
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

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
    ]

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        count = len(plan.failed)
        rules = f"{count} safety rule{'s' if count != 1 else ''}"
        with Vertical(id="dialog"):
            yield Label(Content(f"Break-glass override: {plan_title(plan)}"), id="title")
            yield Static(Content.assemble("This bypasses ", (rules, "bold"), ":"))
            with VerticalScroll(id="rules", can_focus=False):
                yield PreflightView(plan, plan.failed)
            yield Static(
                "The audit log records the override, every rule it bypassed, you and your reason."
            )
            yield Input(placeholder=f"type {FORCE_WORD} to break glass", id="force")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Break glass", id="confirm", variant="error", disabled=True)

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
