"""`noc check`: one snapshot as a Nagios-style verdict, a human summary or JSON.

The text follows the Nagios plugin guidelines: the first line is the verdict, then
`|` and the performance data (`'label'=value[UOM];warn;crit;min;max`, space
separated, U for a value that could not be measured), then the long output. A `|`
inside any text noc prints would start performance data, so it is replaced by `¦`.

The JSON fields and exit codes are public interface: extend, never rename.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from noc.clock import iso_utc
from noc.grouping import group_alerts
from noc.model import (
    AlertState,
    CheckStatus,
    EstateSnapshot,
    Health,
    Interface,
    LinkStatus,
    MaintenanceWindow,
    MtaSample,
    RegionStatus,
    Severity,
    SmtpStatus,
)
from noc.next_steps import next_step

# Alerts about health and authority are already in the verdict by region; these add to it.
DATA_RULES = frozenset(
    {
        "replication_lag",
        "replication_link_down",
        "suppression_unsynced",
        "complaint_rate",
        "source_unreachable",
        "dns_hijack",
        "dns_flag_mismatch",
        "dns_disagree",
        "dns_unknown",
        "email_auth",
        "dnsbl_listed",
        "queue_backlog",
        "rejections",
        "mta_sts_mismatch",
        "smtp_down",
        "tls_broken",
        "cert_expiry",
        "canary_lost",
        "canary_slow",
        "canary_auth",
    }
)


class Status(IntEnum):
    """Nagios plugin exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Verdict:
    status: Status
    problems: tuple[str, ...]

    @property
    def first_line(self) -> str:
        return f"NOC {self.status.name} - {plugin_text('; '.join(self.problems))}"


def plugin_text(text: str) -> str:
    """Text a monitoring system reads as plugin output: `|` would start perf data."""
    return text.replace("|", "¦")


def _label(text: str) -> str:
    """A perf data label: quoted; a quote doubled; `=` ends a label, so it is replaced."""
    return "'" + plugin_text(text).replace("=", ":").replace("'", "''") + "'"


def _decimal(value: float) -> str:
    # The guidelines' value class is [-0-9.]: no exponent, whatever the magnitude.
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _number(value: float | None) -> str:
    return "U" if value is None or not math.isfinite(value) else _decimal(value)


def _limit(value: float | str | None) -> str:
    if isinstance(value, str):  # a range as the guidelines write it: "21:"
        return value
    return "" if value is None else _decimal(value)


@dataclass(frozen=True, slots=True)
class PerfDatum:
    label: str
    value: float | None
    uom: str = ""
    warn: float | str | None = None
    crit: float | str | None = None
    minimum: float | None = 0.0
    maximum: float | None = None

    def __str__(self) -> str:
        limits = ";".join(
            _limit(x) for x in (self.warn, self.crit, self.minimum, self.maximum)
        ).rstrip(";")
        unit = self.uom if self.value is not None else ""
        return f"{_label(self.label)}={_number(self.value)}{unit}" + (
            f";{limits}" if limits else ""
        )


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """One region's [regions.mta] thresholds, which queue_backlog and rejections use."""

    depth: int
    oldest_deferred_seconds: float
    rejections_per_minute: float


@dataclass(frozen=True, slots=True)
class PerfLimits:
    """The configured limits that perf data shows beside its values (from NocConfig:
    this module stays free of it, so widgets may use the verdict)."""

    suppression_slo_seconds: float
    complaint_warn_rate: float
    complaint_critical_rate: float
    cert_warn_days: float = 21.0
    cert_crit_days: float = 7.0
    # By region id, for the regions with [regions.mta]: their queues and rejections
    # are perf data (U while the exporter cannot be read).
    queues: Mapping[str, QueueLimits] = field(default_factory=dict)


def perf_data(snapshot: EstateSnapshot, limits: PerfLimits) -> list[PerfDatum]:
    """Check latency, replication lag, the age of unsynced suppression and complaint
    rates, each beside the limit noc judges it by."""
    data: list[PerfDatum] = []
    for region in snapshot.regions:
        for check in region.checks:
            last = check.last
            latency = None if last is None or not last.ok else last.latency_ms
            latency = None if latency is None else round(latency, 1)
            timeout_ms = check.target.timeout_seconds * 1000
            data.append(
                PerfDatum(
                    f"{region.id} {check.target.name} latency", latency, "ms", crit=timeout_ms
                )
            )
            if check.target.url.startswith("https://"):
                days = None if last is None else last.cert_days_left
                data.append(_days_left(f"{region.id} {check.target.name} cert days", days, limits))
        for probe in region.smtp:
            data.append(
                _days_left(
                    f"{region.id} smtp {probe.target.display} cert days",
                    None if probe.last is None else probe.last.cert_days_left,
                    limits,
                )
            )
        queue_limits = limits.queues.get(region.id)
        if queue_limits is not None:
            data += _mta_data(region.id, snapshot.mta_of(region.id), queue_limits)
    for link in snapshot.replication:
        spec = link.spec
        lag = None if link.last is None else link.last.lag_seconds
        data.append(
            PerfDatum(
                f"lag {spec.data_class} {spec.source}>{spec.target}",
                lag,
                "s",
                warn=spec.threshold_seconds,
            )
        )
    if snapshot.suppression is not None:
        slo = limits.suppression_slo_seconds
        for pair in snapshot.suppression.pairs:
            age = pair.oldest_unsynced_age_seconds
            if age is None and pair.unsynced == 0:
                age = 0.0  # nothing unsynced: no age to wait out
            data.append(
                PerfDatum(f"unsynced {pair.list} {pair.source}>{pair.target}", age, "s", crit=slo)
            )
    if snapshot.deliverability is not None:
        sample = snapshot.deliverability
        scopes = [("estate", sample.estate), *((r.region, r.counts) for r in sample.regions)]
        for where, counts in scopes:
            rate = None if counts is None else counts.complaint_rate
            data.append(
                PerfDatum(
                    f"complaint rate {where}",
                    None if rate is None else rate * 100,
                    "%",
                    warn=limits.complaint_warn_rate * 100,
                    crit=limits.complaint_critical_rate * 100,
                    maximum=100.0,
                )
            )
    return data


def _mta_data(region: str, sample: MtaSample | None, limits: QueueLimits) -> list[PerfDatum]:
    """Queue depths, the oldest deferred age and rejections a minute by class, each
    beside the threshold its alert fires over (both alerts are warnings)."""
    read = sample if sample is not None and sample.error is None else None
    queues = {
        "active": None if read is None else read.queue_active,
        "deferred": None if read is None else read.queue_deferred,
        "hold": None if read is None else read.queue_hold,
    }
    known = [depth for depth in queues.values() if depth is not None]
    # As queue_backlog counts it: every queue the page has.
    depth = float(sum(known)) if known else None
    data = [
        *(PerfDatum(f"{region} queue {name}", _count(value)) for name, value in queues.items()),
        PerfDatum(f"{region} queue depth", depth, warn=limits.depth),
        PerfDatum(
            f"{region} oldest deferred",
            None if read is None else read.oldest_deferred_seconds,
            "s",
            warn=limits.oldest_deferred_seconds,
        ),
    ]
    rates = (None if read is None else read.rejections_per_minute) or {}
    for code_class in ("4xx", "5xx"):
        rate = rates.get(code_class)
        data.append(
            PerfDatum(
                f"{region} rejections {code_class} per min",
                None if rate is None else round(rate, 2),
                warn=limits.rejections_per_minute,
            )
        )
    return data


def _count(value: int | None) -> float | None:
    return None if value is None else float(value)


def _days_left(label: str, days: float | None, limits: PerfLimits) -> PerfDatum:
    """Days left on a certificate. Fewer is worse, so the limits are the guidelines'
    `N:` ranges (alert below N); no minimum, since an expired certificate is negative."""
    return PerfDatum(
        label,
        None if days is None else round(days, 2),
        "",
        warn=f"{_decimal(limits.cert_warn_days)}:",
        crit=f"{_decimal(limits.cert_crit_days)}:",
        minimum=None,
    )


def verdict(snapshot: EstateSnapshot) -> Verdict:
    total = len(snapshot.regions)
    healthy = f"{snapshot.healthy_count}/{total} regions healthy"
    if snapshot.cut_off and snapshot.vantages:
        silent = ", ".join(
            f"{v.name} {'stale' if v.stale else 'cut off'}" for v in snapshot.vantages
        )
        return Verdict(Status.UNKNOWN, (f"no vantage can vote ({silent})",))
    if snapshot.cut_off:
        return Verdict(
            Status.UNKNOWN, ("noc cannot reach anything (every check refused or timed out)",)
        )
    critical: list[str] = []
    warning: list[str] = []
    for region in snapshot.regions:
        active = " (active region)" if region.is_active else ""
        votes = region.votes
        if votes is not None and votes.split:
            # Too few vantages see it down for the quorum: a path, maybe not the region.
            warning.append(
                f"{region.id} down from {votes.down_votes} of {votes.vantages_reporting} "
                f"vantages (quorum {votes.quorum})"
            )
        elif region.health is Health.DOWN:
            critical.append(f"{region.id} down{active}")
        elif region.is_active and region.health is not Health.HEALTHY:
            critical.append(f"{region.id} {region.health.value}{active}")
        elif region.health is not Health.HEALTHY:
            warning.append(f"{region.id} {region.health.value}")
    if snapshot.active_region is None:
        warning.append("active region unknown: no flag store could be read")
    if snapshot.authority.split:
        split = ", ".join(f"{s} says {a}" for s, a in snapshot.authority.disagreeing)
        warning.append(f"stores disagree on the active region ({split})")
    for alert in snapshot.alerts:
        if alert.rule in DATA_RULES and alert.state is AlertState.FIRING and not alert.muted:
            (critical if alert.severity is Severity.CRITICAL else warning).append(alert.summary)
    if snapshot.estate_outage:
        critical.insert(0, "estate-wide outage: every health check failing, stores answer")
    not_voting = [v.name for v in snapshot.vantages if not v.votes]
    if not_voting:
        warning.append(f"vantages not voting (cut off or stale): {', '.join(not_voting)}")
    if critical:
        return Verdict(Status.CRITICAL, (*critical, *warning, healthy))
    if warning:
        return Verdict(Status.WARNING, (*warning, healthy))
    return Verdict(Status.OK, (healthy,))


def _check_json(check: CheckStatus) -> dict[str, Any]:
    last = check.last
    return {
        "name": check.target.name,
        "url": check.target.display_url,
        "ok": None if last is None else last.ok,
        "health": check.health.value,
        "status": None if last is None else last.status,
        "latency_ms": None
        if last is None or last.latency_ms is None
        else round(last.latency_ms, 1),
        "error": None if last is None or last.error is None else str(last.error),
        "consecutive_failures": check.consecutive_failures,
        "failure_threshold": check.target.failure_threshold,
        "cert_days_left": None if last is None else last.cert_days_left,
    }


def _smtp_json(probe: SmtpStatus) -> dict[str, Any]:
    last = probe.last
    return {
        "target": probe.target.display,
        "ok": None if last is None else last.ok,
        "health": probe.health.value,
        "banner_code": None if last is None else last.banner_code,
        "tls": probe.target.tls.value,
        "tls_version": None if last is None else last.tls_version,
        "cert_not_after": None
        if last is None or last.cert_not_after is None
        else iso_utc(last.cert_not_after),
        "cert_days_left": None if last is None else last.cert_days_left,
        "error": None if last is None or last.error is None else str(last.error),
        "phase_ms": {} if last is None else dict(last.phase_ms),
    }


def _link_json(link: LinkStatus) -> dict[str, Any]:
    sample, spec = link.last, link.spec
    return {
        "data_class": spec.data_class,
        "source": spec.source,
        "target": spec.target,
        "kind": spec.kind.value,
        "lag_seconds": None if sample is None else sample.lag_seconds,
        "lag_is_lower_bound": False if sample is None else sample.lag_is_floor,
        "offset_lag_bytes": None if sample is None else sample.offset_lag_bytes,
        "threshold_seconds": spec.threshold_seconds,
        "link": "unknown" if sample is None else sample.link.value,
        "error": None if sample is None else sample.error,
    }


def _mta_json(snapshot: EstateSnapshot, region: str) -> dict[str, Any] | None:
    sample = snapshot.mta_of(region)
    return None if sample is None else sample.as_json()


def _mta_sts_json(snapshot: EstateSnapshot) -> dict[str, Any] | None:
    sample = snapshot.mta_sts
    if sample is None:
        return None
    return {
        "domain": sample.domain,
        "policy_id": sample.policy_id,
        "mode": sample.mode,
        "mx": list(sample.mx_patterns),
        "live_mx": list(sample.live_mx),
        "tlsa": [
            {"host": t.host, "records": list(t.records), "matches": t.matches, "reason": t.reason}
            for t in sample.tlsa
        ],
        "error": sample.error,
    }


def _votes_json(region: RegionStatus) -> dict[str, Any]:
    """Attached to a control plane: how the vantages voted on the region."""
    votes = region.votes
    if votes is None:
        return {}
    return {
        "down_votes": votes.down_votes,
        "vantages_reporting": votes.vantages_reporting,
        "quorum": votes.quorum,
        "split": votes.split,
        "vantage_verdicts": {name: health.value for name, health in votes.by_vantage},
    }


def _vantages_json(snapshot: EstateSnapshot) -> dict[str, Any]:
    if not snapshot.vantages:
        return {}
    leader = snapshot.leader
    return {
        # null: no agent leads (none holds the lease): nothing automates nor pages.
        "leader": None
        if leader is None
        else {"vantage": leader.vantage, "since": iso_utc(leader.since), "term": leader.term},
        "vantages": [
            {
                "name": v.name,
                "last_seen": iso_utc(v.last_seen),
                "age_seconds": round(v.age_seconds, 1),
                "cut_off": v.cut_off,
                "stale": v.stale,
            }
            for v in snapshot.vantages
        ],
    }


def _maintenance_json(window: MaintenanceWindow | None) -> dict[str, Any] | None:
    if window is None:
        return None
    return {
        "id": window.id,
        "until": iso_utc(window.until),
        "reason": window.reason,
        "by": window.by,
        "starts_at": iso_utc(window.starts_at),
    }


def report_json(snapshot: EstateSnapshot, group_by: Sequence[str] = ()) -> dict[str, Any]:
    """`group_by` ([alerts] group_by): the alerts' groups, too, under "groups"."""
    result = verdict(snapshot)
    authority = snapshot.authority
    return {
        "estate": snapshot.estate,
        "generated_at": iso_utc(snapshot.generated_at),
        "status": result.status.name,
        "summary": result.first_line,
        "topology": snapshot.topology.value,
        "active_region": snapshot.active_region,
        "authority": {
            "source": authority.source,
            "agreeing": list(authority.agreeing),
            "disagreeing": {store: active for store, active in authority.disagreeing},
            "unreadable": list(authority.unreadable),
        },
        "cut_off": snapshot.cut_off,
        "estate_outage": snapshot.estate_outage,
        "regions": [
            {
                "id": r.id,
                "name": r.name,
                "role": r.role.value,
                "health": r.health.value,
                "active": r.is_active,
                "store": {
                    "reachable": r.store.reachable,
                    "active": r.store.flag.active if r.store.flag else None,
                    "error": r.store.error,
                },
                "checks": [_check_json(c) for c in r.checks],
                "mta": _mta_json(snapshot, r.id),
                "smtp": [_smtp_json(p) for p in r.smtp],
                "canary": [
                    c.as_json(snapshot.generated_at) for c in snapshot.canary if c.region == r.id
                ],
                **_votes_json(r),
                "maintenance": _maintenance_json(r.maintenance),
            }
            for r in snapshot.regions
        ],
        **_vantages_json(snapshot),
        "replication": [_link_json(link) for link in snapshot.replication],
        "suppression": [
            {
                "source": pair.source,
                "target": pair.target,
                "list": pair.list,
                "unsynced": pair.unsynced,
                "oldest_unsynced_age_seconds": pair.oldest_unsynced_age_seconds,
                "truncated": pair.truncated,
                "error": pair.error,
            }
            for pair in (snapshot.suppression.pairs if snapshot.suppression else ())
        ],
        "deliverability": snapshot.deliverability.as_json() if snapshot.deliverability else None,
        "dns": {
            "records": [
                {
                    "name": v.sample.name,
                    "type": v.sample.rtype.value,
                    "resolver": v.sample.resolver,
                    "answers": list(v.sample.answers),
                    "ttl": v.sample.ttl,
                    "region": v.region,
                    "unexpected": list(v.unexpected),
                    "error": None if v.sample.error is None else str(v.sample.error),
                }
                for v in snapshot.dns
            ],
            "consensus": [
                {"name": c.name, "type": c.rtype.value, "region": c.region, "share": c.share}
                for c in snapshot.consensus
            ],
        },
        "email_auth": [
            {
                "region": a.region,
                "spf": {"ok": a.spf.ok, "reason": a.spf.reason, "warning": a.spf.warning or None},
                "dkim": {"ok": a.dkim.ok, "reason": a.dkim.reason},
                "dmarc": {"ok": a.dmarc.ok, "reason": a.dmarc.reason, "policy": a.dmarc.policy},
                "ptr": {"ok": a.ptr.ok, "reason": a.ptr.reason, "ips": [p.ip for p in a.ptr.ips]},
            }
            for a in snapshot.email_auth
        ],
        "dnsbl": [
            {
                "ip": d.ip,
                "region": d.region,
                "zone": d.zone,
                "listed": d.listed,
                "code": d.code,
                "meaning": d.meaning,
            }
            for d in snapshot.dnsbl
        ],
        "mta_sts": _mta_sts_json(snapshot),
        "alerts": [
            {
                "id": a.id,
                "key": a.key,
                "rule": a.rule,
                "severity": a.severity.value,
                "state": a.state.value,
                "region": a.region,
                "summary": a.summary,
                "since": iso_utc(a.since),
                # In a maintenance window: it paged no one.
                "maintenance": a.maintenance is not None,
                "next_step": next_step(a, Interface.CLI),
            }
            for a in snapshot.alerts
        ],
        "groups": [
            {
                "key": g.key,
                "labels": dict(g.labels),
                "severity": g.severity.value,
                "title": g.title(),
                "members": [m.id for m in g.members],
                "next_step": g.next_step(Interface.CLI),
            }
            for g in group_alerts(snapshot.alerts, group_by)
        ],
    }


def report_text(snapshot: EstateSnapshot, limits: PerfLimits | None = None) -> str:
    first = verdict(snapshot).first_line
    if limits is not None:
        first += " | " + " ".join(str(datum) for datum in perf_data(snapshot, limits))
    lines = [first]  # the verdict escapes its own text
    lines.append(
        f"estate {snapshot.estate} ({snapshot.topology.value}), active region: "
        f"{snapshot.active_region or 'unknown'} [{snapshot.authority.source}]"
    )
    for vantage in snapshot.vantages:
        state = "stale" if vantage.stale else "cut off" if vantage.cut_off else "voting"
        lines.append(f"vantage {vantage.name}: {state}, reported {vantage.age_seconds:.0f} s ago")
    for region in snapshot.regions:
        mark = "*" if region.is_active else " "
        votes = ""
        if region.votes is not None:
            v = region.votes
            votes = (
                f"  (down from {v.down_votes} of {v.vantages_reporting} vantages, "
                f"quorum {v.quorum})"
            )
        line = f"{mark} {region.id:<6} {region.role.value:<9} {region.health.value}{votes}"
        if region.maintenance is not None:
            window = region.maintenance
            line += f"  (maintenance until {iso_utc(window.until)} by {window.by})"
        lines.append(line)
        for check in region.checks:
            last = check.last
            if last is None:
                detail = "no answer yet"
            elif last.ok:
                detail = f"HTTP {last.status} in {last.latency_ms or 0:.0f} ms"
            else:
                detail = str(last.error)
            lines.append(f"    {check.target.display_url}  {detail}")
        for probe in region.smtp:
            lines.append(f"    smtp {probe.target.display}  {_smtp_words(probe)}")
        for canary in snapshot.canary:
            if canary.region == region.id:
                lines.append(f"    canary {canary.words()}")
    return "\n".join([first, *(plugin_text(line) for line in lines[1:])])


def smtp_words(probe: SmtpStatus) -> str:
    """One SMTP probe's last result in a few words: "220, TLSv1.3, cert 80 d, 12 ms"."""
    return _smtp_words(probe)


def _smtp_words(probe: SmtpStatus) -> str:
    last = probe.last
    if last is None:
        return "no answer yet"
    if not last.ok:
        return str(last.error)
    parts = [str(last.banner_code)]
    if last.tls_version:
        parts.append(last.tls_version)
    if last.cert_days_left is not None:
        parts.append(f"cert {last.cert_days_left:.0f} d")
    parts.append(f"{sum(ms for _, ms in last.phase_ms):.0f} ms")
    return ", ".join(parts)
