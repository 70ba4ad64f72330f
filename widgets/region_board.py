"""The region board: one big block per region, to be read from across the room.

Each card says which region it is and where, its role, ★ ACTIVE, its health as a
tall bold block with glyph and word, how many of its checks are failing, and the
last error. Colour only repeats what the words say. Text wraps between words
rather than being cut, so a narrow card loses no word halfway.
"""

from __future__ import annotations

from datetime import UTC

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label

from noc.model import EstateSnapshot, Health, RegionStatus
from noc_widgets.health_style import ACTIVE_MARK, health_word
from noc_widgets.region_list import ACTIVE_STYLE, ACTIVE_WORD
from noc_widgets.view import SnapshotView

# Cards narrower than this go one under another.
CARD_MIN_WIDTH = 36


def last_error(region: RegionStatus) -> str | None:
    """The error of the first check that is failing now, if any."""
    for check in region.checks:
        if check.consecutive_failures and check.last is not None and check.last.error:
            return str(check.last.error)
    return None


def checks_line(region: RegionStatus) -> str:
    total = len(region.checks)
    failing = sum(1 for check in region.checks if check.consecutive_failures)
    if not total:
        return "no checks configured"
    if not failing:
        return f"all {total} checks passing" if total > 1 else "its check is passing"
    return f"{failing} of {total} checks failing"


class RegionCard(Widget):
    DEFAULT_CSS = """
    RegionCard {
        height: 1fr;
        min-height: 9;
        border: round $foreground-muted;
        padding: 0 1;
        & > .title { text-style: bold; width: 1fr; }
        & > .role { color: $foreground-muted; width: 1fr; }
        & > .health {
            width: 1fr;
            height: 1fr;
            min-height: 3;
            max-height: 15;
            content-align: center middle;
            text-style: bold;
            margin: 1 0;
        }
        & > .checks, & > .last-error { width: 1fr; }
        &.-healthy { border: round $success; & > .health { background: $success-muted; } }
        &.-degraded { border: heavy $warning; & > .health { background: $warning-muted; } }
        &.-down { border: heavy $error; & > .health { background: $error-muted; } }
        &.-unknown > .health { background: $panel; }
    }
    """

    status: reactive[RegionStatus | None] = reactive(None)

    def compose(self) -> ComposeResult:
        # Not "error": Label has a built-in variant of that name.
        for part in ("title", "role", "health", "checks", "last-error"):
            yield Label(classes=part)

    def on_mount(self) -> None:
        self.watch_status(self.status)

    def watch_status(self, region: RegionStatus | None) -> None:
        # Set before the card is composed, it is drawn from on_mount instead.
        if region is None or not self.children:
            return
        for health in Health:
            self.set_class(region.health is health, f"-{health.value}")
        for part, content in card_parts(region).items():
            label = self.query_one(f".{part}", Label)
            # Label.update repaints even when nothing changed; a wall runs for days.
            if label.content != content:
                label.update(content)


def card_parts(region: RegionStatus) -> dict[str, Content]:
    """The words of a region's card, by the class of the line they go on."""
    title = [
        Content.styled(f"{ACTIVE_MARK} " if region.is_active else "  ", "bold"),
        Content.styled(region.id, "bold"),
        Content(f"  {region.name}" if region.name else ""),
    ]
    if region.is_active:
        title.append(Content.assemble("  ", Content.styled(ACTIVE_WORD, ACTIVE_STYLE)))
    store = " · store unreachable" if region.store.reachable is False else ""
    if region.maintenance is not None:
        until = region.maintenance.until.astimezone(UTC)
        store += f" · maintenance until {until:%H:%M} UTC"
    error = last_error(region)
    return {
        "title": Content.assemble(*title),
        "role": Content(f"    {region.role.value}{store}"),
        "health": Content(health_word(region.health).upper()),
        "checks": Content(checks_line(region)),
        "last-error": Content.styled(f"last error: {error}", "$text-error") if error else Content(),
    }


class RegionBoard(SnapshotView):
    VIEW_ID = "regions"
    TITLE = "Regions"

    DEFAULT_CSS = """
    RegionBoard {
        layout: grid;
        grid-gutter: 0 1;
        padding: 0 1;
    }
    """

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        if snapshot is None:
            return
        cards = list(self.query(RegionCard))
        if len(cards) != len(snapshot.regions):
            self.remove_children()
            cards = [RegionCard() for _ in snapshot.regions]
            self.mount_all(cards)
            self._arrange(len(cards))
        for card, region in zip(cards, snapshot.regions, strict=True):
            card.status = region

    def on_resize(self) -> None:
        self._arrange(len(self.query(RegionCard)))

    def _arrange(self, count: int) -> None:
        columns = max(1, min(count, self.size.width // CARD_MIN_WIDTH))
        self.styles.grid_size_columns = columns
