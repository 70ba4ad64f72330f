"""How every widget says "health": a glyph, a word and a colour, never colour alone."""

from __future__ import annotations

from textual.content import Content

from noc.model import Health

GLYPH: dict[Health, str] = {
    Health.HEALTHY: "✓",
    Health.DEGRADED: "▲",
    Health.DOWN: "✗",
    Health.UNKNOWN: "?",
}

# Theme variables, so every theme (and NO_COLOR) decides the actual colour.
COLOR: dict[Health, str] = {
    Health.HEALTHY: "$success",
    Health.DEGRADED: "$warning",
    Health.DOWN: "$error",
    Health.UNKNOWN: "$foreground-muted",
}

ACTIVE_MARK = "★"


def health_word(health: Health) -> str:
    return f"{GLYPH[health]} {health.value}"


def health_content(health: Health, *, upper: bool = False, bold: bool = False) -> Content:
    word = health_word(health)
    style = f"{'bold ' if bold else ''}{COLOR[health]}"
    return Content.styled(word.upper() if upper else word, style)
