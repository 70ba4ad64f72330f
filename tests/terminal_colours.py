"""What colour a cell really has on a terminal, and WCAG's contrast ratio.

Textual hands its segments (styles after the app's filters: NO_COLOR's greys,
ANSI passed through or converted) to a Rich Console, which downgrades each colour
to the terminal's colour system. This module follows the same path, then does
what the terminal does with the SGR codes it receives:

- The Linux console (TERM=linux, 16 colours) after drivers/tty/vt/vt.c: the VGA
  palette; 90-97 are its colour 30-37 made bold, 100-107 are its colour 40-47
  (no bright backgrounds); bold brightens a colour 0-7 into 8-15; faint is
  drawn in dark grey (vc_halfcolor 8), italic in green and underline in cyan
  (the default itcolor 2 and ulcolor 3, VGA order), and reverse swaps the two
  colours but leaves the brightness with the foreground.
- xterm at 256 colours: xterm's default palette for 0-15, the 6x6x6 cube and
  the grey ramp for 16-255; boldColors (on by default) brightens 0-7 as well.
  Its default colours are taken as a dark session's: light grey on black.
- A truecolor terminal draws each triplet as it is, and the xterm palette for
  the ANSI colours of the `ansi` theme.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.color import Color, ColorSystem, ColorType
from rich.color_triplet import ColorTriplet
from rich.style import Style
from rich.terminal_theme import TerminalTheme

RGB = tuple[int, int, int]

# The kernel's default VGA palette (default_red/grn/blu in vt.c), in ANSI order.
VGA_PALETTE: list[RGB] = [
    (0x00, 0x00, 0x00),  # black
    (0xAA, 0x00, 0x00),  # red
    (0x00, 0xAA, 0x00),  # green
    (0xAA, 0x55, 0x00),  # brown
    (0x00, 0x00, 0xAA),  # blue
    (0xAA, 0x00, 0xAA),  # magenta
    (0x00, 0xAA, 0xAA),  # cyan
    (0xAA, 0xAA, 0xAA),  # light grey
    (0x55, 0x55, 0x55),  # dark grey
    (0xFF, 0x55, 0x55),  # bright red
    (0x55, 0xFF, 0x55),  # bright green
    (0xFF, 0xFF, 0x55),  # yellow
    (0x55, 0x55, 0xFF),  # bright blue
    (0xFF, 0x55, 0xFF),  # bright magenta
    (0x55, 0xFF, 0xFF),  # bright cyan
    (0xFF, 0xFF, 0xFF),  # white
]

# xterm's default colours 0-15 (XTerm-col.ad).
XTERM_PALETTE: list[RGB] = [
    (0x00, 0x00, 0x00),
    (0xCD, 0x00, 0x00),
    (0x00, 0xCD, 0x00),
    (0xCD, 0xCD, 0x00),
    (0x00, 0x00, 0xEE),
    (0xCD, 0x00, 0xCD),
    (0x00, 0xCD, 0xCD),
    (0xE5, 0xE5, 0xE5),
    (0x7F, 0x7F, 0x7F),
    (0xFF, 0x00, 0x00),
    (0x00, 0xFF, 0x00),
    (0xFF, 0xFF, 0x00),
    (0x5C, 0x5C, 0xFF),
    (0xFF, 0x00, 0xFF),
    (0x00, 0xFF, 0xFF),
    (0xFF, 0xFF, 0xFF),
]

# vt.c's colours for faint, italic and underlined text, as ANSI indices.
_LINUX_HALF_BRIGHT = 8
_LINUX_ITALIC = 2
_LINUX_UNDERLINE = 6
_LINUX_DEFAULT_FOREGROUND = 7
_LINUX_DEFAULT_BACKGROUND = 0


@dataclass(frozen=True)
class Terminal:
    """A terminal as noc meets it: the environment that names it, and how it draws."""

    name: str
    term: str
    colorterm: str
    system: ColorSystem
    # How Textual's App.console names `system`.
    textual_system: str
    palette: TerminalTheme
    linux_console: bool


def _theme(palette: list[RGB], foreground: RGB, background: RGB) -> TerminalTheme:
    return TerminalTheme(background, foreground, palette[:8], palette[8:])


LINUX_CONSOLE = Terminal(
    "linux",
    "linux",
    "",
    ColorSystem.STANDARD,
    "standard",
    _theme(
        VGA_PALETTE,
        VGA_PALETTE[_LINUX_DEFAULT_FOREGROUND],
        VGA_PALETTE[_LINUX_DEFAULT_BACKGROUND],
    ),
    linux_console=True,
)
XTERM_256 = Terminal(
    "xterm-256",
    "xterm-256color",
    "",
    ColorSystem.EIGHT_BIT,
    "256",
    _theme(XTERM_PALETTE, XTERM_PALETTE[7], XTERM_PALETTE[0]),
    linux_console=False,
)
TRUECOLOR = Terminal(
    "truecolor",
    "xterm-256color",
    "truecolor",
    ColorSystem.TRUECOLOR,
    "truecolor",
    _theme(XTERM_PALETTE, XTERM_PALETTE[7], XTERM_PALETTE[0]),
    linux_console=False,
)
TERMINALS = (LINUX_CONSOLE, XTERM_256, TRUECOLOR)


def _palette_index(color: Color | None, system: ColorSystem) -> Color | None:
    """The colour as the terminal receives it (None: the terminal's default)."""
    if color is None or color.type is ColorType.DEFAULT:
        return None
    return color.downgrade(system)


def drawn_colours(style: Style, terminal: Terminal) -> tuple[ColorTriplet, ColorTriplet]:
    """The foreground and background a cell with `style` is drawn in on `terminal`."""
    foreground = _palette_index(style.color, terminal.system)
    background = _palette_index(style.bgcolor, terminal.system)
    if terminal.linux_console:
        return _linux_console(style, foreground, background)
    palette = terminal.palette
    if (
        style.bold
        and foreground is not None
        and foreground.type is ColorType.STANDARD
        and foreground.number is not None
        and foreground.number < 8
    ):
        foreground = Color.from_ansi(foreground.number + 8)
    fg = (foreground or Color.default()).get_truecolor(palette, foreground=True)
    bg = (background or Color.default()).get_truecolor(palette, foreground=False)
    if foreground is not None and foreground.type is ColorType.STANDARD:
        fg = ColorTriplet(*palette.ansi_colors[foreground.number or 0])
    if background is not None and background.type is ColorType.STANDARD:
        bg = ColorTriplet(*palette.ansi_colors[background.number or 0])
    if style.reverse:
        fg, bg = bg, fg
    if style.dim:
        # xterm draws faint text half way to the background.
        fg = ColorTriplet(*((f + b) // 2 for f, b in zip(fg, bg, strict=True)))
    return fg, bg


def _linux_console(
    style: Style, foreground: Color | None, background: Color | None
) -> tuple[ColorTriplet, ColorTriplet]:
    def number(color: Color | None, default: int) -> int:
        if color is None:
            return default
        assert color.type is ColorType.STANDARD and color.number is not None, color
        return color.number

    fg_number = number(foreground, _LINUX_DEFAULT_FOREGROUND)
    bg_number = number(background, _LINUX_DEFAULT_BACKGROUND)
    # Rich writes bold (1) and faint (2) before the colours, so 90-97 win over both.
    bold = (bool(style.bold) and not style.dim) or fg_number >= 8
    half_bright = bool(style.dim) and fg_number < 8
    fg, bg = fg_number & 7, bg_number & 7
    if style.italic:
        fg = _LINUX_ITALIC
    elif style.underline:
        fg = _LINUX_UNDERLINE
    elif half_bright:
        fg = _LINUX_HALF_BRIGHT
    if style.reverse:
        fg, bg = (fg & 8) | bg, fg & 7
    if bold:
        fg ^= 8
    return ColorTriplet(*VGA_PALETTE[fg]), ColorTriplet(*VGA_PALETTE[bg])


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: RGB | ColorTriplet) -> float:
    red, green, blue = (_linear(c) for c in color)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(a: RGB | ColorTriplet, b: RGB | ColorTriplet) -> float:
    """WCAG 2's contrast ratio, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)
