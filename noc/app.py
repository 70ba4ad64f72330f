"""The Textual app: draws the engine's snapshots and turns keys into actions.

Data flows one way. The scheduler's tasks feed the engine and signal a change;
the signal coalesces (at most one pending), and the app builds one snapshot
and hands it to every widget inside `batch_update()`. Widgets never poll and
never see collectors; actions go through plan -> dialog -> execute -> verify.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from noc_themes import STYLESHEETS, THEMES
from noc_themes.user import ThemeFileError, load_user_theme
from noc_widgets.ack_dialog import AckDialog
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.alert_pane import AlertPane
from noc_widgets.banner import Banner
from noc_widgets.critical_banner import CriticalBanner
from noc_widgets.deliverability_screen import DeliverabilityScreen
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
from noc_widgets.lag_detail import LagDetailScreen
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
from noc_widgets.view import SnapshotView
from noc_widgets.wall_header import WallHeader
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker

from noc.audit import JsonlLog, operator_identity, state_dir
from noc.auto import AutoFailover, auto_operator
from noc.clock import Clock, SystemClock
from noc.config import ConfigError, NocConfig
from noc.failover import (
    ack_cooldown,
    execute,
    finish_despite_interrupts,
    gather_facts,
    plan_action,
    plan_record,
    reconfirm,
    verify,
)
from noc.model import (
    ActionKind,
    ActionPlan,
    ActionResult,
    AlertNotice,
    AlertState,
    EstateSnapshot,
    FaultInjector,
    Severity,
    Topology,
)
from noc.rotation import PAUSE_SECONDS, Rotation
from noc.safety import cooldown_now, replication_drained
from noc.scheduler import Scheduler
from noc.sync import audit_sync, sync_now, sync_ok, sync_summary
from noc.terminal import TerminalWatch
from noc.ui_settings import DEFAULT_THEME

log = logging.getLogger(__name__)

# Everything that changes the world or the record; --read-only removes them all.
OPERATOR_ACTIONS = frozenset(
    {"failover", "failback", "switchover", "drain", "restore", "ack", "silence", "sync_now",
     "ack_cooldown", "toggle_auto"}
)  # fmt: skip
# Only an active-active estate drains and restores regions.
ACTIVE_ACTIVE_ACTIONS = frozenset({"drain", "restore"})
# One operator action at a time, and none ever cancels another: the group is
# checked, not exclusive (an exclusive worker would cancel a failover mid-write).
OPERATOR_GROUP = "operator-action"
MAIN_SCREEN_ACTIONS = OPERATOR_ACTIONS | {
    "faults", "help", "select_region", "refresh", "next_view", "lag_detail", "sync_detail",
    "deliverability_detail", "dns_detail",
}  # fmt: skip
# The overview (map or region list, and the health table) is the first view.
OVERVIEW = "estate"
# The views after the overview, in the order `v` and a wall screen's rotation show
# them. A new view is a SnapshotView subclass added here.
VIEWS: tuple[type[SnapshotView], ...] = (RegionBoard,)


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
    """

    BINDINGS = [
        Binding("f", "failover", "Failover", id="failover"),
        Binding("b", "failback", "Failback", id="failback"),
        Binding("w", "switchover", "Switchover", id="switchover", show=False),
        Binding("D", "drain", "Drain region", id="drain", show=False),
        Binding("R", "restore", "Restore region", id="restore", show=False),
        Binding("c", "ack_cooldown", "Ack cooldown", id="ack_cooldown", show=False),
        Binding("P", "toggle_auto", "Auto pause", id="toggle_auto", show=False),
        Binding("l", "lag_detail", "Lag", id="lag_detail"),
        Binding("u", "sync_detail", "Sync", id="sync_detail", show=False),
        Binding("d", "deliverability_detail", "Mail", id="deliverability_detail", show=False),
        Binding("y", "sync_now", "Sync now", id="sync_now", show=False),
        Binding("n", "dns_detail", "DNS", id="dns_detail", show=False),
        Binding("a", "ack", "Ack", id="ack"),
        Binding("s", "silence", "Silence", id="silence"),
        Binding("r", "refresh", "Refresh", id="refresh", show=False),
        Binding(
            "left_square_bracket", "select_region(-1)", "Prev region", id="prev_region", show=False
        ),
        Binding(
            "right_square_bracket", "select_region(1)", "Next region", id="next_region", show=False
        ),
        Binding("v", "next_view", "Next view", id="next_view"),
        Binding("x", "faults", "Faults", id="faults"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
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
    ) -> None:
        super().__init__()
        self.config = config
        self.read_only = read_only
        self.faults = faults
        self.clock = clock or SystemClock()
        state_path = state_path or state_dir()
        self.audit = JsonlLog(state_path / "audit.jsonl", self.clock)
        self.scheduler = Scheduler(
            config,
            self.clock,
            on_change=self._engine_changed,
            on_alerts=self._alerts_changed,
            state_dir=state_path,
            read_only=read_only,
        )
        self.start_polling = start_polling
        self.config_path = config_path
        self.auto = AutoFailover(
            config, self.clock, state_path / "automation.jsonl", read_only=read_only
        )
        # The execution in flight, if any: quitting waits for it (see on_unmount).
        self._applying: asyncio.Future[ActionResult] | None = None
        self._verifying: Worker[None] | None = None
        self.selected_region: str | None = None
        self.selected_alert: str | None = None
        self._last_repaint = 0.0
        self._repaint_pending = False
        self._verdicts_shown: tuple[object, ...] = ()
        self.ui = config.ui
        if self.ui.low_bandwidth:
            self.animation_level = "none"
        self.set_keymap(_checked_keymap(config.keys, config_path))
        self._theme_notes = self._install_themes()
        self._terminal_watch: TerminalWatch | None = None
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
            yield AlertPane(id="alerts")
        for view in VIEWS:
            yield view(id=view.VIEW_ID)
        yield NocFooter()

    async def on_mount(self) -> None:
        if not self.is_headless:
            # A dropped SSH session (SIGHUP) or a `kill` (SIGTERM) exits cleanly, so
            # the scheduler and any demo servers are stopped rather than orphaned.
            loop = asyncio.get_running_loop()
            for hangup in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(hangup, self.exit)
            # Not every lost terminal sends SIGHUP; see noc.terminal. The watch calls
            # from its own thread, so the exit is handed to the event loop.
            self._terminal_watch = TerminalWatch(lambda: loop.call_soon_threadsafe(self.exit))
            self._terminal_watch.start()
        self.sub_title = f"{self.config.estate.name} ({self.config_path})"
        for note in self._theme_notes:
            self.notify(note, severity="warning", timeout=15, markup=False)
        self.refresh_snapshot()
        # The clock and ages move every second; the tick obeys the repaint ceiling too.
        self.set_interval(1.0, self.request_repaint, name="clock tick")
        if self.wall:
            # The overview's first period starts now, not when the app was built.
            self.rotation.show(OVERVIEW, self.clock.monotonic())
            self.set_interval(1.0, self._rotate, name="wall rotation")
        if self.auto.enabled:
            self.set_interval(1.0, self._auto_tick, name="automated failover")
        if self.start_polling:
            self.scheduler.start()

    async def on_unmount(self) -> None:
        if self._terminal_watch is not None:
            self._terminal_watch.stop()
        if self._applying is not None and not self._applying.done():
            # A hang-up mid-failover: the writes finish, are read back or rolled back,
            # and audited before the stores are closed. Each step has its timeout.
            await asyncio.wait({self._applying})
        await self.scheduler.stop()

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
        self.theme = wanted
        return notes

    # --- one-way data flow -------------------------------------------------

    def _engine_changed(self) -> None:
        self.post_message(SnapshotChanged())

    def on_snapshot_changed(self, _: SnapshotChanged) -> None:
        # What an operator acts on goes out at once (within the ceiling); numbers that
        # only drift (latencies, ages) wait for the clock tick, which shows them anyway:
        # a repaint per poll result would resend the same lines several times a second.
        snapshot = self.snapshot()
        if verdicts(snapshot) != self._verdicts_shown:
            self.request_repaint(snapshot)

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
        try:
            self.query_one(StatusBar)
        except NoMatches:
            return
        self._repaint_pending = False
        self._last_repaint = time.monotonic()
        snapshot = snapshot or self.snapshot()
        self._verdicts_shown = verdicts(snapshot)
        with self.batch_update():
            self.query_one(StatusBar).snapshot = snapshot
            self.query_one(Banner).snapshot = snapshot
            self.query_one(RegionMap).snapshot = snapshot
            self.query_one(RegionList).snapshot = snapshot
            table = self.query_one(HealthTable)
            table.compact = self.screen.has_class("-narrow")
            table.snapshot = snapshot
            self.query_one(AlertPane).snapshot = snapshot
            self.query_one(ReplicationPanel).snapshot = snapshot
            self.query_one(SyncSummary).snapshot = snapshot
            self.query_one(DeliverabilitySummary).snapshot = snapshot
            self.query_one(DnsSummary).snapshot = snapshot
            if isinstance(self.screen, SnapshotScreen):
                self.screen.snapshot = snapshot
            self.query_one(EstateCounts).snapshot = snapshot
            for wall_widget in (*self.query(WallHeader), *self.query(CriticalBanner)):
                wall_widget.snapshot = snapshot
            for header in self.query(WallHeader):
                header.rotation = self._rotation_text()
            # A hidden view is not drawn, so it need not be fed either.
            for view in self.query(SnapshotView):
                if view.display:
                    view.snapshot = snapshot

    def snapshot(self) -> EstateSnapshot:
        snapshot = self.scheduler.snapshot(read_only=self.read_only)
        return replace(snapshot, automation=self.auto.status())

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

    # --- views and the wall's rotation ------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        # Any key pauses the rotation, so whoever walks up can read undisturbed.
        if isinstance(event, events.Key):
            self.rotation.key_pressed(self.clock.monotonic())
        await super().on_event(event)

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
        # The automation's pause switch works even while an action runs: that is when
        # an operator may most want it.
        busy = self.operator_actions_running() and action != "toggle_auto"
        if action in OPERATOR_ACTIONS and (self.read_only or busy):
            return False
        if (
            action in ACTIVE_ACTIVE_ACTIONS
            and self.config.estate.topology is not Topology.ACTIVE_ACTIVE
        ):
            return False
        if action == "toggle_auto" and not self.auto.enabled:
            return False
        # App bindings stay live under a dialog or detail view: a stray key typed there
        # must never start (or, the worker being exclusive, replace) another action.
        if action in MAIN_SCREEN_ACTIONS and len(self.screen_stack) > 1:
            return False
        return not (action == "faults" and self.faults is None)

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
        self.operator_action(ActionKind.FAILOVER, target)

    def action_failback(self) -> None:
        self.operator_action(ActionKind.FAILBACK, self.config.primary.id)

    def action_switchover(self) -> None:
        target = self.selected_region
        snapshot = self.snapshot()
        if target is None or target == snapshot.active_region:
            target = self.config.primary.id
        self.operator_action(ActionKind.SWITCHOVER, target)

    def action_drain(self) -> None:
        self.operator_action(ActionKind.DRAIN, self.selected_region or self.config.regions[0].id)

    def action_restore(self) -> None:
        self.operator_action(ActionKind.RESTORE, self.selected_region or self.config.regions[0].id)

    async def _plan(
        self, kind: ActionKind, target: str, operator: Mapping[str, str], *, force: bool = False
    ) -> ActionPlan:
        """A plan on the freshest facts: what the actuators say now, and the snapshot."""
        gathering = asyncio.ensure_future(gather_facts(self.config, self.scheduler.actuators, kind))
        # Said only when it is slow (a DNS server or a store timing out), so the word
        # does not sit over the dialog's buttons on every plan.
        if not (await asyncio.wait({gathering}, timeout=0.5))[0]:
            self.notify(
                f"Planning {kind.value}: asking the DNS server and the stores…",
                timeout=2,
                markup=False,
            )
        facts = await gathering
        return plan_action(self.snapshot(), self.config, kind, target, operator, facts, force=force)

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def operator_action(self, kind: ActionKind, target: str) -> None:
        if self._refuse_if_busy():
            return
        plan = await self._plan(kind, target, operator_identity())
        await self.audit.aappend("planned", **plan_record(plan, via="tui"))
        if not plan.allowed and not plan.needs_force:
            await self.audit.aappend("refused", **plan_record(plan, refusal=plan.refusal))
        confirmation = await self.push_screen(FailoverDialog(plan), wait_for_dismiss=True)
        if confirmation is None:
            await self.audit.aappend("cancelled", **plan_record(plan))
            self.notify(f"{kind.value} cancelled: nothing was changed", timeout=4, markup=False)
            return
        if confirmation.force and not await self.push_screen(
            ForceDialog(plan), wait_for_dismiss=True
        ):
            await self.audit.aappend("cancelled", **plan_record(plan, reason=confirmation.reason))
            self.notify(
                f"break-glass {kind.value} cancelled: nothing was changed",
                timeout=4,
                markup=False,
            )
            return
        # The world may have moved while the dialog was open: decide on a fresh
        # preflight, under the same action id, and refuse if it no longer holds.
        fresh = await self._plan(kind, target, operator_identity(), force=confirmation.force)
        plan, refusal = reconfirm(plan, fresh)
        if refusal is not None:
            await self.audit.aappend("refused", **plan_record(plan, refusal=refusal))
            self.notify(f"{kind.value} refused on a fresh preflight: {refusal}",
                        severity="error", timeout=10, markup=False)  # fmt: skip
            return
        await self.audit.aappend(
            "confirmed", **plan_record(plan, reason=confirmation.reason, confirmation="typed")
        )
        await self._carry_out(plan, confirmation.reason, operator_identity())

    async def _carry_out(
        self, plan: ActionPlan, reason: str, operator: Mapping[str, str]
    ) -> ActionResult:
        """Execute to the end whatever else happens in the app (a quit waits for it),
        show the result, then watch DNS move in a worker of its own: other operator
        acts need not wait out a TTL."""
        confirmed_at = self.clock.monotonic()
        if plan.kind is ActionKind.SWITCHOVER:
            stopped = await self._wait_for_drain(plan)
            if stopped is None:
                # Minutes may have passed: decide again on fresh facts.
                fresh = await self._plan(plan.kind, plan.target, operator, force=plan.forced)
                plan, refusal = reconfirm(plan, fresh)
                if refusal is not None:
                    stopped = f"refused on a fresh preflight after the wait: {refusal}"
            if stopped is not None:
                await self.audit.aappend("cancelled", **plan_record(plan, reason=stopped))
                self.notify(f"switchover stopped: {stopped}; nothing was changed",
                            severity="warning", timeout=8, markup=False)  # fmt: skip
                return ActionResult(plan, None, aborted=stopped)
        actuators = self.scheduler.actuators
        self._applying = asyncio.ensure_future(
            execute(
                plan,
                reason,
                actuators,
                self.audit,
                self.clock,
                confirmed_at=confirmed_at,
                before_changes=self._stop_last_watch,
            )
        )
        result = await finish_despite_interrupts(self._applying)
        await self.scheduler.read_flags()
        self.refresh_snapshot()
        screen = ActionResultScreen(result, watching=result.aborted is None)
        self.push_screen(screen)
        self._verifying = self.run_worker(
            self._watch(result, reason, screen, confirmed_at),
            group="verify",
            exit_on_error=False,
        )
        return result

    def _stop_last_watch(self) -> None:
        """The last action's DNS watch (and post hook) would report on a state this
        action is about to change: it stops, audited, before the first write."""
        if self._verifying is not None and not self._verifying.is_finished:
            self._verifying.cancel()

    async def _watch(
        self, result: ActionResult, reason: str, screen: ActionResultScreen, confirmed_at: float
    ) -> None:
        try:
            final = await verify(
                result,
                self.scheduler.actuators,
                self.audit,
                self.clock,
                reason=reason,
                confirmed_at=confirmed_at,
                on_progress=partial(screen.show_result, watching=True),
            )
        except asyncio.CancelledError:
            # Superseded by a newer action, or noc is stopping: said, never silent.
            await asyncio.shield(
                self.audit.aappend(
                    "verify_stopped",
                    **plan_record(result.plan, reason="a newer action or noc stopping"),
                )
            )
            raise
        except Exception as exc:  # the change itself is done and audited
            log.exception("verifying %s", result.plan.action_id)
            self.notify(f"Verifying {result.plan.kind.value} failed: {exc}", severity="error",
                        timeout=15, markup=False)  # fmt: skip
            return
        screen.show_result(final, watching=False)
        # The screen may have been closed while DNS was watched: the verdict still shows.
        self.notify(final.summary, severity="information" if final.success else "error",
                    timeout=10 if final.success else 30, markup=False)  # fmt: skip
        self.scheduler.poll_now()

    async def action_quit(self) -> None:
        if self._applying is not None and not self._applying.done():
            self.notify(
                "A change is being applied: quit once it has finished and been audited",
                severity="warning",
                timeout=5,
            )
            return
        await super().action_quit()

    async def _wait_for_drain(self, plan: ActionPlan) -> str | None:
        """Hold a switchover until replication toward the target has drained; None when it
        has, else why it stopped (the operator cancelled, or it did not drain in time)."""
        dialog = DrainWait(plan)
        # Mounted before anything else happens: a lag already drained would otherwise
        # dismiss it before it is on the stack.
        await self.push_screen(dialog)
        try:
            deadline = self.clock.monotonic() + self.config.failover.drain_timeout_seconds
            while True:
                # The operator's cancel wins over a lag that drained in the same second.
                if dialog.cancelled:
                    return "cancelled by the operator while waiting for lag to drain"
                drained, detail = replication_drained(self.snapshot(), plan.source, plan.target)
                dialog.progress = detail
                if drained:
                    return None
                if self.clock.monotonic() >= deadline:
                    limit = self.config.failover.drain_timeout_seconds
                    return f"lag did not drain within {limit:g} s ({detail})"
                # Only the replication links, not every source of the estate.
                self.scheduler.poll_now("lag:")
                await asyncio.sleep(1.0)
        finally:
            # Not on top (the palette is open over it): it goes when it is shown again.
            dialog.finished = True
            if self.screen is dialog:
                dialog.dismiss(None)

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def action_ack_cooldown(self) -> None:
        if self._refuse_if_busy():
            return
        snapshot = self.snapshot()
        cooldown = cooldown_now(snapshot, self.config)
        if cooldown.ok:
            self.notify(f"No cooldown to ack: {cooldown.detail}", timeout=5, markup=False)
            return
        operator = operator_identity()
        note = await self.push_screen(
            AckDialog(
                f"{cooldown.detail.partition('; ack')[0]}.\nAcking allows another failover now.",
                operator["operator"],
                title="Ack the failover cooldown",
                verb="Ack cooldown",
            ),
            wait_for_dismiss=True,
        )
        if note is None:
            return
        cleared, text = await ack_cooldown(
            snapshot, self.scheduler.stores, self.audit, self.clock, operator, note
        )
        await self.scheduler.read_flags()
        self.refresh_snapshot()
        self.notify(text, severity="information" if cleared else "warning", timeout=6, markup=False)

    async def action_toggle_auto(self) -> None:
        auto = self.auto
        if not auto.enabled:
            self.notify("Automated failover is off ([failover] auto = true turns it on)",
                        timeout=5, markup=False)  # fmt: skip
            return
        await auto.set_paused(not auto.paused, operator_identity())
        await self.audit.aappend(
            "auto_paused" if auto.paused else "auto_resumed", **operator_identity()
        )
        state = "PAUSED: it will not act" if auto.paused else "armed again"
        self.notify(f"Automated failover {state}", timeout=5, markup=False)
        self.refresh_snapshot()

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
        auto = self.auto
        try:
            operator = auto_operator()
            plan = await self._plan(ActionKind.FAILOVER, target, operator)
            source = plan.source or "?"
            down = auto.down_seconds() or 0
            reason = (
                f"automated: {source} down for {down:.0f} s (auto_after_seconds {auto.after:g})"
            )
            if not plan.allowed:
                # Audited when the rules holding it change, not each time a figure moves.
                if auto.hold(plan.refusal or "", tuple(c.name for c in plan.failed)):
                    await self.audit.aappend("auto_held", **plan_record(plan, refusal=plan.refusal))
                return
            if auto.paused:  # paused from the palette while the plan was being made
                return
            await self.audit.aappend("planned", **plan_record(plan, via="auto"))
            await self.audit.aappend(
                "confirmed", **plan_record(plan, reason=reason, confirmation="automatic")
            )
            self.bell()
            self.notify(
                f"AUTOMATED FAILOVER {source} → {target}: {reason}. It will not fail back; "
                "fail back by hand after validation.",
                severity="error",
                timeout=30,
                markup=False,
            )
            when = f"{source} → {target} at {self.clock.utcnow():%H:%M:%S} UTC"
            # Journalled first: if noc stops midway, it has still fired (once).
            await auto.record_fired(when, operator)
            result = await self._carry_out(plan, reason, operator)
            if result.aborted is not None and not result.changed_anything:
                # Nothing was written (the lock was held, a hook refused...): held.
                await auto.retract_fired(f"tried and aborted: {result.aborted}", operator)
                return
            if result.aborted is not None:
                outcome = " (rolled back: see the result)"
            else:
                outcome = "" if result.success else " (FAILED OR PARTIAL: see the result)"
            await auto.record_fired(when + outcome, operator)
        finally:
            auto.acting = False
            self.refresh_snapshot()

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def action_ack(self) -> None:
        if self._refuse_if_busy():
            return
        alert = next(
            (a for a in self.snapshot().alerts if a.id == self.selected_alert),
            None,
        )
        if alert is None or alert.state is not AlertState.FIRING:
            self.notify("Select a firing alert in the alert pane to ack it", timeout=4)
            return
        operator = operator_identity()
        note = await self.push_screen(
            AckDialog(alert.summary, operator["operator"]), wait_for_dismiss=True
        )
        if note is None:
            return
        ack = self.scheduler.engine.alerts.ack(alert.id, operator["operator"], note)
        if ack is None:
            self.notify("That alert is no longer firing", timeout=4)
            return
        if self.scheduler.journal is not None:
            await self.scheduler.journal.record_ack(alert.id, ack)
        await self.audit.aappend("ack", alert_id=alert.id, note=note, **operator)
        self.refresh_snapshot()

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def action_silence(self) -> None:
        if self._refuse_if_busy():
            return
        alert = next((a for a in self.snapshot().alerts if a.id == self.selected_alert), None)
        dialog = SilenceDialog(alert.rule if alert else "", alert.region if alert else None)
        request = await self.push_screen(dialog, wait_for_dismiss=True)
        if request is None:
            return
        operator = operator_identity()
        silence = self.scheduler.engine.alerts.silence(
            request.matchers, request.duration_seconds, operator["operator"], request.comment
        )
        if self.scheduler.journal is not None:
            await self.scheduler.journal.record_silence(silence)
        await self.audit.aappend(
            "silence",
            silence_id=silence.id,
            matchers=dict(silence.matchers),
            ends_at=silence.ends_at.isoformat(),
            comment=silence.comment,
            **operator,
        )
        self.notify(
            f"Silenced {silence.describe()} until {silence.ends_at:%H:%M} UTC", markup=False
        )
        self.refresh_snapshot()

    def start_expire_silence(self, silence_id: str) -> None:
        self.run_worker(self.expire_silence(silence_id), group=OPERATOR_GROUP)

    async def expire_silence(self, silence_id: str) -> None:
        expired = self.scheduler.engine.alerts.expire(silence_id)
        if expired is None:
            return
        if self.scheduler.journal is not None:
            await self.scheduler.journal.record_silence(expired)
        await self.audit.aappend("silence_expired", silence_id=silence_id, **operator_identity())
        self.notify(f"Silence {expired.describe()} expired", markup=False)
        self.refresh_snapshot()

    @work(group=OPERATOR_GROUP, exit_on_error=False)
    async def action_sync_now(self) -> None:
        if self._refuse_if_busy():
            return
        sample = self.snapshot().suppression
        if sample is None:
            self.notify("No suppression data yet (needs two regions with a store)", timeout=4)
            return
        choice = await self.push_screen(SyncDialog(sample.pairs), wait_for_dismiss=True)
        if choice is None:
            return
        source, target = choice
        self.notify(f"Syncing suppression {source}→{target}…", timeout=3, markup=False)
        results = await sync_now(self.config, source, target, self.clock)
        await audit_sync(self.audit, operator_identity(), source, target, results)
        self.notify(
            sync_summary(source, target, results),
            severity="information" if sync_ok(results) else "warning",
            markup=False,
        )
        self.scheduler.poll_now()

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
        ]
        if self.read_only:
            notes.append("Read-only: failover and failback are removed.")
        notes.append('Remap a key by its id in [keys], e.g. refresh = "ctrl+r".')
        self.push_screen(HelpScreen(keys, notes))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # Operator commands only from the main screen, with no action in progress:
        # palette commands run without check_action.
        on_main = screen is self.screen_stack[0]
        if not self.read_only and on_main and not self.operator_actions_running():
            yield SystemCommand(
                "Fail over", "Fail over to the selected region (STOP pattern)", self.action_failover
            )
            yield SystemCommand(
                "Fail back", "Fail back to the primary region", self.action_failback
            )
            yield SystemCommand(
                "Switchover",
                "Planned: wait for replication to drain, then move to the selected region",
                self.action_switchover,
            )
            if self.config.estate.topology is Topology.ACTIVE_ACTIVE:
                yield SystemCommand(
                    "Drain region", "Take the selected region out of the DNS records",
                    self.action_drain,
                )  # fmt: skip
                yield SystemCommand(
                    "Restore region", "Put the selected region back in the DNS records",
                    self.action_restore,
                )  # fmt: skip
            yield SystemCommand(
                "Ack failover cooldown",
                "Clear the anti-flap cooldown of the last failover (recorded)",
                self.action_ack_cooldown,
            )
            yield SystemCommand(
                "Ack alert", "Acknowledge the selected firing alert", self.action_ack
            )
            yield SystemCommand(
                "Silence alerts", "Mute alerts by rule and region", self.action_silence
            )
            for silence in self.scheduler.engine.alerts.silences():
                yield SystemCommand(
                    f"Expire silence {silence.describe()}",
                    f"by {silence.author}: {silence.comment}",
                    partial(self.start_expire_silence, silence.id),
                )
        if self.auto.enabled and not self.read_only:
            # Offered even while an action runs: that is when it matters most.
            verb = "Resume" if self.auto.paused else "Pause"
            yield SystemCommand(
                f"{verb} automated failover",
                "The automation's pause switch (recorded)",
                self.action_toggle_auto,
            )
        yield SystemCommand("Refresh now", "Poll every source immediately", self.action_refresh)
        yield SystemCommand(
            "Replication lag", "Chart of a link's last hour", self.action_lag_detail
        )
        yield SystemCommand(
            "Suppression sync", "What each region still lacks", self.action_sync_detail
        )
        yield SystemCommand(
            "Deliverability",
            "Bounces and complaints, estate and regions",
            self.action_deliverability_detail,
        )
        yield SystemCommand(
            "Previous region", "Select the previous region", lambda: self.action_select_region(-1)
        )
        yield SystemCommand(
            "Next region", "Select the next region", lambda: self.action_select_region(1)
        )
        yield SystemCommand("Help", "Show every key", self.action_help)
        if self.faults is not None:
            yield SystemCommand(
                "Demo faults", "Inject a fault into the demo estate", self.action_faults
            )


def verdicts(snapshot: EstateSnapshot) -> tuple[object, ...]:
    """What an operator acts on: every health, failure count and error, which region is
    active, whether the picture can be trusted, and the alerts."""
    return (
        snapshot.authority,
        snapshot.cut_off,
        snapshot.stale,
        snapshot.alerts,
        tuple((r.health, r.is_active, r.store.reachable) for r in snapshot.regions),
        tuple(
            (c.health, c.consecutive_failures, c.last.error if c.last else None)
            for r in snapshot.regions
            for c in r.checks
        ),
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
