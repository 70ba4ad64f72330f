"""Built-in alert rules: what is true now, as Conditions for the AlertBook.

Each rule has a name, a default severity and a default sustain window; `[alerts]`
in config may change the severity or window of a rule, or switch it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from noc.alerts import Condition
from noc.model import EstateSnapshot, Health, Severity

if TYPE_CHECKING:  # config imports this module's rule table
    from noc.config import AlertsConfig


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    severity: Severity
    for_seconds: float
    meaning: str


RULES = {
    rule.name: rule
    for rule in (
        Rule("region_down", Severity.CRITICAL, 0, "every check of a region is down"),
        Rule("region_degraded", Severity.WARNING, 0, "some checks of a region are down"),
        Rule(
            "noc_cut_off",
            Severity.CRITICAL,
            0,
            "noc cannot reach anything: verdicts are last known",
        ),
        Rule("data_stale", Severity.WARNING, 0, "no poll result for two cycles"),
        Rule("split_brain", Severity.CRITICAL, 0, "region stores disagree on the active region"),
        Rule("active_unknown", Severity.WARNING, 30, "no failover flag store can be read"),
        Rule("source_unreachable", Severity.WARNING, 30, "a region's store cannot be read"),
    )
}


def estate_conditions(snapshot: EstateSnapshot) -> Iterator[Condition]:
    """Conditions about health, reachability and authority, before overrides."""
    for region in snapshot.regions:
        if region.health is Health.DOWN:
            yield _condition("region_down", region.id, f"{region.id} down: every check failing")
        elif region.health is Health.DEGRADED:
            failing = region.failing_checks
            yield _condition(
                "region_degraded",
                region.id,
                f"{region.id} degraded: {failing}/{len(region.checks)} checks down",
                value=failing,
            )
        if region.store.reachable is False:
            yield _condition(
                "source_unreachable",
                region.id,
                f"{region.id} store unreachable: {region.store.error or 'no answer'}",
                cid=f"source_unreachable:store:{region.id}",
            )
    if snapshot.cut_off:
        yield _condition(
            "noc_cut_off", None, "noc cannot reach anything: showing last known status"
        )
    elif snapshot.stale:
        yield _condition("data_stale", None, "no poll result for two cycles: the view is stale")
    if snapshot.authority.split:
        others = ", ".join(f"{s} says {a}" for s, a in snapshot.authority.disagreeing)
        yield _condition(
            "split_brain",
            None,
            f"stores disagree on the active region: {snapshot.active_region} by majority; {others}",
        )
    if snapshot.active_region is None:
        yield _condition("active_unknown", None, "active region unknown: no flag store can be read")


def _condition(
    rule: str, region: str | None, summary: str, *, value: float | None = None, cid: str = ""
) -> Condition:
    spec = RULES[rule]
    return Condition(
        id=cid or (f"{rule}:{region}" if region else rule),
        rule=rule,
        severity=spec.severity,
        region=region,
        summary=summary,
        value=value,
        for_seconds=spec.for_seconds,
    )


def apply_overrides(conditions: Iterator[Condition], config: AlertsConfig) -> Iterator[Condition]:
    for condition in conditions:
        override = config.override(condition.rule)
        if override is None:
            yield condition
        elif override.enabled:
            yield replace(
                condition,
                severity=override.severity or condition.severity,
                for_seconds=(
                    condition.for_seconds if override.for_seconds is None else override.for_seconds
                ),
            )
