"""Acknowledge something with a note, as who: a firing alert (not a silence), or the
anti-flap cooldown after a failover."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Input, Label, Static

from noc_widgets.typeahead import Field, FieldsModal


class AckDialog(FieldsModal[str | None]):
    DEFAULT_CSS = """
    AckDialog {
        align: center middle;
        background: $background 60%;
    }
    AckDialog > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    AckDialog #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    AckDialog #buttons {
        height: auto;
        align-horizontal: right;
    }
    AckDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(
        self, subject: str, operator: str, *, title: str = "Acknowledge alert", verb: str = "Ack"
    ) -> None:
        super().__init__()
        self.subject = subject
        self.operator = operator
        self.title_text = title
        self.verb = verb

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Static(Content(f"{self.subject}\nas {self.operator}"))
            yield Field(placeholder="note: what you are doing about it", id="note")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.verb, id="confirm", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#note", Input).focus()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = not event.value.strip()

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        note = self.query_one("#note", Input).value.strip()
        if note:
            self.dismiss(note)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
