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


class KeysAhead:
    """Keys and pastes typed while a dialog is being prepared, held for it.

    Between `f` and the failover dialog the plan is read from the stores and DNS;
    keys typed meanwhile (`f Tab bg Tab reason` in one burst) went to the dashboard
    behind, starting nothing useful and losing the id and reason. The app holds them
    from the key that asks for a dialog until the dialog is mounted, then hands them
    to it in the order they came. At most LIMIT are held: beyond that a stuck key is
    repeating, not a typist typing.
    """

    LIMIT = 256

    def __init__(self) -> None:
        self._held: list[events.Key | events.Paste] | None = None
        self.dropped = 0  # held past LIMIT, for the log

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self) -> None:
        """From now, keys are held (a dialog is on its way)."""
        if self._held is None:
            self._held = []
            self.dropped = 0

    def take(self, event: events.Event) -> bool:
        """Hold `event` if it is typing and keys are being held; True if held.

        Both as the app reads it and as it comes back up unhandled: the keys of a
        burst were all handed to the focused table before the first of them (`f`)
        reached its binding and asked for the dialog."""
        if self._held is None or not isinstance(event, events.Key | events.Paste):
            return False
        if len(self._held) < self.LIMIT:
            self._held.append(event)
        else:
            self.dropped += 1
        return True

    def release(self) -> list[events.Key | events.Paste]:
        """Stop holding; what was held, oldest first, as new events (a key that went
        to a widget and back cannot be sent again: it would reach bindings only)."""
        held, self._held = self._held or [], None
        return [
            events.Key(e.key, e.character) if isinstance(e, events.Key) else events.Paste(e.text)
            for e in held
        ]
