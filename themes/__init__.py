"""Textual themes and stylesheets: data only, imported by the app.

Every widget colours status through theme variables ($success, $warning, $error,
$foreground-muted, $accent) and always adds a glyph and a word, so a theme only
chooses colours: no theme can make a status unreadable, and NO_COLOR (Textual
turns every colour to grey) loses nothing but the colour.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath

from textual.filter import LineFilter, Monochrome, NoColor
from textual.theme import Theme

# Textual's own dark palette under noc's name, so the default look stays familiar,
# but for two colours. Its red, #ba3c5b, reached only 2.5:1 on the status bar, and
# NO_COLOR turned it into a grey the Linux console draws dark grey on black: the
# error is now a lighter red, whose grey stays light. The table's cursor is a
# darker blue, which 16 colours draw as blue (white on it: 13:1), not as cyan
# (2.9:1). tests/ui/test_contrast.py measures both on every terminal.
DARK = Theme(
    name="dark",
    primary="#0178D4",
    secondary="#004578",
    accent="#ffa62b",
    warning="#ffa62b",
    error="#FF6B6B",
    success="#4EBF71",
    foreground="#e0e0e0",
    variables={"block-cursor-background": "#0B4F9C"},
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

# Read from across the room: black ground, saturated status, bold text (noc.tcss).
# The red is light enough that NO_COLOR's grey of it is not drawn dark grey.
WALL = Theme(
    name="wall",
    primary="#2979FF",
    secondary="#82B1FF",
    accent="#40C4FF",
    warning="#FFD600",
    error="#FF6B6B",
    success="#00E676",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    variables={"block-cursor-text-style": "bold"},
)

# The terminal's own 16 colours, passed through untouched: right over SSH, in tmux
# and on the Linux console (TERM=linux), whatever palette the operator has set.
# Errors are bright red: the console's dark red on black is 2.7:1; and the banner is
# bright white on red, not red on red.
ANSI = Theme(
    name="ansi",
    ansi=True,
    primary="ansi_blue",
    secondary="ansi_cyan",
    accent="ansi_cyan",
    warning="ansi_yellow",
    error="ansi_bright_red",
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
        "text-error": "ansi_bright_white",
        "error-muted": "ansi_red",
        "text-warning": "ansi_black",
        "warning-muted": "ansi_yellow",
    },
)

# Okabe-Ito colours chosen to stay apart under protanopia and deuteranopia: sky
# blue, yellow and a light red differ in lightness and on the blue-yellow axis,
# the one both keep (tests/ui/test_themes.py simulates both and measures). Okabe-Ito's
# vermillion, #D55E00, turned under NO_COLOR into a grey drawn dark grey on the
# Linux console; this red keeps a light grey, and further from the yellow.
COLORBLIND = Theme(
    name="colorblind",
    primary="#0072B2",
    secondary="#56B4E9",
    accent="#CC79A7",
    warning="#F0E442",
    error="#EB736E",
    success="#56B4E9",
    foreground="#e0e0e0",
    background="#121212",
    variables={"block-cursor-background": "#0B4F9C"},
)

THEMES: dict[str, Theme] = {theme.name: theme for theme in (DARK, LIGHT, WALL, ANSI, COLORBLIND)}


def on_linux_console(environ: Mapping[str, str]) -> bool:
    """The Linux console (TERM=linux, linux-16color...): its SGR 100-107 draw the
    dark backgrounds 40-47, and bold makes any colour bright. No background is
    lighter than light grey, on which only black, red and blue stay readable."""
    return environ.get("TERM", "").startswith("linux")


def theme_for_terminal(theme: Theme, environ: Mapping[str, str]) -> str | None:
    """The theme to draw instead of `theme` on this terminal, with the reason; None
    when `theme` is readable there. A light theme on the Linux console becomes the
    console's own colours: its pale backgrounds would all be drawn light grey, and
    its bold status words bright on it (1.4:1 for the red)."""
    if not theme.dark and not theme.ansi and on_linux_console(environ):
        return ANSI.name
    return None


def no_color_filter(theme: Theme) -> LineFilter:
    """What NO_COLOR does to `theme`. Textual chooses once, for the theme it starts
    with: greys (Monochrome) for RGB themes. An ANSI theme's colours have no RGB to
    turn grey (Monochrome makes them all black: black on black), so it keeps the
    terminal's own foreground and background instead."""
    return NoColor() if theme.ansi else Monochrome()


# Styles that depend on the theme or mode (App.-theme-wall, App.-wall-mode).
STYLESHEETS: list[str | PurePath] = [Path(__file__).with_name("noc.tcss")]
