"""Every operator act, once: the dashboard and the CLI only ask the human and show.

An act that moves traffic (failover, failback, switchover, drain, restore) runs
plan -> audit planned (or refused) -> ask -> re-plan on fresh facts -> refuse if a
rule now fails -> audit confirmed -> (switchover: wait for the drain, re-plan
again) -> execute -> verify, and returns an `Outcome` whose exit code follows the
README's table:

    0   verified (or a dry run, or nothing to do)
    1   refused, cancelled or aborted: nothing left changed
    2   failed or partial
    3   usage or config
    130 interrupted after the change was finished and audited

The caller supplies how to ask (`OperatorIO.confirm`), how to show progress, and
how a drain wait is shown and cancelled. An interrupt (the task cancelled: Ctrl-C
in the CLI, a quitting app) before anything is written ends the act with
"nothing was changed"; during execution it is held until the writes are finished,
read back or rolled back and audited; during the DNS watch it ends the watch.

Never imports Textual: see the import-linter contracts in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from noc.audit import JsonlLog, read_jsonl
from noc.clock import Clock
from noc.codes import EXIT_DONE as EXIT_DONE  # re-exported: this layer's answers
from noc.codes import EXIT_FAILED as EXIT_FAILED
from noc.codes import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from noc.codes import EXIT_NOTHING_CHANGED as EXIT_NOTHING_CHANGED
from noc.codes import EXIT_USAGE as EXIT_USAGE
from noc.config import NocConfig
from noc.engine import Engine
from noc.failover import (
    Actuators,
    CanaryCheck,
    ack_cooldown,
    execute,
    gather_facts,
    holder_is_dead,
    plan_action,
    plan_record,
    reconfirm,
    recovery_facts,
    verify,
)
from noc.maintenance import MaintenanceError, describe, new_window, window_json
from noc.model import (
    ActionKind,
    ActionPlan,
    ActionResult,
    ActuatorFacts,
    ActuatorStep,
    CanarySample,
    CheckSample,
    CheckTarget,
    ErrorKind,
    EstateSnapshot,
    Health,
    Interface,
    MaintenanceWindow,
    Preflight,
    ProbeError,
    RegionStatus,
    Remedy,
    hint,
    interface_of,
)
from noc.recovery import (
    Choice,
    Decision,
    FlagSplit,
    Interrupted,
    Settled,
    Supersession,
    destination,
    flag_and_dns_disagree,
    flag_disagreement,
    interrupted_actions,
    read_flags,
    reassert_blocked,
    reassert_flag,
    recommended,
    recovery_rules,
    settle,
    superseded_by,
)
from noc.safety import cooldown_now, mail_queue_drained, replication_drained
from noc.scheduler import Scheduler
from noc.sync import SyncError, audit_sync, sync_now, sync_ok, sync_summary

log = logging.getLogger(__name__)
T = TypeVar("T")


# Said when planning takes longer than this (a DNS server or a store timing out).
_SLOW_PLAN_SECONDS = 0.5
# Plans whose actuator facts are kept for re-evaluation: one dialog is open at a time.
_FACTS_KEPT = 4


@dataclass(frozen=True)
class Confirmation:
    """What the human said yes with: their reason, whether they broke glass, and how
    ("typed", "--yes", "automatic")."""

    reason: str
    force: bool = False
    how: str = "typed"
    # The plan on the human's screen when they said yes: a live dialog re-evaluates
    # the first plan as the estate changes (`Operations.reevaluate`). None: the first.
    plan: ActionPlan | None = None


@dataclass(frozen=True)
class ActionRequest:
    kind: ActionKind
    target: str
    operator: Mapping[str, str]
    via: str = "cli"
    force: bool = False  # planned with the override from the start (the CLI's --force)
    # The confirmation may still ask for the override once the plan is shown (the
    # dialog's Force…): a plan refused only by forceable rules is then offered.
    force_offered: bool = False
    dry_run: bool = False
    reason: str = ""  # known up front (CLI, automation); else the confirmation's
    watch: bool = True  # watch DNS move here; the app watches in a worker of its own


class DrainWatch(Protocol):
    """How a switchover's wait for replication to drain is shown and cancelled."""

    @property
    def cancelled(self) -> bool: ...

    def show(self, detail: str) -> None: ...

    def close(self) -> None: ...


def _ignore(*_: object) -> None:
    return None


class _PrintedDrain:
    cancelled = False

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def show(self, detail: str) -> None:
        self._say(f"switchover: {detail}")

    def close(self) -> None:
        return None


@dataclass
class OperatorIO:
    """How an act asks the human and shows what happens. Only `confirm` is required."""

    confirm: Callable[[ActionPlan], Awaitable[Confirmation | None]]
    show_plan: Callable[[ActionPlan], None] = _ignore
    say: Callable[[str], None] = _ignore
    # Shows a refused plan (the dialog, with why); returns once the human has seen it.
    refused: Callable[[ActionPlan], Awaitable[None]] | None = None
    open_drain: Callable[[ActionPlan], Awaitable[DrainWatch]] | None = None
    executed: Callable[[ActionResult], None] = _ignore
    watching: Callable[[ActionResult], None] = _ignore
    # Called once the lock is held and the pre hook passed, before the first write.
    before_changes: Callable[[], None] | None = None


@dataclass(frozen=True)
class Outcome:
    """How an act ended, with the README's exit code and a line for the human."""

    exit_code: int
    message: str
    stage: str  # dry_run, refused, cancelled, aborted, executed, verified, failed, interrupted
    plan: ActionPlan | None = None
    result: ActionResult | None = None
    reason: str = ""
    confirmed_at: float = 0.0
    details: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.stage in ("executed", "verified", "failed") or (
            self.stage == "interrupted" and self.exit_code == EXIT_INTERRUPTED
        )


def result_exit_code(result: ActionResult) -> int:
    """An execution's code: aborted with everything put back is "nothing changed"; a
    rollback that failed, or a change that did not verify, is partial."""
    if result.aborted is not None:
        return EXIT_FAILED if result.rollback_failed else EXIT_NOTHING_CHANGED
    return EXIT_DONE if result.success else EXIT_FAILED


async def finish_first(work: Awaitable[T]) -> tuple[T, bool]:
    """Await `work` to its end even if this task is cancelled meanwhile; (its result,
    whether an interrupt came). The interrupt is consumed: the caller decides what
    it means now that the work is done (no DNS watch, exit 130)."""
    task = asyncio.ensure_future(work)
    current = asyncio.current_task()
    interrupted = False
    while True:
        try:
            return await asyncio.shield(task), interrupted
        except asyncio.CancelledError:
            if task.done() or current is None:
                if task.done() and not task.cancelled():
                    return task.result(), True
                raise
            current.uncancel()
            interrupted = True


class Operations:
    """The acts of one estate: its scheduler (stores, engine), audit log and clock.

    `refresh` brings the facts up to date before each plan (the CLI collects a
    round; the app's loops keep the engine fresh); before anything is written (the
    re-plan after the human confirmed, a recovery) the flags are read from the
    stores and, with `probe_before_acting` (the app), the checks of the regions
    traffic would go to are probed once, a single failure counting. `snapshot` is
    the estate as the caller sees it; `refresh_lag` re-reads replication while a
    switchover waits for it to drain."""

    def __init__(
        self,
        config: NocConfig,
        scheduler: Scheduler,
        audit: JsonlLog,
        clock: Clock,
        *,
        snapshot: Callable[[], EstateSnapshot] | None = None,
        refresh: Callable[[], Awaitable[None]] | None = None,
        refresh_lag: Callable[[], Awaitable[None]] | None = None,
        probe_before_acting: bool = False,
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.audit = audit
        self.clock = clock
        self.snapshot = snapshot or scheduler.snapshot
        self._refresh = refresh or scheduler.collect_once
        self._refresh_lag = refresh_lag or scheduler.poll_replication
        # The app's engine needs failure_threshold x interval to see a target die: before
        # acting on what the human confirmed, its checks are probed once more here, and
        # one failing probe counts (the CLI's one-round scheduler already does this).
        self._probe_before_acting = probe_before_acting
        # The execution in flight, if any: a quitting app waits for it.
        self.applying: asyncio.Future[ActionResult] | None = None
        # What the actuators said for the last few plans, by action id: a plan shown
        # in a dialog is re-evaluated on each new snapshot without asking the DNS
        # server and the stores again (they are read afresh before anything is written).
        self._facts: dict[str, ActuatorFacts] = {}

    @property
    def actuators(self) -> Actuators:
        return self.scheduler.actuators

    # --- moving traffic --------------------------------------------------------------

    async def plan(
        self,
        kind: ActionKind,
        target: str,
        operator: Mapping[str, str],
        *,
        force: bool = False,
        say: Callable[[str], None] = _ignore,
        fresh: bool = False,
    ) -> ActionPlan:
        """A plan on the freshest facts: what the actuators say now, and the estate.
        `fresh`: just before acting, on facts read now (see the class docstring)."""
        refreshing: Awaitable[EstateSnapshot | None] = (
            self.fresh_snapshot([target]) if fresh else self._refresh_only()
        )
        gathering = asyncio.ensure_future(
            asyncio.gather(refreshing, gather_facts(self.config, self.actuators, kind))
        )
        try:
            if not (await asyncio.wait({gathering}, timeout=_SLOW_PLAN_SECONDS))[0]:
                say(f"Planning {kind.value}: asking the DNS server and the stores…")
            snapshot, facts = await gathering
        finally:
            if not gathering.done():
                # Interrupted while planning: stop the reads, and collect their end so
                # no "exception never retrieved" is left behind.
                gathering.cancel()
                await asyncio.wait({gathering})
        plan = plan_action(
            snapshot or self.snapshot(), self.config, kind, target, operator, facts,
            force=force, now=self.clock.utcnow(),
        )  # fmt: skip
        self._facts[plan.action_id] = facts
        while len(self._facts) > _FACTS_KEPT:
            del self._facts[next(iter(self._facts))]
        return plan

    def reevaluate(
        self, plan: ActionPlan, snapshot: EstateSnapshot | None = None
    ) -> ActionPlan | None:
        """`plan` judged again on `snapshot` (the estate now) and the clock now, on the
        actuators' facts it was made on; same action id. Pure: no I/O. A cooldown that
        ran out passes, a region that went down refuses. None for a plan not made
        here (or long gone): without its facts it cannot be judged again."""
        facts = self._facts.get(plan.action_id)
        if facts is None:
            return None
        again = plan_action(
            snapshot or self.snapshot(), self.config, plan.kind, plan.target, plan.operator,
            facts, force=plan.forced, now=self.clock.utcnow(),
        )  # fmt: skip
        return replace(again, action_id=plan.action_id)

    async def _refresh_only(self) -> None:
        await self._refresh()

    async def fresh_snapshot(self, regions: Sequence[str]) -> EstateSnapshot:
        """The estate with the flags read from the stores now and, with
        `probe_before_acting`, the health of `regions` from one probe of each of
        their checks (single-round: one failure is down; never better than the
        engine's verdict, which may know of failures this probe did not see)."""
        await asyncio.gather(self._refresh(), self.scheduler.read_flags())
        snapshot = self.snapshot()
        if not self._probe_before_acting:
            return snapshot
        targets = [
            replace(t, failure_threshold=1, recovery_threshold=1)
            for t in self.scheduler.engine.targets
            if t.region_id in regions
        ]
        samples = await asyncio.gather(*(self._probe(t) for t in targets))
        one_round = Engine(self.config, self.clock, single_round=True)
        for sample in samples:
            one_round.ingest(sample)
        probed = {r.id: r for r in one_round.snapshot().regions if r.id in regions}
        return replace(
            snapshot,
            regions=tuple(
                _worse(r, probed[r.id]) if r.id in probed else r for r in snapshot.regions
            ),
        )

    async def _probe(self, target: CheckTarget) -> CheckSample:
        try:
            async with asyncio.timeout(target.timeout_seconds + 5):
                return await self.scheduler.collector.probe(target)
        except Exception as exc:  # a broken probe proves nothing healthy
            log.exception("fresh probe of %s", target.display_url)
            return CheckSample(
                check_id=target.check_id, region_id=target.region_id,
                at=self.clock.monotonic(), wall=self.clock.utcnow(), ok=False,
                error=ProbeError(ErrorKind.NETWORK, f"internal error: {type(exc).__name__}"),
            )  # fmt: skip

    async def run_action(self, request: ActionRequest, io: OperatorIO) -> Outcome:
        """One act that moves traffic, from plan to verdict; see the module's docstring."""
        plan: ActionPlan | None = None
        self._executed = None
        try:
            return await self._run_action(request, io)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            executed = self._executed
            if executed is not None:
                # A second interrupt after the change was made (while its end was
                # reported): never "nothing was changed".
                return Outcome(
                    EXIT_INTERRUPTED if executed.aborted is None else result_exit_code(executed),
                    "interrupted: the change was finished and audited; DNS was not watched"
                    if executed.aborted is None
                    else executed.summary,
                    "interrupted", executed.plan, executed,
                )  # fmt: skip
            # Before execution started (execution holds interrupts).
            plan = getattr(self, "_planning", None)
            if plan is not None:
                await asyncio.shield(
                    self.audit.aappend(
                        "cancelled", **plan_record(plan, reason="interrupted before any change")
                    )
                )
            return Outcome(
                EXIT_NOTHING_CHANGED, "interrupted: nothing was changed", "interrupted", plan
            )
        finally:
            self._planning = None

    _planning: ActionPlan | None = None
    _executed: ActionResult | None = None

    async def _run_action(self, request: ActionRequest, io: OperatorIO) -> Outcome:
        kind, target, operator = request.kind, request.target, request.operator
        plan = await self.plan(kind, target, operator, force=request.force, say=io.say)
        extra: dict[str, Any] = {"via": request.via}
        if request.reason:
            extra["reason"] = request.reason
        if request.dry_run:
            extra["dry_run"] = True
        await self.audit.aappend("planned", **plan_record(plan, **extra))
        io.show_plan(plan)
        if not plan.allowed and not (request.force_offered and plan.needs_force):
            await self.audit.aappend(
                "refused", **plan_record(plan, reason=request.reason, refusal=plan.refusal)
            )
            if io.refused is not None:
                await io.refused(plan)
            interface = interface_of(request.via)
            force = f" ({hint(Remedy.FORCE, interface)})" if plan.needs_force else ""
            return Outcome(
                EXIT_NOTHING_CHANGED, f"refused: {plan.refusal_for(interface)}{force}",
                "refused", plan,
            )  # fmt: skip
        if request.dry_run:
            return Outcome(EXIT_DONE, "dry run: nothing was changed", "dry_run", plan)
        self._planning = plan
        confirmation = await io.confirm(plan)
        if confirmation is None:
            await self.audit.aappend("cancelled", **plan_record(plan, reason=request.reason))
            return Outcome(
                EXIT_NOTHING_CHANGED, f"{kind.value} cancelled: nothing was changed",
                "cancelled", plan,
            )  # fmt: skip
        reason = confirmation.reason or request.reason
        # What the human confirmed is the plan on their screen (a live dialog's last
        # evaluation), never the first one if it changed since.
        shown = confirmation.plan if confirmation.plan is not None else plan
        if shown.action_id != plan.action_id:
            shown = replace(shown, action_id=plan.action_id)
        # The world may have moved even since: decide again on fresh facts, under the
        # same action id, before anything is written; what differs from what was shown
        # in a way the human did not see (the move, a rule they did not override) refuses.
        fresh = await self.plan(
            kind, target, operator, force=confirmation.force, say=io.say, fresh=True
        )
        plan, refusal = reconfirm(shown, fresh)
        self._planning = plan
        if refusal is not None:
            await self.audit.aappend(
                "refused", **plan_record(plan, reason=reason, refusal=refusal, fresh_preflight=True)
            )
            return Outcome(
                EXIT_NOTHING_CHANGED,
                f"{kind.value} refused on a fresh preflight: {refusal}; nothing was changed",
                "refused", plan, reason=reason,
            )  # fmt: skip
        await self.audit.aappend(
            "confirmed",
            **plan_record(plan, reason=reason, confirmation=confirmation.how),
            **recovery_facts(plan),
        )
        confirmed_at = self.clock.monotonic()
        waits = kind is ActionKind.SWITCHOVER or (
            kind is ActionKind.FAILBACK and self._failback_waits(plan.target)
        )
        if waits:
            stopped = await self._wait_for_drain(plan, io)
            if stopped is None:
                # Minutes may have passed: decide again on fresh facts.
                fresh = await self.plan(
                    kind, target, operator, force=plan.forced, say=io.say, fresh=True
                )
                plan, refusal = reconfirm(plan, fresh)
                if refusal is not None:
                    stopped = f"refused on a fresh preflight after the wait: {refusal}"
            if stopped is not None:
                await self.audit.aappend("cancelled", **plan_record(plan, reason=stopped))
                return Outcome(
                    EXIT_NOTHING_CHANGED, f"{kind.value} stopped: {stopped}; nothing was changed",
                    "cancelled", plan, reason=reason,
                )  # fmt: skip
        self._planning = None  # from here on, an interrupt is held, never "nothing changed"
        self.applying = asyncio.ensure_future(
            execute(
                plan, reason, self.actuators, self.audit, self.clock,
                confirmed_at=confirmed_at, before_changes=io.before_changes,
            )
        )  # fmt: skip
        result, interrupted = await finish_first(self.applying)
        self._executed = result
        io.executed(result)
        if result.aborted is not None:
            return Outcome(
                result_exit_code(result), result.summary, "aborted", plan, result, reason,
                confirmed_at,
            )  # fmt: skip
        if interrupted:
            return Outcome(
                EXIT_INTERRUPTED,
                "interrupted: the change was finished and audited; DNS was not watched",
                "interrupted", plan, result, reason, confirmed_at,
            )  # fmt: skip
        if not request.watch:
            return Outcome(
                EXIT_DONE, result.summary, "executed", plan, result, reason, confirmed_at
            )
        if plan.blast.changes:
            io.say("watching DNS until every server serves the new answers or the TTL passes…")
        final, interrupted = await self.watch(result, reason, confirmed_at, io.watching)
        if interrupted:
            return Outcome(
                EXIT_INTERRUPTED,
                "interrupted while watching DNS: the change was finished and audited",
                "interrupted", plan, final, reason, confirmed_at,
            )  # fmt: skip
        code = result_exit_code(final)
        return Outcome(
            code, final.summary, "verified" if code == EXIT_DONE else "failed", plan, final,
            reason, confirmed_at,
        )  # fmt: skip

    async def watch(
        self,
        result: ActionResult,
        reason: str,
        confirmed_at: float,
        on_progress: Callable[[ActionResult], None] = _ignore,
    ) -> tuple[ActionResult, bool]:
        """Watch DNS move and record the verdict; (the result, whether it was stopped).
        A stopped watch is audited ("verify_stopped"), never silent."""
        try:
            final = await verify(
                result, self.actuators, self.audit, self.clock,
                reason=reason, confirmed_at=confirmed_at, on_progress=on_progress,
                canary=self._canary_check(result.plan.target),
            )  # fmt: skip
        except asyncio.CancelledError:
            # Written to its end even if a second interrupt comes meanwhile.
            await finish_first(
                self.audit.aappend(
                    "verify_stopped",
                    **plan_record(
                        result.plan, reason="interrupted, a newer action or noc stopping"
                    ),
                )
            )
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            return result, True
        return final, False

    def _canary_check(self, target: str) -> CanaryCheck | None:
        """The canary a verification sends through `target`: None when no seed takes
        canaries from it (verification is then DNS and the flag alone)."""
        prober = self.scheduler.canary
        if prober is None or not any(target in s.regions for s in prober.seeds.values()):
            return None

        async def check(region: str) -> tuple[bool, str, list[CanarySample]]:
            # During a failover the seeds are read every second: the RTO is measured
            # on it. What it learnt is the dashboard's (and the alerts') too.
            ok, detail, samples = await prober.verify_region(region, poll_seconds=1.0)
            for sample in samples:
                self.scheduler.engine.ingest_canary(sample)
            return ok, detail, samples

        return check

    def _failback_waits(self, target: str) -> bool:
        region = self.config.region(target)
        return region is not None and region.mta is not None

    def _drained(self, plan: ActionPlan) -> tuple[bool, str]:
        if plan.kind is ActionKind.FAILBACK:
            # The primary takes traffic back once the mail it deferred has gone out.
            return mail_queue_drained(self.snapshot(), self.config, plan.target)
        return replication_drained(self.snapshot(), plan.source, plan.target)

    async def _wait_for_drain(self, plan: ActionPlan, io: OperatorIO) -> str | None:
        """Hold a switchover until replication toward the target has drained (a failback
        until the target's deferred mail queue has); None when it has, else why it
        stopped (cancelled, or not drained in time)."""
        what = "the mail queue" if plan.kind is ActionKind.FAILBACK else "lag"
        watch = await io.open_drain(plan) if io.open_drain else _PrintedDrain(io.say)
        try:
            deadline = self.clock.monotonic() + self.config.failover.drain_timeout_seconds
            while True:
                # The operator's cancel wins over a lag that drained in the same second.
                if watch.cancelled:
                    return f"cancelled by the operator while waiting for {what} to drain"
                drained, detail = self._drained(plan)
                watch.show(detail)
                if drained:
                    return None
                if self.clock.monotonic() >= deadline:
                    limit = self.config.failover.drain_timeout_seconds
                    return f"{what} did not drain within {limit:g} s ({detail})"
                if plan.kind is ActionKind.FAILBACK:
                    await self.scheduler.poll_mta()
                else:
                    await self._refresh_lag()
                await asyncio.sleep(1.0)
        finally:
            watch.close()

    # --- the cooldown, alerts, suppression ---------------------------------------------

    async def ack_cooldown(
        self, operator: Mapping[str, str], ask_note: Callable[[str], Awaitable[str | None]]
    ) -> Outcome:
        """Clear the anti-flap cooldown of the last failover; 0 cleared (or nothing to
        clear), 1 cancelled, 2 not on a majority of stores."""
        await self.scheduler.read_flags()
        snapshot = self.snapshot()
        cooldown = cooldown_now(snapshot, self.config)
        if cooldown.ok:
            return Outcome(EXIT_DONE, f"No cooldown to ack: {cooldown.detail}", "nothing")
        note = await ask_note(cooldown.detail.partition("; ack")[0])
        if note is None:
            return Outcome(EXIT_NOTHING_CHANGED, "cooldown ack cancelled", "cancelled")
        (cleared, text), interrupted = await finish_first(
            ack_cooldown(snapshot, self.scheduler.stores, self.audit, self.clock, operator, note)
        )
        if interrupted:
            return Outcome(EXIT_INTERRUPTED, f"interrupted after the ack was audited: {text}",
                           "interrupted")  # fmt: skip
        await self.scheduler.read_flags()
        return Outcome(EXIT_DONE if cleared else EXIT_FAILED, text, "done" if cleared else "failed")

    async def automation_paused(self, paused: bool, operator: Mapping[str, str]) -> Outcome:
        """Record that automated failover was paused or armed again, and by whom."""
        await self.audit.aappend("auto_paused" if paused else "auto_resumed", **operator)
        state = "PAUSED: it will not act" if paused else "armed again"
        return Outcome(EXIT_DONE, f"Automated failover {state}", "done")

    async def ack_alert(self, alert_id: str, operator: Mapping[str, str], note: str) -> Outcome:
        ack = self.scheduler.engine.alerts.ack(alert_id, operator["operator"], note)
        if ack is None:
            return Outcome(EXIT_NOTHING_CHANGED, "That alert is no longer firing", "refused")
        # Who, before the journal write: a kill between the two must not leave an act
        # that took effect with no operator in the audit (bench/kill_dashboard.py).
        await self.audit.aappend("ack_intent", alert_id=alert_id, note=note, **operator)
        if self.scheduler.journal is not None:
            await self.scheduler.journal.record_ack(alert_id, ack)
        await self.audit.aappend("ack", alert_id=alert_id, note=note, **operator)
        return Outcome(EXIT_DONE, f"Acked {alert_id}", "done")

    async def silence(
        self,
        matchers: Mapping[str, str],
        duration_seconds: float,
        comment: str,
        operator: Mapping[str, str],
    ) -> Outcome:
        silence = self.scheduler.engine.alerts.silence(
            dict(matchers), duration_seconds, operator["operator"], comment
        )
        await self.audit.aappend(
            "silence_intent", silence_id=silence.id, matchers=dict(silence.matchers), **operator
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
        return Outcome(
            EXIT_DONE, f"Silenced {silence.describe()} until {silence.ends_at:%H:%M} UTC", "done"
        )

    async def expire_silence(self, silence_id: str, operator: Mapping[str, str]) -> Outcome:
        expired = self.scheduler.engine.alerts.expire(silence_id)
        if expired is None:
            return Outcome(EXIT_NOTHING_CHANGED, "no such silence", "nothing")
        await self.audit.aappend("silence_expire_intent", silence_id=silence_id, **operator)
        if self.scheduler.journal is not None:
            await self.scheduler.journal.record_silence(expired)
        await self.audit.aappend("silence_expired", silence_id=silence_id, **operator)
        return Outcome(EXIT_DONE, f"Silence {expired.describe()} expired", "done")

    # --- maintenance windows -----------------------------------------------------------

    def maintenance_windows(self) -> list[MaintenanceWindow]:
        """Active and scheduled windows by start, then recently finished ones."""
        return self.scheduler.engine.maintenance.listing(self.clock.utcnow())

    async def add_maintenance(
        self,
        region: str,
        duration: timedelta,
        reason: str,
        operator: Mapping[str, str],
        *,
        starts_at: datetime | None = None,
    ) -> Outcome:
        """Open a window on `region` (now, or from `starts_at`): 0 recorded, 3 a window
        that cannot be (unknown region, bad duration or time, no reason)."""
        store = self.scheduler.maintenance
        await asyncio.to_thread(store.reload)
        now = self.clock.utcnow()
        try:
            window = new_window(
                region, [r.id for r in self.config.regions], duration, reason,
                operator["operator"], now, starts_at=starts_at,
            )  # fmt: skip
        except MaintenanceError as exc:
            return Outcome(EXIT_USAGE, f"noc maintenance add: {exc}", "refused")
        fields = window_json(window)
        # Who, before the window: a kill between the two must not leave a window that
        # mutes a region's pages with no operator in the audit.
        await self.audit.aappend("maintenance_add_intent", window=fields, **operator)
        await asyncio.to_thread(store.add, window)
        await self.audit.aappend("maintenance_add", window=fields, reason=window.reason, **operator)
        await self.scheduler.refresh_maintenance()
        return Outcome(EXIT_DONE, f"Maintenance {describe(window, now)}", "done")

    async def end_maintenance(self, window_id: str, operator: Mapping[str, str]) -> Outcome:
        """End a live window now: 0 ended, 1 no such live window."""
        store = self.scheduler.maintenance
        await asyncio.to_thread(store.reload)
        window = store.book.get(window_id)
        now = self.clock.utcnow()
        if window is None or now >= window.until:
            said = "no such window" if window is None else f"it is {window.state(now)}"
            return Outcome(
                EXIT_NOTHING_CHANGED, f"Maintenance {window_id} not ended: {said}", "nothing"
            )
        await self.audit.aappend(
            "maintenance_end_intent", window_id=window_id, region=window.region, **operator
        )
        try:
            ended = await asyncio.to_thread(store.end, window_id, operator["operator"])
        except MaintenanceError as exc:  # ended by someone else meanwhile
            return Outcome(EXIT_NOTHING_CHANGED, f"Maintenance {window_id}: {exc}", "nothing")
        await self.audit.aappend(
            "maintenance_end",
            window_id=window_id,
            region=window.region,
            summary=f"{window.region} window {window_id} ended early",
            **operator,
        )
        await self.scheduler.refresh_maintenance()
        return Outcome(EXIT_DONE, f"Maintenance {describe(ended, self.clock.utcnow())}", "done")

    async def sync(
        self,
        source: str,
        target: str,
        operator: Mapping[str, str],
        lists: Sequence[str] | None = None,
    ) -> Outcome:
        """Copy missing suppression entries; 0 done, 2 incomplete, 3 usage."""
        # Announced before any copy: an interrupt or a kill mid-sync leaves a trace.
        await self.audit.aappend(
            "sync_intent", source=source, target=target, lists=list(lists or ()), **operator
        )
        try:
            # An interrupt lets the copies under way finish; they are then audited.
            results, interrupted = await finish_first(
                sync_now(self.config, source, target, self.clock, lists)
            )
        except SyncError as exc:
            await self.audit.aappend(
                "sync_refused", source=source, target=target, refusal=str(exc), **operator
            )
            return Outcome(EXIT_USAGE, f"noc sync: {exc}", "refused")
        _, again = await finish_first(audit_sync(self.audit, operator, source, target, results))
        if interrupted or again:
            return Outcome(
                EXIT_INTERRUPTED,
                "interrupted: the copies made are audited; "
                + sync_summary(source, target, results),
                "interrupted",
            )
        lines = tuple(
            f"  {r.list}: {r.missing} missing of {r.examined} recent, {r.copied} copied "
            + "; ".join(r.errors)
            + (" (capped: run again)" if r.truncated else "")
            for r in results
        )
        ok = sync_ok(results)
        return Outcome(
            EXIT_DONE if ok else EXIT_FAILED,
            sync_summary(source, target, results),
            "done" if ok else "failed",
            details=tuple(line.rstrip() for line in lines),
        )

    # --- interrupted actions -----------------------------------------------------------

    async def interrupted(
        self, records: Sequence[Mapping[str, Any]] | None = None
    ) -> list[Interrupted]:
        """Actions the record shows confirmed and never ended, whose process is gone
        (one still running, e.g. a switchover waiting for a drain, is not interrupted)."""
        if records is None:
            records = (await asyncio.to_thread(read_jsonl, self.audit.path)).records
        found = interrupted_actions(records)
        if not found:
            return []
        holders = await asyncio.gather(
            *(s.read_lock(self.config.failover.lock_key) for s in self.scheduler.stores.values())
        )
        running = {h.action_id for h, _ in holders if h is not None and not holder_is_dead(h)}
        return [i for i in found if not i.process_alive() and i.action_id not in running]

    async def flag_split(self) -> FlagSplit | None:
        return flag_disagreement(await read_flags(self.actuators))

    async def recovery_options(
        self, item: Interrupted, records: Sequence[Mapping[str, Any]]
    ) -> RecoveryOptions:
        """Both ways of settling `item`, judged on facts read now: whether a newer action
        superseded it, and the rules of each direction."""
        primary = self.config.primary.id
        regions = [destination(item, c, primary) for c in (Choice.COMPLETE, Choice.ROLL_BACK)]
        snapshot = await self.fresh_snapshot(regions)
        flags = await read_flags(self.actuators)
        superseded = superseded_by(item, flags, records)
        rules = {
            c: tuple(recovery_rules(snapshot, item, c, primary))
            for c in (Choice.COMPLETE, Choice.ROLL_BACK)
        }
        return RecoveryOptions(item, recommended(item, superseded), superseded, rules, primary)

    async def recover(
        self,
        operator: Mapping[str, str],
        choose: Callable[[Interrupted, RecoveryOptions], Awaitable[Decision | None]],
        confirm_reassert: Callable[[FlagSplit], Awaitable[bool]],
        *,
        dry_run: bool = False,
        say: Callable[[str], None] = _ignore,
        interface: Interface | None = None,
    ) -> Outcome:
        """Finish, undo or close every interrupted action (oldest first), then re-assert
        the majority flag on stores that lost it, then read flag and DNS back and say
        whether they agree. Each step is shown, chosen, announced and audited."""
        lines: list[str] = []
        codes: list[int] = []
        changed = False  # this recovery wrote something (or closed a record)
        split: FlagSplit | None = None

        def note(text: str) -> None:
            lines.append(text)
            say(text)

        try:
            records = (await asyncio.to_thread(read_jsonl, self.audit.path)).records
            items = await self.interrupted(records)
            still_open = {i.action_id for i in items}
            for item in items:
                note(f"interrupted: {item.describe()}")
                options = await self.recovery_options(item, records)
                for line in options.lines(interface):
                    note(f"  {line}")
                if dry_run:
                    for way in (Choice.COMPLETE, Choice.ROLL_BACK):
                        preview = await settle(
                            item, way, self.actuators, self.clock, operator, dry_run=True
                        )
                        note(f"  {way.value}: {preview.summary()}")
                    continue
                decision = await choose(item, options)
                if decision is None:
                    note(f"  left as it is: {item.action_id} is still interrupted")
                    codes.append(EXIT_NOTHING_CHANGED)
                    continue
                refusal = options.refusal(decision, interface)
                if refusal is not None:
                    await self.audit.aappend(
                        "recover_refused", action_id=item.action_id, action=item.kind,
                        choice=decision.choice.value, refusal=refusal, note=decision.note,
                        **operator,
                    )  # fmt: skip
                    note(f"  refused: {refusal}; nothing was changed")
                    codes.append(EXIT_NOTHING_CHANGED)
                    continue
                settled, interrupted = await finish_first(
                    self._settle_and_audit(item, decision, options, operator)
                )
                changed = True
                if settled.ok:
                    still_open.discard(item.action_id)
                note(f"  {settled.summary()}")
                codes.append(_settled_code(settled))
                if interrupted:
                    return Outcome(
                        EXIT_INTERRUPTED,
                        "interrupted after a recovery step was finished and audited",
                        "interrupted", details=tuple(lines),
                    )  # fmt: skip
                records = (await asyncio.to_thread(read_jsonl, self.audit.path)).records
            split = await self.flag_split()
            if split is not None:
                note(split.describe())
                blocked = reassert_blocked(split, still_open)
                if blocked is not None:
                    note(f"  not re-asserted: {blocked}")
                    codes.append(EXIT_NOTHING_CHANGED)
                elif dry_run:
                    note(f"  would re-assert {split.flag.active} on {', '.join(split.behind)}")
                elif await confirm_reassert(split):
                    flag_step, interrupted = await finish_first(self._reassert(split, operator))
                    changed = True
                    note(f"  {flag_step.detail}")
                    codes.append(EXIT_DONE if flag_step.ok else EXIT_FAILED)
                    if interrupted:
                        return Outcome(
                            EXIT_INTERRUPTED,
                            "interrupted after the flag re-assert was finished and audited",
                            "interrupted", details=tuple(lines),
                        )  # fmt: skip
                else:
                    note("  left as it is")
                    codes.append(EXIT_NOTHING_CHANGED)
            if dry_run:
                return Outcome(
                    EXIT_DONE, "dry run: nothing was changed", "dry_run", details=tuple(lines)
                )
            # Never say they agree without reading them: the stores and the DNS server.
            disagreement = await flag_and_dns_disagree(self.actuators)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if changed:
                return Outcome(
                    EXIT_INTERRUPTED,
                    "interrupted: what was settled before it is finished and audited; "
                    "nothing more was changed",
                    "interrupted", details=tuple(lines),
                )  # fmt: skip
            return Outcome(
                EXIT_NOTHING_CHANGED, "interrupted: nothing was changed", "interrupted",
                details=tuple(lines),
            )  # fmt: skip
        for problem in disagreement:
            note(f"NOT agreeing: {problem}")
        if not items and split is None:
            if disagreement:
                return Outcome(
                    EXIT_FAILED,
                    "no interrupted action, but flag and DNS do not agree (see above): "
                    "realign them with a forced failover or failback",
                    "failed", details=tuple(lines),
                )  # fmt: skip
            return Outcome(
                EXIT_DONE,
                "nothing to recover: no interrupted action; the stores and DNS agree (read now)",
                "nothing", details=tuple(lines),
            )  # fmt: skip
        code = max(codes, default=EXIT_DONE, key=_severity)
        if code == EXIT_DONE and disagreement:
            code = EXIT_FAILED
        message = {
            EXIT_DONE: "recovered: the flag, DNS and the record agree (read back now)",
            EXIT_NOTHING_CHANGED: "not recovered: nothing more was changed"
            if changed
            else "not recovered: nothing was changed",
            EXIT_FAILED: "recovered only in part, the action stays open: see above "
            "(run noc recover again once what is named is fixed)",
        }[code]
        return Outcome(code, message, "done", details=tuple(lines))

    async def _settle_and_audit(
        self,
        item: Interrupted,
        decision: Decision,
        options: RecoveryOptions,
        operator: Mapping[str, str],
    ) -> Settled:
        """Settle one item and record how: run to its end even if interrupted."""

        async def record(event: str, **fields: Any) -> None:
            await self.audit.aappend(
                event, action_id=item.action_id, action=item.kind,
                recovery=decision.choice.value, **operator, **fields,
            )  # fmt: skip

        settled = await settle(
            item, decision.choice, self.actuators, self.clock, operator, record=record
        )
        settled.note = decision.note
        settled.superseded = options.superseded
        await self._audit_settled(settled, operator, decision, options)
        return settled

    async def _reassert(self, split: FlagSplit, operator: Mapping[str, str]) -> ActuatorStep:
        async def record(event: str, **fields: Any) -> None:
            await self.audit.aappend(
                event, action_id=split.flag.action_id, active=split.flag.active,
                **operator, **fields,
            )  # fmt: skip

        flag_step, _ = await reassert_flag(
            split, self.actuators, self.clock, operator, record=record
        )
        await self.audit.aappend(
            "flag_reasserted",
            action_id=split.flag.action_id,
            active=split.flag.active,
            stores=list(split.behind),
            ok=flag_step.ok,
            detail=flag_step.detail,
            **operator,
        )
        return flag_step

    async def _audit_settled(
        self,
        settled: Settled,
        operator: Mapping[str, str],
        decision: Decision,
        options: RecoveryOptions,
    ) -> None:
        item = settled.item
        if settled.choice is Choice.CLOSE:
            event = "recover_closed"
        elif settled.refusal is not None:
            event = "recover_refused"
        else:
            # Anything not fully on the chosen side keeps the action open.
            event = "recovered" if settled.ok else "recover_partial"
        fields: dict[str, Any] = {}
        if settled.choice is not Choice.CLOSE:
            # The flag every store holds once this is done: what the record now says.
            fields["active_action_id"] = (
                item.action_id
                if settled.choice is Choice.COMPLETE
                else (item.previous_flag.action_id if item.previous_flag else "")
            )
        await self.audit.aappend(
            event,
            action_id=item.action_id,
            action=item.kind,
            **{"from": item.source, "to": item.target},
            choice=settled.choice.value,
            ok=settled.ok,
            refusal=settled.refusal,
            left=settled.left,
            superseded_by=options.superseded.action_id if options.superseded else None,
            forced=decision.force,
            overridden=[r.name for r in options.failed(settled.choice)] if decision.force else [],
            reason=decision.note,
            steps=[{"actuator": s.actuator, "ok": s.ok, "detail": s.detail} for s in settled.steps],
            summary=settled.summary(),
            **fields,
            **operator,
        )


@dataclass(frozen=True)
class RecoveryOptions:
    """How one interrupted action may be settled, judged on facts read just now."""

    item: Interrupted
    recommended: Choice
    superseded: Supersession | None
    rules: Mapping[Choice, tuple[Preflight, ...]]
    primary: str

    def failed(self, choice: Choice) -> tuple[Preflight, ...]:
        return tuple(r for r in self.rules.get(choice, ()) if r.blocking and not r.ok)

    def needs_force(self, choice: Choice) -> bool:
        failed = self.failed(choice)
        return bool(failed) and all(r.forceable for r in failed)

    def refusal(self, decision: Decision, interface: Interface | None = None) -> str | None:
        """Why this decision may not run, or None; what clears it, in `interface`'s terms."""
        choice = decision.choice
        if choice is Choice.CLOSE:
            if self.superseded is not None or self.item.damaged or not self.item.wrote_anything:
                return None
            # Closing would end the record over a half-made move: split, and silent.
            return (
                f"{self.item.action_id} wrote {', '.join(self.item.started) or 'part of its move'}"
                " before it stopped and no newer action superseded it: closing would leave "
                "that half-made move in place with nothing open in the record; complete it "
                "or roll it back"
            )
        if self.superseded is not None:
            return (
                f"{self.superseded.describe()}: settling {self.item.action_id} either way "
                "would undo it; close it instead (writes nothing)"
            )
        failed = self.failed(choice)
        if not failed or (decision.force and self.needs_force(choice)):
            return None
        why = "; ".join(f"{r.name}: {r.said_for(interface)}" for r in failed)
        force = f" ({hint(Remedy.FORCE, interface)})" if self.needs_force(choice) else ""
        return f"{choice.value} fails its rules now: {why}{force}"

    def lines(self, interface: Interface | None = None) -> list[str]:
        """What the human reads before choosing, in `interface`'s terms."""
        found: list[str] = []
        if self.superseded is not None:
            found.append(
                f"{self.superseded.describe()}: complete and roll_back are refused; "
                "close ends the record and writes nothing"
            )
        for choice in (Choice.COMPLETE, Choice.ROLL_BACK):
            where = destination(self.item, choice, self.primary)
            found.append(f"{choice.value} (traffic on {where}):")
            for rule in self.rules.get(choice, ()):
                mark = "ok  " if rule.ok else ("FAIL" if rule.blocking else "warn")
                found.append(f"  [{mark}] {rule.name}: {rule.said_for(interface)}")
        found.append(f"recommended: {self.recommended.value}")
        return found


def _settled_code(settled: Settled) -> int:
    if settled.choice is Choice.CLOSE or settled.ok:
        return EXIT_DONE
    return EXIT_NOTHING_CHANGED if settled.refusal else EXIT_FAILED


def _hm(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _severity(code: int) -> int:
    """Which code wins when a recovery did several things: partial over nothing over ok."""
    return {EXIT_DONE: 0, EXIT_NOTHING_CHANGED: 1, EXIT_FAILED: 2}.get(code, 3)


def run_with_interrupts_as_cancel(work: Coroutine[Any, Any, T]) -> T:
    """asyncio.run for the CLI where every Ctrl-C cancels the work's task (never a
    KeyboardInterrupt raised in the middle of a write): the operations layer decides
    what an interrupt means at that moment."""

    async def main() -> T:
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        for number in INTERRUPTS:
            loop.add_signal_handler(number, _interrupt, number, task)
        try:
            return await task
        finally:
            for number in INTERRUPTS:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(number)

    return asyncio.run(main())


# Ctrl-C, a kill's polite form, and an SSH session that dropped: all one deferred
# cancel, which the operations layer holds while writes are under way.
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(number: int, task: asyncio.Future[Any]) -> None:
    if number == signal.SIGHUP:
        # The terminal is gone: what is still printed must not fail with EIO.
        mute_output()
    task.cancel()


def mute_output() -> None:
    """Send what is printed from now on nowhere (the terminal hung up)."""
    with contextlib.suppress(OSError):
        devnull = Path(os.devnull).open("w")  # noqa: SIM115 (lives as long as the process)
        sys.stdout = devnull
        sys.stderr = devnull


# How bad a health verdict is, for keeping the worse of two.
_BADNESS = {Health.HEALTHY: 0, Health.UNKNOWN: 1, Health.DEGRADED: 2, Health.DOWN: 3}


def _worse(engine: RegionStatus, probed: RegionStatus) -> RegionStatus:
    """The engine's region, with the fresh probe's health when that is worse (or when
    the engine has no verdict yet)."""
    if probed.health is Health.UNKNOWN:
        return engine
    if engine.health is Health.UNKNOWN or _BADNESS[probed.health] > _BADNESS[engine.health]:
        return replace(engine, health=probed.health, checks=probed.checks)
    return engine
