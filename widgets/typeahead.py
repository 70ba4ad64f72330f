"""Dialog fields that take keys typed ahead, or pasted, where the keys say.

Textual hands a key to the widget focused when the app reads it, and a Tab moves
the focus only once the widget it went to has handled it. Typed in one burst (a
paste, a fast typist), `Tab bg Tab reason` then lost its keys to the button that
still had the focus. Tab and Shift+Tab are therefore priority bindings of the
dialog: the app moves the focus as it reads them, in order with the keys around
them. A paste with tabs in it is typed along the fields the same way.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual import events
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Input

ResultType = TypeVar("ResultType")


class FieldsModal(ModalScreen[ResultType]):
    """A dialog whose Tab and Shift+Tab move the focus in the order they were typed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_field", "Next field", show=False, priority=True,
                id="dialog.next_field"),
        Binding("shift+tab", "previous_field", "Previous field", show=False, priority=True,
                id="dialog.previous_field"),
    ]  # fmt: skip

    def action_next_field(self) -> None:
        self.focus_next()

    def action_previous_field(self) -> None:
        self.focus_previous()

    def type_along(self, text: str) -> None:
        """Type `text` as keys: a tab moves to the next field, the rest goes into the
        focused input (a field never takes a line break: the first line only)."""
        pieces = text.splitlines()[0].split("\t") if text.strip("\r\n") else []
        for index, piece in enumerate(pieces):
            if index:
                self.focus_next()
            if piece and isinstance(self.focused, Input):
                self.focused.insert_text_at_cursor(piece)

    def _on_paste(self, event: events.Paste) -> None:
        # Pasted with a button focused (Cancel has the focus when a dialog opens).
        event.stop()
        self.type_along(event.text)


class Field(Input):
    """An input of a FieldsModal: a paste with tabs in it fills the following fields."""

    def _on_paste(self, event: events.Paste) -> None:
        # Textual runs Input's own handler after this one unless the default is
        # prevented: a paste without tabs is Input's to insert.
        if "\t" in event.text and isinstance(self.screen, FieldsModal):
            event.stop()
            event.prevent_default()
            self.screen.type_along(event.text)
