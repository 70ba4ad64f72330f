"""One declaration per action (noc.actions): the keys, footer, palette, help and
check_action all come from it, so none of them can lose an action again."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from failover_support import until
from paths import ROOT
from support import estate_config
from test_app_snapshots import StillFaults, make_app
from textual.actions import parse as parse_action
from textual.screen import ModalScreen
from textual.widgets._footer import FooterKey

from noc.actions import ACTIONS, KEYED_ACTIONS, ActionSpec, Need, Where, Who
from noc.app import NocApp, binding_ids
from noc.recovery import Interrupted
from noc_widgets.help_screen import HelpScreen
from noc_widgets.region_board import RegionBoard


def everything_app(tmp_path: Path, *, read_only: bool = False) -> NocApp:
    """An estate where every action of the table means something: active-active
    (drain, restore), automation on (its pause switch), the demo's faults."""
    config = estate_config(
        estate={"name": "mail-prod", "topology": "active-active"},
        failover={"auto": True, "auto_after_seconds": 90},
    )
    return make_app(tmp_path, "normal", config=config, faults=StillFaults(), read_only=read_only)


def an_interrupted_action() -> Interrupted:
    return Interrupted(
        action_id="a1", kind="failover", source="ro", target="bg", operator={"operator": "op"},
        reason="drill", confirmed_ts="2026-01-01T03:00:00Z", actuators=("flag",),
        started=("flag",), finished={}, flag=None, previous_flag=None, changes=(),
        last_event="step_started",
    )  # fmt: skip


def palette(app: NocApp) -> dict[str, Any]:
    """Title -> callback of every command the palette offers over the current screen."""
    return {command.title: command.callback for command in app.get_system_commands(app.screen)}


def shown_in_footer(app: NocApp) -> set[str]:
    return {key.action for key in app.screen.query(FooterKey)}


def test_the_table_reproduces_the_rules_it_replaced() -> None:
    """The sets check_action used before the table, pinned: the table is a new home
    for the same rules, not new rules."""
    operator = {s.name for s in ACTIONS if s.who is Who.OPERATOR and s.keys}
    assert operator == {
        "failover", "failback", "switchover", "drain", "restore", "ack", "silence",
        "sync_now", "ack_cooldown", "toggle_auto",
        # Added with maintenance windows (issue 15): an operator act from the main screen.
        "maintenance",
    }  # fmt: skip
    main_only = {s.name for s in KEYED_ACTIONS if s.where is Where.MAIN}
    assert main_only == operator | {
        "faults", "help", "select_region", "refresh", "next_view", "lag_detail",
        "sync_detail", "deliverability_detail", "dns_detail",
        # Added with the alert views (issue 17): main screen only, as their keys are.
        "filter_alerts", "alert_history",
        # The last result, which an automated failover shows in the banner (issue 17).
        "last_result",
    }  # fmt: skip
    assert {s.name for s in ACTIONS if Need.ACTIVE_ACTIVE in s.needs} == {"drain", "restore"}
    assert [s.name for s in ACTIONS if s.while_busy] == ["toggle_auto"]
    # What the palette offered over any screen before; DNS joins the other details.
    assert {s.name for s in ACTIONS if s.offered_from is Where.ANYWHERE} == {
        "toggle_auto", "refresh", "lag_detail", "sync_detail", "deliverability_detail",
        "dns_detail", "select_region", "help", "faults", "quit",
    }  # fmt: skip
    # The binding ids `[keys]` remaps are public: each one is still there.
    assert set(binding_ids()) >= {
        "failover", "failback", "switchover", "drain", "restore", "ack_cooldown",
        "toggle_auto", "lag_detail", "sync_detail", "deliverability_detail", "sync_now",
        "dns_detail", "ack", "silence", "refresh", "prev_region", "next_region",
        "next_view", "faults", "help", "quit",
    }  # fmt: skip


def test_every_binding_comes_from_the_table() -> None:
    declared = [(s.keys, s.action, s.label, s.footer, s.id) for s in KEYED_ACTIONS]
    bound = [(b.key, b.action, b.description, b.show, b.id) for b in NocApp.BINDINGS]  # type: ignore[union-attr]
    assert bound == declared
    assert len({s.id for s in ACTIONS}) == len(ACTIONS)
    assert len({s.title for s in ACTIONS}) == len(ACTIONS)


def test_every_action_has_its_method_and_arguments() -> None:
    for spec in ACTIONS:
        _, name, arguments = parse_action(spec.action)
        method = getattr(NocApp, f"action_{name}", None)
        assert callable(method), spec.id
        inspect.signature(method).bind(None, *arguments)  # self, then the arguments


def test_actions_sharing_a_name_share_their_rules() -> None:
    """check_action is asked by name ("select_region"), not by binding."""
    by_name: dict[str, ActionSpec] = {}
    for spec in ACTIONS:
        first = by_name.setdefault(spec.name, spec)
        rules = ("who", "where", "palette_where", "needs", "while_busy")
        assert [getattr(spec, r) for r in rules] == [getattr(first, r) for r in rules], spec.id


async def test_every_binding_and_palette_only_action_is_in_the_palette(tmp_path: Path) -> None:
    app = everything_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.interrupted_actions = [an_interrupted_action()]
        offered = palette(app)
        missing = [spec.id for spec in ACTIONS if spec.title not in offered]
        assert missing == []
        # Ours replaces Textual's "Quit": one entry, noc's words.
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert titles.count("Quit") == 1
        assert "Theme" in offered


async def test_the_palette_runs_an_action_it_had_lost(tmp_path: Path) -> None:
    """`v` was keyed and not in the palette; typed into the palette it now turns the view."""
    app = make_app(tmp_path, "normal")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert not app.query_one(RegionBoard).display
        await pilot.press("ctrl+p", *"next view")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: app.query_one(RegionBoard).display)
        assert app.rotation.current == RegionBoard.VIEW_ID


async def test_read_only_hides_every_operator_action(tmp_path: Path) -> None:
    app = everything_app(tmp_path, read_only=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        app.interrupted_actions = [an_interrupted_action()]
        offered = palette(app)
        in_force = {active.binding.action for active in app.screen.active_bindings.values()}
        footer = shown_in_footer(app)
        for spec in ACTIONS:
            if spec.who is Who.OPERATOR:
                assert app.check_action(spec.name, ()) is False, spec.id
                assert spec.action not in in_force, spec.id
                assert spec.action not in footer, spec.id
                assert spec.title not in offered, spec.id
            else:
                assert spec.title in offered, spec.id
        assert not [t for t in offered if t.startswith("Expire silence")]
        assert {"help", "next_view", "quit"} <= footer


@pytest.mark.parametrize("read_only", [False, True], ids=["operator", "read-only"])
async def test_help_lists_every_binding_in_force(tmp_path: Path, read_only: bool) -> None:
    app = everything_app(tmp_path, read_only=read_only)
    async with app.run_test(size=(120, 60)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        listed = {binding_id for _, _, binding_id in screen.keys}
        allowed = {
            spec.id for spec in KEYED_ACTIONS if not (read_only and spec.who is Who.OPERATOR)
        }
        assert listed >= allowed
        if read_only:
            assert not listed & {s.id for s in KEYED_ACTIONS if s.who is Who.OPERATOR}
            assert "Failover" in " ".join(screen.notes) and "Sync now" in " ".join(screen.notes)


async def test_main_screen_actions_are_not_offered_over_a_dialog(tmp_path: Path) -> None:
    """Over a dialog neither the keys nor the palette start main-screen actions; the
    automation's pause switch is still offered in the palette, its key is not live."""
    app = everything_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        offered = palette(app)
        for spec in ACTIONS:
            over_dialog = spec.offered_from is Where.ANYWHERE
            assert (spec.title in offered) == over_dialog, spec.id
            assert app.check_action(spec.name, ()) is (spec.where is Where.ANYWHERE), spec.id
        assert "Pause automated failover" in offered


async def test_the_pause_switch_is_offered_while_an_action_runs(tmp_path: Path) -> None:
    app = everything_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f")  # the failover dialog: an operator action in progress
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        assert app.operator_actions_running()
        main = app.screen_stack[0]
        offered = {c.title for c in app.get_system_commands(main)}
        assert "Pause automated failover" in offered
        assert "Fail back" not in offered and "Ack alert" not in offered
        assert app.check_action("toggle_auto", ()) is False  # over a dialog: not by key
        await pilot.press("escape")
        await until(pilot, lambda: not app.operator_actions_running())
        assert app.check_action("toggle_auto", ()) is True
        assert app.check_action("failback", ()) is True


def test_the_readme_key_table_names_every_key() -> None:
    """The README's table is the one description kept by hand: it must keep up."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| key | action |", 1)[1].split("\n\n", 1)[0]
    first_column = " ".join(row.split("|")[1] for row in table.splitlines() if "|" in row)
    documented = set(re.findall(r"`([^`]+)`", first_column))
    spelled = {
        "left_square_bracket": "[",
        "right_square_bracket": "]",
        "question_mark": "?",
        "slash": "/",
    }
    missing = [s.id for s in KEYED_ACTIONS if spelled.get(s.keys or "", s.keys) not in documented]
    assert missing == []
