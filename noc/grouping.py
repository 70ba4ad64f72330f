"""Alerts that share a cause, as one group: Alertmanager's `group_by`, over noc's labels.

One stalled region raises half a dozen criticals at once (region down, its link,
its store, its sync, its queue...): six rows and six pages say one thing. With
`[alerts] group_by = ["region"]`, alerts with the same region form one group; the
labels are `region`, `rule` and `subject` (the rule instance after the rule's name:
a link "suppression:ro>bg", a record "mx:example.com"). A group's severity is its
worst member's, its members are listed worst first (the root cause leads), and its
next step is its leading member's. Pure and Textual-free: the notifier, the alert
pane and `noc check --json` group the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from noc.model import Alert, AlertState, Interface, Severity
from noc.next_steps import next_step

GROUP_RULE = "group"  # the rule name a group's notification carries
GROUP_PREFIX = "group:"  # a group's key, as notifications and the pane name it


def subject(alert: Alert) -> str:
    """The rule instance without the rule's name: "ro", "suppression:ro>bg", or ""."""
    rule, _, rest = alert.key.partition(":")
    return rest if rule == alert.rule else alert.key


def labels_of(alert: Alert, group_by: Sequence[str]) -> tuple[tuple[str, str], ...]:
    values = {"region": alert.region or "-", "rule": alert.rule, "subject": subject(alert)}
    return tuple((label, values[label]) for label in group_by)


def group_key(labels: Iterable[tuple[str, str]]) -> str:
    return GROUP_PREFIX + ",".join(f"{k}={v}" for k, v in labels)


def _order(alert: Alert) -> tuple[int, int, datetime]:
    firing = 0 if alert.state is AlertState.FIRING else 1
    return (firing, alert.severity.rank, alert.since)


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """Alerts with the same group labels; `members` worst first (the root cause)."""

    key: str  # "group:region=ro"
    labels: tuple[tuple[str, str], ...]
    members: tuple[Alert, ...]

    @property
    def lead(self) -> Alert:
        return self.members[0]

    @property
    def severity(self) -> Severity:
        return min((m.severity for m in self.members), key=lambda s: s.rank)

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(m for m in self.members if m.state is AlertState.FIRING)

    @property
    def since(self) -> datetime:
        return min(m.since for m in self.members)

    @property
    def region(self) -> str | None:
        regions = {m.region for m in self.members}
        return regions.pop() if len(regions) == 1 else None

    @property
    def muted(self) -> bool:
        return all(m.muted for m in self.members)

    def title(self) -> str:
        """ "region ro: 6 alerts (region_down, replication_link_down, +4)"."""
        where = " ".join(f"{k} {v}" for k, v in self.labels) or "estate"
        rules = list(dict.fromkeys(m.rule for m in self.members))
        named = ", ".join(rules[:2]) + (f", +{len(rules) - 2}" if len(rules) > 2 else "")
        count = len(self.members)
        return f"{where}: {count} alert{'s' if count != 1 else ''} ({named})"

    def next_step(self, interface: Interface | None, keys: Mapping[str, str] | None = None) -> str:
        """The leading member's step: the root cause is what to act on."""
        return next_step(self.lead, interface, keys)


def group_alerts(alerts: Iterable[Alert], group_by: Sequence[str]) -> list[AlertGroup]:
    """The active (firing or pending) alerts in groups, most severe group first.
    Resolved alerts are past: they belong to no group. Empty `group_by`: no groups."""
    if not group_by:
        return []
    found: dict[tuple[tuple[str, str], ...], list[Alert]] = {}
    for alert in alerts:
        if alert.state is AlertState.RESOLVED:
            continue
        found.setdefault(labels_of(alert, group_by), []).append(alert)
    groups = [
        AlertGroup(group_key(labels), labels, tuple(sorted(members, key=_order)))
        for labels, members in found.items()
    ]
    return sorted(groups, key=lambda g: (g.muted, not g.firing, g.severity.rank, g.since, g.key))
