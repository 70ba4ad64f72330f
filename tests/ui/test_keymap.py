"""Every binding has an id; [keys] remaps them (App.set_keymap); `?` shows the keys in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import estate_config
from test_app_snapshots import make_app as make_state
from test_app_snapshots import wait_for_dialogs
from textual.binding import Binding
from textual.widgets import Static

from noc.app import NocApp, binding_ids
from noc.config import ConfigError, parse_config
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.failover_dialog import FailoverDialog
from noc_widgets.fault_panel import FaultPanel
from noc_widgets.force_dialog import ForceDialog
from noc_widgets.help_screen import HelpScreen


def make_app(tmp_path: Path, keys: dict[str, str]) -> NocApp:
    return make_state(tmp_path, "normal", config=estate_config(keys=keys))


def test_every_binding_has_an_id() -> None:
    screens = [NocApp, FailoverDialog, ForceDialog, FaultPanel, HelpScreen, ActionResultScreen]
    for cls in screens:
        for binding in cls.BINDINGS:
            assert isinstance(binding, Binding) and binding.id, (cls.__name__, binding)
    ids = binding_ids()
    for expected in ("failover", "refresh", "next_view", "help", "quit", "dialog.cancel"):
        assert expected in ids


def test_unknown_binding_id_is_a_config_error_listing_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, {"refersh": "ctrl+r"})
    (problem,) = caught.value.problems
    assert problem.startswith("noc.toml: keys.refersh: unknown binding id")
    assert "failover" in problem and "refresh" in problem


def test_a_key_list_with_spaces_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        estate_config(keys={"refresh": "ctrl r"})
    assert caught.value.problems == [
        '<config>: keys.refresh: not a key list: one key such as "ctrl+r", '
        "or several joined by commas (\"r,f5\") (got 'ctrl r')"
    ]


def test_keys_come_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOC_KEYS__REFRESH", "f5")
    config = parse_config(estate_config().model_dump(mode="json", exclude={"keys"}))
    assert config.keys == {"refresh": "f5"}


async def test_remapped_key_acts_and_the_old_one_does_not(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"failover": "F"})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, FailoverDialog)
        await pilot.press("F")
        await wait_for_dialogs(pilot, 1)
        assert isinstance(app.screen, FailoverDialog)


async def test_help_shows_the_effective_keys_and_their_ids(tmp_path: Path) -> None:
    app = make_app(tmp_path, {"refresh": "ctrl+r,f5"})
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(str(s.render()) for s in app.screen.query(Static))
        refresh_lines = [line for line in text.splitlines() if "Refresh" in line]
        assert any(line.split()[0] == "^r" and line.endswith("refresh") for line in refresh_lines)
        assert any(line.split()[0] == "f5" for line in refresh_lines)
        assert not any(line.split()[0] == "r" for line in refresh_lines)


def test_a_key_given_to_two_bindings_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_app(tmp_path, {"refresh": "f"})
    assert caught.value.problems == [
        "noc.toml: keys: 'f' is the key of both failover and refresh; give each its own"
    ]


def test_swapping_two_keys_is_fine(tmp_path: Path) -> None:
    make_app(tmp_path, {"refresh": "f", "failover": "r", "help": "?"})
