"""Actions that move traffic, under the STOP pattern: gather, plan, execute, verify, audit.

- `gather_facts()` asks the actuators what the plan needs (the RRsets as the
  authoritative server holds them, whether it accepts noc's TSIG key, who holds
  the lock), so that `plan_action()` stays pure: the dialog, `--dry-run` and the
  real run show the same plan, safety rules and blast radius.
- `execute()` takes the cross-process lock on a majority of stores, runs the pre
  hook, then each actuator in order. All or nothing: when one fails, the ones
  before it are rolled back, so the flag and DNS are never left disagreeing
  because of noc. The flag counts as applied when verified on every store that
  could be written and on a majority of them: failing away from a dead region
  whose store is dead too is the normal case, not an error.
- `verify()` reads the authoritative server and every resolver until all serve
  the new answers or the TTL has run out, records the timeline (confirmed,
  executed, first resolver moved, all moved: the measured RTO of the change),
  then runs the post hook.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from noc.audit import JsonlLog
from noc.clock import Clock, iso_utc
from noc.config import NocConfig
from noc.model import (
    ActionKind,
    ActionPlan,
    ActionResult,
    ActuatorFacts,
    ActuatorStep,
    CanarySample,
    EstateSnapshot,
    FailoverFlag,
    FailoverRecord,
    FailoverRecordType,
    Health,
    LockHolder,
    Preflight,
    PropagationProgress,
    RecordChange,
    Role,
    StoreOutcome,
    StorePlan,
    StoreResult,
    Topology,
)
from noc.safety import (
    actuator_checks,
    current_flag,
    record_changes,
    remaining_regions_rule,
    safety_rules,
    target_health_rule,
)
from noc_collectors.dns_records import ResolverAddress, parse_resolver, split_host_port
from noc_collectors.dns_update import OUTCOME_UNKNOWN, PREREQUISITE_FAILED, DnsUpdater
from noc_collectors.flag_store import FlagStore
from noc_collectors.hooks import HookOutcome, run_hook

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Actuators:
    """The I/O of an action: flag stores, the DNS updater, the resolvers to watch."""

    config: NocConfig
    stores: Mapping[str, FlagStore]
    _dns: DnsUpdater | None = field(default=None, init=False)

    async def dns(self) -> tuple[DnsUpdater | None, str | None]:
        """The updater, created once its server's name resolves; or why there is none."""
        settings = self.config.failover.dns
        if settings is None:
            return None, "no [failover.dns] configured"
        if self._dns is None:
            host, port = split_host_port(settings.server)
            try:
                async with asyncio.timeout(settings.timeout_seconds):
                    infos = await asyncio.get_running_loop().getaddrinfo(
                        host, port, type=socket.SOCK_DGRAM
                    )
            except (OSError, TimeoutError) as exc:
                return None, f"cannot resolve the DNS server {host}: {exc or 'timeout'}"
            address = str(infos[0][4][0])
            try:
                self._dns = DnsUpdater(
                    ResolverAddress(address, port),
                    settings.zone,
                    settings.key_name,
                    settings.key_secret.get_secret_value(),
                    settings.algorithm,
                    settings.timeout_seconds,
                )
            except ValueError as exc:
                return None, f"[failover.dns]: {exc}"
        return self._dns, None

    def resolvers(self) -> tuple[ResolverAddress, ...]:
        return tuple(parse_resolver(text) for text in self.config.dns.resolvers)


async def gather_facts(config: NocConfig, actuators: Actuators, kind: ActionKind) -> ActuatorFacts:
    """What the actuators say now; never raises (a failure becomes a fact)."""
    rrsets: tuple[Any, ...] = ()
    key_error: str | None = None
    if "dns" in action_chain(config, kind):
        updater, key_error = await actuators.dns()
        if updater is not None:
            records = [r.record() for r in config.dns.records]
            key_error, rrsets = await asyncio.gather(updater.probe(), updater.read(records))
    holder, lock_error = await _read_lock(config, actuators.stores)
    return ActuatorFacts(
        rrsets=rrsets,
        dns_key_error=key_error,
        lock_holder=holder,
        lock_stale=holder is not None and holder_is_dead(holder),
        lock_error=lock_error,
    )


def holder_is_dead(holder: LockHolder) -> bool:
    """A lock left by a process of this machine that no longer runs (killed, crashed).

    Only the same kernel boot and PID namespace can tell (containers may share a
    host name and reuse pids); any other holder keeps the lock until its expiry.
    """
    if not holder.pid or not holder.node or holder.node != this_node():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def this_node() -> str:
    """This kernel boot and PID namespace: where a pid means one process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        return ""  # no way to tell: never take a lock over
    return f"{boot[:8]}-{namespace}"


async def _read_lock(
    config: NocConfig, stores: Mapping[str, FlagStore]
) -> tuple[LockHolder | None, str | None]:
    if not stores:
        return None, None
    reads = await asyncio.gather(*(s.read_lock(config.failover.lock_key) for s in stores.values()))
    holders = [h for h, _ in reads if h is not None]
    failed = [r for r, (_, e) in zip(stores, reads, strict=True) if e is not None]
    if holders:
        return holders[0], None
    if len(failed) > len(stores) / 2:
        return None, f"lock unreadable on {len(failed)}/{len(stores)} stores ({', '.join(failed)})"
    return None, None


def action_chain(config: NocConfig, kind: ActionKind) -> tuple[str, ...]:
    chain = config.failover.chain
    return chain if kind.moves_flag else tuple(a for a in chain if a != "flag")


def plan_action(
    snapshot: EstateSnapshot,
    config: NocConfig,
    kind: ActionKind,
    target: str,
    operator: Mapping[str, str],
    facts: ActuatorFacts | None = None,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> ActionPlan:
    facts = facts or ActuatorFacts()
    region = snapshot.region(target)
    source = snapshot.active_region
    chain = action_chain(config, kind)
    with_store = {r.id for r in config.regions if r.redis_url}
    stores = tuple(
        StorePlan(r.id, r.store.reachable, r.store.error)
        for r in snapshot.regions
        if r.id in with_store and "flag" in chain
    )
    checks: list[Preflight] = []
    if region is None:
        known = ", ".join(r.id for r in snapshot.regions)
        checks.append(Preflight("target exists", False, f"no region {target!r} (known: {known})"))
        return _plan(kind, source, target, Health.UNKNOWN, operator, force, checks, stores, chain)

    checks.append(_direction(config, snapshot, kind, target))
    if kind.moves_flag:
        checks.append(_active_known(source, target, snapshot))
    if kind is ActionKind.SWITCHOVER:
        checks.append(_source_healthy(snapshot, source))
    checks.append(target_health_rule(region.health, target, kind))
    checks.append(
        Preflight(
            "noc can see the estate",
            not snapshot.cut_off,
            "noc cannot reach anything: health verdicts are last known, not current"
            if snapshot.cut_off
            else "checks are answering",
            forceable=True,
        )
    )
    if "flag" in chain:
        checks += _store_checks(snapshot, stores)
    checks += actuator_checks(config, chain, facts)
    changes: tuple[Any, ...] = ()
    if "dns" in chain:
        changes, problems = record_changes(config, snapshot, kind, target, facts.rrsets)
        checks += problems
        if kind is ActionKind.DRAIN and changes:
            checks.append(remaining_regions_rule(config, snapshot, changes))
    rules, blast = safety_rules(snapshot, config, kind, target, facts, now or snapshot.generated_at)
    checks += rules
    plan = _plan(kind, source, target, region.health, operator, force, checks, stores, chain)
    return replace(
        plan,
        blast=replace(blast, changes=changes),
        previous_flag=current_flag(snapshot),
        store_flags={
            r.id: r.store.flag.action_id if r.store.flag else ""
            for r in snapshot.regions
            if r.store.reachable
        },
    )


def _direction(
    config: NocConfig, snapshot: EstateSnapshot, kind: ActionKind, target: str
) -> Preflight:
    region = snapshot.region(target)
    assert region is not None
    primary = config.primary.id
    source = snapshot.active_region
    if kind in (ActionKind.DRAIN, ActionKind.RESTORE):
        if config.estate.topology is not Topology.ACTIVE_ACTIVE:
            return Preflight(
                "direction", False, f"{kind.value} is for active-active estates; use failover"
            )
        if "dns" not in config.failover.chain:
            return Preflight(
                "direction", False, f"{kind.value} moves DNS: configure [failover.dns]"
            )
        return Preflight("direction", True, f"{kind.value} {target} in the failover records")
    if kind is ActionKind.FAILOVER and region.role is Role.PRIMARY and source != target:
        return Preflight(
            "direction",
            False,
            f"{target} is the primary: returning to it is a failback (noc failback --to {target})",
        )
    if kind is ActionKind.FAILBACK and target != primary:
        return Preflight(
            "direction", False, f"failback returns to the primary ({primary}), not {target}"
        )
    return Preflight("direction", True, f"{kind.value} to {target}")


def _source_healthy(snapshot: EstateSnapshot, source: str | None) -> Preflight:
    status = snapshot.region(source) if source else None
    health = status.health if status else Health.UNKNOWN
    return Preflight(
        "source healthy",
        health is Health.HEALTHY,
        f"{source or 'the active region'} is {health.value}: a switchover is planned; "
        "when the source is down, fail over instead",
    )


def _active_known(source: str | None, target: str, snapshot: EstateSnapshot) -> Preflight:
    if source is None:
        return Preflight(
            "active region known", False, "no store could be read: the flag is unknown"
        )
    if source == target:
        return Preflight("target not already active", False, f"{target} is already active")
    return Preflight("active region known", True, f"{source} ({snapshot.authority.source})")


def _store_checks(snapshot: EstateSnapshot, stores: tuple[StorePlan, ...]) -> list[Preflight]:
    reachable = [s.region_id for s in stores if s.reachable]
    unreachable = [s.region_id for s in stores if not s.reachable]
    majority = len(stores) // 2 + 1
    detail = f"{len(reachable)}/{len(stores)} stores reachable ({', '.join(reachable) or 'none'})"
    if unreachable:
        detail += f"; unreachable: {', '.join(unreachable)}"
    checks = [Preflight("flag stores", len(reachable) >= majority, detail)]
    if snapshot.authority.split:
        others = ", ".join(f"{s} says {a}" for s, a in snapshot.authority.disagreeing)
        checks.append(
            Preflight(
                "stores agree", False, f"split: {others}; this write realigns them", blocking=False
            )
        )
    return checks


def _plan(
    kind: ActionKind,
    source: str | None,
    target: str,
    health: Health,
    operator: Mapping[str, str],
    force: bool,
    checks: list[Preflight],
    stores: tuple[StorePlan, ...],
    chain: tuple[str, ...],
) -> ActionPlan:
    return ActionPlan(
        action_id=uuid.uuid4().hex[:12],
        kind=kind,
        source=source,
        target=target,
        target_health=health,
        operator=dict(operator),
        forced=force,
        checks=tuple(checks),
        stores=stores,
        actuators=chain,
    )


def reconfirm(confirmed: ActionPlan, fresh: ActionPlan) -> tuple[ActionPlan, str | None]:
    """The fresh plan to execute under the confirmed plan's id, or why it may not run.

    What the operator confirmed must still be what happens: the same move from the
    same flag, and a break-glass override bypasses only the rules they were shown.
    """
    plan = replace(fresh, action_id=confirmed.action_id)
    before = confirmed.previous_flag.action_id if confirmed.previous_flag else ""
    now = fresh.previous_flag.action_id if fresh.previous_flag else ""
    if (fresh.source, now) != (confirmed.source, before):
        return plan, (
            f"the active region or its flag changed since you confirmed "
            f"({confirmed.source} -> {fresh.source}); plan again"
        )

    def moves(plan: ActionPlan) -> set[tuple[str, str, frozenset[str], frozenset[str]]]:
        return {
            (c.name, c.rtype.value, frozenset(c.old), frozenset(c.new))
            for c in plan.blast.changes
            if c.changed
        }

    if moves(fresh) != moves(confirmed):
        now = "; ".join(c.describe() for c in fresh.blast.changes if c.changed) or "none"
        return plan, (
            f"the DNS changes differ from those you confirmed (now: {now}): "
            "the records changed meanwhile; plan again"
        )
    shown = {c.name for c in confirmed.failed}
    unseen = {c.name for c in fresh.failed} - shown
    if unseen and plan.forced:
        plan = replace(
            plan,
            checks=tuple(
                replace(c, forceable=False) if c.name in unseen else c for c in plan.checks
            ),
        )
    return plan, plan.refusal


def plan_record(plan: ActionPlan, **extra: Any) -> dict[str, Any]:
    """The audit fields of one step of a planned action."""
    return {**plan.describe(), **plan.operator, **extra}


def secret_variables(config: NocConfig) -> set[str]:
    """Environment variables holding noc's secrets: never handed down to a hook."""
    named = {channel.secret_env for channel in config.notify}
    return named | {
        name for name in os.environ if name.startswith("NOC_") and "SECRET" in name.upper()
    }


def hook_environment(plan: ActionPlan, reason: str) -> dict[str, str]:
    """The plan as NOC_* variables, for pre, run, undo and post hooks."""
    return {
        "NOC_ACTION": plan.kind.value,
        "NOC_ACTION_ID": plan.action_id,
        "NOC_FROM": plan.source or "",
        "NOC_TO": plan.target,
        "NOC_REASON": reason,
        "NOC_OPERATOR": plan.operator.get("operator", ""),
        "NOC_FORCED": "1" if plan.forced else "0",
        "NOC_OVERRIDDEN": ",".join(plan.overridden),
    }


@dataclass
class _Run:
    """One execution in progress: what has been applied, for rollback and the audit."""

    plan: ActionPlan
    reason: str
    actuators: Actuators
    audit: JsonlLog
    clock: Clock
    confirmed_at: float
    flag: FailoverFlag | None = None
    store_results: list[StoreResult] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    dns_uncertain: bool = False  # an update whose answer was lost, not seen applied
    before_changes: Callable[[], None] | None = None
    holder: LockHolder | None = None
    audit_broken: bool = False  # a record failed to write: the rest are best effort

    async def renew_lock(self) -> None:
        """Push the lock's expiry back before each step: a slow hook or store must not
        let it lapse while this action still changes things."""
        if self.holder is None or not self.actuators.stores:
            return
        settings = self.actuators.config.failover
        await asyncio.gather(
            *(
                s.extend_lock(settings.lock_key, self.holder, settings.lock_ttl_seconds)
                for s in self.actuators.stores.values()
            )
        )

    # Per store, the action id its flag held when re-read under the lock.
    expected: dict[str, str] = field(default_factory=dict)
    steps: list[ActuatorStep] = field(default_factory=list)
    timeline: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, event: str) -> float:
        seconds = round(self.clock.monotonic() - self.confirmed_at, 3)
        self.timeline.append((event, seconds))
        return seconds

    def result(self, aborted: str | None = None) -> ActionResult:
        return ActionResult(
            self.plan,
            self.flag,
            tuple(self.store_results),
            tuple(self.steps),
            aborted,
            None,
            tuple(self.timeline),
        )

    async def record_best_effort(self, event: str, **fields: Any) -> None:
        """Once the audit failed, a rollback must still run: its records are tried."""
        try:
            await self.record(event, **fields)
        except OSError:
            if not self.audit_broken:
                raise
            log.exception("audit of %s", event)

    async def record(self, event: str, **fields: Any) -> None:
        plan = self.plan
        await self.audit.aappend(
            event,
            action_id=plan.action_id,
            action=plan.kind.value,
            **{"from": plan.source, "to": plan.target},
            **plan.operator,
            **fields,
        )


async def finish_despite_interrupts(
    work: Awaitable[T], on_interrupt: Callable[[], None] | None = None
) -> T:
    """Await `work` to its end even if the waiting task is cancelled meanwhile (Ctrl-C,
    a quitting app): writes that have begun finish, are read back or rolled back, and
    audited. Every step has its own timeout, so this wait is bounded. The interrupt
    is not forgotten: it is raised again at the caller's next await, so the caller
    can report the outcome first but goes no further (no DNS watch, no post hook)."""
    task = asyncio.ensure_future(work)
    current = asyncio.current_task()
    interrupted = 0
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done() or current is None:
                raise
            interrupted += current.uncancel() >= 0
            if on_interrupt is not None:
                on_interrupt()
            continue
        if interrupted and current is not None:
            current.cancel()
        return result


async def execute(
    plan: ActionPlan,
    reason: str,
    actuators: Actuators,
    audit: JsonlLog,
    clock: Clock,
    *,
    confirmed_at: float | None = None,
    before_changes: Callable[[], None] | None = None,
) -> ActionResult:
    """Apply the plan all or nothing. The caller has already audited planned/confirmed.
    `before_changes` is called once the lock is held and the pre hook has passed, just
    before the first actuator writes."""
    if not reason.strip():
        raise ValueError("a failover needs a reason")
    if not plan.allowed:
        raise ValueError(f"refused plan cannot be executed: {plan.refusal}")
    run = _Run(plan, reason.strip(), actuators, audit, clock, confirmed_at or clock.monotonic())
    run.before_changes = before_changes
    run.mark("confirmed")
    holder = LockHolder(
        plan.operator.get("operator", "?"),
        plan.action_id,
        iso_utc(clock.utcnow()),
        os.getpid(),
        this_node(),
    )
    run.holder = holder
    refusal = await _take_lock(run, holder)
    if refusal is not None:
        await run.record("refused", refusal=refusal)
        return run.result(aborted=refusal)
    try:
        moved = await _flag_moved_since_plan(run) if "flag" in plan.actuators else None
        if moved is not None:
            await run.record("refused", refusal=moved)
            return run.result(aborted=moved)
        return await _apply(run)
    finally:
        await _release_lock(run, holder)


async def _flag_moved_since_plan(run: _Run) -> str | None:
    """Under the lock, no store may hold a flag the plan did not know of: another
    operator's failover since then (or a snapshot a few seconds old) must not be
    overwritten, nor rolled back to a state that was already gone. A store that came
    back empty or with an old flag is no such change: the write realigns it."""
    stores = run.actuators.stores
    samples = await asyncio.gather(*(s.read() for s in stores.values()))
    previous = run.plan.previous_flag.action_id if run.plan.previous_flag else ""

    def unforeseen(region: str, action_id: str) -> bool:
        # What this store held at plan time, the flag being replaced, or nothing.
        return action_id not in {run.plan.store_flags.get(region, ""), previous, ""}

    new = [
        s
        for s in samples
        if s.reachable and s.flag and unforeseen(s.store_region, s.flag.action_id)
    ]
    run.expected = {
        s.store_region: (s.flag.action_id if s.flag else "") for s in samples if s.reachable
    }
    if not new:
        return None
    flag = new[0].flag
    assert flag is not None  # selected for having one
    return (
        f"the failover flag changed since the plan: {len(new)}/{len(stores)} stores now say "
        f"{flag.active} by {flag.operator or '?'} at {flag.at or '?'} (action {flag.action_id}); "
        "plan again"
    )


async def _apply(run: _Run) -> ActionResult:
    hooks = run.actuators.config.failover.hooks
    env = hook_environment(run.plan, run.reason)
    if hooks.pre:
        outcome = await run_hook(
            hooks.pre, env, hooks.timeout_seconds, withheld=secret_variables(run.actuators.config)
        )
        run.steps.append(ActuatorStep("pre hook", outcome.ok, outcome.describe()))
        if not outcome.ok:
            why = f"pre hook {hooks.pre} failed ({outcome.describe()})"
            await run.record("aborted", refusal=why, hook_output=outcome.output)
            return run.result(aborted=why)
    if run.before_changes is not None:
        run.before_changes()
    applied: list[str] = []
    run.flag = new_flag(run.plan, run.reason, run.clock)
    for actuator in run.plan.actuators:
        await run.renew_lock()
        # Recorded before the write: a kill between here and the result leaves a
        # record that `noc recover` reads to finish or undo this step.
        await run.record(
            "step_intent", actuator=actuator, **step_intent(run.plan, actuator, run.flag)
        )
        try:
            step = await _ACTUATORS[actuator](run, env)
        except Exception as exc:  # a bug of ours must still end in a rollback
            log.exception("failover actuator %s", actuator)
            step = ActuatorStep(actuator, False, f"internal error: {type(exc).__name__}: {exc}")
        try:
            await run.record("step_result", actuator=actuator, ok=step.ok, detail=step.detail)
        except OSError as exc:
            # The write happened but the record cannot say so (a full disk): a change
            # the record cannot show is not kept. Rolled back (its records best effort).
            log.exception("audit of %s's result", actuator)
            run.audit_broken = True
            if step.ok:
                step = ActuatorStep(
                    actuator, False, f"{step.detail}, but its result could not be audited ({exc})"
                )
        run.steps.append(step)
        if not step.ok:
            await run.renew_lock()
            rolled = await _roll_back(run, applied, env)
            why = f"{actuator} failed ({step.detail})"
            if applied:
                why += f"; rolled back: {', '.join(rolled)}"
            await run.record_best_effort(
                "rolled_back" if applied else "aborted",
                refusal=why,
                steps=[_step_json(s) for s in run.steps],
            )
            return run.result(aborted=why)
        applied.append(actuator)
    seconds = run.mark("executed")
    await run.record(
        "executed",
        before=_state(run.plan, "old"),
        after=_state(run.plan, "new") | ({"flag": run.flag.as_mapping()} if run.flag else {}),
        written=run.written,
        unreachable={
            s.region_id: s.detail
            for s in run.store_results
            if s.outcome is StoreOutcome.UNREACHABLE
        },
        steps=[_step_json(s) for s in run.steps],
        seconds_since_confirm=seconds,
    )
    return run.result()


def new_flag(plan: ActionPlan, reason: str, clock: Clock) -> FailoverFlag:
    """The flag an action writes to every store."""
    return FailoverFlag(
        active=plan.target,
        previous=plan.source,
        operator=plan.operator.get("operator", ""),
        reason=reason,
        at=iso_utc(clock.utcnow()),
        action_id=plan.action_id,
    )


def change_json(change: RecordChange) -> dict[str, Any]:
    """One RRset change as the record keeps it: enough to redo or undo it later."""
    return {
        "name": change.name,
        "rtype": change.rtype.value,
        "old": list(change.old),
        "new": list(change.new),
        "ttl": change.ttl,
    }


def change_from_json(raw: Mapping[str, Any]) -> RecordChange:
    return RecordChange(
        str(raw["name"]),
        FailoverRecordType(str(raw["rtype"])),
        tuple(str(v) for v in raw.get("old", ())),
        tuple(str(v) for v in raw.get("new", ())),
        int(raw.get("ttl", 0)),
    )


def recovery_facts(plan: ActionPlan) -> dict[str, Any]:
    """What the confirmed record carries so an interrupted action can be finished or
    undone from the record alone: the flag it replaces and every RRset change."""
    previous = plan.previous_flag
    return {
        "previous_flag": previous.as_mapping() if previous else None,
        "changes": [change_json(c) for c in plan.blast.changes if c.changed],
        "pid": os.getpid(),
        "node": this_node(),
    }


def step_intent(plan: ActionPlan, actuator: str, flag: FailoverFlag | None) -> dict[str, Any]:
    """The values an actuator is about to write, for the audit's intent record."""
    if actuator == "flag":
        previous = plan.previous_flag
        return {
            "flag": flag.as_mapping() if flag else None,
            "previous_flag": previous.as_mapping() if previous else None,
            "stores": [s.region_id for s in plan.stores],
        }
    if actuator == "dns":
        return {"changes": [change_json(c) for c in plan.blast.changes if c.changed]}
    return {}


async def _apply_flag(run: _Run, env: Mapping[str, str]) -> ActuatorStep:
    plan = run.plan
    stores = run.actuators.stores
    flag = run.flag or new_flag(plan, run.reason, run.clock)
    run.flag = flag
    regions = list(stores)
    planned = plan.previous_flag.action_id if plan.previous_flag else ""
    outcomes = await asyncio.gather(
        *(stores[r].replace_if(run.expected.get(r, planned), flag) for r in regions)
    )
    written = {r: (o.replaced, o.error) for r, o in zip(regions, outcomes, strict=True)}
    run.written = [r for r, o in zip(regions, outcomes, strict=True) if o.replaced]
    # A write that failed after it was sent may have landed: rolled back too.
    run.uncertain = [
        r for r, o in zip(regions, outcomes, strict=True) if o.error is not None and o.sent
    ]
    readbacks = await asyncio.gather(*(stores[r].read() for r in regions))
    for region_id, sample in zip(regions, readbacks, strict=True):
        done, error = written[region_id]
        if error is not None:
            run.store_results.append(StoreResult(region_id, StoreOutcome.UNREACHABLE, error))
        elif not done:
            seen = sample.flag.active if sample.flag else "no flag"
            run.store_results.append(
                StoreResult(region_id, StoreOutcome.CONFLICT, f"now says {seen}: not overwritten")
            )
        elif sample.flag is not None and sample.flag.action_id == plan.action_id:
            run.store_results.append(StoreResult(region_id, StoreOutcome.VERIFIED))
        else:
            seen = sample.error or (sample.flag.active if sample.flag else "no flag")
            run.store_results.append(
                StoreResult(region_id, StoreOutcome.WRITTEN, f"read back: {seen}")
            )
    verified = run.result().flag_verified
    detail = f"{len(run.result().verified)}/{len(stores)} stores verified"
    return ActuatorStep("flag", verified, detail)


def _dns_change_said(plan: ActionPlan, count: int) -> str:
    """What the signed update did, in the action's own terms."""
    if plan.kind is ActionKind.DRAIN:
        return f"{plan.target} taken out of {count} RRset(s) in one signed update"
    if plan.kind is ActionKind.RESTORE:
        return f"{plan.target} put back into {count} RRset(s) in one signed update"
    return f"{count} RRset(s) changed in one signed update"


async def _apply_dns(run: _Run, env: Mapping[str, str]) -> ActuatorStep:
    updater, error = await run.actuators.dns()
    changes = [c for c in run.plan.blast.changes if c.changed]
    if updater is None:
        return ActuatorStep("dns", False, error or "no DNS updater")
    if not changes:
        return ActuatorStep("dns", True, "records already as planned: nothing to change")
    error = await updater.replace(changes)
    if error is None:
        return ActuatorStep("dns", True, _dns_change_said(run.plan, len(changes)))
    if OUTCOME_UNKNOWN not in error:
        return ActuatorStep("dns", False, error)  # refused: nothing was applied
    # A timeout or a lost answer: the update is atomic, so the records say which.
    records = [FailoverRecord(c.name, c.rtype) for c in changes]
    now = await updater.read(records)
    if all(not r.error and set(r.values) == set(c.new) for r, c in zip(now, changes, strict=True)):
        return ActuatorStep("dns", True, f"applied (read back after: {error})")
    # Not confirmed, and a slow server may still apply it: the rollback sends the
    # reverse, which its prerequisites make a no-op if the update never lands.
    run.dns_uncertain = True
    return ActuatorStep("dns", False, error)


async def _apply_hook(run: _Run, env: Mapping[str, str]) -> ActuatorStep:
    hooks = run.actuators.config.failover.hooks
    assert hooks.run is not None  # the config refuses "hook" without it
    outcome = await run_hook(
        hooks.run, env, hooks.timeout_seconds, withheld=secret_variables(run.actuators.config)
    )
    return ActuatorStep("hook", outcome.ok, outcome.describe())


_ACTUATORS: dict[str, Callable[[_Run, Mapping[str, str]], Awaitable[ActuatorStep]]] = {
    "flag": _apply_flag,
    "dns": _apply_dns,
    "hook": _apply_hook,
}


async def _roll_back(run: _Run, applied: list[str], env: Mapping[str, str]) -> list[str]:
    """Undo what was applied, newest first; the failed actuator's own partial writes too."""
    rolled: list[str] = []
    failed = run.plan.actuators[len(applied)]
    for actuator in [failed, *reversed(applied)]:
        await run.record_best_effort("step_intent", actuator=actuator, rollback=True)
        outcome = await _undo(run, actuator, env)
        if outcome is None:
            await run.record_best_effort("step_result", actuator=actuator, rollback=True,
                                         ok=True, detail="nothing to undo")  # fmt: skip
            continue
        ok, detail = outcome
        await run.record_best_effort(
            "step_result", actuator=actuator, rollback=True, ok=ok, detail=detail
        )
        run.steps.append(ActuatorStep(actuator, ok, f"rollback: {detail}", rolled_back=True))
        rolled.append(actuator if ok else f"{actuator} (rollback FAILED: {detail})")
    return rolled


async def _undo(run: _Run, actuator: str, env: Mapping[str, str]) -> tuple[bool, str] | None:
    if actuator == "flag":
        if run.flag is None:
            return None
        # The stores written, and those whose write timed out (it may have landed);
        # not those that refused the connection. Only our own flag is replaced.
        stores = run.actuators.stores
        targets = [*run.written, *run.uncertain]
        previous = run.plan.previous_flag
        outcomes = await asyncio.gather(
            *(stores[r].replace_if(run.plan.action_id, previous) for r in targets)
        )
        restored = [r for r, o in zip(targets, outcomes, strict=True) if o.replaced]
        bad = {r: o.error for r, o in zip(targets, outcomes, strict=True) if o.error}
        name = previous.active if previous else "no flag"
        if not restored and not bad:
            return None
        if bad:
            return False, f"{name} not restored on " + ", ".join(
                f"{r} ({e})" for r, e in bad.items()
            )
        return True, f"{name} restored on {', '.join(restored)}"
    if actuator == "dns":
        applied = [s for s in run.steps if s.actuator == "dns" and s.ok and not s.rolled_back]
        updater, _ = await run.actuators.dns()
        if not (applied or run.dns_uncertain) or updater is None:
            return None
        changes = [c.reverse() for c in run.plan.blast.changes if c.changed]
        error = await updater.replace(changes)
        if error is not None and not applied and PREREQUISITE_FAILED in error:
            return True, "the update never landed: nothing to put back"
        return (error is None), error or f"{len(changes)} RRset(s) put back"
    hooks = run.actuators.config.failover.hooks
    if not hooks.undo:
        return False, "no [failover.hooks] undo configured: undo it by hand"
    outcome: HookOutcome = await run_hook(
        hooks.undo, env, hooks.timeout_seconds, withheld=secret_variables(run.actuators.config)
    )
    return outcome.ok, outcome.describe()


def _step_json(step: ActuatorStep) -> dict[str, Any]:
    return {
        "actuator": step.actuator,
        "ok": step.ok,
        "detail": step.detail,
        "rolled_back": step.rolled_back,
    }


async def _take_lock(run: _Run, holder: LockHolder) -> str | None:
    refusal, step = await take_lock(run.actuators, holder)
    if step is not None:
        run.steps.append(step)
    return refusal


async def take_lock(
    actuators: Actuators, holder: LockHolder
) -> tuple[str | None, ActuatorStep | None]:
    """(None when held on a majority of stores, else why not naming the other holder;
    the lock step to show). A lock left by a dead process of this host is taken over
    (and the step says so)."""
    stores = actuators.stores
    if not stores:
        return None, None
    config = actuators.config.failover
    taken_over: ActuatorStep | None = None
    for attempt in range(2):
        attempts = await asyncio.gather(
            *(s.try_lock(config.lock_key, holder, config.lock_ttl_seconds) for s in stores.values())
        )
        taken = [r for r, (ok, _, _) in zip(stores, attempts, strict=True) if ok]
        if len(taken) > len(stores) / 2:
            held = f"held on {len(taken)}/{len(stores)} stores"
            if taken_over is not None:
                held = f"{taken_over.detail}; {held}"
            return None, ActuatorStep("lock", True, held)
        await asyncio.gather(*(stores[r].unlock(config.lock_key, holder) for r in taken))
        others = [other for _, other, _ in attempts if other is not None]
        dead = [other for other in others if holder_is_dead(other)]
        if attempt == 0 and dead and len(dead) == len(others):
            # Compare-and-delete: only the dead holder's own value goes.
            await asyncio.gather(
                *(s.unlock(config.lock_key, d) for s in stores.values() for d in set(dead))
            )
            taken_over = ActuatorStep("lock", True, f"taken over from {dead[0].describe()}: dead")
            continue
        if others:
            return f"failover lock held by {others[0].describe()}", None
        errors = ", ".join(f"{r}: {e}" for r, (_, _, e) in zip(stores, attempts, strict=True) if e)
        return (
            f"failover lock not taken on a majority of stores ({errors or 'expired meanwhile'})",
            None,
        )
    return "failover lock not taken: a dead holder's lock came back", None


async def _release_lock(run: _Run, holder: LockHolder) -> None:
    await release_lock(run.actuators, holder)


async def release_lock(actuators: Actuators, holder: LockHolder) -> None:
    key = actuators.config.failover.lock_key
    await asyncio.gather(*(s.unlock(key, holder) for s in actuators.stores.values()))


async def verify(
    result: ActionResult,
    actuators: Actuators,
    audit: JsonlLog,
    clock: Clock,
    *,
    reason: str,
    confirmed_at: float,
    on_progress: Callable[[ActionResult], None] | None = None,
    canary: CanaryCheck | None = None,
) -> ActionResult:
    """Watch DNS move, record the timeline, run the post hook; the final result.

    With `canary` (an estate with [[canary]] seeds the target sends to), a canary goes
    through the new active region at once, beside the DNS watch, and its arrival is
    part of "verified": the timeline's `mail_flowing` is the RTO that ends when mail
    flows, not when DNS moved."""
    if result.aborted is not None:
        return result
    plan = result.plan
    run = _Run(plan, "", actuators, audit, clock, confirmed_at)
    run.timeline = list(result.timeline)
    mail: asyncio.Task[ActuatorStep] | None = None
    if canary is not None and plan.kind.moves_flag:
        mail = asyncio.create_task(_verify_mail_flow(run, canary))
    try:
        propagation = await _watch_dns(run, result, actuators, clock, on_progress)
        mail_step = await mail if mail is not None else None
    finally:
        if mail is not None and not mail.done():
            mail.cancel()
            await asyncio.wait({mail})
    steps = list(result.steps)
    if mail_step is not None:
        steps.append(mail_step)
    hooks = actuators.config.failover.hooks
    if hooks.post:
        # Once started, a post hook runs to its end even if this watch is stopped.
        outcome = await asyncio.shield(
            run_hook(
                hooks.post,
                hook_environment(plan, reason),
                hooks.timeout_seconds,
                withheld=secret_variables(actuators.config),
            )
        )
        steps.append(ActuatorStep("post hook", outcome.ok, outcome.describe()))
    final = replace(
        result, steps=tuple(steps), propagation=propagation, timeline=tuple(run.timeline)
    )
    await run.record(
        "verified" if final.success else "verify_failed",
        before=_state(plan, "old"),
        after=_state(plan, "new"),
        stores={s.region_id: s.outcome.value for s in final.stores},
        propagation=final.propagation_text,
        timeline=dict(final.timeline),
        summary=final.summary,
    )
    return final


async def _watch_dns(
    run: _Run,
    result: ActionResult,
    actuators: Actuators,
    clock: Clock,
    on_progress: Callable[[ActionResult], None] | None,
) -> PropagationProgress | None:
    """Read the authoritative server and every resolver until all serve the new
    answers or the TTL (and the grace) has passed; None when no record changes."""
    changes = [c for c in run.plan.blast.changes if c.changed]
    updater, _ = await actuators.dns() if changes else (None, None)
    if updater is None:
        return None
    resolvers = actuators.resolvers()
    servers = (updater.server, *resolvers)
    ttl = max((c.remaining_ttl or c.ttl for c in changes), default=0)
    deadline = ttl + actuators.config.failover.verify_grace_seconds
    authoritative = str(updater.server)
    # The authoritative server moves at once; clients follow their resolvers, so
    # the RTO is measured on those.
    marks: dict[str, Callable[[set[str]], bool]] = {
        "authoritative_moved": lambda moved: authoritative in moved,
        "first_resolver_moved": lambda moved: bool({str(r) for r in resolvers} & moved),
    }

    def progress(update: PropagationProgress) -> None:
        for event, reached in marks.items():
            if event not in dict(run.timeline) and reached(set(update.moved)):
                run.mark(event)
        if on_progress is not None:
            on_progress(replace(result, propagation=update, timeline=tuple(run.timeline)))

    propagation = await updater.watch(changes, servers, clock, deadline, on_progress=progress)
    run.mark("ttl_passed" if propagation.ttl_expired else "all_moved")
    return propagation


# Sends a canary through a region and awaits it in every seed mailbox it goes to:
# (all arrived, in words, the samples). noc_collectors.canary's verify_region.
CanaryCheck = Callable[[str], Awaitable[tuple[bool, str, list[CanarySample]]]]


async def _verify_mail_flow(run: _Run, canary: CanaryCheck) -> ActuatorStep:
    """A canary through the new active region, audited as a verification step; its
    arrival marks `mail_flowing` on the timeline."""
    region = run.plan.target
    await run.record("step_intent", actuator="canary", verify=True, region=region)
    try:
        ok, detail, samples = await canary(region)
    except Exception as exc:  # a broken canary proves no mail flow
        log.exception("canary verification through %s", region)
        ok, detail, samples = False, f"canary failed: {type(exc).__name__}: {exc}", []
    if ok:
        run.mark("mail_flowing")
    latency = max((s.latency_seconds or 0.0 for s in samples), default=None)
    await run.record(
        "step_result", actuator="canary", verify=True, region=region, ok=ok, detail=detail,
        latency_seconds=latency,
    )  # fmt: skip
    return ActuatorStep("canary", ok, f"through {region}: {detail}")


def _state(plan: ActionPlan, side: str) -> dict[str, Any]:
    """What an action changes, before ("old") or after ("new"): the active region when
    it moves the flag, and each record it rewrites."""
    state: dict[str, Any] = {}
    if plan.kind.moves_flag:
        state["active"] = plan.source if side == "old" else plan.target
    for change in plan.blast.changes:
        state[f"{change.name} {change.rtype.value}"] = list(getattr(change, side))
    return state


async def ack_cooldown(
    snapshot: EstateSnapshot,
    stores: Mapping[str, FlagStore],
    audit: JsonlLog,
    clock: Clock,
    operator: Mapping[str, str],
    note: str,
) -> tuple[bool, str]:
    """Clear the anti-flap cooldown of the last failover on every store: (cleared, what
    happened). Cleared means acked on a majority, so every reader sees it."""
    flag = current_flag(snapshot)
    if flag is None:
        return False, "no failover recorded: there is no cooldown to ack"
    ack = f"{operator.get('operator', '?')} at {iso_utc(clock.utcnow())}: {note}".strip()
    await audit.aappend(
        "cooldown_ack_intent", action_id=flag.action_id, note=note, stores=list(stores), **operator
    )
    outcomes = await asyncio.gather(*(s.ack_cooldown(flag.action_id, ack) for s in stores.values()))
    acked = [r for r, (ok, _) in zip(stores, outcomes, strict=True) if ok]
    await audit.aappend(
        "cooldown_ack", action_id=flag.action_id, note=note, acked=acked, **operator
    )
    if len(acked) > len(stores) / 2:
        return True, f"cooldown of {flag.action_id} cleared on {len(acked)}/{len(stores)} stores"
    return False, f"cooldown ack reached only {len(acked)}/{len(stores)} stores: try again"
