"""Textual themes and stylesheets: data only, imported by the app.

Every widget colours status through theme variables ($success, $warning, $error,
$foreground-muted, $accent) and always adds a glyph and a word, so a theme only
chooses colours: no theme can make a status unreadable, and NO_COLOR (Textual
turns every colour to grey) loses nothing but the colour.
"""

from __future__ import annotations

from pathlib import Path, PurePath

from textual.theme import Theme

# Textual's own dark palette under noc's name, so the default look stays familiar.
DARK = Theme(
    name="dark",
    primary="#0178D4",
    secondary="#004578",
    accent="#ffa62b",
    warning="#ffa62b",
    error="#ba3c5b",
    success="#4EBF71",
    foreground="#e0e0e0",
)

# Status colours dark enough for at least 4.5:1 on the light background.
LIGHT = Theme(
    name="light",
    primary="#0969DA",
    secondary="#54AEFF",
    accent="#8250DF",
    warning="#9A6700",
    error="#CF222E",
    success="#1A7F37",
    foreground="#1F2328",
    background="#FFFFFF",
    surface="#F6F8FA",
    panel="#E6EAEF",
    dark=False,
    variables={"footer-key-foreground": "#0969DA"},
)

# Read from across the room: black ground, saturated status, bold text (wall.tcss).
WALL = Theme(
    name="wall",
    primary="#2979FF",
    secondary="#82B1FF",
    accent="#40C4FF",
    warning="#FFD600",
    error="#FF1744",
    success="#00E676",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    variables={"block-cursor-text-style": "bold"},
)

# The terminal's own 16 colours, passed through untouched: right over SSH, in tmux
# and on the Linux console (TERM=linux), whatever palette the operator has set.
ANSI = Theme(
    name="ansi",
    ansi=True,
    primary="ansi_blue",
    secondary="ansi_cyan",
    accent="ansi_cyan",
    warning="ansi_yellow",
    error="ansi_red",
    success="ansi_green",
    foreground="ansi_default",
    background="ansi_default",
    surface="ansi_default",
    panel="ansi_default",
    boost="ansi_default",
    variables={
        # Textual's own widgets refer to these when a theme is ANSI.
        "ansi-background": "ansi_black",
        "ansi-foreground": "ansi_white",
        "block-cursor-foreground": "ansi_black",
        "block-cursor-background": "ansi_white",
        "border-blurred": "ansi_black",
        "input-cursor-background": "ansi_black",
        "input-cursor-foreground": "ansi_bright_white",
        "input-selection-background": "ansi_bright_blue",
        "screen-selection-background": "ansi_bright_blue",
    },
)

# Okabe-Ito colours chosen to stay apart under protanopia and deuteranopia: sky
# blue, yellow and vermillion differ in lightness and on the blue-yellow axis,
# the one both keep (tests/test_themes.py simulates both and measures).
COLORBLIND = Theme(
    name="colorblind",
    primary="#0072B2",
    secondary="#56B4E9",
    accent="#CC79A7",
    warning="#F0E442",
    error="#D55E00",
    success="#56B4E9",
    foreground="#e0e0e0",
    background="#121212",
)

THEMES: dict[str, Theme] = {theme.name: theme for theme in (DARK, LIGHT, WALL, ANSI, COLORBLIND)}

# Styles that depend on the theme or mode (App.-theme-wall, App.-wall-mode).
STYLESHEETS: list[str | PurePath] = [Path(__file__).with_name("noc.tcss")]
