"""A modal whose middle scrolls while its inputs and buttons stay on screen.

CSS cannot say it: a `1fr` child of an auto-height container does not shrink to
the container's max-height, so a long body would push the inputs and buttons off
an 80x24 screen. The body is capped on every resize instead, and PgUp/PgDn scroll
it even while an input has focus.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widget import Widget

from noc_widgets.typeahead import FieldsModal

ResultType = TypeVar("ResultType")


def fit_scroll_body(dialog: Widget, body: Widget, height: int) -> None:
    """Cap a dialog's scrolling body at what `height` rows leave after its fixed parts.

    The fixed parts do not depend on the body, so one pass fits.
    """
    fixed = dialog.outer_size.height - dialog.size.height  # border and padding
    for child in dialog.children:
        margin = child.styles.margin
        fixed += margin.top + margin.bottom
        if child is not body and child.display:
            fixed += child.outer_size.height
    room = max(3, height - fixed)
    body.styles.max_height = room
    # The scrollbar alone is easy to miss: say on the border that there is more.
    dialog.border_subtitle = "PgUp/PgDn: more" if body.virtual_size.height > room else ""


class FittedModal(FieldsModal[ResultType]):
    """Compose a `#dialog` container holding a `VerticalScroll` with id BODY_ID."""

    BODY_ID: ClassVar[str] = "body"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("pageup", "scroll_body(-1)", "Scroll up", show=False, id="dialog.page_up"),
        Binding("pagedown", "scroll_body(1)", "Scroll down", show=False, id="dialog.page_down"),
    ]

    def on_resize(self) -> None:
        # After the layout: the fixed parts' heights depend on the width (text wraps).
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        body = self.query_one(f"#{self.BODY_ID}")
        fit_scroll_body(self.query_one("#dialog"), body, self.size.height)

    def action_scroll_body(self, direction: int) -> None:
        body = self.query_one(f"#{self.BODY_ID}", VerticalScroll)
        if direction < 0:
            body.scroll_page_up()
        else:
            body.scroll_page_down()
