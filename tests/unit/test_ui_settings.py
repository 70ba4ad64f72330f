"""[ui]: validated like every section, overridden by the command line's display flags."""

from __future__ import annotations

import pytest
from support import estate_config

from noc.cli import build_parser
from noc.config import ConfigError
from noc.ui_settings import UIConfig, apply_display_flags, is_read_only
from noc_widgets.health_style import age_text


def test_defaults() -> None:
    ui = UIConfig()
    assert (ui.theme, ui.mode, ui.refresh_hz, ui.low_bandwidth) == ("dark", "normal", 4, False)
    assert ui.repaint_interval == 0.25


def test_low_bandwidth_caps_repaints_at_one_a_second() -> None:
    assert UIConfig(refresh_hz=10, low_bandwidth=True).repaint_interval == 1.0
    assert UIConfig(refresh_hz=0.5, low_bandwidth=True).repaint_interval == 2.0


@pytest.mark.parametrize(
    ("ui", "says"),
    [
        ({"refresh_hz": 0}, "ui.refresh_hz: Input should be greater than 0"),
        ({"mode": "kiosk"}, "ui.mode: Input should be 'normal' or 'wall'"),
        ({"rotate_seconds": 1}, "ui.rotate_seconds: Input should be greater than or equal to 3"),
        ({"colour": "red"}, "ui.colour: unknown key"),
    ],
)
def test_bad_ui_settings_are_config_errors(ui: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        estate_config(ui=ui)
    assert says in caught.value.problems[0]


@pytest.mark.parametrize(
    ("argv", "mode", "read_only"),
    [
        ([], "normal", False),
        (["--wall"], "wall", True),
        (["--wall", "--allow-actions"], "wall", False),
        (["--read-only"], "normal", True),
        (["demo", "--wall"], "wall", True),
        (["--theme", "wall", "demo", "--low-bandwidth"], "normal", False),
    ],
)
def test_display_flags(argv: list[str], mode: str, read_only: bool) -> None:
    args = build_parser().parse_args(argv)
    ui = apply_display_flags(UIConfig(), args)
    assert ui.mode == mode
    assert is_read_only(ui, args) is read_only
    if "--theme" in argv:
        assert (ui.theme, ui.low_bandwidth) == ("wall", True)


def test_wall_mode_from_config_is_read_only_too() -> None:
    args = build_parser().parse_args([])
    assert is_read_only(UIConfig(mode="wall"), args)


@pytest.mark.parametrize(
    ("seconds", "fine", "coarse"),
    [
        (0.4, "0s", "<10s"),
        (9.6, "10s", "<10s"),
        (37, "37s", "30s"),
        (119, "119s", "110s"),
        (600, "10m", "10m"),
    ],
)
def test_ages_count_in_ten_second_steps_on_a_slow_link(
    seconds: float, fine: str, coarse: str
) -> None:
    assert (age_text(seconds), age_text(seconds, coarse=True)) == (fine, coarse)
