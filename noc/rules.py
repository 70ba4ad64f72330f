"""Built-in alert rules: what is true now, as Conditions for the AlertBook.

Each rule has a name, a default severity and a default sustain window; `[alerts]`
in config may change the severity or window of a rule, or switch it off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from noc.alerts import Condition
from noc.model import (
    AutoMode,
    CanaryState,
    DeliverabilitySample,
    EstateSnapshot,
    Health,
    LinkState,
    LinkStatus,
    RegionStatus,
    Severity,
    SuppressionSample,
    mx_matches,
)

if TYPE_CHECKING:  # config imports this module's rule table
    from noc.config import AlertsConfig, NocConfig


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
        Rule(
            "region_degraded",
            Severity.WARNING,
            0,
            "some checks of a region are down, or fail part of their probes",
        ),
        Rule(
            "noc_cut_off",
            Severity.CRITICAL,
            0,
            "noc cannot reach anything: verdicts are last known",
        ),
        Rule(
            "estate_outage",
            Severity.CRITICAL,
            0,
            "every health check fails while noc reaches other sources (stores, DNS, metrics)",
        ),
        Rule("data_stale", Severity.WARNING, 0, "no poll result for two cycles"),
        Rule("split_brain", Severity.CRITICAL, 0, "region stores disagree on the active region"),
        Rule("active_unknown", Severity.WARNING, 30, "no failover flag store can be read"),
        Rule(
            "source_unreachable", Severity.WARNING, 30, "a store or metrics source cannot be read"
        ),
        Rule(
            "replication_lag", Severity.WARNING, 60, "lag over its threshold for the sustain window"
        ),
        Rule(
            "replication_link_down", Severity.CRITICAL, 60, "a replica's link to its source is down"
        ),
        Rule(
            "suppression_unsynced",
            Severity.CRITICAL,
            0,
            "a suppression entry older than the SLO has not reached a region",
        ),
        Rule(
            "complaint_rate",
            Severity.WARNING,
            0,
            "spam complaints over the warn rate (critical over the critical rate)",
        ),
        Rule("dns_hijack", Severity.CRITICAL, 0, "a record answers a value of no region"),
        Rule("dns_flag_mismatch", Severity.CRITICAL, 120, "DNS and the flag name other regions"),
        Rule("dns_disagree", Severity.WARNING, 300, "resolvers send a record to other regions"),
        Rule("dns_unknown", Severity.WARNING, 60, "a resolver gives no usable answer"),
        Rule("email_auth", Severity.WARNING, 0, "a region's mail would fail SPF/DKIM/DMARC/PTR"),
        Rule(
            "spf_fragile",
            Severity.WARNING,
            0,
            "SPF passes the region's IPs, but a receiver walking past the match gets permerror",
        ),
        Rule("dnsbl_listed", Severity.CRITICAL, 0, "a sending IP is on a blocklist"),
        Rule(
            "queue_backlog",
            Severity.WARNING,
            300,
            "a region's mail queue is deep, or its oldest deferred message old, for a while",
        ),
        Rule("rejections", Severity.WARNING, 0, "a region rejects mail (4xx or 5xx) over its rate"),
        Rule(
            "mta_sts_mismatch",
            Severity.WARNING,
            0,
            "a live MX is outside the MTA-STS policy (critical when the policy enforces)",
        ),
        Rule(
            "automated_failover",
            Severity.CRITICAL,
            0,
            "noc failed over by itself: validate, then fail back by hand (P re-arms it)",
        ),
        Rule(
            "smtp_down",
            Severity.CRITICAL,
            0,
            "every SMTP probe of a region fails: down for mail, whatever its HTTP checks say",
        ),
        Rule(
            "tls_broken",
            Severity.CRITICAL,
            0,
            "STARTTLS not offered where required, or the TLS handshake or certificate fails",
        ),
        Rule(
            "cert_expiry",
            Severity.WARNING,
            0,
            "a certificate (SMTP or HTTPS) expires within cert_warn_days (critical within "
            "cert_crit_days)",
        ),
        Rule(
            "canary_lost",
            Severity.CRITICAL,
            0,
            "a canary message through a region did not reach a seed mailbox within its "
            "deadline, or could not be submitted",
        ),
        Rule(
            "canary_slow",
            Severity.WARNING,
            0,
            "a canary message took longer than slow_seconds to reach a seed mailbox",
        ),
        Rule(
            "canary_auth",
            Severity.WARNING,
            0,
            "a canary message arrived in spam, or failed SPF, DKIM or DMARC at the receiver",
        ),
        Rule(
            "drill_overdue",
            Severity.WARNING,
            0,
            "the quarterly failover drill is past its due date",
        ),
        Rule(
            "automation_held",
            Severity.WARNING,
            0,
            "the active region is down but a safety rule holds the automated failover",
        ),
    )
}


def _degraded_words(region: RegionStatus) -> str:
    """ "1/3 checks down", "1/3 checks flapping (3 of the last 6 probes failed)"."""
    total = len(region.checks)
    parts = []
    if region.failing_checks:
        parts.append(f"{region.failing_checks}/{total} checks down")
    partial = [c for c in region.checks if c.health is Health.DEGRADED]
    if partial:
        worst = max(partial, key=lambda c: c.recent_failures)
        how = "flapping" if any(c.flapping for c in partial) else "failing probes"
        parts.append(
            f"{len(partial)}/{total} checks {how} ({worst.recent_failures} of the last "
            f"{worst.recent_probes} probes failed)"
        )
    return "; ".join(parts)


def estate_conditions(snapshot: EstateSnapshot) -> Iterator[Condition]:
    """Conditions about health, reachability and authority, before overrides."""
    for region in snapshot.regions:
        if region.health is Health.DOWN:
            yield _condition("region_down", region.id, f"{region.id} down: every check failing")
        elif region.health is Health.DEGRADED:
            yield _condition(
                "region_degraded",
                region.id,
                f"{region.id} degraded: {_degraded_words(region)}",
                value=region.failing_checks + region.degraded_checks,
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
    elif snapshot.estate_outage:
        yield _condition(
            "estate_outage",
            None,
            "every health check is failing while noc reaches other sources: an estate-wide "
            "outage, not noc cut off",
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
    automation = snapshot.automation
    if automation is not None and automation.mode is AutoMode.FIRED:
        yield _condition("automated_failover", None, f"automated failover: {automation.detail}")
    elif automation is not None and automation.mode is AutoMode.HELD:
        yield _condition("automation_held", None, f"automated failover held: {automation.detail}")
    if snapshot.drill is not None and snapshot.drill.overdue:
        yield _condition("drill_overdue", None, snapshot.drill.text())


def mail_conditions(snapshot: EstateSnapshot, config: NocConfig) -> Iterator[Condition]:
    """Conditions about the SMTP probes and the certificates of SMTP and HTTPS."""
    warn_days, crit_days = config.health.cert_warn_days, config.health.cert_crit_days
    for region in snapshot.regions:
        probes = region.smtp
        if probes and all(p.health is Health.DOWN for p in probes):
            first = next((p for p in probes if p.last and p.last.error), None)
            why = f" ({first.target.display}: {first.last.error})" if first and first.last else ""
            yield _condition(
                "smtp_down", region.id,
                f"{region.id} down for mail: every SMTP probe failing{why}",
                value=len(probes),
            )  # fmt: skip
        for probe in probes:
            last = probe.last
            if (
                last is not None
                and last.tls_broken
                and probe.consecutive_failures >= probe.target.failure_threshold
            ):
                yield _condition(
                    "tls_broken", region.id,
                    f"{region.id} TLS broken on {probe.target.display} ({probe.target.tls_name}): "
                    f"{last.error}",
                    cid=f"tls_broken:{probe.target.check_id}",
                )  # fmt: skip
            if last is not None and last.cert_days_left is not None:
                yield from _expiry(
                    region.id, f"SMTP {probe.target.display}", probe.target.check_id,
                    last.cert_days_left, warn_days, crit_days,
                )  # fmt: skip
        for check in region.checks:
            if check.last is not None and check.last.cert_days_left is not None:
                yield from _expiry(
                    region.id, f"HTTPS {check.target.display_url}", check.target.check_id,
                    check.last.cert_days_left, warn_days, crit_days,
                )  # fmt: skip


def _expiry(
    region: str, what: str, check_id: str, days: float, warn_days: float, crit_days: float
) -> Iterator[Condition]:
    if days >= warn_days:
        return
    critical = days < crit_days
    when = f"expired {-days:.0f} days ago" if days < 0 else f"expires in {days:.0f} days"
    limit = crit_days if critical else warn_days
    condition = _condition(
        "cert_expiry", region, f"{region} certificate of {what} {when} (< {limit:g} days)",
        value=days, cid=f"cert_expiry:{check_id}",
    )  # fmt: skip
    yield replace(condition, severity=Severity.CRITICAL) if critical else condition


def data_conditions(snapshot: EstateSnapshot, config: NocConfig) -> Iterator[Condition]:
    """Conditions about replication, suppression sync and deliverability."""
    yield from _replication(snapshot.replication)
    if snapshot.suppression is not None:
        yield from _suppression(snapshot.suppression, config.suppression.slo_seconds)
    if snapshot.deliverability is not None:
        yield from _complaints(snapshot.deliverability, config)


def _replication(links: Iterable[LinkStatus]) -> Iterator[Condition]:
    for link in links:
        sample, spec = link.last, link.spec
        if sample is None:
            continue
        name = f"{spec.data_class} {spec.source}→{spec.target}"
        lag = sample.lag_seconds
        if sample.link is LinkState.DOWN:
            floor = f", lag at least {lag:.0f} s and growing" if lag is not None else ""
            yield _condition(
                "replication_link_down", spec.target, f"replication {name}: link down{floor}",
                value=lag, cid=f"replication_link_down:{link.id}", for_seconds=spec.sustain_seconds,
            )  # fmt: skip
        elif lag is not None and lag > spec.threshold_seconds:
            yield _condition(
                "replication_lag", spec.target,
                f"replication lag {name} {lag:.0f} s (> {spec.threshold_seconds:.0f} s)",
                value=lag, cid=f"replication_lag:{link.id}", for_seconds=spec.sustain_seconds,
            )  # fmt: skip
        elif sample.error and lag is None:
            yield _condition(
                "source_unreachable", spec.target, f"replication {name}: {sample.error}",
                cid=f"source_unreachable:replication:{link.id}",
            )  # fmt: skip


def _suppression(sample: SuppressionSample, slo: float) -> Iterator[Condition]:
    for pair in sample.pairs:
        age = pair.oldest_unsynced_age_seconds
        if age is not None and age > slo:
            yield _condition(
                "suppression_unsynced", pair.target,
                f"suppression {pair.list} {pair.source}→{pair.target}: {pair.unsynced} unsynced, "
                f"oldest {age:.0f} s (SLO {slo:.0f} s)",
                value=age, cid=f"suppression_unsynced:{pair.list}:{pair.source}>{pair.target}",
            )  # fmt: skip
    for count in sample.counts:
        if count.error:
            yield _condition(
                "source_unreachable", count.region,
                f"suppression store {count.region}: {count.error}",
                cid=f"source_unreachable:suppression:{count.region}",
            )  # fmt: skip


def _complaints(sample: DeliverabilitySample, config: NocConfig) -> Iterator[Condition]:
    settings = config.deliverability
    scopes = [(None, sample.estate), *((r.region, r.counts) for r in sample.regions)]
    for region, counts in scopes:
        rate = None if counts is None else counts.complaint_rate
        if rate is None or rate <= settings.complaint_warn_rate:
            continue
        critical = rate > settings.complaint_critical_rate
        limit = settings.complaint_critical_rate if critical else settings.complaint_warn_rate
        where = region or "estate"
        condition = _condition(
            "complaint_rate", region,
            f"complaint rate {where} {rate:.2%} (> {limit:.1%}) over {sample.window_minutes} min",
            value=rate, cid=f"complaint_rate:{where}",
        )  # fmt: skip
        yield replace(condition, severity=Severity.CRITICAL) if critical else condition


def dns_conditions(snapshot: EstateSnapshot, config: NocConfig) -> Iterator[Condition]:
    """Conditions about DNS answers, authentication alignment and blocklists."""
    for view in snapshot.dns:
        sample = view.sample
        record = f"{sample.name} {sample.rtype.value}"
        if view.unexpected and sample.error is None:
            yield _condition(
                "dns_hijack", None,
                # Resolver and value first: one alert per resolver, and at 80 columns
                # only the head of the summary shows; the record is the same in each.
                f"DNS hijack? {sample.resolver} answers {', '.join(view.unexpected)} "
                f"for {record} (no region has it)",
                cid=f"dns_hijack:{sample.name}:{sample.rtype.value}:{sample.resolver}",
            )  # fmt: skip
        elif sample.error is not None and not sample.error.absent:
            yield _condition(
                "dns_unknown", None, f"{record} from {sample.resolver}: {sample.error}",
                cid=f"dns_unknown:{sample.name}:{sample.rtype.value}:{sample.resolver}",
            )  # fmt: skip
    for consensus in snapshot.consensus:
        record = f"{consensus.name} {consensus.rtype.value}"
        active = snapshot.active_region
        if (
            consensus.region
            and active
            and consensus.region != active
            and snapshot.topology.value == "active-passive"
        ):
            yield _condition(
                "dns_flag_mismatch", consensus.region,
                f"split-brain risk: flag says {active}, DNS {record} → {consensus.region} "
                f"on {consensus.share} resolvers",
                cid=f"dns_flag_mismatch:{consensus.name}:{consensus.rtype.value}",
            )  # fmt: skip
        if consensus.others:
            elsewhere = ", ".join(
                f"{resolver} → {region or 'no region'}"
                + (f" (TTL {ttl}s)" if ttl is not None else "")
                for resolver, region, ttl in consensus.others
            )
            yield _condition(
                "dns_disagree", None,
                f"{record} → {consensus.region or 'no region'} on {consensus.share}; {elsewhere}",
                cid=f"dns_disagree:{consensus.name}:{consensus.rtype.value}",
                for_seconds=config.dns.disagree_sustain_seconds,
            )  # fmt: skip
    for auth in snapshot.email_auth:
        failed = [
            (name, check.reason)
            for name, check in (
                ("SPF", auth.spf),
                ("DKIM", auth.dkim),
                ("DMARC", auth.dmarc),
                ("PTR", auth.ptr),
            )
            if check.ok is False
        ]
        if failed:
            yield _condition(
                "email_auth", auth.region,
                f"mail from {auth.region} would fail {', '.join(n for n, _ in failed)}: "
                + "; ".join(f"{n}: {reason}" for n, reason in failed),
                cid=f"email_auth:{auth.region}",
            )  # fmt: skip
        if auth.spf.ok and auth.spf.warning:
            yield _condition(
                "spf_fragile", auth.region, f"SPF for {auth.region}: {auth.spf.warning}",
                cid=f"spf_fragile:{auth.region}",
            )  # fmt: skip
    for listing in snapshot.dnsbl:
        if listing.listed:
            yield _condition(
                "dnsbl_listed", listing.region,
                f"{listing.region} degraded for sending: {listing.ip} listed in {listing.zone} "
                f"({listing.meaning})",
                cid=f"dnsbl_listed:{listing.ip}:{listing.zone}",
            )  # fmt: skip


def mta_conditions(snapshot: EstateSnapshot, config: NocConfig) -> Iterator[Condition]:
    """Conditions about mail queues, rejections and the MTA-STS policy."""
    for sample in snapshot.mta:
        region = config.region(sample.region)
        if region is None or region.mta is None:
            continue
        limits = region.mta
        if sample.error and sample.queue_deferred is None:
            yield _condition(
                "source_unreachable", sample.region, f"MTA {sample.region}: {sample.error}",
                cid=f"source_unreachable:mta:{sample.region}",
            )  # fmt: skip
        depth = sum(q or 0 for q in (sample.queue_active, sample.queue_deferred, sample.queue_hold))
        oldest = sample.oldest_deferred_seconds
        over = []
        if depth > limits.queue_depth_threshold:
            over.append(
                f"{depth} queued (> {limits.queue_depth_threshold}: active "
                f"{sample.queue_active}, deferred {sample.queue_deferred}, "
                f"hold {sample.queue_hold})"
            )
        if oldest is not None and oldest > limits.oldest_deferred_threshold_seconds:
            at_least = "at least " if sample.oldest_is_lower_bound else ""
            over.append(
                f"oldest deferred {at_least}{oldest:.0f} s "
                f"(> {limits.oldest_deferred_threshold_seconds:g} s)"
            )
        if over:
            yield _condition(
                "queue_backlog", sample.region, f"mail queue {sample.region}: " + "; ".join(over),
                value=float(depth), for_seconds=limits.backlog_sustain_seconds,
            )  # fmt: skip
        for cls, rate in sorted((sample.rejections_per_minute or {}).items()):
            if rate > limits.rejections_per_minute_threshold:
                yield _condition(
                    "rejections", sample.region,
                    f"{sample.region} rejects {rate:.0f} {cls}/min "
                    f"(> {limits.rejections_per_minute_threshold:g}/min)",
                    value=rate, cid=f"rejections:{sample.region}:{cls}",
                )  # fmt: skip
    policy = snapshot.mta_sts
    if policy is None or policy.error is not None or policy.mode in (None, "none"):
        return
    outside = [
        host for host in policy.live_mx if not any(mx_matches(p, host) for p in policy.mx_patterns)
    ]
    if outside:
        condition = _condition(
            "mta_sts_mismatch", None,
            f"MX {', '.join(outside)} of {policy.domain} outside its MTA-STS policy "
            f"(mode {policy.mode}, mx: {', '.join(policy.mx_patterns) or 'none'}): "
            + ("senders that enforce it refuse to deliver there"
               if policy.mode == "enforce" else "reported by senders, not yet refused"),
            cid=f"mta_sts_mismatch:{policy.domain}",
        )  # fmt: skip
        enforce = policy.mode == "enforce"
        yield replace(condition, severity=Severity.CRITICAL) if enforce else condition


def canary_conditions(snapshot: EstateSnapshot, config: NocConfig) -> Iterator[Condition]:
    """Conditions about canary messages: lost, slow, or arrived but not trusted."""
    seeds = {seed.name: seed for seed in config.canary}
    for sample in snapshot.canary:
        seed = seeds.get(sample.seed)
        if seed is None:
            continue
        where = f"{sample.region}→{sample.seed}"
        cid = f":{sample.region}:{sample.seed}"
        if sample.state in (CanaryState.LOST, CanaryState.FAILED):
            what = "lost" if sample.state is CanaryState.LOST else "not sent"
            yield _condition(
                "canary_lost", sample.region, f"canary {where} {what}: {sample.error}",
                cid="canary_lost" + cid,
            )  # fmt: skip
        elif sample.state is CanaryState.UNREAD:
            yield _condition(
                "source_unreachable", sample.region, f"seed mailbox {sample.seed}: {sample.error}",
                cid=f"source_unreachable:canary{cid}",
            )  # fmt: skip
        elif sample.state is CanaryState.ARRIVED:
            latency = sample.latency_seconds or 0.0
            if latency > seed.slow_seconds:
                yield _condition(
                    "canary_slow", sample.region,
                    f"canary {where} took {latency:.0f} s (> {seed.slow_seconds:g} s)",
                    value=latency, cid="canary_slow" + cid,
                )  # fmt: skip
            failed = sample.auth.failed if sample.auth is not None else ("SPF", "DKIM", "DMARC")
            problems = [f"in spam ({sample.mailbox})"] if sample.folder == "spam" else []
            if failed:
                problems.append("failed " + "/".join(failed))
            if problems:
                yield _condition(
                    "canary_auth", sample.region,
                    f"canary {where} arrived {', '.join(problems)}"
                    + (f" from {sample.sending_ip}" if sample.sending_ip else ""),
                    cid="canary_auth" + cid,
                )  # fmt: skip


def _condition(
    rule: str,
    region: str | None,
    summary: str,
    *,
    value: float | None = None,
    cid: str = "",
    for_seconds: float | None = None,
) -> Condition:
    spec = RULES[rule]
    return Condition(
        id=cid or (f"{rule}:{region}" if region else rule),
        rule=rule,
        severity=spec.severity,
        region=region,
        summary=summary,
        value=value,
        for_seconds=spec.for_seconds if for_seconds is None else for_seconds,
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
                hint=override.hint or condition.hint,
            )
