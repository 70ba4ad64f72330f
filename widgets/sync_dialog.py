"""Choose which region to sync suppression entries into, and from where."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from noc.model import SuppressionDivergence


def pair_options(pairs: Sequence[SuppressionDivergence]) -> list[Option]:
    """One option per ordered pair, the most behind first."""
    totals: dict[tuple[str, str], tuple[int, float]] = {}
    for pair in pairs:
        unsynced, oldest = totals.get((pair.source, pair.target), (0, 0.0))
        totals[(pair.source, pair.target)] = (
            unsynced + (pair.unsynced or 0),
            max(oldest, pair.oldest_unsynced_age_seconds or 0.0),
        )
    ordered = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))
    return [
        Option(
            Content(
                f"{source} → {target}   {unsynced:,} unsynced"
                + (f", oldest {oldest:.0f}s" if unsynced else "")
            ),
            id=f"{source}>{target}",
        )
        for (source, target), (unsynced, oldest) in ordered
    ]


class SyncDialog(ModalScreen[tuple[str, str] | None]):
    DEFAULT_CSS = """
    SyncDialog {
        align: center middle;
        background: $background 60%;
    }
    SyncDialog > Vertical {
        width: 64;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    SyncDialog #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    SyncDialog OptionList {
        height: auto;
        max-height: 16;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, pairs: Sequence[SuppressionDivergence]) -> None:
        super().__init__()
        self.pairs = pairs

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sync suppression now", id="title")
            yield Static(
                "Copies the entries the target lacks (every list, original timestamps). "
                "Safe to repeat. Enter to run, Esc to cancel."
            )
            yield OptionList(*pair_options(self.pairs))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        source, target = (event.option_id or ">").split(">")
        self.dismiss((source, target))

    def action_cancel(self) -> None:
        self.dismiss(None)
