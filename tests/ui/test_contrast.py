"""Every word on the main screen is readable in every theme, on every terminal.

The main screen shows a region down, a degraded one, both alert severities, the
ACTIVE tag and the "⚡ AUTOMATED FAILOVER FIRED" banner. Each theme is drawn for
the Linux console (TERM=linux: 16 colours, VGA palette, no bright backgrounds),
xterm at 256 colours and a truecolor terminal, with and without NO_COLOR. Every
cell that carries text is mapped to the colours the terminal really draws
(tests/terminal_colours.py) and must reach WCAG's 3:1, the floor for status
marks (each is a glyph, a word and a colour); the banner's sentences and the
status bar's plain text, what an operator reads first, must reach WCAG's 4.5:1
for body text.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from support import estate_config
from terminal_colours import TERMINALS, Terminal, contrast, drawn_colours
from test_app_snapshots import make_app

from noc.app import NocApp
from noc_themes import THEMES
from noc_widgets.banner import Banner
from noc_widgets.critical_banner import CriticalBanner
from noc_widgets.status_bar import StatusBar

WORDS_FLOOR = 3.0
BODY_FLOOR = 4.5
# The glyphs a status mark starts with (noc_widgets.health_style, status_bar).
STATUS_GLYPHS = frozenset("✓▲✗?★◔⚡⏸●◌…⊘⚠")
# Lines, blocks and the braille map: shapes, not words.
_DECORATION_BLOCKS = ((0x2500, 0x259F), (0x2800, 0x28FF))


def is_decoration(text: str) -> bool:
    return all(
        any(low <= ord(char) <= high for low, high in _DECORATION_BLOCKS)
        or unicodedata.category(char).startswith("Z")
        for char in text
    )


def fired_app(tmp_path: Path, theme: str, mode: str) -> NocApp:
    """ro down (and active), pa degraded, and the automation has fired."""
    config = estate_config(ui={"theme": theme, "mode": mode}, failover={"auto": True})
    app = make_app(tmp_path, "ro-down", config=config)
    app.auto.fired = "ro → bg at 03:12 UTC"
    return app


def on_terminal(monkeypatch: pytest.MonkeyPatch, terminal: Terminal, no_color: bool) -> None:
    """The environment Textual reads when the app is made: TERM, COLORTERM, NO_COLOR."""
    monkeypatch.setenv("TERM", terminal.term)
    if terminal.colorterm:
        monkeypatch.setenv("COLORTERM", terminal.colorterm)
    else:
        monkeypatch.delenv("COLORTERM", raising=False)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")


def unreadable(app: NocApp, terminal: Terminal) -> list[str]:
    """Every distinct text cell on the screen below its floor, said with its ratio."""
    failures: list[str] = []
    seen: set[tuple[str, str]] = set()
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        x = 0
        for segment in strip:
            text, style, _ = segment
            cells = x
            x += segment.cell_length
            if style is None or is_decoration(text):
                continue
            widget, _ = app.screen.get_widget_at(cells, y)
            floor = WORDS_FLOOR
            if isinstance(widget, Banner | CriticalBanner) or (
                isinstance(widget, StatusBar) and text.strip()[0] not in STATUS_GLYPHS
            ):
                floor = BODY_FLOOR
            ratio = contrast(*drawn_colours(style, terminal))
            key = (text.strip(), str(style))
            if ratio < floor and key not in seen:
                seen.add(key)
                failures.append(
                    f"{type(widget).__name__} row {y}: {text.strip()!r} {ratio:.1f}:1 ({style})"
                )
    return failures


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
@pytest.mark.parametrize("terminal", TERMINALS, ids=[t.name for t in TERMINALS])
@pytest.mark.parametrize("theme", list(THEMES))
async def test_every_word_on_the_main_screen_is_readable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    theme: str,
    terminal: Terminal,
    no_color: bool,
) -> None:
    on_terminal(monkeypatch, terminal, no_color)
    app = fired_app(tmp_path, theme, "normal")
    async with app.run_test(size=(100, 30)) as pilot:
        app.refresh_snapshot()
        await pilot.pause()
        assert app.console.color_system == terminal.textual_system
        assert "AUTOMATED FAILOVER FIRED" in str(app.query_one(Banner).render())
        assert not (failures := unreadable(app, terminal)), "\n".join(failures)


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
@pytest.mark.parametrize("terminal", TERMINALS, ids=[t.name for t in TERMINALS])
@pytest.mark.parametrize("theme", ["wall", "dark", "ansi"])
async def test_the_wall_s_critical_banner_is_readable_lit_and_unlit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    theme: str,
    terminal: Terminal,
    no_color: bool,
) -> None:
    on_terminal(monkeypatch, terminal, no_color)
    app = fired_app(tmp_path, theme, "wall")
    async with app.run_test(size=(200, 60)) as pilot:
        app.refresh_snapshot()
        await pilot.pause()
        banner = app.query_one(CriticalBanner)
        assert banner.has_class("-shown")
        for lit in (False, True):
            banner.set_class(lit, "-lit")
            await pilot.pause()
            assert not (failures := unreadable(app, terminal)), (lit, "\n".join(failures))


@pytest.mark.parametrize("theme", ["light"])
async def test_a_light_theme_on_the_linux_console_is_drawn_in_the_console_s_colours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, theme: str
) -> None:
    """Its pale grounds would all be light grey there, its bold words bright on it."""
    on_terminal(monkeypatch, TERMINALS[0], no_color=False)
    app = fired_app(tmp_path, theme, "normal")
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.theme == "ansi"
        await pilot.pause()
        notes = [str(note.message) for note in app._notifications]
        assert any("not readable on the Linux console" in note for note in notes), notes
        # Chosen from the palette later, it is refused the same way.
        app.theme = "dark"
        app.theme = theme
        await pilot.pause()
        assert app.theme == "ansi"
