"""A full screen that draws the latest snapshot: the base of every detail view."""

from __future__ import annotations

from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from noc.model import EstateSnapshot


class SnapshotScreen(Screen[None]):
    """The app sets `snapshot` on whichever of these is showing, and only that one:
    a detail view costs nothing while it is not on screen.

    Subclasses implement `prepare()` (once, when mounted: table columns and such) and
    `draw(snapshot)` (on mount and on every new snapshot)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="detail.back")]

    # Children update themselves; repainting the whole widget per snapshot would
    # resend every line of it down an SSH link once a second.
    # Drawn again even for a snapshot equal to the last: what a view reads besides
    # the snapshot (the alert detail's journal) may have moved meanwhile.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False, always_update=True)

    def __init__(self) -> None:
        super().__init__()
        self._prepared = False

    def on_mount(self) -> None:
        self.prepare()
        self._prepared = True
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        if self._prepared and snapshot is not None:
            self.draw(snapshot)

    def prepare(self) -> None:
        """Set up what draw() fills in."""

    def draw(self, snapshot: EstateSnapshot) -> None:
        raise NotImplementedError
