"""Create a silence: matchers (rule, region), a duration, and a mandatory comment."""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from noc_widgets.typeahead import Field, FieldsModal

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """'90m', '2h', '1d' -> seconds; None when it is not a duration."""
    match = DURATION.match(text.lower())
    if match is None:
        return None
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class SilenceRequest:
    matchers: dict[str, str]
    duration_seconds: float
    comment: str


class SilenceDialog(FieldsModal[SilenceRequest | None]):
    DEFAULT_CSS = """
    SilenceDialog {
        align: center middle;
        background: $background 60%;
    }
    SilenceDialog > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    SilenceDialog #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    SilenceDialog .field {
        height: 3;
    }
    SilenceDialog .field > Label {
        width: 8;
        padding: 1 1 0 0;
        text-style: bold;
    }
    SilenceDialog .field > Input {
        width: 1fr;
    }
    SilenceDialog #buttons {
        height: auto;
        align-horizontal: right;
    }
    SilenceDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, rule: str, region: str | None) -> None:
        super().__init__()
        self.initial_rule = rule
        self.initial_region = region or ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Silence alerts", id="title")
            yield Static("Mute alerts matching rule and region (clear a field to match any).")
            fields = (
                ("Rule", Field(self.initial_rule, placeholder="any rule", id="rule")),
                ("Region", Field(self.initial_region, placeholder="any region", id="region")),
                ("For", Field("2h", placeholder="30m, 2h, 1d", id="duration")),
                ("Why", Field(placeholder="required: why, and who to ask", id="comment")),
            )
            for label, field in fields:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield field
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Silence", id="confirm", variant="warning", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#comment", Input).focus()

    def _request(self) -> SilenceRequest | None:
        value = {i.id: i.value.strip() for i in self.query(Input) if i.id}
        duration = parse_duration(value["duration"])
        if duration is None or duration <= 0 or not value["comment"]:
            return None
        matchers = {k: value[k] for k in ("rule", "region") if value[k]}
        return SilenceRequest(matchers, duration, value["comment"])

    @on(Input.Changed)
    def _typed(self) -> None:
        self.query_one("#confirm", Button).disabled = self._request() is None

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        request = self._request()
        if request is not None:
            self.dismiss(request)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
