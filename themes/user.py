"""A theme of the operator's own, read from a TOML file (by default in the config dir).

    name = "prod-red"            # required, and not a built-in theme's name
    base = "dark"                # optional: what every key left out comes from
    dark = true                  # optional: the base's by default
    accent = "#FF5252"           # any of: primary secondary accent warning error
    panel = "#3B0000"            #   success foreground background surface panel boost

    [variables]                  # optional Textual theme variables
    footer-key-foreground = "#FFCDD2"

A broken file never stops noc: the problem comes back in words (file, key, what is
wrong) for the app to show while it keeps the default theme.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
KEYS = frozenset({"name", "base", "dark", "variables", *COLOR_KEYS})
# Variables are colours, or text styles (block-cursor-text-style = "bold"); anything
# else would only fail later, inside Textual's stylesheet, with no file to name.
_TEXT_STYLE = re.compile(r"^(none|bold|dim|italic|underline|reverse|strike)( \w+)*$")


class ThemeFileError(Exception):
    """The theme file cannot be used; the message says where and why."""


def load_user_theme(path: Path, builtin: Mapping[str, Theme]) -> Theme | None:
    """The theme in `path`, None when there is no such file; ThemeFileError when broken."""
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"{path}: cannot be read: {exc}") from exc
    problems = list(_problems(data, builtin))
    if problems:
        raise ThemeFileError(f"{path}: {'; '.join(problems)}")
    base = builtin[data.get("base", "dark")]
    colors = {key: data[key] for key in COLOR_KEYS if key in data}
    return dataclasses.replace(
        base,
        name=data["name"],
        dark=data.get("dark", base.dark),
        variables={**base.variables, **data.get("variables", {})},
        **colors,
    )


def _problems(data: Mapping[str, Any], builtin: Mapping[str, Theme]) -> list[str]:
    problems = [f"{key}: unknown key" for key in sorted(set(data) - KEYS)]
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append('name: missing (add name = "my-theme")')
    elif name in builtin:
        problems.append(f"name: {name!r} is a built-in theme; choose another name")
    base = data.get("base", "dark")
    if base not in builtin:
        problems.append(f"base: {base!r} is not one of {', '.join(sorted(builtin))}")
    if not isinstance(data.get("dark", True), bool):
        problems.append("dark: must be true or false")
    for key in COLOR_KEYS:
        if key in data and not _is_color(data[key]):
            problems.append(f'{key}: {data[key]!r} is not a colour (try "#FF5252")')
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        problems.append("variables: must be a table")
        return problems
    for key, value in variables.items():
        if not (_is_color(value) or (isinstance(value, str) and _TEXT_STYLE.match(value))):
            problems.append(f"variables.{key}: {value!r} is neither a colour nor a text style")
    return problems


def _is_color(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        Color.parse(value)
    except ColorParseError:
        return False
    return True
