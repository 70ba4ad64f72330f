"""The `[ui]` and `[keys]` sections: how noc looks and paces itself on a screen.

Kept apart from what noc watches (noc.config) so screen habits can grow without
touching the estate's schema. Free of Textual, like all configuration: which
binding ids exist is known only to the app, which checks `[keys]` against its
real bindings when it starts.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

APP_NAME = "noc"
DEFAULT_THEME = "dark"
THEME_FILE_NAME = "theme.toml"
# What low-bandwidth mode allows at most, whatever refresh_hz says.
LOW_BANDWIDTH_HZ = 1.0

# One key as Textual names it ("f", "ctrl+r", "question_mark", "?", "f5").
_KEY = re.compile(r"^[^\s,]+$")


class UIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    theme: str = DEFAULT_THEME
    # "wall": read-only unless actions are allowed, no footer, views rotate.
    mode: Literal["normal", "wall"] = "normal"
    # A ceiling on repaints a second; a person reads a few, a slow link pays for each.
    refresh_hz: float = Field(default=4, gt=0, le=30)
    # Wall mode shows each view this long before moving to the next.
    rotate_seconds: float = Field(default=20, ge=3, le=3600)
    low_bandwidth: bool = False
    # A theme of one's own; default <user config dir>/theme.toml.
    theme_file: str | None = None

    @property
    def repaint_interval(self) -> float:
        """The fewest seconds between two repaints."""
        hz = min(self.refresh_hz, LOW_BANDWIDTH_HZ) if self.low_bandwidth else self.refresh_hz
        return 1.0 / hz

    def theme_path(self) -> Path:
        if self.theme_file:
            return Path(self.theme_file).expanduser()
        return Path(platformdirs.user_config_dir(APP_NAME)) / THEME_FILE_NAME


def _key_list(value: str) -> str:
    tokens = [token.strip() for token in value.split(",")]
    if not all(_KEY.match(token) for token in tokens):
        raise ValueError(
            'not a key list: one key such as "ctrl+r", or several joined by commas ("r,f5")'
        )
    return ",".join(tokens)


# binding id -> keys, e.g. {"refresh": "ctrl+r", "failover": "F"}.
KeyMap = dict[str, Annotated[str, AfterValidator(_key_list)]]


def add_display_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    """The flags that override [ui]; subcommands pass argparse.SUPPRESS so that a flag
    given before the subcommand is not reset by the subcommand's own default."""
    parser.add_argument(
        "--theme", metavar="NAME", default=default, help="dark, light, wall, ansi, colorblind, ..."
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        default=default or False,
        help="wall screen: read-only, no footer, views rotate",
    )
    parser.add_argument(
        "--low-bandwidth",
        action="store_true",
        default=default or False,
        help="for slow links: no animation, 1 repaint a second, no seconds on clocks",
    )
    parser.add_argument(
        "--allow-actions",
        action="store_true",
        default=default or False,
        help="keep failover and failback on a wall screen",
    )


def apply_display_flags(ui: UIConfig, args: argparse.Namespace) -> UIConfig:
    """[ui] with the command line's --theme, --wall and --low-bandwidth on top."""
    updates: dict[str, Any] = {}
    if args.theme:
        updates["theme"] = args.theme
    if args.wall:
        updates["mode"] = "wall"
    if args.low_bandwidth:
        updates["low_bandwidth"] = True
    return ui.model_copy(update=updates)


def is_read_only(ui: UIConfig, args: argparse.Namespace) -> bool:
    # A wall screen is looked at, not worked at: nobody fails over from it by accident.
    return bool(args.read_only) or (ui.mode == "wall" and not args.allow_actions)
