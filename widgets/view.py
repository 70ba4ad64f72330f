"""A whole-screen view of the estate: what the `v` key and a wall screen's rotation
switch between, besides the overview.

A view receives each snapshot while it is shown (and the latest one when it comes
into view), and renders from nothing else.
"""

from __future__ import annotations

from typing import ClassVar

from textual.reactive import reactive
from textual.widget import Widget

from noc.model import EstateSnapshot


class SnapshotView(Widget):
    DEFAULT_CSS = """
    SnapshotView {
        display: none;
        height: 1fr;
    }
    """

    # Its DOM id, and its name where the wall header says which view is up.
    VIEW_ID: ClassVar[str]
    TITLE: ClassVar[str]

    snapshot: reactive[EstateSnapshot | None] = reactive(None)
