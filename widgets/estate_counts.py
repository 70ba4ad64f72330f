"""Counts in big digits, for a wall screen read from across the room.

How many regions are healthy, degraded, down or not yet known, and how many
checks are failing across the estate. Each count carries its glyph and word; a
count above zero takes its status colour, a zero stays quiet.
"""

from __future__ import annotations

from noc_widgets.health_style import health_word
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Digits, Label

from noc.model import EstateSnapshot, Health

FAILING = "failing"


def counts(snapshot: EstateSnapshot) -> dict[str, int]:
    """Regions per health (by health's value), and failing checks under FAILING."""
    found = {health.value: 0 for health in Health}
    for region in snapshot.regions:
        found[region.health.value] += 1
    found[FAILING] = sum(
        1 for region in snapshot.regions for check in region.checks if check.consecutive_failures
    )
    return found


class EstateCounts(Widget):
    DEFAULT_CSS = """
    EstateCounts {
        layout: horizontal;
        height: auto;
        & > Vertical {
            width: 1fr;
            height: auto;
            border: round $foreground-muted 50%;
            & > Digits { width: 100%; text-align: center; text-style: bold; }
            & > Label { width: 100%; text-align: center; text-style: bold; }
        }
        & > .-some { color: $foreground; }
        & > .-none { color: $foreground-muted; }
        & > .-healthy.-some { border: round $success; color: $success; }
        & > .-degraded.-some { border: heavy $warning; color: $warning; }
        & > .-down.-some, & > .-failing.-some { border: heavy $error; color: $error; }
    }
    """

    # Children update themselves; repainting the whole widget per snapshot would
    # resend every line of it down an SSH link once a second.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)

    def compose(self) -> ComposeResult:
        labels = {health.value: f"{health_word(health).upper()} regions" for health in Health}
        labels[FAILING] = "✗ CHECKS FAILING"
        for key, label in labels.items():
            with Vertical(classes=f"-{key}"):
                yield Digits("0")
                yield Label(label)

    def on_mount(self) -> None:
        self.watch_snapshot(self.snapshot)

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        if snapshot is None or not self.is_mounted:
            return
        for key, count in counts(snapshot).items():
            box = self.query_one(f".-{key}", Vertical)
            box.set_class(count > 0, "-some")
            box.set_class(count == 0, "-none")
            digits = box.query_one(Digits)
            if digits.value != str(count):  # an update repaints, even to the same value
                digits.update(str(count))
