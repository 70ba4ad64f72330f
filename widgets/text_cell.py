"""A line of text that repaints only itself, and only when its text or style changes.

Label.update() asks for a layout refresh, which repaints everything laid out after
it: on a live screen updated every second that is most of the terminal, resent
down an SSH link each time. A TextCell has a fixed size and only repaints itself.
"""

from __future__ import annotations

from textual.app import RenderResult
from textual.content import Content
from textual.widget import Widget


class TextCell(Widget):
    DEFAULT_CSS = """
    TextCell {
        height: 1;
        width: 1fr;
    }
    """

    def __init__(self, content: Content | None = None, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self._content = content or Content("")

    def show(self, content: Content) -> None:
        # Content compares plain text only; a change of style must repaint too.
        if (content.plain, content.spans) != (self._content.plain, self._content.spans):
            self._content = content
            self.refresh()

    def render(self) -> RenderResult:
        return self._content
