"""The wall screen's critical banner: what is wrong, big enough to see from the door.

Shown when `noc check` would say CRITICAL (a region down, the active region not
healthy) or UNKNOWN (noc cannot reach anything), in the same words. It changes
emphasis at most once every PULSE_SECONDS, following the snapshot's own clock:
enough to draw the eye, and far below the three flashes a second that can set
off photosensitive seizures (WCAG 2.3.1), however often the screen repaints.
Without pulse (low bandwidth) it holds still.
"""

from __future__ import annotations

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from noc.check import Status, verdict
from noc.model import EstateSnapshot

# One change of emphasis a second is half a flash a second.
PULSE_SECONDS = 1.0
GLYPH = {Status.CRITICAL: "✗", Status.UNKNOWN: "?"}


class CriticalBanner(Widget):
    DEFAULT_CSS = """
    CriticalBanner {
        display: none;
        height: 3;
        content-align: center middle;
        text-style: bold;
        background: $error-muted;
        color: $text-error;
        &.-shown { display: block; }
        /* White on a deep red: the Linux console has no bright background, so a
           dark word on a light red would be drawn dark grey on dark red there. */
        &.-lit { background: $error-darken-3; color: white; }
    }
    """

    snapshot: reactive[EstateSnapshot | None] = reactive(None)

    def __init__(self, *, pulse: bool = True) -> None:
        super().__init__()
        self.pulse = pulse

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        shown = snapshot is not None and verdict(snapshot).status in GLYPH
        self.set_class(shown, "-shown")
        lit = False
        if shown and self.pulse and snapshot is not None:
            lit = int(snapshot.generated_at.timestamp() / PULSE_SECONDS) % 2 == 1
        self.set_class(lit, "-lit")

    def render(self) -> RenderResult:
        if self.snapshot is None:
            return ""
        found = verdict(self.snapshot)
        if found.status not in GLYPH:
            return ""
        return Content(f"{GLYPH[found.status]} {found.status.name}: {'; '.join(found.problems)}")
