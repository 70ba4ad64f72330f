"""The anchor for noc's first frame: a bare Textual app drawing the same needles.

A line saying "bench", one line per region id (argv), and Textual's own Footer with
a Quit key: what bench/startup.py waits for on noc's screen, with nothing of noc's.

    python bench/bare_textual_app.py r01 r02 r03
"""

from __future__ import annotations

import sys

from textual.app import App, ComposeResult
from textual.widgets import Footer, Static


class BareApp(App[None]):
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        yield Static("bench")
        for line in self.lines:
            yield Static(line)
        yield Footer()


if __name__ == "__main__":
    BareApp(sys.argv[1:]).run()
