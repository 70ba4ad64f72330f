"""Themes: readable status colours, a colour-blind palette that stays apart under
simulated protanopia and deuteranopia, the user's theme file, and live switching."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support import estate_config
from test_app_snapshots import make_app as make_state
from textual.color import Color
from textual.theme import Theme

from noc.app import NocApp
from noc.ui_settings import DEFAULT_THEME
from noc_themes import THEMES
from noc_themes.user import ThemeFileError, load_user_theme

STATUS = ("success", "warning", "error")

# Machado, Oliveira and Fernandes (2009), severity 1.0, applied to linear RGB.
PROTANOPIA = (
    (0.152286, 1.052583, -0.204868),
    (0.114503, 0.786281, 0.099216),
    (-0.003882, -0.048116, 1.051998),
)
DEUTERANOPIA = (
    (0.367322, 0.860646, -0.227968),
    (0.280085, 0.672501, 0.047413),
    (-0.011820, 0.042940, 0.968881),
)


def _linear(channel: float) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _srgb(linear: float) -> float:
    c = min(max(linear, 0.0), 1.0)
    return 255 * (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)


def rgb(theme: Theme, field: str) -> tuple[float, float, float]:
    color = Color.parse(getattr(theme, field) or "#121212")
    return float(color.r), float(color.g), float(color.b)


def luminance(color: tuple[float, float, float]) -> float:
    r, g, b = (_linear(c) for c in color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def simulate(
    color: tuple[float, float, float], matrix: tuple[tuple[float, ...], ...]
) -> tuple[float, float, float]:
    linear = [_linear(c) for c in color]
    r, g, b = (_srgb(sum(m * c for m, c in zip(row, linear, strict=True))) for row in matrix)
    return r, g, b


def lab(color: tuple[float, float, float]) -> tuple[float, float, float]:
    r, g, b = (_linear(c) for c in color)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_the_issue_s_themes_exist_and_the_default_is_dark() -> None:
    assert {"dark", "light", "wall", "ansi", "colorblind"} <= set(THEMES)
    assert DEFAULT_THEME == "dark"
    assert THEMES["ansi"].ansi
    assert all(getattr(theme, field) for theme in THEMES.values() for field in STATUS)


@pytest.mark.parametrize("name", ["dark", "light", "wall", "colorblind"])
def test_status_colours_are_readable_on_the_background(name: str) -> None:
    theme = THEMES[name]
    background = rgb(theme, "background")
    for field in STATUS:
        # WCAG's 3:1 for bold text and user-interface marks; the word is there regardless.
        assert contrast(rgb(theme, field), background) >= 3.0, (name, field)


@pytest.mark.parametrize("matrix", [PROTANOPIA, DEUTERANOPIA], ids=["protan", "deutan"])
def test_colorblind_status_colours_stay_apart(matrix: tuple[tuple[float, ...], ...]) -> None:
    theme = THEMES["colorblind"]
    seen = [lab(simulate(rgb(theme, field), matrix)) for field in STATUS]
    distances = [math.dist(a, b) for i, a in enumerate(seen) for b in seen[i + 1 :]]
    # CIE76 distance: 30 is far beyond "just noticeable"; textual-dark's red and green
    # fall to about 22 under deuteranopia.
    assert min(distances) >= 30, distances


def write_theme(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_user_theme_builds_on_its_base(tmp_path: Path) -> None:
    path = write_theme(tmp_path / "theme.toml", 'name = "prod"\nbase = "wall"\npanel = "#3B0000"\n')
    theme = load_user_theme(path, THEMES)
    assert theme is not None
    assert (theme.name, theme.panel, theme.error) == ("prod", "#3B0000", THEMES["wall"].error)


def test_no_theme_file_is_no_theme(tmp_path: Path) -> None:
    assert load_user_theme(tmp_path / "absent.toml", THEMES) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name = ", "not valid TOML"),
        ('base = "dark"\n', "name: missing"),
        ('name = "dark"\n', "'dark' is a built-in theme"),
        ('name = "x"\nerror = "reddish"\n', "error: 'reddish' is not a colour"),
        ('name = "x"\nbase = "nord"\n', "base: 'nord' is not one of"),
        ('name = "x"\ncolour = "#fff"\n', "colour: unknown key"),
        ('name = "x"\n[variables]\nborder = "thick"\n', "variables.border"),
    ],
)
def test_a_broken_theme_file_says_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    path = write_theme(tmp_path / "theme.toml", text)
    with pytest.raises(ThemeFileError, match=str(path)) as caught:
        load_user_theme(path, THEMES)
    assert says in str(caught.value)


def make_app(tmp_path: Path, **ui: object) -> NocApp:
    return make_state(tmp_path, "normal", config=estate_config(ui=ui))


async def test_user_theme_is_chosen_by_config(tmp_path: Path) -> None:
    path = write_theme(tmp_path / "mine.toml", 'name = "prod"\naccent = "#FF5252"\n')
    app = make_app(tmp_path, theme="prod", theme_file=str(path))
    async with app.run_test(size=(80, 24)):
        assert app.theme == "prod"
        assert app.current_theme.accent == "#FF5252"


async def test_broken_theme_file_falls_back_to_the_default_with_a_message(
    tmp_path: Path,
) -> None:
    path = write_theme(tmp_path / "theme.toml", 'name = "prod"\nerror = "reddish"\n')
    app = make_app(tmp_path, theme="prod", theme_file=str(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == DEFAULT_THEME
        messages = [n.message for n in app._notifications]
        assert any(str(path) in m and "'reddish' is not a colour" in m for m in messages)
        assert any("theme 'prod' not found" in m for m in messages)


async def test_theme_changes_live_from_the_command_palette(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.theme == "dark"
        await pilot.press("ctrl+p", *"theme", "enter")
        await pilot.pause()
        # Only noc's own themes are offered.
        assert set(app.available_themes) == set(THEMES)
        await pilot.press(*"colorblind", "enter")
        await pilot.pause()
        assert app.theme == "colorblind"


@pytest.mark.parametrize("name", list(THEMES))
async def test_every_theme_draws_the_screen(tmp_path: Path, name: str) -> None:
    # A theme missing a variable Textual's widgets need fails only when styles are
    # applied; the screen would come out blank rather than raise here.
    app = make_app(tmp_path, theme=name)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == name
        screen = app.export_screenshot()
        assert "mail-prod" in screen and "healthy" in screen
