"""Failover drills: inject one failure mode, follow its playbook, measure, fail back.

A drill is a real failover with a stopwatch. It injects the fault through
`[drills.hooks] inject` (or asks the operator to), waits for noc's own snapshot to
match the mode (detect), declares, performs the playbook's traffic move through the
same operations layer as any failover (plan, typed confirmation unless --yes,
re-plan, execute, verify), waits for every resolver and the target's health
(restore) and the mode's validation criteria (verify), then takes the fault away
and fails back. Every phase is an audit record (`drill_*`, with seconds since the
injection), and the report's figures are read back from those records, so the
report and the audit timeline cannot disagree.

Reports (JSON and Markdown) are kept in the state dir's drills/ folder; the
schedule rotates through the playbook's modes, one a quarter.

Free of Textual: see the import-linter contracts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from noc.audit import JsonlLog, read_jsonl
from noc.clock import Clock
from noc.config import NocConfig
from noc.drill_schedule import drills_dir
from noc.failover import secret_variables
from noc.model import ActionKind, ActionPlan, EstateSnapshot
from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO, Outcome
from noc.playbook import Context, Mode, Playbook, Step, judge, matching_modes, unmet
from noc.scheduler import Scheduler
from noc_collectors.hooks import run_hook

# The traffic moves a drill performs itself, through the operations layer.
_MOVES = {"failover": ActionKind.FAILOVER, "switchover": ActionKind.SWITCHOVER}
# Every figure of the report, in the order of the drill.
PHASES = ("detect", "declare", "route", "restore", "verify")


class DrillError(Exception):
    """A drill that cannot start (unknown mode or region, no target)."""


@dataclass
class DrillIO:
    """How a drill talks to the operator."""

    say: Callable[[str], None]
    # One typed line (None: end of input): the operator injects by hand, or says a
    # manual step is done.
    ask: Callable[[str], Awaitable[str | None]]
    confirm: Callable[[ActionPlan], Awaitable[Confirmation | None]]


@dataclass(frozen=True)
class DrillRequest:
    mode: str
    region: str
    reason: str
    operator: Mapping[str, str]
    target: str | None = None  # None: the first healthy region other than `region`
    yes: bool = False  # no typed confirmation, no questions


@dataclass
class StepRecord:
    phase: str  # "response" or "rollback"
    step: Step
    done_at: float | None = None  # seconds since the injection
    how: str | None = None  # "observed", "performed", "declared", "operator"

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "id": self.step.id,
            "text": self.step.text,
            "action": self.step.action,
            "key": self.step.key,
            "observe": self.step.observe,
            "done_at": self.done_at,
            "how": self.how,
        }


@dataclass
class _Run:
    drill_id: str
    mode: Mode
    ctx: Context
    t0: float  # monotonic at the injection
    steps: list[StepRecord]
    deviations: list[str] = field(default_factory=list)
    # The phases being observed ("response" from the injection, "rollback" later).
    observing: set[str] = field(default_factory=set)
    performed: set[str] = field(default_factory=set)  # step ids the drill performed


def pick_target(snapshot: EstateSnapshot, region: str) -> str | None:
    """The region to move traffic to: the first healthy region other than `region`,
    secondaries in configured order."""
    from noc.model import Health

    return next(
        (r.id for r in snapshot.regions if r.id != region and r.health is Health.HEALTHY), None
    )


class Drill:
    """One drill run against a live estate; `run()` returns the report."""

    def __init__(
        self,
        config: NocConfig,
        playbook: Playbook,
        scheduler: Scheduler,
        audit: JsonlLog,
        clock: Clock,
        state_dir: Path,
        io: DrillIO,
    ) -> None:
        self.config = config
        self.playbook = playbook
        self.scheduler = scheduler
        self.audit = audit
        self.clock = clock
        self.state_dir = state_dir
        self.io = io
        self.ops = Operations(config, scheduler, audit, clock)
        self._poll = config.drills.poll_seconds

    # --- time and record ---

    def _seconds(self, run: _Run) -> float:
        return round(self.clock.monotonic() - run.t0, 3)

    async def _record(self, run: _Run, event: str, **fields: Any) -> dict[str, Any]:
        return await self.audit.aappend(event, drill_id=run.drill_id, **fields)

    # --- the estate, observed ---

    def _observe(self, run: _Run, snapshot: EstateSnapshot) -> None:
        """Tick every step of an observed phase whose predicate holds now."""
        now = self._seconds(run)
        # The moves of each phase not yet performed: a step after one of them in the
        # playbook judges the state the move makes (the target healthy as the active
        # region), so it ticks only once the move was performed; the move itself
        # too, or a flag already on the target would tick it.
        pending: set[str] = set()
        for record in run.steps:
            step = record.step
            if step.action in (*_MOVES, "failback") and step.id not in run.performed:
                pending.add(record.phase)
                blocked = True
            else:
                blocked = record.phase in pending
            if record.done_at is not None or record.phase not in run.observing:
                continue
            if step.observe is None or blocked:
                continue
            if judge(snapshot, step.observe, run.ctx):
                record.done_at, record.how = now, "observed"

    async def _observer(self, run: _Run) -> None:
        while True:
            self._observe(run, self.scheduler.snapshot())
            await asyncio.sleep(self._poll)

    async def _until(
        self, run: _Run, holds: Callable[[EstateSnapshot], bool], within: float
    ) -> float | None:
        """Seconds since the injection when `holds` first held; None on timeout."""
        deadline = self.clock.monotonic() + within
        while True:
            snapshot = self.scheduler.snapshot()
            if holds(snapshot):
                self._observe(run, snapshot)
                return self._seconds(run)
            if self.clock.monotonic() >= deadline:
                return None
            await asyncio.sleep(self._poll)

    # --- hooks ---

    async def _hook(self, run: _Run, which: str, command: str | None) -> bool:
        verb = "inject" if which == "inject" else "take away"
        if command is None:
            if self._yes:
                self.io.say(f"no [drills.hooks] {which}: {verb} the fault by hand now")
                return True
            answer = await self.io.ask(
                f"{verb.capitalize()} the {run.mode.id} fault in {run.ctx.region} by hand, "
                "then press Enter (type 'abort' to stop): "
            )
            return answer is not None and answer.strip().lower() != "abort"
        env = {
            "NOC_DRILL_MODE": run.mode.id,
            "NOC_DRILL_REGION": run.ctx.region,
            "NOC_DRILL_ID": run.drill_id,
        }
        outcome = await run_hook(
            command,
            env,
            self.config.drills.hooks.timeout_seconds,
            withheld=secret_variables(self.config),
        )
        await self._record(run, f"drill_{which}_hook", ok=outcome.ok, detail=outcome.describe())
        if not outcome.ok:
            run.deviations.append(f"{which} hook failed: {outcome.describe()}")
        return outcome.ok

    # --- the drill ---

    _yes = False

    async def run(self, request: DrillRequest) -> dict[str, Any]:
        self._yes = request.yes
        mode = self.playbook.mode(request.mode)
        if self.config.region(request.region) is None:
            known = ", ".join(r.id for r in self.config.regions)
            raise DrillError(f"no region {request.region!r} (regions: {known})")
        started = self.clock.utcnow()
        drill_id = f"drill-{started:%Y%m%dT%H%M%S}Z-{mode.id}-{request.region}"
        self.scheduler.start()
        try:
            return await self._run(request, mode, drill_id, started)
        finally:
            await self.scheduler.stop()

    async def _baseline(self, request: DrillRequest) -> EstateSnapshot:
        """Wait until every region has a verdict: a drill measured from an estate
        noc has not seen yet measures noc's start, not the failure."""
        from noc.model import Health

        deadline = self.clock.monotonic() + self.config.drills.detect_timeout_seconds
        while True:
            snapshot = self.scheduler.snapshot()
            known = all(r.health is not Health.UNKNOWN for r in snapshot.regions) and all(
                link.last is not None and link.last.lag_seconds is not None
                for link in snapshot.replication
            )
            if known or self.clock.monotonic() >= deadline:
                return snapshot
            await asyncio.sleep(self._poll)

    async def _run(
        self, request: DrillRequest, mode: Mode, drill_id: str, started: datetime
    ) -> dict[str, Any]:
        snapshot = await self._baseline(request)
        target = request.target or pick_target(snapshot, request.region)
        moves = mode.step_with_action(_MOVES)
        if moves is not None and target is None:
            raise DrillError(f"no healthy region to move {request.region}'s traffic to")
        declared = frozenset({mode.id}) if mode.detect == ("declared",) else frozenset()
        steps = [StepRecord("response", s) for s in mode.steps]
        steps += [StepRecord("rollback", s) for s in mode.rollback]
        run = _Run(
            drill_id, mode, Context(request.region, target, frozenset(), mode.id), 0.0, steps
        )
        await self.audit.aappend(
            "drill_started",
            drill_id=drill_id,
            mode=mode.id,
            region=request.region,
            target=target,
            reason=request.reason,
            **request.operator,
        )
        self.io.say(f"drill {drill_id}: {mode.title} in {request.region}")
        # Provisional until the injection is in place: an interrupt during the hook
        # is measured from its start.
        run.t0 = self.clock.monotonic()
        observer: asyncio.Task[None] | None = None
        try:
            if not await self._hook(run, "inject", self.config.drills.hooks.inject):
                run.deviations.append("the fault was not injected: the drill stopped")
                return await self._finish(run, request, started, None)
            run.t0 = self.clock.monotonic()
            await self._record(run, "drill_injected", seconds=0.0)
            run.observing.add("response")
            observer = asyncio.create_task(self._observer(run))
            await self._respond(run, request, declared, moves)
            await self._roll_back(run, request)
        except asyncio.CancelledError:
            # Interrupted (Ctrl-C, SIGTERM), even while the inject hook ran (it is
            # killed; the fault may be half in place): a drill must not leave its
            # fault behind. The operations layer has already finished or undone any
            # change under way; the fault is taken away, shielded from a second
            # interrupt, and traffic stays where it is for the operator to fail back.
            await asyncio.shield(self._abandon(run))
            raise
        finally:
            if observer is not None:
                observer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await observer
        self._observe(run, self.scheduler.snapshot())
        return await self._finish(run, request, started, target)

    async def _respond(
        self, run: _Run, request: DrillRequest, declared: frozenset[str], moves: Step | None
    ) -> None:
        limits = self.config.drills
        mode, region = run.mode, run.ctx.region
        if declared:
            # Nothing noc can see: the operator's declaration is the detection.
            run.ctx = Context(region, run.ctx.target, declared, mode.id)
        detected = await self._until(
            run,
            lambda s: any(
                m.mode == mode.id and m.region == region
                for m in matching_modes(s, self.playbook, run.ctx.declared)
            ),
            limits.detect_timeout_seconds,
        )
        if detected is None:
            run.deviations.append(
                f"not detected within {limits.detect_timeout_seconds:g} s: "
                f"signals {', '.join(mode.detect)} never all held for {region}"
            )
            return
        await self._record(run, "drill_detected", seconds=detected)
        self.io.say(f"detected after {detected:.1f} s")
        if not request.yes:
            # Declaring is the operator's act: the drill measures how long it takes.
            await self.io.ask(f"{mode.title} in {region} detected: press Enter to declare ")
        declare = self._seconds(run)
        await self._record(run, "drill_declared", seconds=declare)
        for record in run.steps:
            if record.step.id == "declare" and record.phase == "response":
                record.done_at, record.how = declare, "declared"
        if moves is not None and not await self._route(run, request, moves):
            return
        verified = await self._until(
            run,
            lambda s: not unmet(s, mode.validate, run.ctx),
            limits.settle_timeout_seconds,
        )
        if verified is None:
            failing = unmet(self.scheduler.snapshot(), mode.validate, run.ctx)
            run.deviations.append(f"validation did not pass: {', '.join(failing)}")
            return
        await self._record(run, "drill_verified", seconds=verified)
        self.io.say(f"verified after {verified:.1f} s")

    async def _route(self, run: _Run, request: DrillRequest, moves: Step) -> bool:
        target = run.ctx.target
        assert target is not None
        kind = _MOVES[moves.action or "failover"]
        outcome = await self._move(run, request, kind, target)
        run.performed.add(moves.id)
        if outcome.stage != "verified" or outcome.result is None:
            run.deviations.append(f"{kind.value} to {target}: {outcome.message}")
            return False
        confirmed = round(outcome.confirmed_at - run.t0, 3)
        executed = (
            next(
                (
                    r
                    for r in reversed(read_jsonl(self.audit.path).records)
                    if r.get("event") == "executed" and r.get("action_id") == outcome.plan.action_id
                ),
                None,
            )
            if outcome.plan is not None
            else None
        )
        since_confirm = float((executed or {}).get("seconds_since_confirm") or 0.0)
        route = round(confirmed + since_confirm, 3)
        risks = outcome.plan.blast.data_at_risk if outcome.plan is not None else ()
        await self._record(
            run,
            "drill_routed",
            seconds=route,
            confirmed_s=confirmed,
            action_id=outcome.plan.action_id if outcome.plan else None,
            data_at_risk={r.data_class: r.lag_seconds for r in risks},
        )
        self.io.say(f"routed after {route:.1f} s")
        # Restore: every resolver serves the target and the target is healthy, as
        # the snapshot says (DNS is polled again now rather than at its next slot).
        self.scheduler.poll_now("dns")
        restored = await self._until(
            run,
            lambda s: judge(s, "dns_on_target", run.ctx) and judge(s, "target_healthy", run.ctx),
            self.config.drills.settle_timeout_seconds,
        )
        if restored is None:
            run.deviations.append("restore not reached: resolvers or the target's health")
            return False
        await self._record(run, "drill_restored", seconds=restored)
        return True

    async def _move(
        self, run: _Run, request: DrillRequest, kind: ActionKind, target: str
    ) -> Outcome:
        reason = f"drill {run.drill_id}: {request.reason}"
        action = ActionRequest(kind, target, request.operator, via="cli", reason=reason)
        io = OperatorIO(confirm=self.io.confirm, say=self.io.say)
        return await self.ops.run_action(action, io)

    async def _roll_back(self, run: _Run, request: DrillRequest) -> None:
        limits = self.config.drills
        await self._hook(run, "restore", self.config.drills.hooks.restore)
        await self._record(run, "drill_fault_restored", seconds=self._seconds(run))
        run.observing.add("rollback")
        moved = any(r.step.action in _MOVES and r.step.id in run.performed for r in run.steps)
        if not moved:
            return  # nothing moved: nothing to fail back
        back = await self._until(
            run, lambda s: judge(s, "region_healthy", run.ctx), limits.settle_timeout_seconds
        )
        if back is None:
            run.deviations.append(f"{run.ctx.region} not healthy again: no failback")
            return
        failback = next((r for r in run.steps if r.step.action == "failback"), None)
        await self._ack_cooldown(run, request.operator)
        outcome = await self._move(run, request, ActionKind.FAILBACK, run.ctx.region)
        if failback is not None:
            run.performed.add(failback.step.id)
        await self._record(
            run, "drill_failback", seconds=self._seconds(run), stage=outcome.stage,
            message=outcome.message,
        )  # fmt: skip
        if outcome.stage != "verified":
            run.deviations.append(f"failback to {run.ctx.region}: {outcome.message}")
            return
        self.scheduler.poll_now("dns")
        await self._until(
            run,
            lambda s: all(
                r.done_at is not None for r in run.steps if r.phase == "rollback" and r.step.observe
            ),
            limits.settle_timeout_seconds,
        )

    async def _abandon(self, run: _Run) -> None:
        restore = self.config.drills.hooks.restore
        if restore is not None:
            await self._hook(run, "restore", restore)
        await self._record(
            run, "drill_interrupted", seconds=self._seconds(run),
            fault_restored=restore is not None,
            active=self.scheduler.snapshot().active_region,
        )  # fmt: skip
        if restore is None:
            self.io.say(f"drill interrupted: take the {run.mode.id} fault in {run.ctx.region} away")

    async def _ack_cooldown(self, run: _Run, operator: Mapping[str, str]) -> None:
        """A drill fails back on purpose minutes after it failed over: the anti-flap
        cooldown is cleared as a recorded act that names the drill."""

        async def note(_: str) -> str:
            return f"drill {run.drill_id}: failback at the end of the drill"

        outcome = await self.ops.ack_cooldown(operator, note)
        if outcome.stage not in ("done", "nothing"):
            run.deviations.append(f"cooldown ack: {outcome.message}")

    async def _finish(
        self, run: _Run, request: DrillRequest, started: datetime, target: str | None
    ) -> dict[str, Any]:
        if not request.yes:
            await self._ask_manual(run)
        for record in run.steps:
            if record.done_at is None:
                run.deviations.append(f"step not done: {record.phase} {record.step.id}")
        report = report_from_audit(
            self.audit.path, run.drill_id, self.config, [s.as_json() for s in run.steps],
            run.deviations,
        )  # fmt: skip
        ended = await self._record(
            run, "drill_ended", seconds=self._seconds(run), met=report["met"],
            rto_s=report["rto_s"],
        )  # fmt: skip
        report["ended_at"] = ended["ts"]
        # What `noc incident list` shows beside incidents (id, kind, started_at, ended_at).
        report["title"] = f"Drill: {run.mode.title} in {run.ctx.region}"
        report["timeline"].append(
            {"event": "drill_ended", "ts": ended["ts"], "seconds": ended["seconds"]}
        )
        write_report(self.state_dir, report, self.config.drills.history_kept)
        return report

    async def _ask_manual(self, run: _Run) -> None:
        for record in run.steps:
            step = record.step
            if record.done_at is not None or step.observe is not None or step.action in _MOVES:
                continue
            answer = await self.io.ask(f"Done: {step.text}? [y/N] ")
            if answer is not None and answer.strip().lower() in ("y", "yes"):
                record.done_at, record.how = self._seconds(run), "operator"


def report_from_audit(
    audit_path: Path,
    drill_id: str,
    config: NocConfig,
    steps: Sequence[Mapping[str, Any]],
    deviations: Sequence[str],
) -> dict[str, Any]:
    """The drill's figures, read back from its audit records."""
    records = [r for r in read_jsonl(audit_path).records if r.get("drill_id") == drill_id]
    by_event = {r["event"]: r for r in records}
    start = by_event.get("drill_started", {})

    def seconds(event: str) -> float | None:
        value = by_event.get(event, {}).get("seconds")
        return None if value is None else float(value)

    figures = {
        "detect_s": seconds("drill_detected"),
        "declare_s": seconds("drill_declared"),
        "route_s": seconds("drill_routed"),
        "restore_s": seconds("drill_restored"),
        "verify_s": seconds("drill_verified"),
    }
    # Users trust the service again when validation passes, not when DNS moved.
    rto = figures["verify_s"]
    risks = by_event.get("drill_routed", {}).get("data_at_risk", {})
    known = [float(v) for v in risks.values() if v is not None]
    rpo: float | None = max(known, default=0.0) if len(known) == len(risks) else None
    rto_target = config.estate.rto_seconds
    rpo_target = config.estate.rpo_seconds
    all_deviations = list(deviations)
    if rto is not None and rto > rto_target:
        all_deviations.append(f"RTO {rto:.1f} s over the {rto_target:g} s target")
    if rpo is None and risks:
        all_deviations.append("RPO unknown: the lag of a data class was unknown at failover")
    elif rpo is not None and rpo > rpo_target:
        all_deviations.append(f"RPO {rpo:.1f} s over the {rpo_target:g} s target")
    met = (
        rto is not None
        and rto <= rto_target
        and rpo is not None
        and rpo <= rpo_target
        and not deviations
    )
    return {
        "id": drill_id,
        "kind": "drill",
        "mode": start.get("mode"),
        "region": start.get("region"),
        "target": start.get("target"),
        "reason": start.get("reason"),
        "operator": start.get("operator"),
        "started_at": start.get("ts"),
        **figures,
        "rto_s": rto,
        "rto_target_s": rto_target,
        "rpo_s": rpo,
        "rpo_target_s": rpo_target,
        "data_at_risk": risks,
        "met": met,
        "steps": list(steps),
        "deviations": all_deviations,
        "timeline": [
            {"event": r["event"], "ts": r["ts"], "seconds": r.get("seconds")} for r in records
        ],
    }


def report_markdown(report: Mapping[str, Any]) -> str:
    def figure(value: Any) -> str:
        return "-" if value is None else f"{value:.1f} s"

    lines = [
        f"# Drill {report['id']}",
        "",
        f"- Mode: {report['mode']} ({report['region']} -> {report.get('target') or '-'})",
        f"- Started: {report['started_at']}; reason: {report.get('reason') or '-'}",
        f"- Met: {'yes' if report['met'] else 'NO'}",
        "",
        "| phase | seconds after the fault |",
        "|---|---|",
        *(f"| {p} | {figure(report[f'{p}_s'])} |" for p in PHASES),
        "",
        f"RTO {figure(report['rto_s'])} (target {report['rto_target_s']:g} s); "
        f"RPO {figure(report['rpo_s'])} (target {report['rpo_target_s']:g} s)",
        "",
        "## Steps",
        "",
    ]
    for step in report["steps"]:
        done = "not done" if step["done_at"] is None else f"{step['done_at']:.1f} s ({step['how']})"
        action = f" [{step['action']}]" if step["action"] else ""
        lines.append(f"- {step['phase']} {step['id']}{action}: {step['text']}: {done}")
    lines += ["", "## Deviations", ""]
    lines += [f"- {d}" for d in report["deviations"]] or ["- none"]
    lines += ["", "## Timeline", ""]
    lines += [f"- {t['ts']} {t['event']}" for t in report["timeline"]]
    return "\n".join(lines) + "\n"


def write_report(state_dir: Path, report: Mapping[str, Any], kept: int) -> Path:
    """JSON and Markdown beside each other; the oldest beyond `kept` removed."""
    folder = drills_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report['id']}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(report, indent=2, default=str) + "\n")
    partial.replace(path)
    path.with_suffix(".md").write_text(report_markdown(report))
    for old in sorted(folder.glob("*.json"))[:-kept]:
        old.unlink(missing_ok=True)
        old.with_suffix(".md").unlink(missing_ok=True)
    return path
