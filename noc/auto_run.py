"""Automated failover, run: the one path the dashboard (standalone) and the leading
agent both take once `AutoFailover.due()` named a target.

It plans as an operator would, with no override: a refused plan holds the automation
(audited when the rules holding it change); otherwise it fires, journalled first, and
runs the act through Operations, whose writes to the flag stores carry the leader's
fencing token when an agent runs it (a deposed leader's are refused by the stores).
`may_act` is asked at the last moment before the first write: the dashboard's pause
switch, the agent's belief that it still leads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from noc.audit import JsonlLog
from noc.auto import AutoFailover
from noc.clock import Clock
from noc.failover import plan_record
from noc.model import ActionKind, ActionPlan
from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO, Outcome


def _ignore(*_: object) -> None:
    return None


async def run_automated_failover(
    auto: AutoFailover,
    operations: Operations,
    target: str,
    audit: JsonlLog,
    clock: Clock,
    operator: Mapping[str, str],
    io: OperatorIO,
    *,
    may_act: Callable[[], bool] = lambda: True,
    announce: Callable[[str, str, str], None] = _ignore,
    show_outcome: Callable[[Outcome], Awaitable[None]] | None = None,
    fired: Callable[[], Awaitable[None]] | None = None,
) -> Outcome | None:
    """Plan and, if every rule passes, fail over to `target`; the act's outcome, or
    None when it held or was stopped before acting. `announce(source, target, reason)`
    is told just before the first write, `fired` once the act is journalled as fired
    (the agent shares that with the next leader). Clears `auto.acting` on the way out."""
    try:
        plan = await operations.plan(ActionKind.FAILOVER, target, operator)
        source = plan.source or "?"
        down = auto.down_seconds() or 0
        reason = f"automated: {source} down for {down:.0f} s (auto_after_seconds {auto.after:g})"
        if not plan.allowed:
            # Audited when the rules holding it change, not each time a figure moves.
            if auto.hold(plan.refusal or "", tuple(c.name for c in plan.failed)):
                await audit.aappend("auto_held", **plan_record(plan, refusal=plan.refusal))
            return None
        if auto.paused or not may_act():
            return None
        when = f"{source} → {target} at {clock.utcnow():%H:%M:%S} UTC"

        async def fire(plan: ActionPlan) -> Confirmation | None:
            if auto.paused or not may_act():
                return None
            announce(source, target, reason)
            # Journalled first: if noc stops midway, it has still fired (once).
            await auto.record_fired(when, operator)
            if fired is not None:
                await fired()
            return Confirmation(reason, False, "automatic")

        request = ActionRequest(ActionKind.FAILOVER, target, operator, via="auto",
                                reason=reason, watch=False)  # fmt: skip
        outcome = await operations.run_action(request, replace(io, confirm=fire, refused=None))
        if show_outcome is not None:
            await show_outcome(outcome)
        result = outcome.result
        if result is None or (result.aborted is not None and not result.changed_anything):
            if auto.fired is not None:
                # Nothing was written (refused afresh, the lock held, fenced...): held.
                await auto.retract_fired(f"tried and aborted: {outcome.message}", operator)
            return outcome
        if result.aborted is not None:
            outcome_text = " (rolled back: see the result)"
        else:
            outcome_text = "" if result.success else " (FAILED OR PARTIAL: see the result)"
        await auto.record_fired(when + outcome_text, operator)
        return outcome
    finally:
        auto.acting = False
