"""The `/` line above the alert pane (k9s style): what is typed filters the pane as it
is typed; Enter keeps the filter and goes back to the rows, Esc clears it."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class AlertFilter(Input):
    DEFAULT_CSS = """
    AlertFilter {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
    }
    AlertFilter:focus {
        border: none;
    }
    """

    BINDINGS = [
        Binding("escape", "clear", "Clear filter", show=False, id="alert_filter.clear"),
    ]

    class Closed(Message):
        """The filter line is done: `cleared` when Esc emptied it."""

        def __init__(self, cleared: bool) -> None:
            super().__init__()
            self.cleared = cleared

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="filter alerts by rule, region or text", id=id)

    def open(self) -> None:
        self.display = True
        self.focus()

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        self.post_message(self.Closed(cleared=True))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.display = False
        self.post_message(self.Closed(cleared=False))
