"""Open a maintenance window on a region, or end one of its windows.

The dialog asks; the app acts through the operations layer, as `noc maintenance`
does. What the operator types (a duration, a start) is judged by the app's
`judge` (noc.maintenance's parsers, which this package may not import): the
dialog shows its words live and offers the button only when they are empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True)
class MaintenanceRequest:
    """Open a window: `start` empty means now. `end_id` set: end that window instead."""

    region: str
    duration: str = ""
    start: str = ""
    reason: str = ""
    end_id: str | None = None


# (region, duration, start) -> what is wrong with them, or "" when they make sense.
Judge = Callable[[str, str, str], str]


class MaintenanceDialog(ModalScreen[MaintenanceRequest | None]):
    DEFAULT_CSS = """
    MaintenanceDialog {
        align: center middle;
        background: $background 60%;
    }
    MaintenanceDialog > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    MaintenanceDialog #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    MaintenanceDialog .field {
        height: 3;
    }
    MaintenanceDialog .field > Label {
        width: 8;
        padding: 1 1 0 0;
        text-style: bold;
    }
    MaintenanceDialog .field > Input {
        width: 1fr;
    }
    MaintenanceDialog #problem {
        color: $text-warning;
        height: auto;
    }
    MaintenanceDialog #buttons {
        height: auto;
        align-horizontal: right;
    }
    MaintenanceDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(
        self,
        region: str,
        windows: Sequence[tuple[str, str]],
        judge: Judge,
    ) -> None:
        """`windows`: the region's live windows, (id, one line about it)."""
        super().__init__()
        self.initial_region = region
        self.windows = tuple(windows)
        self.judge = judge

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Maintenance window", id="title")
            yield Static(
                "Its alerts page no one and automated failover leaves it alone until "
                "the window ends (by itself). Recorded in the audit log."
            )
            for _, line in self.windows:
                yield Static(Content.styled(line, "$text-warning"), classes="window")
            fields = (
                ("Region", Input(self.initial_region, placeholder="region id", id="region")),
                ("For", Input("2h", placeholder="2h, 90m, 1h30m", id="duration")),
                ("Start", Input(placeholder="now, or 22:00 (UTC), +30m, ISO time", id="start")),
                ("Why", Input(placeholder="required: the work, and who to ask", id="reason")),
            )
            for label, field in fields:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield field
            yield Static("", id="problem")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                if self.windows:
                    yield Button("End window", id="end", variant="primary")
                yield Button("Open window", id="confirm", variant="warning", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def _values(self) -> dict[str, str]:
        return {i.id: i.value.strip() for i in self.query(Input) if i.id}

    def _request(self) -> tuple[MaintenanceRequest | None, str]:
        value = self._values()
        problem = self.judge(value["region"], value["duration"], value["start"])
        if problem:
            return None, problem
        if not value["reason"]:
            return None, ""
        return MaintenanceRequest(
            value["region"], value["duration"], value["start"], value["reason"]
        ), ""

    @on(Input.Changed)
    def _typed(self) -> None:
        request, problem = self._request()
        self.query_one("#problem", Static).update(Content(problem))
        self.query_one("#confirm", Button).disabled = request is None

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        request, _ = self._request()
        if request is not None:
            self.dismiss(request)

    @on(Button.Pressed, "#end")
    def _end(self) -> None:
        window_id, _ = self.windows[0]
        self.dismiss(MaintenanceRequest(self.initial_region, end_id=window_id))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
