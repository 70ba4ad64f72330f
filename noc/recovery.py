"""Interrupted actions, found in the audit record and finished or undone.

Every actuator step of an action is recorded before it writes (`step_intent`, with
the values about to be written) and after (`step_result`). A process killed in
between leaves an action that was confirmed but never reached `executed`,
`aborted`, `rolled_back` or a later `recovered`: `interrupted_actions()` finds it
from the record alone, and `settle()` drives every actuator of that action to one
side, the plan's target ("complete") or the state before it ("roll_back").

Settling works from the state of the world, not from how far the record got: each
store and RRset is read, and only what is not yet on the chosen side is written,
compare-and-set, so settling twice (or after a kill while settling) is harmless,
and a value someone else wrote meanwhile is never overwritten.

`flag_disagreement()`/`reassert_flag()` clear a split that no action left: a store
that came back empty, or holding an older flag, gets the majority's flag again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noc.clock import Clock, iso_utc
from noc.codes import Choice as Choice  # re-exported: how an interrupted action is settled
from noc.config import NocConfig
from noc.failover import (
    Actuators,
    change_from_json,
    holder_is_dead,
    hook_environment,
    release_lock,
    secret_variables,
    take_lock,
    this_node,
)
from noc.model import (
    ActionKind,
    ActionPlan,
    ActuatorStep,
    EstateSnapshot,
    FailoverFlag,
    FailoverRecord,
    FailoverRecordType,
    FlagSample,
    Health,
    LockHolder,
    Preflight,
    RecordChange,
    Topology,
)
from noc.rrset_move import host_key
from noc.safety import target_health_rule
from noc_collectors.dns_update import PREREQUISITE_FAILED
from noc_collectors.hooks import run_hook

# The audit events that end an action once it was confirmed: nothing is in flight.
ENDING_EVENTS = frozenset(
    {"executed", "aborted", "rolled_back", "refused", "cancelled", "recovered", "recover_closed"}
)
# A recovery that did not finish everything ("recover_partial") or was refused
# ("recover_refused") leaves the action open: `noc recover` offers it again.
# The per-step records of point 8: before (intent) and after (result) each write.
STEP_EVENTS = frozenset({"step_intent", "step_result"})


@dataclass(frozen=True)
class Decision:
    """What the human chose for one interrupted action: the way, whether they broke
    glass over failing rules (typed FORCE), and the note they typed (audited)."""

    choice: Choice
    force: bool = False
    note: str = ""


@dataclass(frozen=True)
class Supersession:
    """A newer action that acted after the interrupted one: who, when."""

    action_id: str
    who: str
    when: str
    where: str  # "the stores" or "the record"

    def describe(self) -> str:
        return (
            f"superseded by {self.action_id} ({self.who or '?'}, {self.when or '?'}; "
            f"seen in {self.where})"
        )


@dataclass(frozen=True)
class Interrupted:
    """An action the record shows confirmed and never ended."""

    action_id: str
    kind: str
    source: str | None
    target: str
    operator: Mapping[str, str]
    reason: str
    confirmed_ts: str
    actuators: tuple[str, ...]
    # Actuators whose write was announced, and those whose result came back (ok or not).
    started: tuple[str, ...]
    finished: Mapping[str, bool]
    flag: FailoverFlag | None
    previous_flag: FailoverFlag | None
    changes: tuple[RecordChange, ...]
    last_event: str
    pid: int = 0
    node: str = ""
    rollback_started: bool = False
    # Recovery steps announced and never reported (a kill of `noc recover` itself).
    recovery_in_flight: tuple[str, ...] = ()
    # Parts of the record that could not be read: such an action is settled by hand.
    damaged: tuple[str, ...] = ()

    @property
    def wrote_anything(self) -> bool:
        return bool(self.started)

    @property
    def in_flight(self) -> tuple[str, ...]:
        """Steps announced without a result: the kill landed inside these."""
        return tuple(a for a in self.started if a not in self.finished)

    def describe(self) -> str:
        where = (
            f"stopped inside {', '.join(self.in_flight)}"
            if self.in_flight
            else (
                f"after {', '.join(self.started)}" if self.started else "before any actuator wrote"
            )
        )
        return (
            f"{self.kind} {self.source or '?'} -> {self.target} (action {self.action_id}, "
            f"confirmed {self.confirmed_ts} by {self.operator.get('operator', '?')}): "
            f"interrupted {where}; last record: {self.last_event}"
        )

    def process_alive(self) -> bool:
        """The process that confirmed it still runs (it may be waiting for a drain)."""
        if not self.pid or not self.node or self.node != this_node():
            return False
        holder = LockHolder("", self.action_id, "", self.pid, self.node)
        return not holder_is_dead(holder) and self.pid != os.getpid()


def interrupted_actions(records: Iterable[Mapping[str, Any]]) -> list[Interrupted]:
    """Every action the record shows confirmed (or with a step announced) and not ended,
    oldest first. Pure: reads the records only."""
    by_action: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        action_id = record.get("action_id")
        if isinstance(action_id, str) and action_id:
            by_action.setdefault(action_id, []).append(record)
    found: list[Interrupted] = []
    for action_id, history in by_action.items():
        events = [str(r.get("event", "")) for r in history]
        starts = [i for i, e in enumerate(events) if e in ("confirmed", "step_intent")]
        if not starts:
            continue
        first = starts[0]
        if any(e in ENDING_EVENTS for e in events[first:]):
            continue
        try:
            found.append(_interrupted(action_id, history, history[first]))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            found.append(_damaged(action_id, history, history[first], exc))
    return found


def _damaged(
    action_id: str,
    history: Sequence[Mapping[str, Any]],
    first: Mapping[str, Any],
    exc: Exception,
) -> Interrupted:
    """An open action whose record cannot be read whole: named, never settled blindly."""
    return Interrupted(
        action_id=action_id,
        kind=str(first.get("action", "failover")),
        source=str(first.get("from") or "") or None,
        target=str(first.get("to", "")),
        operator={"operator": str(first.get("operator", "?"))},
        reason=str(first.get("reason", "")),
        confirmed_ts=str(first.get("ts", "?")),
        actuators=(),
        started=("?",),
        finished={},
        flag=None,
        previous_flag=None,
        changes=(),
        last_event=str(history[-1].get("event", "?")),
        damaged=(f"{type(exc).__name__}: {exc}",),
    )


def _interrupted(
    action_id: str, history: Sequence[Mapping[str, Any]], first: Mapping[str, Any]
) -> Interrupted:
    confirmed = next((r for r in history if r.get("event") == "confirmed"), first)
    started: list[str] = []
    finished: dict[str, bool] = {}
    previous = _flag(confirmed.get("previous_flag"))
    flag: FailoverFlag | None = None
    changes = tuple(change_from_json(c) for c in confirmed.get("changes") or ())
    rollback = False
    recovering: dict[str, bool] = {}
    for record in history:
        actuator = str(record.get("actuator", ""))
        if record.get("recovery"):
            # A step of an earlier `noc recover`: announced (False) or reported (True).
            recovering[actuator] = record.get("event") == "step_result"
            continue
        if record.get("rollback"):
            rollback = rollback or record.get("event") == "step_intent"
            continue
        if record.get("event") == "step_intent":
            started.append(actuator)
            if actuator == "flag":
                flag = _flag(record.get("flag")) or flag
                previous = _flag(record.get("previous_flag")) or previous
            if actuator == "dns" and record.get("changes"):
                changes = tuple(change_from_json(c) for c in record["changes"])
        elif record.get("event") == "step_result":
            finished[actuator] = bool(record.get("ok"))
    operator = {k: str(v) for k, v in confirmed.items() if k in ("operator", "ssh_client") and v}
    return Interrupted(
        action_id=action_id,
        kind=str(confirmed.get("action", "failover")),
        source=confirmed.get("from"),
        target=str(confirmed.get("to", "")),
        operator=operator,
        reason=str(confirmed.get("reason", "")),
        confirmed_ts=str(confirmed.get("ts", "?")),
        actuators=tuple(str(a) for a in confirmed.get("actuators") or started),
        started=tuple(started),
        finished=finished,
        flag=flag,
        previous_flag=previous,
        changes=changes,
        last_event=str(history[-1].get("event", "?")),
        pid=_int(confirmed.get("pid")),
        node=str(confirmed.get("node") or ""),
        rollback_started=rollback,
        recovery_in_flight=tuple(a for a, reported in recovering.items() if not reported),
    )


def _int(raw: object) -> int:
    try:
        return int(str(raw or 0))
    except ValueError:
        return 0


def _flag(raw: object) -> FailoverFlag | None:
    if not isinstance(raw, Mapping):
        return None
    return FailoverFlag.from_mapping({str(k): str(v) for k, v in raw.items()})


def recommended(item: Interrupted, superseded: Supersession | None = None) -> Choice:
    """Close when a newer action superseded it (or its record is damaged); forward when
    part of the move already landed (the incident goes on: finish it); back when
    nothing was written or a rollback had begun."""
    if superseded is not None or item.damaged:
        return Choice.CLOSE
    if item.rollback_started or not item.wrote_anything:
        return Choice.ROLL_BACK
    return Choice.COMPLETE


def superseded_by(
    item: Interrupted,
    flags: Mapping[str, FlagSample],
    records: Sequence[Mapping[str, Any]],
) -> Supersession | None:
    """A newer action that acted after `item`: a store holding a flag that is neither
    this action's nor the one it replaced (nor an older one the record knows), or a
    later action in the record that executed or began writing. Settling `item` either
    way would then undo that newer action."""
    first = next(
        (i for i, r in enumerate(records) if r.get("action_id") == item.action_id), len(records)
    )
    older = {str(r.get("action_id")) for r in records[:first] if r.get("action_id")}
    previous = item.previous_flag.action_id if item.previous_flag else ""
    for sample in flags.values():
        flag = sample.flag if sample.reachable else None
        if flag is None or flag.action_id in {item.action_id, previous, ""}:
            continue
        if flag.action_id not in older:
            return Supersession(flag.action_id, flag.operator, flag.at, "the stores")
    for record in records[first + 1 :]:
        other = record.get("action_id")
        if not other or other == item.action_id or record.get("recovery"):
            continue
        if record.get("event") in ("executed", "step_intent"):
            return Supersession(
                str(other), str(record.get("operator", "")), str(record.get("ts", "")),
                "the record",
            )  # fmt: skip
    return None


def destination(item: Interrupted, choice: Choice, primary: str) -> str:
    """The region that is active once `item` is settled the `choice` way."""
    if choice is Choice.COMPLETE:
        return item.target
    if item.previous_flag is not None:
        return item.previous_flag.active
    return item.source or primary


def recovery_rules(
    snapshot: EstateSnapshot, item: Interrupted, choice: Choice, primary: str
) -> list[Preflight]:
    """The planning rules that still mean something halfway through an action, for one
    direction, on the facts just collected: the region traffic ends on is healthy,
    noc can see the estate, and a majority of flag stores can be written."""
    region_id = destination(item, choice, primary)
    region = snapshot.region(region_id)
    health = region.health if region is not None else Health.UNKNOWN
    kind = ActionKind(item.kind) if item.kind in set(ActionKind) else ActionKind.FAILOVER
    rules = [target_health_rule(health, region_id, kind)]
    rules.append(
        Preflight(
            "noc can see the estate",
            not snapshot.cut_off,
            "noc cannot reach anything: health verdicts are last known"
            if snapshot.cut_off
            else "checks are answering",
            forceable=True,
        )
    )
    with_store = [r for r in snapshot.regions if r.store.reachable is not None]
    reachable = [r.id for r in with_store if r.store.reachable]
    if with_store:
        rules.append(
            Preflight(
                "flag stores reachable",
                len(reachable) > len(with_store) / 2,
                f"{len(reachable)}/{len(with_store)} reachable",
            )
        )
    return rules


@dataclass
class Settled:
    """What settling an interrupted action did, actuator by actuator."""

    item: Interrupted
    choice: Choice
    steps: list[ActuatorStep] = field(default_factory=list)
    refusal: str | None = None
    note: str = ""
    superseded: Supersession | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None and all(s.ok for s in self.steps)

    @property
    def changed_anything(self) -> bool:
        return any(s.ok and "already" not in s.detail and s.actuator != "lock" for s in self.steps)

    @property
    def left(self) -> list[str]:
        """What is still not on the chosen side."""
        return [f"{s.actuator}: {s.detail}" for s in self.steps if not s.ok]

    def summary(self) -> str:
        if self.choice is Choice.CLOSE:
            why = (
                self.superseded.describe()
                if self.superseded
                else f"its record is damaged ({'; '.join(self.item.damaged)}): check the "
                "stores and DNS by hand"
                if self.item.damaged
                else "closed by hand"
            )
            return f"action {self.item.action_id} closed, nothing written: {why}"
        verb = "completed" if self.choice is Choice.COMPLETE else "rolled back"
        if self.refusal is not None:
            return f"action {self.item.action_id} NOT {verb}: {self.refusal}"
        state = verb if self.ok else f"{verb} only in part, still open: {'; '.join(self.left)}"
        parts = "; ".join(f"{s.actuator}: {s.detail}" for s in self.steps)
        return f"{self.item.kind} {self.item.action_id} {state} ({parts or 'nothing to do'})"


# Records a recovery step before (event "step_intent") and after ("step_result").
StepRecorder = Callable[..., Awaitable[None]]


async def _no_record(event: str, **fields: Any) -> None:
    return None


async def settle(
    item: Interrupted,
    choice: Choice,
    actuators: Actuators,
    clock: Clock,
    operator: Mapping[str, str],
    *,
    dry_run: bool = False,
    record: StepRecorder = _no_record,
) -> Settled:
    """Drive every actuator of `item` to the chosen side, under the failover lock
    (renewed before each step). Each write is announced through `record` first, and
    its result recorded after; a step that fails stops the ones after it (DNS is
    never touched unless the flag is on the chosen side). With `dry_run`, read only
    and say what would be written."""
    settled = Settled(item, choice)
    if choice is Choice.CLOSE:
        return settled
    if item.damaged:
        settled.refusal = (
            f"its record is damaged ({'; '.join(item.damaged)}): settle it by hand, then close"
        )
        return settled
    if choice is Choice.COMPLETE and not item.wrote_anything:
        settled.refusal = (
            "nothing was written before it stopped: there is nothing to complete; "
            f"plan it again (noc {item.kind} ...) or roll it back to close the record"
        )
        return settled
    holder = LockHolder(
        operator.get("operator", "?"),
        item.action_id,
        iso_utc(clock.utcnow()),
        os.getpid(),
        this_node(),
    )
    if not dry_run:
        refusal, locked = await take_lock(actuators, holder)
        if refusal is not None:
            settled.refusal = refusal
            return settled
        if locked is not None:
            settled.steps.append(locked)
    try:
        failed: str | None = None
        for actuator in item.actuators:
            if failed is not None:
                settled.steps.append(
                    ActuatorStep(actuator, False, f"not touched: the {failed} step did not succeed")
                )
                continue
            if not dry_run:
                await _renew(actuators, holder)
                await record("step_intent", actuator=actuator)
            step: ActuatorStep | None = None
            if actuator == "flag" and ActionKind(item.kind).moves_flag:
                step = await _settle_flag(item, choice, actuators, clock, dry_run)
            elif actuator == "dns":
                step = await _settle_dns(item, choice, actuators, dry_run)
            elif actuator == "hook":
                step = await _settle_hook(item, choice, actuators, dry_run)
            if not dry_run:
                await record(
                    "step_result", actuator=actuator, ok=step.ok if step else True,
                    detail=step.detail if step else "nothing to do",
                )  # fmt: skip
            if step is not None:
                settled.steps.append(step)
                if not step.ok and not dry_run:
                    failed = actuator
    finally:
        if not dry_run:
            await release_lock(actuators, holder)
    return settled


async def _renew(actuators: Actuators, holder: LockHolder) -> None:
    """Push the lock's expiry back before each step: a slow store or hook must not let
    it lapse while this recovery still writes."""
    settings = actuators.config.failover
    await asyncio.gather(
        *(
            s.extend_lock(settings.lock_key, holder, settings.lock_ttl_seconds)
            for s in actuators.stores.values()
        )
    )


def _wanted_flag(item: Interrupted, clock: Clock) -> FailoverFlag:
    if item.flag is not None:
        return item.flag
    return FailoverFlag(
        active=item.target,
        previous=item.source,
        operator=item.operator.get("operator", ""),
        reason=item.reason,
        at=iso_utc(clock.utcnow()),
        action_id=item.action_id,
    )


async def _settle_flag(
    item: Interrupted, choice: Choice, actuators: Actuators, clock: Clock, dry_run: bool
) -> ActuatorStep:
    stores = actuators.stores
    ours = item.action_id
    before = item.previous_flag.action_id if item.previous_flag else ""
    wanted = _wanted_flag(item, clock) if choice is Choice.COMPLETE else item.previous_flag
    wanted_id = wanted.action_id if wanted else ""
    # Only the two sides of this action may be replaced: ours and what it replaced
    # (or an empty store, which a write realigns).
    replaceable = {ours, before, ""} - {wanted_id}
    samples = dict(
        zip(stores, await asyncio.gather(*(s.read() for s in stores.values())), strict=True)
    )
    todo: list[tuple[str, str]] = []
    already: list[str] = []
    problems: list[str] = []
    for region, sample in samples.items():
        if not sample.reachable:
            problems.append(f"{region} unreachable ({sample.error})")
            continue
        current = sample.flag.action_id if sample.flag else ""
        if current == wanted_id:
            already.append(region)
        elif current in replaceable:
            todo.append((region, current))
        else:
            seen = sample.flag.active if sample.flag else "?"
            problems.append(
                f"{region} holds another action's flag ({current}: {seen}): not touched"
            )
    name = wanted.active if wanted else "no flag"
    if dry_run:
        return ActuatorStep(
            "flag",
            True,
            f"would write {name} on {', '.join(r for r, _ in todo) or 'no store'}"
            f"; already on {len(already)}/{len(stores)}"
            + (f"; {'; '.join(problems)}" if problems else ""),
        )
    outcomes = await asyncio.gather(*(stores[r].replace_if(current, wanted) for r, current in todo))
    for (region, _), outcome in zip(todo, outcomes, strict=True):
        if outcome.replaced:
            already.append(region)
        else:
            problems.append(f"{region}: {outcome.error or 'changed meanwhile: not overwritten'}")
    majority = len(already) > len(stores) / 2
    conflicts = [p for p in problems if "unreachable" not in p]
    detail = f"{name} on {len(already)}/{len(stores)} stores ({', '.join(sorted(already))})"
    if not todo:
        detail = "already " + detail
    if problems:
        detail += "; " + "; ".join(problems)
    return ActuatorStep(
        "flag", majority and not conflicts, detail, rolled_back=choice is Choice.ROLL_BACK
    )


async def _settle_dns(
    item: Interrupted, choice: Choice, actuators: Actuators, dry_run: bool
) -> ActuatorStep:
    back = choice is Choice.ROLL_BACK
    changes = [c.reverse() if back else c for c in item.changes if c.changed]
    if not changes:
        return ActuatorStep("dns", True, "already as wanted: the action changed no record")
    updater, error = await actuators.dns()
    if updater is None:
        return ActuatorStep("dns", False, error or "no DNS updater")
    now = await updater.read([FailoverRecord(c.name, c.rtype) for c in changes])
    todo: list[RecordChange] = []
    problems: list[str] = []
    for change, rrset in zip(changes, now, strict=True):
        label = f"{change.name} {change.rtype.value}"
        if rrset.error is not None:
            problems.append(f"{label}: {rrset.error}")
        elif set(rrset.values) == set(change.new):
            continue
        elif set(rrset.values) == set(change.old):
            todo.append(change)
        else:
            problems.append(
                f"{label} holds {', '.join(rrset.values) or '(none)'}, neither side of this "
                "action: changed behind noc's back, not touched"
            )
    if dry_run:
        words = "; ".join(c.describe() for c in todo) or "nothing to change"
        return ActuatorStep(
            "dns", not problems, f"would apply: {words}" + "".join(f"; {p}" for p in problems)
        )
    if todo:
        error = await updater.replace(todo)
        if error is not None:
            detail = error if PREREQUISITE_FAILED not in error else f"changed meanwhile: {error}"
            return ActuatorStep("dns", False, detail, rolled_back=back)
    done = f"{len(todo)} RRset(s) replaced" if todo else "already as wanted"
    return ActuatorStep(
        "dns", not problems, done + "".join(f"; {p}" for p in problems), rolled_back=back
    )


async def _settle_hook(
    item: Interrupted, choice: Choice, actuators: Actuators, dry_run: bool
) -> ActuatorStep | None:
    hooks = actuators.config.failover.hooks
    ran = item.finished.get("hook")
    if "hook" in item.in_flight or "hook" in item.recovery_in_flight:
        # Started, and killed before it reported: it may have done its work, or half
        # of it. A hook's idempotency is unknown to noc: never re-run it blindly.
        return ActuatorStep(
            "hook", True,
            "NOT re-run: it was started and never reported (killed inside it); whether it "
            "did its work is unknown: check it by hand",
            rolled_back=choice is Choice.ROLL_BACK,
        )  # fmt: skip
    if choice is Choice.COMPLETE:
        if ran:
            return ActuatorStep("hook", True, "already ran")
        command = hooks.run
    else:
        if "hook" not in item.started:
            return None
        command = hooks.undo
        if not command:
            return ActuatorStep(
                "hook", False, "no [failover.hooks] undo configured: undo it by hand"
            )
    if command is None:
        return None
    if dry_run:
        return ActuatorStep("hook", True, f"would run {command}")
    plan = ActionPlan(
        action_id=item.action_id,
        kind=ActionKind(item.kind),
        source=item.source,
        target=item.target,
        target_health=Health.UNKNOWN,
        operator=dict(item.operator),
        forced=False,
        checks=(),
        stores=(),
    )
    outcome = await run_hook(
        command,
        hook_environment(plan, item.reason),
        hooks.timeout_seconds,
        withheld=secret_variables(actuators.config),
    )
    return ActuatorStep(
        "hook", outcome.ok, outcome.describe(), rolled_back=choice is Choice.ROLL_BACK
    )


@dataclass(frozen=True)
class FlagSplit:
    """Stores that lack the flag most stores hold, or hold another one."""

    flag: FailoverFlag
    agreeing: tuple[str, ...]
    behind: Mapping[str, str]  # region -> the action id it holds ("" for none)
    unreachable: tuple[str, ...]

    def describe(self) -> str:
        behind = ", ".join(
            f"{r} ({'empty' if a == '' else f'holds {a}'})" for r, a in self.behind.items()
        )
        total = len(self.agreeing) + len(self.behind) + len(self.unreachable)
        return (
            f"flag stores disagree: {len(self.agreeing)}/{total} "
            f"hold {self.flag.active} (action {self.flag.action_id}); behind: {behind}"
        )


def flag_disagreement(samples: Mapping[str, FlagSample]) -> FlagSplit | None:
    """The majority flag and the reachable stores that lack it, when a strict majority
    of all stores agrees; None when they agree (or no flag has a majority: then only a
    new action can decide)."""
    total = len(samples)
    reachable = {r: s for r, s in samples.items() if s.reachable}
    held: dict[str, list[str]] = {}
    flags: dict[str, FailoverFlag] = {}
    for region, sample in reachable.items():
        if sample.flag is not None and sample.flag.action_id:
            held.setdefault(sample.flag.action_id, []).append(region)
            flags[sample.flag.action_id] = sample.flag
    if not held:
        return None
    action_id, agreeing = max(held.items(), key=lambda item: len(item[1]))
    if len(agreeing) <= total / 2:
        return None
    behind = {
        r: (s.flag.action_id if s.flag else "") for r, s in reachable.items() if r not in agreeing
    }
    if not behind:
        return None
    unreachable = tuple(r for r, s in samples.items() if not s.reachable)
    return FlagSplit(flags[action_id], tuple(agreeing), behind, unreachable)


async def read_flags(actuators: Actuators) -> dict[str, FlagSample]:
    stores = actuators.stores
    return dict(
        zip(stores, await asyncio.gather(*(s.read() for s in stores.values())), strict=True)
    )


async def reassert_flag(
    split: FlagSplit,
    actuators: Actuators,
    clock: Clock,
    operator: Mapping[str, str],
    *,
    record: StepRecorder = _no_record,
) -> tuple[ActuatorStep, LockHolder | None]:
    """Write the majority's flag onto the stores behind, compare-and-set on what each
    held when read, under the failover lock; announced through `record` first."""
    holder = LockHolder(
        operator.get("operator", "?"), split.flag.action_id, iso_utc(clock.utcnow()),
        os.getpid(), this_node(),
    )  # fmt: skip
    refusal, _ = await take_lock(actuators, holder)
    if refusal is not None:
        return ActuatorStep("flag", False, refusal), None
    try:
        await record("flag_reassert_intent", stores=list(split.behind))
        stores = actuators.stores
        outcomes = await asyncio.gather(
            *(stores[r].replace_if(held, split.flag) for r, held in split.behind.items())
        )
        done = [r for r, o in zip(split.behind, outcomes, strict=True) if o.replaced]
        bad = [
            f"{r}: {o.error or 'changed meanwhile: not overwritten'}"
            for r, o in zip(split.behind, outcomes, strict=True)
            if not o.replaced
        ]
        detail = f"{split.flag.active} (action {split.flag.action_id}) re-asserted on " + (
            ", ".join(done) or "no store"
        )
        return ActuatorStep("flag", not bad, detail + "".join(f"; {b}" for b in bad)), holder
    finally:
        await release_lock(actuators, holder)


def reassert_blocked(split: FlagSplit, open_ids: Iterable[str]) -> str | None:
    """Why re-asserting `split` would act over an interrupted action, or None: the
    majority's flag, or one a store behind holds, belongs to an action still open.
    That action is settled first (its partial flag is not an older flag to correct)."""
    open_set = set(open_ids)
    if split.flag.action_id in open_set:
        return (
            f"the majority's flag is interrupted action {split.flag.action_id}'s: "
            "settle that action first (complete, roll back or close)"
        )
    held = sorted({a for a in split.behind.values() if a in open_set})
    if held:
        return (
            f"{', '.join(r for r, a in split.behind.items() if a in open_set)} hold(s) the flag "
            f"of interrupted action {', '.join(held)}: settle it first, not overwritten"
        )
    return None


def _region_values(config: NocConfig, region_id: str, rtype: FailoverRecordType) -> set[str]:
    region = config.region(region_id)
    if region is None:
        return set()
    if rtype is FailoverRecordType.MX:
        return {host_key(region.mx_host)} if region.mx_host else set()
    version = 6 if rtype is FailoverRecordType.AAAA else 4
    return {str(ip) for ip in region.service_ips if ip.version == version}


async def flag_and_dns_disagree(actuators: Actuators) -> list[str]:
    """Read the stores and the authoritative DNS server now; what does not agree with
    the majority's flag (empty when flag and DNS agree). Active-passive estates with a
    DNS actuator compare records; every estate compares its stores."""
    config = actuators.config
    flags = await read_flags(actuators)
    reachable = [s for s in flags.values() if s.reachable]
    problems: list[str] = []
    if len(reachable) <= len(flags) / 2:
        return [f"only {len(reachable)}/{len(flags)} flag stores answered: agreement unknown"]
    held: dict[str, list[str]] = {}
    for sample in reachable:
        held.setdefault(sample.flag.action_id if sample.flag else "", []).append(
            sample.store_region
        )
    action_id, _ = max(held.items(), key=lambda item: len(item[1]))
    if len(held) > 1:
        problems.append(
            "flag stores disagree: "
            + "; ".join(f"{', '.join(sorted(r))} hold {a or 'no flag'}" for a, r in held.items())
        )
    flag = next((s.flag for s in reachable if s.flag and s.flag.action_id == action_id), None)
    active = flag.active if flag else config.primary.id
    if config.failover.dns is None or config.estate.topology is Topology.ACTIVE_ACTIVE:
        return problems
    updater, error = await actuators.dns()
    if updater is None:
        return [*problems, f"DNS not read: {error}"]
    records = [r.record() for r in config.dns.records]
    now = await updater.read(records)
    others = [r.id for r in config.regions if r.id != active]
    for rrset in now:
        label = f"{rrset.name} {rrset.rtype.value}"
        if rrset.error is not None:
            problems.append(f"{label} not read: {rrset.error}")
            continue
        values = {host_key(v.split()[-1]) if rrset.rtype is FailoverRecordType.MX else v
                  for v in rrset.values}  # fmt: skip
        for other in others:
            stray = values & _region_values(config, other, rrset.rtype)
            if stray:
                problems.append(
                    f"{label} serves {other}'s {', '.join(sorted(stray))}, the flag says {active}"
                )
    return problems
