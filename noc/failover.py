"""Failover and failback under the STOP pattern: plan, execute, verify, audit.

`plan_action()` is pure: it computes the preflight from a snapshot, so the
dialog, `--dry-run` and the real run show the same thing. `execute()` writes
the flag to every region's store at once and reads it back from each. Success
means verified on every store that could be written, and on a majority of the
regions: failing away from a dead region whose store is dead too is the normal
case, not an error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from collectors.flag_store import FlagStore
from noc.audit import JsonlLog
from noc.clock import Clock, iso_utc
from noc.config import NocConfig
from noc.model import (
    ActionKind,
    ActionPlan,
    ActionResult,
    EstateSnapshot,
    FailoverFlag,
    Health,
    Preflight,
    Role,
    StoreOutcome,
    StorePlan,
    StoreResult,
)


def plan_action(
    snapshot: EstateSnapshot,
    config: NocConfig,
    kind: ActionKind,
    target: str,
    operator: Mapping[str, str],
    *,
    force: bool = False,
) -> ActionPlan:
    region = snapshot.region(target)
    source = snapshot.active_region
    with_store = {r.id for r in config.regions if r.redis_url}
    stores = tuple(
        StorePlan(r.id, r.store.reachable, r.store.error)
        for r in snapshot.regions
        if r.id in with_store
    )
    checks: list[Preflight] = []
    if region is None:
        known = ", ".join(r.id for r in snapshot.regions)
        checks.append(Preflight("target exists", False, f"no region {target!r} (known: {known})"))
        return _plan(kind, source, target, Health.UNKNOWN, operator, force, checks, stores)

    primary = config.primary.id
    if kind is ActionKind.FAILOVER and region.role is Role.PRIMARY and source != target:
        checks.append(
            Preflight(
                "direction",
                False,
                f"{target} is the primary: returning to it is a failback "
                f"(noc failback --to {target})",
            )
        )
    elif kind is ActionKind.FAILBACK and target != primary:
        checks.append(
            Preflight(
                "direction", False, f"failback returns to the primary ({primary}), not {target}"
            )
        )
    else:
        checks.append(Preflight("direction", True, f"{kind.value} to {target}"))

    if source is None:
        checks.append(
            Preflight("active region known", False, "no store could be read: the flag is unknown")
        )
    elif source == target:
        checks.append(Preflight("target not already active", False, f"{target} is already active"))
    else:
        checks.append(
            Preflight("active region known", True, f"{source} ({snapshot.authority.source})")
        )

    checks.append(
        Preflight(
            "target healthy",
            region.health is Health.HEALTHY,
            f"{target} is {region.health.value}",
            forceable=True,
        )
    )
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
    reachable = [s.region_id for s in stores if s.reachable]
    unreachable = [s.region_id for s in stores if not s.reachable]
    majority = len(stores) // 2 + 1
    detail = f"{len(reachable)}/{len(stores)} stores reachable ({', '.join(reachable) or 'none'})"
    if unreachable:
        detail += f"; unreachable: {', '.join(unreachable)}"
    checks.append(Preflight("flag stores", len(reachable) >= majority, detail))
    if snapshot.authority.split:
        others = ", ".join(f"{s} says {a}" for s, a in snapshot.authority.disagreeing)
        checks.append(
            Preflight(
                "stores agree", False, f"split: {others}; this write realigns them", blocking=False
            )
        )
    return _plan(kind, source, target, region.health, operator, force, checks, stores)


def _plan(
    kind: ActionKind,
    source: str | None,
    target: str,
    health: Health,
    operator: Mapping[str, str],
    force: bool,
    checks: list[Preflight],
    stores: tuple[StorePlan, ...],
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
    )


def plan_record(plan: ActionPlan, **extra: Any) -> dict[str, Any]:
    """The audit fields of one step of a planned action."""
    return {**plan.describe(), **plan.operator, **extra}


async def execute(
    plan: ActionPlan,
    reason: str,
    stores: Mapping[str, FlagStore],
    audit: JsonlLog,
    clock: Clock,
) -> ActionResult:
    """Write the flag to every store (all of them: the last read may be stale), then
    read it back from each. The caller has already audited planned/confirmed."""
    if not reason.strip():
        raise ValueError("a failover needs a reason")
    if not plan.allowed:
        raise ValueError(f"refused plan cannot be executed: {plan.refusal}")
    flag = FailoverFlag(
        active=plan.target,
        previous=plan.source,
        operator=plan.operator.get("operator", ""),
        reason=reason.strip(),
        at=iso_utc(clock.utcnow()),
        action_id=plan.action_id,
    )
    regions = list(stores)
    errors = await asyncio.gather(*(stores[r].write(flag) for r in regions))
    written = {r: e for r, e in zip(regions, errors, strict=True)}
    await audit.aappend(
        "executed",
        action_id=plan.action_id,
        action=plan.kind.value,
        **{"from": plan.source, "to": plan.target},
        **plan.operator,
        before={"active": plan.source},
        after=flag.as_mapping(),
        written=[r for r, e in written.items() if e is None],
        unreachable={r: e for r, e in written.items() if e is not None},
    )
    readbacks = await asyncio.gather(*(stores[r].read() for r in regions))
    results = []
    for region_id, sample in zip(regions, readbacks, strict=True):
        if written[region_id] is not None:
            results.append(
                StoreResult(region_id, StoreOutcome.UNREACHABLE, written[region_id] or "")
            )
        elif sample.flag is not None and sample.flag.action_id == plan.action_id:
            results.append(StoreResult(region_id, StoreOutcome.VERIFIED))
        else:
            seen = sample.error or (sample.flag.active if sample.flag else "no flag")
            results.append(StoreResult(region_id, StoreOutcome.WRITTEN, f"read back: {seen}"))
    result = ActionResult(plan, flag, tuple(results))
    await audit.aappend(
        "verified" if result.success else "verify_failed",
        action_id=plan.action_id,
        action=plan.kind.value,
        **{"from": plan.source, "to": plan.target},
        **plan.operator,
        before={"active": plan.source},
        after={"active": plan.target},
        stores={s.region_id: s.outcome.value for s in result.stores},
        summary=result.summary,
    )
    return result
