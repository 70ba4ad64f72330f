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


def age_text(seconds: float, *, coarse: bool = False) -> str:
    """An age as a person reads it: "7s", "40s", "3m".

    Coarse (low bandwidth) counts in ten-second steps under two minutes, so the
    line it sits on is resent every ten seconds rather than every second.
    """
    if seconds >= 120:
        return f"{seconds / 60:.0f}m"
    if not coarse:
        return f"{seconds:.0f}s"
    return "<10s" if seconds < 10 else f"{int(seconds // 10) * 10}s"
