"""`?`: every key in force right now (after any remapping), what it does, and its id."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > VerticalScroll {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="dialog.close"),
        Binding("question_mark", "close", "Close", show=False, id="help.close"),
    ]

    def __init__(self, keys: list[tuple[str, str, str]], notes: list[str]) -> None:
        """`keys` holds (key, what it does, binding id) triples; the id is what [keys] remaps."""
        super().__init__()
        self.keys = keys
        self.notes = notes

    def compose(self) -> ComposeResult:
        width = max((len(k) for k, _, _ in self.keys), default=4)
        text_width = max((len(t) for _, t, _ in self.keys), default=0)
        lines = [
            Content.assemble(
                Content.styled(f"{key:>{width}}", "bold $accent"),
                "  ",
                text.ljust(text_width),
                "  ",
                Content.styled(binding_id, "$foreground-muted"),
            ).rstrip()
            for key, text, binding_id in self.keys
        ]
        lines.extend(Content.styled(note, "$foreground-muted") for note in self.notes)
        with VerticalScroll():
            yield Label("Keys", id="title")
            yield Static(Content("\n").join(lines))

    def action_close(self) -> None:
        self.dismiss(None)
