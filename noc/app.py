"""The Textual app: draws the engine's snapshots and turns keys into actions.

Data flows one way. The scheduler's tasks feed the engine and signal a change;
the signal coalesces (at most one pending), and the app builds one snapshot
and hands it to every widget inside `batch_update()`. Widgets never poll and
never see collectors; actions go through plan -> dialog -> execute -> verify.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import re
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from textual import events, work
from textual._styles_cache import StylesCache
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.filter import Monochrome, NoColor
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from noc.actions import (
    ACTIONS,
    ACTIONS_BY_ID,
    ACTIONS_BY_NAME,
    KEYED_ACTIONS,
    ActionSpec,
    Need,
    Where,
    Who,
)
from noc.alert_journal import EpisodeStory, episode_story, read_history
from noc.audit import EstatePaths, JsonlLog, estate_paths, operator_identity
from noc.auto import AutoFailover, auto_operator
from noc.clock import Clock, SystemClock
from noc.codes import EXIT_DONE, Choice
from noc.config import ConfigError, NocConfig
from noc.drill_schedule import drill_schedule
from noc.maintenance import MaintenanceError, new_window, parse_duration, parse_start
from noc.maintenance import describe as maintenance_words
from noc.model import (
    ActionKind,
    ActionPlan,
    ActionResult,
    Alert,
    AlertNotice,
    AlertState,
    EstateSnapshot,
    FaultInjector,
    Interface,
    Severity,
    Silence,
    Topology,
    mask_secrets,
)
from noc.playbook import PlaybookError, load_playbook
from noc.rotation import PAUSE_SECONDS, Rotation
from noc.rules import RULES
from noc.scheduler import Scheduler
from noc.terminal import ExitSignals, TerminalWatch
from noc.ui_settings import DEFAULT_THEME
from noc_themes import STYLESHEETS, THEMES, no_color_filter, theme_for_terminal
from noc_themes.user import ThemeFileError, load_user_theme
from noc_widgets.ack_dialog import AckDialog
from noc_widgets.alert_filter import AlertFilter
from noc_widgets.alert_pane import AlertPane
from noc_widgets.banner import Banner
from noc_widgets.critical_banner import CriticalBanner
from noc_widgets.deliverability_summary import DeliverabilitySummary
from noc_widgets.dns_screen import DnsScreen
from noc_widgets.dns_summary import DnsSummary
from noc_widgets.drain_wait import DrainWait
from noc_widgets.estate_counts import EstateCounts
from noc_widgets.failover_dialog import FailoverDialog
from noc_widgets.fault_panel import FaultPanel
from noc_widgets.footer import NocFooter
from noc_widgets.force_dialog import ForceDialog
from noc_widgets.health_table import HealthTable
from noc_widgets.help_screen import HelpScreen
from noc_widgets.mail_flow import MailFlowView
from noc_widgets.maintenance_dialog import MaintenanceDialog
from noc_widgets.region_board import RegionBoard
from noc_widgets.region_list import RegionList
from noc_widgets.region_map import RegionMap
from noc_widgets.replication_panel import ReplicationPanel
from noc_widgets.silence_dialog import SilenceDialog
from noc_widgets.snapshot_screen import SnapshotScreen
from noc_widgets.status_bar import StatusBar
from noc_widgets.suppression_screen import SuppressionScreen
from noc_widgets.sync_dialog import SyncDialog
from noc_widgets.sync_summary import SyncSummary
from noc_widgets.typeahead import KeysAhead
from noc_widgets.view import SnapshotView
from noc_widgets.wall_header import WallHeader

# The operations layer (failover, recovery, the safety rules, and the Redis, DNS and
# hook actuators behind them) is imported when an act first needs it, in a thread
# after the first frame (see find_interrupted): the dashboard draws without it. So are
# the screens an operator opens (the lag chart's plotext, the alert detail): they
# cost the first frame ~60 ms and are imported when first opened.
if TYPE_CHECKING:
    # The control plane's reader (and redis with it) is loaded only by an attached screen.
    from noc.control import SharedReader
    from noc.operations import (
        Confirmation,
        DrainWatch,
        Operations,
        OperatorIO,
        Outcome,
        RecoveryOptions,
    )
    from noc.recovery import Decision, FlagSplit, Interrupted
    from noc_widgets.alert_detail import AlertSources

log = logging.getLogger(__name__)

# What an attached screen may do: acts on the alert book, applied by the leader.
ATTACHED_ACTS = frozenset({"ack", "silence"})
# An attached screen reads the shared state this often (at most; twice per report
# interval when that is shorter): a verdict an agent published is painted this soon.
SHARED_READ_SECONDS = 0.5
NO_AGENT_REPORTS = "no agent has reported to the control plane (is `noc agent` running?)"

# One operator action at a time, and none ever cancels another: the group is
# checked, not exclusive (an exclusive worker would cancel a failover mid-write).
OPERATOR_GROUP = "operator-action"
# The overview (map or region list, and the health table) is the first view.
OVERVIEW = "estate"
# The views after the overview, in the order `v` and a wall screen's rotation show
# them. A new view is a SnapshotView subclass added here.
VIEWS: tuple[type[SnapshotView], ...] = (RegionBoard, MailFlowView)
# The alert pane is never squeezed below its border, header and two rows.
ALERT_PANE_MIN_HEIGHT = 4
# The clock tick's offset from the poll loops' whole seconds (see on_mount).
TICK_PHASE_SECONDS = 0.5
# Textual caches each widget's background styles in a class-wide lru_cache keyed by
# the widget's style cache, so up to 1,024 closed dialogs and detail views stay alive
# through it (found by bench/soak.py: ~5 MB a minute while dialogs open and close).
# Emptied now and then, it holds only what is on screen; refilling it costs nothing.
STYLE_CACHE_TRIM_SECONDS = 60.0
# The drill schedule changes by the day: an hourly read of the history is plenty.
DRILL_SCHEDULE_SECONDS = 3600.0
# Every kind of pane on the main screen that draws the snapshot, in the order they are fed.
PANE_KINDS: tuple[type[Widget], ...] = (
    StatusBar, Banner, RegionMap, RegionList, HealthTable, AlertPane, ReplicationPanel,
    SyncSummary, DeliverabilitySummary, DnsSummary, EstateCounts, WallHeader, CriticalBanner,
    SnapshotView,
)  # fmt: skip


@dataclass(frozen=True)
class PaneFailure:
    """A pane that raised while applying a snapshot: the rest of the dashboard goes on."""

    name: str  # "alert pane"
    at: datetime  # the first failure of this run of failures (UTC)
    error: str  # "KeyError: 'x'"

    def describe(self) -> str:
        return f"{self.name} failed at {self.at:%H:%M:%S} UTC: {self.error} (see noc.log)"


def pane_name(pane: DOMNode) -> str:
    """`AlertPane` -> "alert pane": how the operator is told which part failed."""
    return " ".join(word.lower() for word in re.findall(r"[A-Z][a-z]*", type(pane).__name__))


def error_text(error: BaseException) -> str:
    """One line, bounded: a KeyError's repr can be a whole snapshot."""
    name = type(error).__name__
    text = f"{name}: {error}".splitlines()[0] if str(error) else name
    # An object's address differs each time: the same failure must read the same.
    text = re.sub(r" (object )?at 0x[0-9a-f]+", "", text)
    return text if len(text) <= 120 else text[:119] + "…"


def _trim_style_cache() -> None:
    StylesCache.get_inner_outer.cache_clear()


T = TypeVar("T")
P = ParamSpec("P")


def dialog_act(
    act: Callable[Concatenate[NocApp, P], Awaitable[None]],
) -> Callable[Concatenate[NocApp, P], None]:
    """An operator act that opens a dialog, run as an operator worker: the keys typed
    from the key that starts it until its dialog is up are the dialog's, handed over
    by `NocApp._ask` (see KeysAhead), and dropped if it ends without one. An operator
    who types `a` and the note in one breath keeps the note's first letters."""

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def run(app: NocApp, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await act(app, *args, **kwargs)
        finally:
            app._drop_keys_ahead()

    @wraps(act)
    def start(app: NocApp, /, *args: P.args, **kwargs: P.kwargs) -> None:
        app._keys_ahead.hold()
        run(app, *args, **kwargs)

    return start


@dataclass(frozen=True)
class ShownResult:
    """The last execution of this session, as `t` shows it."""

    result: ActionResult
    watching: bool  # DNS is still being watched
    # For an automated run, what fired ("ro → bg at 03:00:30 UTC"): the banner tells
    # how it went until an operator re-arms the automation. None: an operator's.
    automated: str | None = None


# From this many HTTP checks the dashboard probes in a thread of its own: at 1,000 a
# repaint held the shared loop for 60-450 ms (bench/schedule_lateness.py); an estate of
# a few dozen repaints in a few ms and gains nothing from a second loop.
PROBE_THREAD_CHECKS = 100
# A look at the verdicts (on_snapshot_changed) waits this many times as long as the
# last one took: at most 1 / (1 + this) of the loop's time goes to looking.
VERDICT_LOOK_SPACING = 3.0


class SnapshotChanged(Message):
    """The engine has new data. A newer one replaces an unhandled older one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotChanged)


class NocApp(App[None]):
    TITLE = "noc"
    CSS_PATH = STYLESHEETS
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (81, "-normal"), (160, "-wide")]
    CSS = """
    #estate {
        height: 1fr;
    }
    RegionMap {
        height: 1fr;
        min-height: 8;
    }
    RegionList {
        display: none;
    }
    HealthTable {
        height: 1fr;
    }
    Screen.-narrow RegionMap {
        display: none;
    }
    Screen.-narrow RegionList {
        display: block;
    }
    Screen.-wide RegionMap {
        height: 3fr;
    }
    Screen.-wide HealthTable {
        height: 2fr;
    }
    .-pane-failed {
        border: heavy $error;
        border-title-color: $text-error;
        border-title-style: bold;
    }
    """

    # Keys, footer and ids come from the one table of actions (noc.actions).
    BINDINGS = [
        Binding(spec.keys, spec.action, spec.label, show=spec.footer, id=spec.id)
        for spec in KEYED_ACTIONS
        if spec.keys is not None
    ]

    def __init__(
        self,
        config: NocConfig,
        *,
        read_only: bool = False,
        faults: FaultInjector | None = None,
        clock: Clock | None = None,
        state_path: Path | None = None,
        start_polling: bool = True,
        config_path: str = "",
        shared: SharedReader | None = None,
    ) -> None:
        super().__init__()
        # Attached to a control plane: the agents' shared verdicts are drawn, and this
        # process probes nothing itself (one probe load however many screens).
        self.shared = shared
        self._shared_snapshot: EstateSnapshot | None = None
        self._shared_problem: str | None = None
        self.config = config
        self.read_only = read_only
        self.faults = faults
        self.clock = clock or SystemClock()
        # The estate's own directory (the demo passes its own): see noc.audit.estate_paths.
        paths = EstatePaths(state_path) if state_path is not None else estate_paths(config)
        state_path = paths.directory
        self.audit = JsonlLog(paths.audit, self.clock)
        self.scheduler = Scheduler(
            config,
            self.clock,
            on_change=self._engine_changed,
            on_alerts=self._alerts_changed,
            state_dir=state_path,
            read_only=read_only,
            # Many checks: their loops get an event loop of their own, so a repaint of
            # the whole estate does not hold every probe due meanwhile (ProbeThread).
            probe_thread=sum(len(region.checks) for region in config.regions)
            >= PROBE_THREAD_CHECKS,
        )
        self.start_polling = start_polling
        self.config_path = config_path
        self._state_path = state_path
        self._update_drill_schedule()
        # Attached, automation is the leading agent's (noc.agent), never a screen's.
        self.auto = AutoFailover(
            config, self.clock, paths.automation, read_only=read_only or shared is not None
        )
        self._operations: Operations | None = None
        self.interrupted_actions: list[Interrupted] = []
        self._verifying: Worker[None] | None = None
        # The last execution this session and whether DNS is still watched: `t`
        # shows it, the banner says how an automated one went.
        self.last_result: ShownResult | None = None
        self._keys_ahead = KeysAhead()
        self.selected_region: str | None = None
        self.selected_alert: str | None = None
        self._last_repaint = 0.0
        self._repaint_pending = False
        self._verdicts_shown: tuple[object, ...] = ()
        self._next_verdict_look = 0.0  # time.monotonic() before which none is taken
        self._verdict_look_pending = False
        self.ui = config.ui
        if self.ui.low_bandwidth:
            self.animation_level = "none"
        self.set_keymap(_checked_keymap(config.keys, config_path))
        self._theme_notes = self._install_themes()
        self._terminal_watch: TerminalWatch | None = None
        self._exit_signals: ExitSignals | None = None
        # Set once the app has begun to exit: no key, timer or poll result may then
        # start anything or touch a widget (they are being taken down).
        self._leaving = False
        # Panes whose last snapshot raised, until one is applied cleanly.
        self._pane_failures: dict[DOMNode, PaneFailure] = {}
        self.wall = self.ui.mode == "wall"
        self.set_class(self.wall, "-wall-mode")
        self.rotation = Rotation(
            [OVERVIEW, *(view.VIEW_ID for view in VIEWS)],
            self.ui.rotate_seconds,
            self.clock.monotonic(),
        )

    def compose(self) -> ComposeResult:
        # Low bandwidth: clocks without seconds and a banner that holds still.
        moving = not self.ui.low_bandwidth
        yield StatusBar(seconds=moving)
        if self.wall:
            yield WallHeader(seconds=moving)
            yield CriticalBanner(pulse=moving)
        yield Banner()
        yield EstateCounts()
        with Vertical(id="estate"):
            yield RegionMap()
            yield RegionList()
            yield ReplicationPanel()
            yield SyncSummary(self.config.suppression.slo_seconds)
            yield DeliverabilitySummary(
                self.config.deliverability.complaint_warn_rate,
                self.config.deliverability.complaint_critical_rate,
            )
            yield DnsSummary()
            yield HealthTable(id="health", coarse_ages=not moving)
            yield AlertFilter(id="alert-filter")
            yield AlertPane(id="alerts", group_by=tuple(self.config.alerts.group_by),
                            keys=self._key_names(detail=False))  # fmt: skip
        for view in VIEWS:
            yield view(id=view.VIEW_ID)
        yield NocFooter()

    async def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        # Under every driver (terminal, web, headless): see noc.terminal.ExitSignals.
        # The handler runs between two bytecodes; the exit itself runs on the loop.
        self._exit_signals = ExitSignals(lambda: loop.call_soon_threadsafe(self.exit))
        self._exit_signals.install()
        if not self.is_headless:
            # Not every lost terminal sends SIGHUP; see noc.terminal. The watch calls
            # from its own thread, so the exit is handed to the event loop. It stays
            # armed until the process ends (it is never stopped): a crash report
            # written to a terminal nobody reads must not hold the process either.
            self._terminal_watch = TerminalWatch(lambda: loop.call_soon_threadsafe(self.exit))
            self._terminal_watch.start()
        self.sub_title = f"{self.config.estate.name} ({self.config_path})"
        for note in self._theme_notes:
            self.notify(note, severity="warning", timeout=15, markup=False)
        self.refresh_snapshot()
        # The clock and ages move every second; the tick obeys the repaint ceiling too.
        # It runs half a second out of step with the poll loops, which start below with
        # whole-second intervals: in step, it would be painting just as probe results
        # arrive, and a verdict change would wait for that routine repaint to finish.
        self.set_timer(
            TICK_PHASE_SECONDS,
            lambda: self.set_interval(1.0, self.request_repaint, name="clock tick"),
            name="clock tick phase",
        )
        if self.wall:
            # The overview's first period starts now, not when the app was built.
            self.rotation.show(OVERVIEW, self.clock.monotonic())
            self.set_interval(1.0, self._rotate, name="wall rotation")
        if self.auto.enabled:
            self.set_interval(1.0, self._auto_tick, name="automated failover")
        self.set_interval(STYLE_CACHE_TRIM_SECONDS, _trim_style_cache, name="style cache trim")
        # The schedule moves by days: read the drill history again once an hour.
        self.set_interval(DRILL_SCHEDULE_SECONDS, self._update_drill_schedule, name="drills")
        if self.shared is not None:
            self.run_worker(self._follow_control_plane(), group="control", exit_on_error=False)
        elif self.start_polling:
            self.scheduler.start()
        if not self.read_only and self.shared is None:
            # After the first frame: reading the record needs the operations layer,
            # which the first frame need not wait for.
            self.call_after_refresh(
                lambda: self.run_worker(
                    self.find_interrupted(), group="recovery", exit_on_error=False
                )
            )

    async def on_unmount(self) -> None:
        try:
            if self._applying is not None and not self._applying.done():
                # A hang-up mid-failover: the writes finish, are read back or rolled
                # back, and audited before the stores are closed. Each step has its
                # timeout.
                await asyncio.wait({self._applying})
            await self.scheduler.stop()
            if self.shared is not None:
                await self.shared.aclose()
        finally:
            # A guest in a test's process gives its signals back; in noc's own they
            # stay until the process ends (see ExitSignals).
            if self._exit_signals is not None and self.is_headless:
                self._exit_signals.restore()

    def _install_themes(self) -> list[str]:
        """Offer noc's themes (and the user's) alone, and pick the configured one.

        Textual's own themes are withdrawn: the palette then lists only themes made
        for this screen. Returns what the operator should be told about.
        """
        for name in list(self.available_themes):
            self.unregister_theme(name)
        for theme in THEMES.values():
            self.register_theme(theme)
        notes: list[str] = []
        try:
            user_theme = load_user_theme(self.ui.theme_path(), THEMES)
        except ThemeFileError as exc:
            notes.append(f"theme file ignored: {exc}")
        else:
            if user_theme is not None:
                self.register_theme(user_theme)
        wanted = self.ui.theme
        if wanted not in self.available_themes:
            notes.append(
                f"theme {wanted!r} not found, using {DEFAULT_THEME!r} "
                f"(available: {', '.join(self.available_themes)})"
            )
            wanted = DEFAULT_THEME
        instead = theme_for_terminal(self.get_theme(wanted) or THEMES[DEFAULT_THEME], os.environ)
        if instead is not None:
            notes.append(_unreadable_theme(wanted, instead))
            wanted = instead
        self.theme = wanted
        self.watch_theme(wanted)  # not called before the app runs
        return notes

    def watch_theme(self, name: str) -> None:
        """Keep every theme readable on this terminal (noc_themes says how), however it
        was chosen: by config, by flag or from the palette."""
        theme = self.get_theme(name)
        if theme is None:
            return
        instead = theme_for_terminal(theme, os.environ)
        if instead is not None:
            self.notify(_unreadable_theme(name, instead), severity="warning", markup=False)
            self.theme = instead
        elif self.no_color:
            # Textual chose its NO_COLOR filter for the theme it started with.
            self._filters = [
                no_color_filter(theme) if isinstance(f, Monochrome | NoColor) else f
                for f in self._filters
            ]

    # --- one-way data flow -------------------------------------------------

    def _engine_changed(self) -> None:
        self.post_message(SnapshotChanged())

    def on_snapshot_changed(self, _: SnapshotChanged) -> None:
        # What an operator acts on (a verdict, an alert, the active region) is painted
        # at once, never held to the ceiling: the clock tick repaints once a second in
        # step with the poll loops, so a verdict change would otherwise wait out most
        # of the interval on every probe. Numbers that only drift (latencies, ages)
        # wait for the tick, which shows them anyway: a repaint per poll result would
        # resend the same lines several times a second.
        #
        # Each look costs a snapshot of every check (12 ms at 1,000 checks, and a
        # repaint when a verdict changed): the next waits VERDICT_LOOK_SPACING times
        # as long as the last took, so looking never takes the loop's whole time
        # from the probes and keys (at a dozen regions that is a fraction of a ms).
        wait = self._next_verdict_look - time.monotonic()
        if wait <= 0:
            self._look_at_verdicts()
        elif not self._verdict_look_pending:
            self._verdict_look_pending = True
            self.set_timer(wait, self._look_at_verdicts)

    def _look_at_verdicts(self) -> None:
        self._verdict_look_pending = False
        started = time.monotonic()
        snapshot = self.snapshot()
        if verdicts(snapshot) != self._verdicts_shown:
            self.refresh_snapshot(snapshot)
        finished = time.monotonic()
        self._next_verdict_look = finished + (finished - started) * VERDICT_LOOK_SPACING

    def request_repaint(self, snapshot: EstateSnapshot | None = None) -> None:
        """Repaint now, or once the ceiling ([ui] refresh_hz, low bandwidth) allows."""
        wait = self.ui.repaint_interval - (time.monotonic() - self._last_repaint)
        if wait <= 0:
            self.refresh_snapshot(snapshot)
        elif not self._repaint_pending:
            self._repaint_pending = True
            self.set_timer(wait, self.refresh_snapshot)

    def refresh_snapshot(self, snapshot: EstateSnapshot | None = None) -> None:
        """Draw `snapshot` (one just built for the same moment), or a new one."""
        # A timer or a poll result can arrive while the app is shutting down, after its
        # widgets are gone: there is nothing left to draw, and no reason to fail.
        if self._leaving or not self.screen_stack:
            return
        # The dashboard's own screen, even under a dialog or a detail view: what it
        # shows stays current for when the operator comes back to it.
        main = self.screen_stack[0]
        panes = self._snapshot_panes(main)
        if not any(isinstance(pane, StatusBar) for pane in panes):
            return
        self._repaint_pending = False
        self._last_repaint = time.monotonic()
        snapshot = snapshot or self.snapshot()
        self._verdicts_shown = verdicts(snapshot)
        compact = main.has_class("-narrow")
        rotation = self._rotation_text() if self.wall else ""
        with self.batch_update():
            for pane in panes:
                self._apply_snapshot(pane, snapshot, compact=compact, rotation=rotation)
            self._show_faults(main)
            self._reevaluate_dialogs(snapshot)
        # Once the panes have their new sizes (a summary line may have appeared).
        self.call_after_refresh(self._fit_alert_pane, main)

    def _fit_alert_pane(self, main: Screen[Any]) -> None:
        """Give the alert pane every row the overview can spare: when alerts fire, they
        are what matters now.

        The pane is as tall as its rows, up to this limit; the map and the health
        table share what it leaves (1fr each), down to their minimum heights. So
        at 80x24 no blank row sits under the health table while an alert is cut
        off below it; with few alerts the table takes the room back.
        """
        try:
            estate = main.query_one("#estate", Vertical)
            pane = estate.query_one(AlertPane)
        except NoMatches:
            return
        if not estate.display or not estate.size.height:
            return
        reserved = 0
        for child in estate.children:
            if child is pane or not child.display:
                continue
            height = child.styles.height
            if height is not None and height.is_fraction:
                # A shared pane keeps its minimum; the rest of its share is spare.
                minimum = child.styles.min_height
                reserved += int(minimum.value) if minimum is not None else 1
            else:
                reserved += child.outer_size.height
        limit = max(ALERT_PANE_MIN_HEIGHT, estate.size.height - reserved)
        current = pane.styles.max_height
        if current is None or current.value != limit:
            pane.styles.max_height = limit

    def _snapshot_panes(self, main: Screen[Any]) -> list[DOMNode]:
        """Every pane that draws the snapshot now, in the order they are fed."""
        # One walk of the screen: a query per kind walked the whole tree and matched
        # selectors 14 times, which cost as much as feeding the panes.
        by_kind: dict[type[DOMNode], list[DOMNode]] = {kind: [] for kind in PANE_KINDS}
        for node in main.walk_children(Widget):
            kind = next((kind for kind in PANE_KINDS if isinstance(node, kind)), None)
            # A hidden view is not drawn, so it need not be fed either.
            if kind is not None and (kind is not SnapshotView or node.display):
                by_kind[kind].append(node)
        panes = [pane for kind in PANE_KINDS for pane in by_kind[kind]]
        if isinstance(self.screen, SnapshotScreen):
            panes.append(self.screen)
        return panes

    def _apply_snapshot(
        self, pane: DOMNode, snapshot: EstateSnapshot, *, compact: bool, rotation: str
    ) -> None:
        """Hand `snapshot` to one pane. Whatever that pane raises stays with it: logged
        with its traceback, marked on the pane and in the banner, retried with the
        next snapshot; every other pane, the collectors and the actions go on."""
        try:
            if isinstance(pane, HealthTable):
                pane.compact = compact
            if isinstance(pane, WallHeader):
                pane.rotation = rotation
            # Every pane keeps its snapshot in a reactive called `snapshot`.
            pane.snapshot = snapshot  # type: ignore[attr-defined]
        except Exception as exc:
            # The pane keeps no snapshot until one applies cleanly: its own redraws
            # (a resize, say the banner appearing) then draw nothing instead of raising
            # outside this guard, and the next snapshot is a change it is retried with.
            pane.set_reactive(type(pane).snapshot, None)  # type: ignore[attr-defined]
            self._pane_failed(pane, exc)
        else:
            self._pane_recovered(pane)

    def _pane_failed(self, pane: DOMNode, exc: Exception) -> None:
        error = error_text(exc)
        before = self._pane_failures.get(pane)
        if before is not None and before.error == error:
            # The same failure with every snapshot: logged once, not once a second.
            log.debug("%s still failing: %s", before.name, error)
            return
        failure = PaneFailure(pane_name(pane), self.clock.utcnow(), error)
        self._pane_failures[pane] = failure
        log.error("%s failed to draw the snapshot", failure.name, exc_info=exc)
        pane.add_class("-pane-failed")
        if isinstance(pane, Widget):
            pane.border_title = f"✗ {failure.describe()}"
        self.notify(failure.describe(), severity="error", timeout=15, markup=False)

    def _pane_recovered(self, pane: DOMNode) -> None:
        failure = self._pane_failures.pop(pane, None)
        if failure is None:
            return
        log.info("%s draws again (it had failed at %s)", failure.name, f"{failure.at:%H:%M:%S}")
        pane.remove_class("-pane-failed")
        if isinstance(pane, Widget):
            pane.border_title = None

    def _show_faults(self, main: Screen[Any]) -> None:
        """noc's own failures in the banner: panes that could not draw, dead poll loops."""
        # A screen that was closed while failed takes its failure with it.
        for pane in [p for p in self._pane_failures if not p.is_attached]:
            del self._pane_failures[pane]
        self.scheduler.forget_recovered_loops()
        faults = tuple(f.describe() for f in self._pane_failures.values()) + tuple(
            f.describe() for f in self.scheduler.loop_failures.values()
        )
        if self._shared_problem is not None:
            faults += (self._shared_problem,)
        for banner in main.query(Banner):
            try:
                banner.faults = faults
            except Exception:  # the banner itself is broken: the notifications remain
                log.exception("the banner cannot show noc's own failures")

    def snapshot(self) -> EstateSnapshot:
        if self.shared is not None and self._shared_snapshot is not None:
            return replace(self._shared_snapshot, read_only=self.read_only)
        snapshot = self.scheduler.snapshot(read_only=self.read_only)
        return replace(snapshot, automation=self.auto.status())

    async def _follow_control_plane(self) -> None:
        """Read the shared state a few times per report interval; say when it cannot be
        read (the last picture stays, its ages growing) and when no agent reports."""
        from redis.exceptions import RedisError

        assert self.shared is not None
        pause = min(SHARED_READ_SECONDS, self.shared.control.report_interval_seconds / 2)
        while True:
            try:
                snapshot = await self.shared.read()
                problem = None if snapshot is not None else NO_AGENT_REPORTS
            except (RedisError, OSError) as exc:
                snapshot = self._shared_snapshot
                problem = f"control plane unreachable: {mask_secrets(str(exc))}"
                if problem != self._shared_problem:
                    log.warning("%s", problem)
            except Exception:  # a report this noc misreads must not end the following
                log.exception("the shared state could not be read")
                snapshot, problem = self._shared_snapshot, "shared state unreadable (see noc.log)"
            self._shared_snapshot, self._shared_problem = snapshot, problem
            self._engine_changed()
            await asyncio.sleep(pause)

    def on_resize(self) -> None:
        self.call_after_refresh(self.refresh_snapshot)

    def _alerts_changed(self, notices: list[AlertNotice]) -> None:
        if self.config.alerts.bell and any(
            n.event == "firing" and n.alert.severity is Severity.CRITICAL and not n.alert.muted
            for n in notices
        ):
            self.bell()

    def on_health_table_region_highlighted(self, event: HealthTable.RegionHighlighted) -> None:
        self.selected_region = event.region_id

    def on_alert_pane_alert_highlighted(self, event: AlertPane.AlertHighlighted) -> None:
        self.selected_alert = event.alert_id

    # --- looking closer at alerts: detail, history, `/` filter --------------------

    def on_alert_pane_alert_chosen(self, event: AlertPane.AlertChosen) -> None:
        from noc_widgets.alert_detail import AlertDetailScreen

        self._show_detail(AlertDetailScreen(event.alert_id, self.alert_sources()))

    def action_alert_detail(self) -> None:
        """The selected alert's detail; with none selected, the top one (the worst)."""
        alerts = self.snapshot().alerts
        alert_id = self.selected_alert or (alerts[0].id if alerts else None)
        if alert_id is None:
            self.notify("No alert to show", timeout=4)
            return
        from noc_widgets.alert_detail import AlertDetailScreen

        self._show_detail(AlertDetailScreen(alert_id, self.alert_sources()))

    def action_alert_history(self) -> None:
        from noc_widgets.alert_history import AlertHistoryScreen

        self._show_detail(AlertHistoryScreen(self.alert_sources()))

    def action_filter_alerts(self) -> None:
        field = self.query_one(AlertFilter)
        field.value = self.query_one(AlertPane).filter_text
        field.open()

    def on_input_changed(self, event: AlertFilter.Changed) -> None:
        if isinstance(event.input, AlertFilter):
            self.query_one(AlertPane).filter_text = event.value

    def on_alert_filter_closed(self, event: AlertFilter.Closed) -> None:
        pane = self.query_one(AlertPane)
        if event.cleared:
            pane.filter_text = ""
        pane.focus()

    def on_alert_pane_filter_cleared(self, _: AlertPane.FilterCleared) -> None:
        self.query_one(AlertFilter).value = ""

    def alert_sources(self) -> AlertSources:
        """What the alert views read besides the snapshot; the record off the loop."""
        from noc_widgets.alert_detail import AlertSources

        journal = self.scheduler.journal

        async def story(alert_id: str) -> EpisodeStory:
            if journal is None:
                return EpisodeStory((), None)
            return await asyncio.to_thread(episode_story, journal.path, alert_id)

        async def history() -> list[Alert]:
            if journal is None:
                return []
            return await asyncio.to_thread(read_history, journal.path)

        return AlertSources(
            meanings={name: rule.meaning for name, rule in RULES.items()},
            keys=self._key_names(),
            story=story,
            history=history,
            silences=self._silences,
            operable=not self.read_only,
            ack=self.ack_episode,
            silence=self.silence_episode,
            record_mark=lambda: None if journal is None else journal.written,
        )

    def _key_names(self, *, detail: bool = True) -> dict[str, str]:
        """Binding id -> the key that does it now (after [keys]), as the footer names it;
        with `detail`, the alert detail screen's keys too (importing that screen, which
        the first frame does without)."""
        screens: list[Any] = [NocApp.BINDINGS]
        if detail:
            from noc_widgets.alert_detail import AlertDetailScreen

            screens.append(AlertDetailScreen.BINDINGS)
        names: dict[str, str] = {}
        for bindings in screens:
            for binding in bindings:
                if isinstance(binding, Binding) and binding.id:
                    key = self._keymap.get(binding.id, binding.key).split(",")[0]
                    names[binding.id] = self.get_key_display(replace(binding, key=key))
        return names

    # --- views and the wall's rotation ------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        # Typed while a dialog is being prepared: the dialog's (see KeysAhead).
        if self._keys_ahead.take(event):
            return
        # Any key pauses the rotation, so whoever walks up can read undisturbed.
        if isinstance(event, events.Key):
            self.rotation.key_pressed(self.clock.monotonic())
        await super().on_event(event)

    async def _ask(self, dialog: Screen[T]) -> T:
        """`dialog`'s answer; the keys typed while it was prepared are handed to it
        first, in order, before any typed later."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def answered(result: T | None) -> None:
            if not answer.done():
                answer.set_result(cast(T, result))

        await self.push_screen(dialog, callback=answered)
        # Through the app's queue: after the keys already in it (held too), before
        # any that come after.
        self.call_later(self._hand_over_keys_ahead)
        return await answer

    async def _hand_over_keys_ahead(self) -> None:
        held = self._keys_ahead.release()
        if self._keys_ahead.dropped:
            log.warning("%d keys typed ahead past the limit were dropped", self._keys_ahead.dropped)
        for event in held:
            await self.on_event(event)

    def _drop_keys_ahead(self) -> None:
        """The act ended without a dialog to take them: the keys are not replayed on
        the dashboard, where they would start what nobody meant."""
        held = self._keys_ahead.release()
        if held:
            log.info("%d keys typed ahead for a dialog that did not open were dropped", len(held))

    def action_next_view(self) -> None:
        self.rotation.show(self.rotation.following(), self.clock.monotonic())
        self._display_current_view()

    def _rotate(self) -> None:
        if self.rotation.tick(self.clock.monotonic()):
            self._display_current_view()

    def _display_current_view(self) -> None:
        current = self.rotation.current
        for view in (self.query_one(f"#{OVERVIEW}"), *self.query(SnapshotView)):
            view.display = view.id == current
        if current == OVERVIEW:
            self.query_one(HealthTable).focus()
        self.refresh_snapshot()

    def _rotation_text(self) -> str:
        titles = {OVERVIEW: "Overview", **{view.VIEW_ID: view.TITLE for view in VIEWS}}
        rotation = self.rotation
        now = self.clock.monotonic()
        place = rotation.views.index(rotation.current) + 1
        shown = f"{titles[rotation.current]} {place}/{len(rotation.views)}"
        if rotation.paused(now):
            return f"{shown}\n⏸ paused by a key\nresumes {PAUSE_SECONDS / 60:.0f} min after it"
        following = titles[rotation.following()]
        return f"{shown}\nnext: {following} in {rotation.seconds_left(now):.0f} s\nany key pauses"

    # --- actions -------------------------------------------------------------

    def operator_actions_running(self) -> int:
        return sum(1 for w in self.workers if w.group == OPERATOR_GROUP and not w.is_finished)

    def _refuse_if_busy(self) -> bool:
        """For an action starting by a path that skips check_action (the palette)."""
        if self.operator_actions_running() > 1:
            self.notify("Another operator action is still running; try again when it ends")
            return True
        return False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Keys typed after `q` (or a hang-up) are still queued: they must not open a
        # view or start an action on an app that is being taken down.
        if self._leaving:
            return False
        spec = ACTIONS_BY_NAME.get(action)
        # Textual's own actions (the palette, focus moves) and the screens' own are free.
        if spec is None or self.may_run(spec, on_main=len(self.screen_stack) == 1):
            return True
        if self._waits_for_another_action(spec):
            # Shown dimmed, not hidden: the footer keeps its place and its words while
            # an action (say the audit of a cancelled dialog) finishes, and lights up
            # again when the worker ends (on_worker_state_changed).
            return None
        return False

    def _waits_for_another_action(self, spec: ActionSpec) -> bool:
        """`spec` is refused only because another operator action is still running."""
        if spec.who is not Who.OPERATOR or self.read_only or not self.operator_actions_running():
            return False
        busy = replace(spec, while_busy=True)
        return self.may_run(busy, on_main=len(self.screen_stack) == 1)

    def may_run(self, spec: ActionSpec, *, on_main: bool, palette: bool = False) -> bool:
        """The table's rules for `spec` now: for its key (from `check_action`), or for
        whether the palette offers it (palette commands run without check_action)."""
        if spec.who is Who.OPERATOR:
            if self.read_only:
                return False
            if self.shared is not None and spec.id not in ATTACHED_ACTS:
                # Attached: acks and silences go to the leader through the control plane;
                # traffic moves from `noc --standalone` or the CLI (see the README).
                return False
            if self.operator_actions_running() and not spec.while_busy:
                return False
        where = spec.offered_from if palette else spec.where
        if where is Where.MAIN and not on_main:
            return False
        return all(self._has(need) for need in spec.needs)

    def _has(self, need: Need) -> bool:
        match need:
            case Need.ACTIVE_ACTIVE:
                return self.config.estate.topology is Topology.ACTIVE_ACTIVE
            case Need.AUTOMATION:
                return self.auto.enabled
            case Need.DEMO_FAULTS:
                return self.faults is not None
            case Need.INTERRUPTED:
                return bool(self.interrupted_actions)

    def action_refresh(self) -> None:
        self.scheduler.poll_now()
        self.notify("Polling every source now", timeout=2)

    def action_select_region(self, step: int) -> None:
        ids = [r.id for r in self.config.regions]
        current = ids.index(self.selected_region) if self.selected_region in ids else -1
        target = ids[(current + step) % len(ids)]
        table = self.query_one(HealthTable)
        for index, row_key in enumerate(table.rows):
            if row_key.value and row_key.value.startswith(f"{target}/"):
                table.move_cursor(row=index)
                break
        self.selected_region = target

    def _dialog_action(self, kind: ActionKind, target: str) -> None:
        """An act that opens the failover dialog: keys typed until it is up are its."""
        self._keys_ahead.hold()
        self.operator_action(kind, target)

    def action_failover(self) -> None:
        target = self.selected_region
        snapshot = self.snapshot()
        if target is None or target == snapshot.active_region:
            target = next(
                (
                    r.id
                    for r in snapshot.regions
                    if not r.is_active and r.id != self.config.primary.id
                ),
                target or self.config.regions[0].id,
            )
        self._dialog_action(ActionKind.FAILOVER, target)

    def action_failback(self) -> None:
        self._dialog_action(ActionKind.FAILBACK, self.config.primary.id)

    def action_switchover(self) -> None:
        target = self.selected_region
        snapshot = self.snapshot()
        if target is None or target == snapshot.active_region:
            target = self.config.primary.id
        self._dialog_action(ActionKind.SWITCHOVER, target)

    def action_drain(self) -> None:
        self._dialog_action(ActionKind.DRAIN, self.selected_region or self.config.regions[0].id)

    def action_restore(self) -> None:
        self._dialog_action(ActionKind.RESTORE, self.selected_region or self.config.regions[0].id)

    @property
    def operations(self) -> Operations:
        """Every operator act runs through here; this app only asks and shows. Made on
        first use: importing the layer is most of what a first frame would wait for."""
        if self._operations is None:
            from noc.operations import Operations

            self._operations = Operations(
                self.config, self.scheduler, self.audit, self.clock,
                snapshot=self.snapshot, refresh=_fresh_enough, refresh_lag=self._poll_lag,
                # An engine fed by its caller (start_polling=False: a replay, a test) is
                # the caller's truth; probing the endpoints behind its back would
                # contradict it.
                probe_before_acting=self.start_polling,
            )  # fmt: skip
        return self._operations

    @property
    def _applying(self) -> asyncio.Future[ActionResult] | None:
        """The execution in flight, if any: quitting waits for it (see on_unmount)."""
        if self._operations is None:  # never made: nothing was ever applied
            return None
        return self._operations.applying

    async def _poll_lag(self) -> None:
        # Only the replication links, not every source of the estate.
        self.scheduler.poll_now("lag:")

    def _operator_io(self) -> OperatorIO:
        from noc.operations import OperatorIO

        return OperatorIO(
            confirm=self._confirm_in_dialog,
            say=lambda text: self.notify(text, timeout=2, markup=False),
            refused=self._show_refused,
            open_drain=self._open_drain,
            before_changes=self._stop_last_watch,
        )

    async def _confirm_in_dialog(self, plan: ActionPlan) -> Confirmation | None:
        # Live: refresh_snapshot hands it the plan re-evaluated on each snapshot.
        confirmation = await self._ask(FailoverDialog(plan))
        if confirmation is None:
            return None
        shown = confirmation.plan or plan
        force = confirmation.force
        if force:
            breaking = ForceDialog(shown)
            if not await self._ask(breaking):
                return None
            # Live too: the rules as they stood when FORCE was confirmed; if none
            # fails any more, nothing is bypassed (or recorded as bypassed).
            shown = breaking.plan
            force = shown.needs_force
        from noc.operations import Confirmation

        return Confirmation(confirmation.reason, force, "typed", shown)

    async def _show_refused(self, plan: ActionPlan) -> None:
        await self._ask(FailoverDialog(plan, can_act=False))

    def _reevaluate_dialogs(self, snapshot: EstateSnapshot) -> None:
        """Each open failover dialog's plan, judged again on `snapshot` and the clock."""
        for screen in self.screen_stack:
            if not isinstance(screen, FailoverDialog | ForceDialog) or not screen.is_attached:
                continue
            try:
                again = self.operations.reevaluate(screen.plan, snapshot)
                if again is not None:
                    screen.plan = again
            except Exception:  # the dialog keeps the plan it shows; acting re-plans anyway
                log.exception("re-evaluating %s", screen.plan.action_id)

    async def _open_drain(self, plan: ActionPlan) -> DrainWatch:
        dialog = DrainWait(plan)
        # Mounted before anything else happens: a lag already drained would otherwise
        # dismiss it before it is on the stack.
        await self.push_screen(dialog)
        return _DrainDialog(self, dialog)

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def operator_action(self, kind: ActionKind, target: str) -> None:
        try:
            if self._refuse_if_busy():
                return
            from noc.operations import ActionRequest

            request = ActionRequest(kind, target, operator_identity(), via="tui",
                                    force_offered=True, watch=False)  # fmt: skip
            outcome = await self.operations.run_action(request, self._operator_io())
        finally:
            self._drop_keys_ahead()
        await self._show_outcome(outcome)

    async def _show_outcome(self, outcome: Outcome, *, automated: str | None = None) -> None:
        """Say how an act ended; after an execution, show its result and watch DNS move
        in a worker of its own: other operator acts need not wait out a TTL.
        `automated`: what the automation fired ("ro → bg at 03:00:30 UTC"); its result
        goes to the banner, not a dialog over the dashboard (`t` opens it)."""
        result = outcome.result
        if result is None and automated is not None:
            return  # the automation says why it held back, in the banner
        if result is None:
            if outcome.stage not in ("refused",) or "fresh preflight" in outcome.message:
                refused = outcome.stage == "refused"
                self.notify(
                    outcome.message,
                    timeout=8,
                    markup=False,
                    severity="error" if refused else "information",
                )
            return
        await self.scheduler.read_flags()
        self.refresh_snapshot()
        watching = outcome.stage == "executed"
        self.last_result = ShownResult(result, watching, automated)
        self._show_last_result()
        if automated is None:
            from noc_widgets.action_result import ActionResultScreen

            self.push_screen(ActionResultScreen(result, watching=watching))
        if watching:
            self._verifying = self.run_worker(
                self._watch(result, outcome.reason, outcome.confirmed_at),
                group="verify",
                exit_on_error=False,
            )

    def _result_progress(self, result: ActionResult, *, watching: bool) -> None:
        """A newer picture of the last execution: in its result screens and the banner."""
        from noc_widgets.action_result import ActionResultScreen

        last = self.last_result
        if last is not None and last.result.plan.action_id == result.plan.action_id:
            self.last_result = replace(last, result=result, watching=watching)
        for screen in self.screen_stack:
            if (
                isinstance(screen, ActionResultScreen)
                and screen.result.plan.action_id == result.plan.action_id
            ):
                screen.show_result(result, watching=watching)
        self._show_last_result()

    def _show_last_result(self) -> None:
        last = self.last_result
        words = None
        if last is not None and last.automated is not None:
            from noc_widgets.action_result import outcome_words

            key = self._key_names().get("last_result", "t")
            words = f"{last.automated}: {outcome_words(last.result, last.watching)}"
            words += f"; {key} shows the timeline"
        for banner in self.screen_stack[0].query(Banner):
            banner.automated = words

    def _show_last_result_cleared(self) -> None:
        """The banner stops telling of the last automated run; `t` still opens it."""
        if self.last_result is not None:
            self.last_result = replace(self.last_result, automated=None)
        self._show_last_result()

    def action_last_result(self) -> None:
        """The last execution's result and timeline, the automated failover's too."""
        last = self.last_result
        if last is None:
            self.notify("No failover or other action has run in this session", timeout=4)
            return
        from noc_widgets.action_result import ActionResultScreen

        self.push_screen(ActionResultScreen(last.result, watching=last.watching))

    def _stop_last_watch(self) -> None:
        """The last action's DNS watch (and post hook) would report on a state this
        action is about to change: it stops, audited, before the first write."""
        if self._verifying is not None and not self._verifying.is_finished:
            self._verifying.cancel()

    async def _watch(self, result: ActionResult, reason: str, confirmed_at: float) -> None:
        try:
            final, stopped = await self.operations.watch(
                result, reason, confirmed_at, partial(self._result_progress, watching=True)
            )
        except Exception as exc:  # the change itself is done and audited
            log.exception("verifying %s", result.plan.action_id)
            self.notify(f"Verifying {result.plan.kind.value} failed: {exc}", severity="error",
                        timeout=15, markup=False)  # fmt: skip
            return
        if stopped:
            return
        self._result_progress(final, watching=False)
        last = self.last_result
        if last is None or last.automated is None:
            # The screen may have been closed while DNS was watched: the verdict still
            # shows. An automated run's verdict is in the banner: no toast over it.
            self.notify(final.summary, severity="information" if final.success else "error",
                        timeout=10 if final.success else 30, markup=False)  # fmt: skip
        self.scheduler.poll_now()

    def exit(self, result: None = None, return_code: int = 0, message: Any | None = None) -> None:
        self._leaving = True
        super().exit(result, return_code, message)

    def _handle_exception(self, error: Exception) -> None:
        # Textual ends the app and prints the traceback to the terminal, which may be
        # gone or unread: noc.log keeps it, and the exit status says so (1).
        log.critical("the dashboard stopped on an unhandled error", exc_info=error)
        self._leaving = True
        super()._handle_exception(error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that raised is said on screen and written to noc.log, never silent
        (harlequin's pattern): pressing `f` must not do nothing when planning fails."""
        worker = event.worker
        # (Not once the app is being taken down: its screens may be gone already.)
        if worker.group == OPERATOR_GROUP and worker.is_finished and self.screen_stack:
            # The keys check_action dimmed while it ran are live again: the footer
            # says so now, not at the next focus change (tens of seconds later).
            self.refresh_bindings()
        if event.state is not WorkerState.ERROR or worker.error is None:
            return
        error = worker.error
        what = worker.name or worker.group or "a background task"
        log.error("%s failed", what, exc_info=error)
        self.notify(
            f"{what} failed: {error_text(error)} (see noc.log)",
            severity="error",
            timeout=30,
            markup=False,
        )
        if worker.group == OPERATOR_GROUP:
            # The action did not finish; the fresh picture shows where things stand.
            self.refresh_snapshot()

    async def action_quit(self) -> None:
        if self._applying is not None and not self._applying.done():
            self.notify(
                "A change is being applied: quit once it has finished and been audited",
                severity="warning",
                timeout=5,
            )
            return
        await super().action_quit()

    @dialog_act
    async def action_ack_cooldown(self) -> None:
        if self._refuse_if_busy():
            return
        operator = operator_identity()

        async def ask_note(detail: str) -> str | None:
            return await self._ask(
                AckDialog(
                    f"{detail}.\nAcking allows another failover now.",
                    operator["operator"],
                    title="Ack the failover cooldown",
                    verb="Ack cooldown",
                )
            )

        outcome = await self.operations.ack_cooldown(operator, ask_note)
        self.refresh_snapshot()
        if outcome.stage != "cancelled":
            cleared = outcome.exit_code == EXIT_DONE
            self.notify(
                outcome.message,
                timeout=6,
                markup=False,
                severity="information" if cleared else "warning",
            )

    async def action_toggle_auto(self) -> None:
        auto = self.auto
        if not auto.enabled:
            self.notify("Automated failover is off ([failover] auto = true turns it on)",
                        timeout=5, markup=False)  # fmt: skip
            return
        await auto.set_paused(not auto.paused, operator_identity())
        await self.operations.automation_paused(auto.paused, operator_identity())
        if not auto.paused:  # re-armed: what it fired last is history (`t` still shows it)
            self._show_last_result_cleared()
        state = "PAUSED: it will not act" if auto.paused else "armed again"
        self.notify(f"Automated failover {state}", timeout=5, markup=False)
        self.refresh_snapshot()

    def _update_drill_schedule(self) -> None:
        """The next drill (status bar; overdue is a warning alert) from the history."""
        try:
            playbook = load_playbook(self.config.drills.playbook)
        except PlaybookError as exc:
            log.warning("drill schedule unknown: %s", exc)
            return
        today = self.clock.utcnow().date()
        self.scheduler.engine.drill = drill_schedule(self.config, playbook, self._state_path, today)

    def _auto_tick(self) -> None:
        snapshot = self.snapshot()
        self.auto.observe(snapshot)
        target = self.auto.due(snapshot)
        # Its state is an alert too (fired, held): it pages through [[notify]].
        self.scheduler.engine.automation = self.auto.status()
        if target is not None and not self.operator_actions_running():
            self.auto.acting = True
            self.automated_failover(target)

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def automated_failover(self, target: str) -> None:
        from noc.auto_run import run_automated_failover

        fired_at: list[str] = []

        def announce(source: str, target: str, _reason: str) -> None:
            self.bell()
            fired_at.append(f"{source} → {target} at {self.clock.utcnow():%H:%M:%S} UTC")

        async def fired() -> None:
            # The banner says so at once; a toast would cover the dashboard it changes.
            self.refresh_snapshot()

        async def show(outcome: Outcome) -> None:
            await self._show_outcome(outcome, automated=fired_at[-1] if fired_at else None)

        try:
            outcome = await run_automated_failover(
                self.auto, self.operations, target, self.audit, self.clock, auto_operator(),
                self._operator_io(), announce=announce, show_outcome=show, fired=fired,
            )  # fmt: skip
            result = None if outcome is None else outcome.result
            if outcome is not None and (
                result is None or (result.aborted is not None and not result.changed_anything)
            ):
                # Nothing was written: the automation holds, and the banner says nothing.
                self._show_last_result_cleared()
        finally:
            self.refresh_snapshot()

    @dialog_act
    async def action_ack(self) -> None:
        await self._ack(self.selected_alert)

    @dialog_act
    async def ack_episode(self, alert_id: str) -> None:
        """Ack from an alert's detail: the same dialog and record as `a`."""
        await self._ack(alert_id)

    async def _ack(self, alert_id: str | None) -> None:
        # The detail's keys reach here without check_action: read-only holds here too.
        if self.read_only or self._refuse_if_busy():
            return
        alert = next(
            (a for a in self.snapshot().alerts if a.id == alert_id),
            None,
        )
        if alert is None or alert.state is not AlertState.FIRING:
            self.notify("Select a firing alert in the alert pane to ack it", timeout=4)
            return
        operator = operator_identity()
        note = await self._ask(AckDialog(alert.summary, operator["operator"]))
        if note is None:
            return
        if self.shared is not None:
            await self._submit("ack", operator, f"Ack of {alert.summary}",
                               alert_id=alert.id, key=alert.key, note=note)  # fmt: skip
            return
        outcome = await self.operations.ack_alert(alert.id, operator, note)
        if outcome.exit_code != EXIT_DONE:
            self.notify(outcome.message, timeout=4)
        self.refresh_snapshot()

    @dialog_act
    async def action_silence(self) -> None:
        await self._silence(self.selected_alert)

    @dialog_act
    async def silence_episode(self, alert_id: str) -> None:
        """Silence from an alert's detail: the dialog starts from its rule and region."""
        await self._silence(alert_id)

    async def _silence(self, alert_id: str | None) -> None:
        if self.read_only or self._refuse_if_busy():
            return
        alert = next((a for a in self.snapshot().alerts if a.id == alert_id), None)
        dialog = SilenceDialog(alert.rule if alert else "", alert.region if alert else None)
        request = await self._ask(dialog)
        if request is None:
            return
        if self.shared is not None:
            await self._submit(
                "silence", operator_identity(), "Silence",
                matchers=json.dumps(dict(request.matchers)),
                duration_seconds=str(request.duration_seconds), comment=request.comment,
            )  # fmt: skip
            return
        outcome = await self.operations.silence(
            request.matchers, request.duration_seconds, request.comment, operator_identity()
        )
        self.notify(outcome.message, markup=False)
        self.refresh_snapshot()

    @dialog_act
    async def action_maintenance(self) -> None:
        """The dialog asks; the operations layer acts, as `noc maintenance` does."""
        if self.read_only or self._refuse_if_busy():
            return
        region = self.selected_region or (self.config.regions[0].id if self.config.regions else "")
        now = self.clock.utcnow()
        live = [
            (w.id, maintenance_words(w, now))
            for w in self.operations.maintenance_windows()
            if w.region == region and now < w.until
        ]
        dialog = MaintenanceDialog(region, live, self._judge_maintenance)
        request = await self._ask(dialog)
        if request is None:
            return
        if request.end_id is not None:
            outcome = await self.operations.end_maintenance(request.end_id, operator_identity())
        else:
            now = self.clock.utcnow()
            starts_at = parse_start(request.start, now) if request.start else None
            outcome = await self.operations.add_maintenance(
                request.region,
                parse_duration(request.duration),
                request.reason,
                operator_identity(),
                starts_at=starts_at,
            )
        self.notify(outcome.message, markup=False, timeout=6)
        self.refresh_snapshot()

    def _judge_maintenance(self, region: str, duration: str, start: str) -> str:
        """What is wrong with a window the dialog is filling in; "" when nothing is."""
        now = self.clock.utcnow()
        try:
            new_window(
                region,
                [r.id for r in self.config.regions],
                parse_duration(duration),
                "(judged)",
                "-",
                now,
                starts_at=parse_start(start, now) if start else None,
            )
        except MaintenanceError as exc:
            return str(exc)
        return ""

    def start_end_maintenance(self, window_id: str) -> None:
        self.run_worker(self.end_maintenance(window_id), group=OPERATOR_GROUP)

    async def end_maintenance(self, window_id: str) -> None:
        outcome = await self.operations.end_maintenance(window_id, operator_identity())
        self.notify(outcome.message, markup=False)
        self.refresh_snapshot()

    def start_expire_silence(self, silence_id: str) -> None:
        self.run_worker(self.expire_silence(silence_id), group=OPERATOR_GROUP)

    async def expire_silence(self, silence_id: str) -> None:
        if self.shared is not None:
            await self._submit(
                "expire_silence", operator_identity(), "Expiry of the silence",
                silence_id=silence_id,
            )  # fmt: skip
            return
        outcome = await self.operations.expire_silence(silence_id, operator_identity())
        if outcome.exit_code == EXIT_DONE:
            self.notify(outcome.message, markup=False)
            self.refresh_snapshot()

    async def _submit(
        self, kind: str, operator: Mapping[str, str], what: str, **fields: str
    ) -> None:
        """Attached: the act goes to the leading agent, which applies it to the one
        alert book and audit; every screen shows it once the leader has."""
        from redis.exceptions import RedisError

        assert self.shared is not None
        try:
            await self.shared.submit(kind, operator, **fields)
        except (RedisError, OSError) as exc:
            self.notify(f"{what} NOT sent: control plane unreachable ({exc})",
                        severity="error", timeout=8, markup=False)  # fmt: skip
            return
        leader = self.snapshot().leader
        by = f"leader {leader.vantage}" if leader else "the next leader (none leads now)"
        self.notify(f"{what} sent to {by}", timeout=4, markup=False)

    @dialog_act
    async def action_sync_now(self) -> None:
        if self._refuse_if_busy():
            return
        sample = self.snapshot().suppression
        if sample is None:
            self.notify("No suppression data yet (needs two regions with a store)", timeout=4)
            return
        choice = await self._ask(SyncDialog(sample.pairs))
        if choice is None:
            return
        source, target = choice
        self.notify(f"Syncing suppression {source}→{target}…", timeout=3, markup=False)
        outcome = await self.operations.sync(source, target, operator_identity())
        self.notify(
            outcome.message,
            severity="information" if outcome.exit_code == EXIT_DONE else "warning",
            markup=False,
        )
        self.scheduler.poll_now()

    # --- interrupted actions (point 8) ---------------------------------------------

    async def find_interrupted(self) -> None:
        """On start: an action the record shows interrupted is named, with how to
        finish it (the palette, or `noc recover`)."""
        try:
            # In a thread: the screen keeps drawing while the layer loads, and the
            # first act finds it loaded.
            await asyncio.to_thread(importlib.import_module, "noc.operations")
            found = await self.operations.interrupted()
            split = await self.operations.flag_split()
        except Exception:  # the dashboard starts whatever the record holds
            log.exception("reading the audit for interrupted actions")
            return
        # Known and said in one step: nothing sees the list without its notices.
        self.interrupted_actions = found
        for item in found:
            self.notify(
                f"INTERRUPTED ACTION: {item.describe()}. Finish or undo it: palette "
                "(ctrl+p) \"Recover interrupted action\", or noc recover.",
                severity="error", timeout=60, markup=False,
            )  # fmt: skip
        if split is not None:
            self.notify(
                f"{split.describe()}: palette \"Re-assert the failover flag\", or noc recover.",
                severity="warning", timeout=60, markup=False,
            )  # fmt: skip

    def action_recover(self, way: str) -> None:
        self.recover_interrupted(Choice(way))

    def action_reassert_flag(self) -> None:
        self.reassert_flag()

    @dialog_act
    async def recover_interrupted(self, choice: Choice) -> None:
        """Settle the interrupted actions the chosen way, after a note is typed."""
        if self._refuse_if_busy():
            return
        operator = operator_identity()

        async def choose(item: Interrupted, options: RecoveryOptions) -> Decision | None:
            way = Choice.CLOSE if options.superseded is not None else choice
            verb = {Choice.COMPLETE: "Complete", Choice.ROLL_BACK: "Roll back",
                    Choice.CLOSE: "Close"}[way]  # fmt: skip
            text = "\n".join((item.describe(), *options.lines(Interface.DASHBOARD)))
            note = await self._ask(
                AckDialog(text, operator["operator"], title=f"{verb} the "
                          "interrupted action", verb=verb)
            )  # fmt: skip
            if note is None:
                return None
            force = False
            if way is not Choice.CLOSE and options.needs_force(way):
                failed = ", ".join(r.name for r in options.failed(way))
                glass = await self._ask(
                    AckDialog(f"Break glass: {verb.lower()} although {failed} fails now.",
                              operator["operator"], title="Break glass", verb="FORCE")
                )  # fmt: skip
                if glass is None:
                    return None
                force = True
            from noc.recovery import Decision

            return Decision(way, force, note)

        async def reassert(split: FlagSplit) -> bool:
            return False  # its own palette command

        outcome = await self.operations.recover(
            operator, choose, reassert, interface=Interface.DASHBOARD
        )
        self.interrupted_actions = await self.operations.interrupted()
        await self.scheduler.read_flags()
        self.refresh_snapshot()
        self.notify("\n".join((*outcome.details, outcome.message)), markup=False,
                    severity="information" if outcome.exit_code == EXIT_DONE else "warning",
                    timeout=15)  # fmt: skip

    @dialog_act
    async def reassert_flag(self) -> None:
        if self._refuse_if_busy():
            return
        operator = operator_identity()

        async def skip(item: Interrupted, _: RecoveryOptions) -> Decision | None:
            return None

        async def reassert(split: FlagSplit) -> bool:
            note = await self._ask(
                AckDialog(split.describe(), operator["operator"],
                          title="Re-assert the failover flag", verb="Re-assert")
            )  # fmt: skip
            return note is not None

        outcome = await self.operations.recover(
            operator, skip, reassert, interface=Interface.DASHBOARD
        )
        await self.scheduler.read_flags()
        self.refresh_snapshot()
        self.notify("\n".join((*outcome.details, outcome.message)), markup=False, timeout=15)

    def _show_detail(self, screen: SnapshotScreen) -> None:
        screen.snapshot = self.snapshot()
        self.push_screen(screen)

    def action_lag_detail(self) -> None:
        links = self.snapshot().replication
        if not links:
            self.notify(
                "No replication links configured ([[replication]] in config)",
                timeout=4,
                markup=False,
            )
            return
        worst = next((link for link in links if link.over_threshold), links[0])
        from noc_widgets.lag_detail import LagDetailScreen

        self._show_detail(LagDetailScreen(worst.id))

    def action_sync_detail(self) -> None:
        if self.snapshot().suppression is None:
            self.notify("No suppression data yet (needs two regions with a store)", timeout=4)
            return
        self._show_detail(SuppressionScreen(self.config.suppression.slo_seconds))

    def action_deliverability_detail(self) -> None:
        if self.snapshot().deliverability is None:
            self.notify("No deliverability data yet", timeout=4)
            return
        settings = self.config.deliverability
        from noc_widgets.deliverability_screen import DeliverabilityScreen

        self._show_detail(
            DeliverabilityScreen(settings.complaint_warn_rate, settings.complaint_critical_rate)
        )

    def action_dns_detail(self) -> None:
        snapshot = self.snapshot()
        if not (snapshot.dns or snapshot.email_auth or snapshot.dnsbl):
            self.notify("No DNS data yet ([dns] and [email] in config)", timeout=4, markup=False)
            return
        self._show_detail(DnsScreen())

    @work(exclusive=True, group="fault-panel", exit_on_error=False)
    async def action_faults(self) -> None:
        if self.faults is None:
            return
        choice = await self.push_screen(FaultPanel(self.faults), wait_for_dismiss=True)
        if choice is None:
            return
        region, fault = choice
        await self.faults.inject(region, fault)
        self.notify(f"demo: {region} now {fault.value}", timeout=3, markup=False)

    def action_help(self) -> None:
        # The keys in force after [keys], each with the id that remaps it.
        keys = [
            (
                self.get_key_display(active.binding),
                active.binding.description,
                active.binding.id or "",
            )
            for active in self.screen.active_bindings.values()
            if active.binding.description and active.enabled
        ]
        notes = [
            "",
            "Arrow keys move through the health table; the highlighted",
            "row's region is the failover target.",
            "Enter on an alert opens its detail; / filters the alerts.",
        ]
        if self.read_only:
            removed = ", ".join(s.label for s in KEYED_ACTIONS if s.who is Who.OPERATOR)
            notes.extend(textwrap.wrap(f"Read-only: removed are {removed}.", width=72))
        notes.append('Remap a key by its id in [keys], e.g. refresh = "ctrl+r".')
        self.push_screen(HelpScreen(keys, notes))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every action of the table the rules allow from `screen`, and Textual's own."""
        offered = [spec for spec in ACTIONS if self._offered(spec, screen)]
        titles = {spec.title for spec in offered}
        # Ours replace Textual's of the same name (its "Quit" skips noc's wait for a
        # change being applied; ours is the same action_quit, with noc's words).
        for command in super().get_system_commands(screen):
            if command.title not in titles:
                yield command
        for spec in offered:
            yield SystemCommand(self._palette_title(spec), spec.help, self._run_from_palette(spec))
        silence = ACTIONS_BY_ID["silence"]
        if self._offered(silence, screen):
            # One command per silence in force: under the rules of silencing itself.
            for each in self._silences():
                yield SystemCommand(
                    f"Expire silence {each.describe()}",
                    f"by {each.author}: {each.comment}",
                    partial(self.start_expire_silence, each.id),
                )
        if self._offered(ACTIONS_BY_ID["maintenance"], screen):
            # One command per live window: ending one is an operator act like opening it.
            now = self.clock.utcnow()
            for window in self.operations.maintenance_windows():
                if now < window.until:
                    yield SystemCommand(
                        f"End maintenance {window.id} ({window.region})",
                        maintenance_words(window, now),
                        partial(self.start_end_maintenance, window.id),
                    )

    def _silences(self) -> tuple[Silence, ...]:
        """In force: the leader's (attached) or this process's own."""
        if self.shared is not None:
            return self.shared.silences
        return self.scheduler.engine.alerts.silences()

    def _offered(self, spec: ActionSpec, screen: Screen[object]) -> bool:
        if self._leaving:
            return False
        return self.may_run(spec, on_main=screen is self.screen_stack[0], palette=True)

    def _palette_title(self, spec: ActionSpec) -> str:
        if spec.id == "toggle_auto" and self.auto.paused:
            return "Resume automated failover"
        return spec.title

    def _run_from_palette(self, spec: ActionSpec) -> Callable[[], object]:
        """The action's method with its arguments: "select_region(-1)" ->
        action_select_region(-1)."""
        _, name, arguments = parse_action(spec.action)
        return partial(getattr(self, f"action_{name}"), *arguments)


async def _fresh_enough() -> None:
    """The app's poll loops keep the engine current for the plan the dialog shows; the
    re-plan after the human confirmed reads the flags and probes the target's checks
    itself (Operations(probe_before_acting=...)), and execution re-reads the flags
    under the lock."""


class _DrainDialog:
    """The DrainWait dialog as the operations layer's drain watch."""

    def __init__(self, app: NocApp, dialog: DrainWait) -> None:
        self._app = app
        self._dialog = dialog

    @property
    def cancelled(self) -> bool:
        return self._dialog.cancelled

    def show(self, detail: str) -> None:
        self._dialog.progress = detail

    def close(self) -> None:
        # Not on top (the palette is open over it): it goes when it is shown again.
        self._dialog.finished = True
        if self._app.screen is self._dialog:
            self._dialog.dismiss(None)


def verdicts(snapshot: EstateSnapshot) -> tuple[object, ...]:
    """What an operator acts on: every health, failure count and error, which region is
    active, whether the picture can be trusted, and the alerts."""
    return (
        snapshot.authority,
        snapshot.cut_off,
        snapshot.stale,
        snapshot.alerts,
        tuple(
            (r.health, r.is_active, r.store.reachable, r.dns_records, r.sending_listed)
            for r in snapshot.regions
        ),
        tuple(
            (c.health, c.consecutive_failures, c.last.error if c.last else None)
            for r in snapshot.regions
            for c in r.checks
        ),
    )


def _unreadable_theme(name: str, instead: str) -> str:
    return (
        f"theme {name!r} is not readable on the Linux console (TERM=linux), which has "
        f"no light backgrounds: using {instead!r}"
    )


def binding_ids() -> list[str]:
    """Every binding id `[keys]` may remap: the app's, and those of every screen noc defines."""
    classes: list[type[DOMNode]] = [NocApp]
    pending: list[type[Screen[Any]]] = [Screen]
    while pending:
        screen = pending.pop()
        pending.extend(screen.__subclasses__())
        if screen.__module__.startswith("noc_widgets."):
            classes.append(screen)
    return sorted(
        {
            binding.id
            for cls in classes
            for binding in cls.BINDINGS
            if isinstance(binding, Binding) and binding.id
        }
    )


def _checked_keymap(keys: Mapping[str, str], source: str) -> dict[str, str]:
    """`[keys]` once every id in it is known and no key does two things; else a ConfigError.

    Textual would quietly drop a binding whose key was given to another one.
    """
    source = source or "<config>"
    known = binding_ids()
    problems = [
        f"{source}: keys.{binding_id}: unknown binding id (valid ids: {', '.join(known)})"
        for binding_id in keys
        if binding_id not in known
    ]
    keymap = NocApp._normalize_keymap(keys)
    holders: dict[str, list[str]] = {}
    for binding in NocApp.BINDINGS:
        if isinstance(binding, Binding) and binding.id:
            in_force = keymap.get(binding.id) or NocApp._normalize_keymap({"": binding.key})[""]
            for key in in_force.split(","):
                holders.setdefault(key, []).append(binding.id)
    problems.extend(
        f"{source}: keys: {key!r} is the key of both {' and '.join(ids)}; give each its own"
        for key, ids in holders.items()
        if len(ids) > 1
    )
    if problems:
        raise ConfigError(problems)
    return dict(keys)
