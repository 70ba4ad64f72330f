"""The wall screen's header: a big UTC clock, how fresh the picture is, and which
view is up and what comes next.

The clock shows seconds unless told not to (low bandwidth: a clock that changes
every second is a repaint every second); then ages count in ten-second steps.
"""

from __future__ import annotations

from noc_widgets.status_bar import poll_age
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Digits, Static

from noc.model import EstateSnapshot


class WallHeader(Widget):
    DEFAULT_CSS = """
    WallHeader {
        display: none;
        layout: horizontal;
        height: 3;
        background: $panel;
        & > Digits { width: auto; padding: 0 2; text-style: bold; }
        & > Static { width: 1fr; padding: 0 1; }
        & > #rotation { text-align: right; }
    }
    """

    snapshot: reactive[EstateSnapshot | None] = reactive(None)
    # Which view is up and what the rotation does next, in words.
    rotation: reactive[str] = reactive("")

    def __init__(self, *, seconds: bool = True) -> None:
        super().__init__()
        self.seconds = seconds

    def compose(self) -> ComposeResult:
        yield Digits("--:--")
        yield Static(id="freshness")
        yield Static(id="rotation")

    def on_mount(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        if snapshot is None or not self.is_mounted:
            return
        clock = snapshot.generated_at.strftime("%H:%M:%S" if self.seconds else "%H:%M")
        self.query_one(Digits).update(clock)
        self.query_one("#freshness", Static).update(
            Content.assemble(
                Content.styled("UTC", "bold"),
                "\n",
                poll_age(snapshot, coarse=not self.seconds, verb="updated"),
            )
        )

    def watch_rotation(self, rotation: str) -> None:
        if self.is_mounted:
            self.query_one("#rotation", Static).update(rotation)
