"""Suppression sync on the overview: in sync, or the worst pair against the SLO."""

from __future__ import annotations

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from noc.model import EstateSnapshot, SuppressionDivergence, SuppressionSample


def worst_pair(sample: SuppressionSample) -> SuppressionDivergence | None:
    behind = [p for p in sample.pairs if p.oldest_unsynced_age_seconds is not None]
    return max(behind, key=lambda p: p.oldest_unsynced_age_seconds or 0.0, default=None)


def sync_words(sample: SuppressionSample, slo_seconds: float) -> Content:
    errors = sum(1 for p in sample.pairs if p.error) + sum(1 for c in sample.counts if c.error)
    pair = worst_pair(sample)
    if pair is None:
        words = Content.styled(f"✓ in sync ({len(sample.pairs)} pair lists)", "$success")
    else:
        age = pair.oldest_unsynced_age_seconds or 0.0
        text = (
            f"{pair.unsynced} unsynced {pair.list} {pair.source}→{pair.target}, oldest {age:.0f}s"
        )
        words = (
            Content.styled(f"✗ {text} > SLO {slo_seconds:.0f}s", "bold $error")
            if age > slo_seconds
            else Content.styled(f"✓ {text} (SLO {slo_seconds:.0f}s)", "$success")
        )
    if errors:
        words = Content.assemble(words, Content.styled(f"  ? {errors} unreadable", "$warning"))
    rebuilding = [p.rebuild_progress for p in sample.pairs if p.rebuilding]
    if rebuilding:  # counts are lower bounds until every store has been read once
        note = f"  (rebuilding {min(rebuilding):.0%}: counts are lower bounds)"
        words = Content.assemble(words, Content.styled(note, "$foreground-muted"))
    elif sample.truncated:
        words = Content.assemble(words, Content.styled("  (scan capped)", "$foreground-muted"))
    return words


class SyncSummary(Widget):
    DEFAULT_CSS = """
    SyncSummary {
        height: 1;
        display: none;
    }
    SyncSummary.-shown {
        display: block;
    }
    """

    # Repainted only when its words change: every repaint is bytes down an SSH link.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)

    def __init__(self, slo_seconds: float) -> None:
        super().__init__()
        self.slo_seconds = slo_seconds
        self._line = Content("")

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        sample = None if snapshot is None else snapshot.suppression
        self.set_class(sample is not None, "-shown")
        line = (
            Content("")
            if sample is None
            else Content.assemble(
                Content.styled("Suppression  ", "bold"), sync_words(sample, self.slo_seconds)
            )
        )
        if line != self._line:
            self._line = line
            self.refresh()

    def render(self) -> RenderResult:
        return self._line
