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
    if sample.truncated:
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

    snapshot: reactive[EstateSnapshot | None] = reactive(None)

    def __init__(self, slo_seconds: float) -> None:
        super().__init__()
        self.slo_seconds = slo_seconds

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        self.set_class(snapshot is not None and snapshot.suppression is not None, "-shown")

    def render(self) -> RenderResult:
        sample = None if self.snapshot is None else self.snapshot.suppression
        if sample is None:
            return ""
        return Content.assemble(
            Content.styled("Suppression  ", "bold"), sync_words(sample, self.slo_seconds)
        )
