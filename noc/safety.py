"""Safety rules and blast radius of an action that moves traffic: pure, from a snapshot.

Route 53 ARC calls these safety rules, orchestrator recovery blocks, Patroni lag
limits: named checks evaluated in the plan and shown before the confirming key
takes effect. A rule that a break-glass override may bypass is `forceable`; the
lock, the DNS key and "never zero active" are not, since bypassing them cannot
make the action safe, only broken.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from ipaddress import ip_address

from noc.config import NocConfig, RegionConfig
from noc.model import (
    ActionKind,
    ActuatorFacts,
    BlastRadius,
    DataRisk,
    EstateSnapshot,
    FailoverFlag,
    FailoverRecordType,
    Health,
    LinkState,
    Preflight,
    RecordChange,
    Remedy,
    RRsetState,
    SmtpTls,
    mx_matches,
)
from noc.rrset_move import belongs, host_key, moved_values
from noc_collectors.dns_records import answer_target

GMAIL_COMPLAINT_LIMIT = 0.003
_DEFAULT_MX_PREFERENCE = 10


def current_flag(snapshot: EstateSnapshot) -> FailoverFlag | None:
    """The flag most stores agree on: what the last failover wrote. Its cooldown ack
    counts once most of the stores holding that flag carry it."""
    flags = [
        r.store.flag
        for r in snapshot.regions
        if r.store.flag is not None and r.store.flag.active == snapshot.active_region
    ]
    if not flags:
        return None
    action, _ = Counter(f.action_id for f in flags).most_common(1)[0]
    same = [f for f in flags if f.action_id == action]
    acks = [f.cooldown_ack for f in same if f.cooldown_ack]
    latest = max(same, key=lambda f: f.at)
    return replace(latest, cooldown_ack=acks[0] if len(acks) > len(same) / 2 else "")


def record_changes(
    config: NocConfig,
    snapshot: EstateSnapshot,
    kind: ActionKind,
    target: str,
    rrsets: Sequence[RRsetState],
) -> tuple[tuple[RecordChange, ...], list[Preflight]]:
    """The DNS changes of an action, and the checks they fail or warn about.

    A failover moves only the source region's values (noc.rrset_move says how);
    every other value is kept and shown as kept. Failing: an RRset that cannot be
    read, or that would lose its last region value. Named: values that belong to no
    region (kept), and aliases (a CNAME is never moved).
    """
    region = config.region(target)
    changes: list[RecordChange] = []
    problems: list[Preflight] = []
    if region is None:
        return (), problems
    source = config.region(snapshot.active_region) if snapshot.active_region else None
    strangers: list[str] = []
    for rrset in rrsets:
        label = f"{rrset.name} {rrset.rtype.value}"
        if rrset.error is not None:
            problems.append(Preflight("DNS records read", False, f"{label}: {rrset.error}"))
            continue
        if rrset.cname is not None:
            leaving = source if kind.moves_flag else region if kind is ActionKind.DRAIN else None
            problems.append(_alias_check(rrset, leaving))
            continue
        foreign = tuple(v for v in rrset.values if not _of_a_region(config, rrset.rtype, v))
        strangers += [f"{_absolute(rrset.name)} {rrset.rtype.value} {v}" for v in foreign]
        new = _new_values(kind, region, source, rrset)
        # A failover that would leave only values of no region (the target has none
        # for this type) moves the traffic to a stranger; a drain's last region is
        # the "a healthy region remains" rule's, which an override may bypass.
        had_region = any(_of_a_region(config, rrset.rtype, v) for v in rrset.values)
        strays_only = had_region and not any(_of_a_region(config, rrset.rtype, v) for v in new)
        if not new or (kind.moves_flag and strays_only):
            left = "no value" if not new else f"only {', '.join(new)}, of no region"
            problems.append(
                Preflight(
                    "never zero active",
                    False,
                    f"{label} would be left with {left}"
                    + (f" ({target} has none for {rrset.rtype.value})" if kind.moves_flag else ""),
                )
            )
            continue
        changes.append(
            RecordChange(
                rrset.name,
                rrset.rtype,
                rrset.values,
                new,
                rrset.ttl or 0,
                _remaining_ttl(snapshot, rrset),
                foreign=foreign,
            )
        )
    if strangers:
        problems.append(_strangers_check(strangers))
    return tuple(changes), problems


def _strangers_check(strangers: Sequence[str]) -> Preflight:
    """Values of no region: named, kept, and no reason to refuse.

    noc cannot tell a third party's record from a hijack: both are a value no region
    owns. Deleting it would destroy a third party's record and the evidence of a
    hijack; keeping it silently would hide a hijack; refusing would hold the traffic
    on a failing region hostage to a finding the failover neither causes nor worsens
    (the value stays exactly where it is). So the plan names each one, the change
    leaves it in place, and the operator decides (dns_hijack alerts on it too).
    """
    return Preflight(
        "DNS values of no region",
        False,
        "; ".join(f"{s} belongs to no region" for s in strangers)
        + ": left in place (a third party's record, or a hijack: check it)",
        blocking=False,
    )


def _alias_check(rrset: RRsetState, leaving: RegionConfig | None) -> Preflight:
    """A failover name that is a CNAME: reported as such, never rewritten.

    Replacing an alias with addresses would change what the zone's owner chose; noc
    leaves it alone. When the chain ends at the region being left, traffic through
    the name stays there: a failing rule the operator may override (the alias's
    target may be moved by other means, a hook say); otherwise a warning.
    """
    name = "CNAME at a failover name"
    text = f"{_absolute(rrset.name)} is a CNAME to {rrset.cname}: noc does not move CNAMEs"
    own = _region_values(leaving, rrset) if leaving is not None else []
    stuck = [v for v in rrset.values if belongs(rrset.rtype, v, own)] if own else []
    if stuck and leaving is not None:
        return Preflight(
            name,
            False,
            f"{text}; it ends at {', '.join(stuck)} of {leaving.id}, where its traffic stays",
            forceable=True,
        )
    ends = f"; it ends at {', '.join(rrset.values)}" if rrset.values else ""
    return Preflight(name, False, text + ends, blocking=False)


def _of_a_region(config: NocConfig, rtype: FailoverRecordType, value: str) -> bool:
    return any(belongs(rtype, value, _type_values(r, rtype)) for r in config.regions)


def _absolute(name: str) -> str:
    """A record name as the plan names it: with its final dot."""
    return name.strip().rstrip(".") + "."


def _type_values(region: RegionConfig, rtype: FailoverRecordType) -> list[str]:
    """A region's values for one record type: addresses, or its exchange's name."""
    match rtype:
        case FailoverRecordType.A | FailoverRecordType.AAAA:
            version = 4 if rtype is FailoverRecordType.A else 6
            return [str(ip) for ip in region.service_ips if ip.version == version]
        case FailoverRecordType.MX if region.mx_host:
            return [host_key(region.mx_host)]
    return []


def _new_values(
    kind: ActionKind, region: RegionConfig, source: RegionConfig | None, rrset: RRsetState
) -> tuple[str, ...]:
    if kind.moves_flag:
        leaving = _type_values(source, rrset.rtype) if source is not None else []
        return moved_values(rrset.rtype, rrset.values, leaving, _type_values(region, rrset.rtype))
    own = _region_values(region, rrset)
    if kind is ActionKind.DRAIN:
        keep = [v for v in rrset.values if answer_target(v) not in {answer_target(o) for o in own}]
        return tuple(sorted(keep, key=_sort_key))
    # RESTORE
    merged = {answer_target(v): v for v in rrset.values} | {answer_target(o): o for o in own}
    return tuple(sorted(merged.values(), key=_sort_key))


def _region_values(region: RegionConfig, rrset: RRsetState) -> list[str]:
    match rrset.rtype:
        case FailoverRecordType.A | FailoverRecordType.AAAA:
            version = 4 if rrset.rtype is FailoverRecordType.A else 6
            return [str(ip) for ip in region.service_ips if ip.version == version]
        case FailoverRecordType.MX if region.mx_host:
            # Keep the record's best preference: only the exchange moves.
            preferences = [int(v.split()[0]) for v in rrset.values if v.split()[0].isdigit()]
            preference = min(preferences, default=_DEFAULT_MX_PREFERENCE)
            return [f"{preference} {region.mx_host.lower().rstrip('.')}"]
    return []


def _sort_key(value: str) -> tuple[int, str]:
    first, _, rest = value.partition(" ")
    if rest and first.isdigit():
        return int(first), rest
    try:
        address = ip_address(value)
    except ValueError:
        return 0, value
    return 0, f"{address.version}:{int(address):040d}"


def _remaining_ttl(snapshot: EstateSnapshot, rrset: RRsetState) -> int | None:
    ttls = [
        view.sample.ttl
        for view in snapshot.dns
        if view.sample.ttl is not None
        and view.sample.rtype is rrset.rtype
        and view.sample.name.lower().rstrip(".") == rrset.name.lower().rstrip(".")
    ]
    return max(ttls, default=None)


def safety_rules(
    snapshot: EstateSnapshot,
    config: NocConfig,
    kind: ActionKind,
    target: str,
    facts: ActuatorFacts,
    now: datetime,
) -> tuple[list[Preflight], BlastRadius]:
    """The named rules of an action toward `target`, and what it puts at risk."""
    checks: list[Preflight] = []
    source = snapshot.active_region
    moves_data = kind.moves_flag
    risks = _data_at_risk(snapshot, config, source, target) if moves_data else ()
    if moves_data:
        checks.append(_rpo_rule(risks, kind))
    unsynced = _suppression_rule(snapshot, config, target, checks) if moves_data else None
    sending: tuple[tuple[str, str], ...] = ()
    if kind is not ActionKind.DRAIN:
        # A drained region stops taking traffic: its reputation is no reason to keep it.
        sending = _sending_rule(snapshot, config, target, checks)
        _spf_rule(snapshot, config, target, checks)
        _mta_sts_rules(snapshot, config, target, checks)
    if kind is ActionKind.FAILBACK:
        _failback_queue_rule(snapshot, config, target, checks)
    _maintenance_rule(snapshot, kind, source, target, checks)
    checks.append(_cooldown_rule(snapshot, config, now))
    checks.append(_lock_rule(facts, config))
    blast = BlastRadius(
        sending_ips=sending,
        complaint_rate=_complaint_rate(snapshot, target),
        complaint_limit=GMAIL_COMPLAINT_LIMIT,
        data_at_risk=risks,
        unsynced_suppression=unsynced,
        source_queue=snapshot.mta_of(source) if moves_data else None,
    )
    return checks, blast


def _data_at_risk(
    snapshot: EstateSnapshot, config: NocConfig, source: str | None, target: str
) -> tuple[DataRisk, ...]:
    rpo = {link.link_id: link.rpo_seconds for link in config.replication}
    source_status = snapshot.region(source) if source else None
    source_down = source_status is not None and source_status.health is Health.DOWN
    risks = []
    for link in snapshot.replication:
        if link.spec.target != target or (source is not None and link.spec.source != source):
            continue
        last = link.last
        lag = None if last is None else last.lag_seconds
        is_floor = last is not None and last.lag_is_floor
        if is_floor and source_down:
            # A dead source writes nothing more: what is lost is the lag when the link
            # went down, not a floor that keeps growing with the outage.
            up = [p for p in link.history if p.link is LinkState.UP and p.lag_seconds is not None]
            lag, is_floor = (up[-1].lag_seconds, False) if up else (None, False)
        risks.append(
            DataRisk(
                data_class=link.spec.data_class,
                link=link.id,
                lag_seconds=lag,
                rpo_seconds=rpo.get(link.id) or config.estate.rpo_seconds,
                is_floor=is_floor,
            )
        )
    return tuple(risks)


def _rpo_rule(risks: Sequence[DataRisk], kind: ActionKind) -> Preflight:
    name = "replication within RPO"
    if not risks:
        return Preflight(name, True, "no replication link toward the target is configured")
    over = [r for r in risks if not r.within]
    detail = "; ".join(r.describe() for r in (over or risks))
    if kind is ActionKind.SWITCHOVER:
        # A switchover waits for the lag to drain before it flips.
        return Preflight(name, True, f"waits for lag to drain to 0: {detail}", blocking=False)
    return Preflight(name, not over, detail, forceable=True)


def _suppression_rule(
    snapshot: EstateSnapshot, config: NocConfig, target: str, checks: list[Preflight]
) -> int | None:
    name = "suppression synced"
    sample = snapshot.suppression
    if not config.suppression.enabled:
        return None
    if sample is None:
        checks.append(Preflight(name, False, "not measured yet", blocking=False))
        return None
    pairs = [p for p in sample.pairs if p.target == target]
    unknown = [p for p in pairs if p.unsynced is None]
    if unknown:
        # Usually the source's store is down with the region being failed away from:
        # unknowable then, and no reason to refuse; the operator syncs once it is back.
        sources = sorted({p.source for p in unknown})
        checks.append(
            Preflight(
                name,
                False,
                f"unknown: {', '.join(sources)} cannot be read ({unknown[0].error}); "
                f"entries suppressed there lately may be missing in {target}: sync when it is back",
                blocking=False,
            )
        )
        return None
    total = sum(p.unsynced or 0 for p in pairs)
    slo = config.suppression.slo_seconds
    ages = [p.oldest_unsynced_age_seconds for p in pairs if p.oldest_unsynced_age_seconds]
    oldest = max(ages, default=None)
    if oldest is not None and oldest > slo:
        checks.append(
            Preflight(
                name,
                False,
                f"{total} suppressed address(es) missing in {target}, oldest {oldest:.0f} s "
                f"(SLO {slo:g} s): they would be mailed against their will; sync first (y)",
                forceable=True,
            )
        )
    else:
        within = f"{total} unsynced, all within the {slo:g} s SLO" if total else "in sync"
        checks.append(Preflight(name, True, within))
    return total


def _sending_rule(
    snapshot: EstateSnapshot, config: NocConfig, target: str, checks: list[Preflight]
) -> tuple[tuple[str, str], ...]:
    region = config.region(target)
    ips = [str(ip) for ip in region.sending_ips] if region else []
    if not ips or not config.email.dnsbl_zones:
        return tuple((ip, "not checked") for ip in ips)
    samples = [s for s in snapshot.dnsbl if s.region == target]
    states = []
    listed: list[str] = []
    unknown: list[str] = []
    for ip in ips:
        mine = [s for s in samples if s.ip == ip]
        hits = [f"{s.zone} ({s.meaning})" for s in mine if s.listed]
        if hits:
            listed.append(f"{ip} on {', '.join(hits)}")
            states.append((ip, "LISTED on " + ", ".join(hits)))
        elif not mine or any(s.listed is None for s in mine):
            unknown.append(ip)
            states.append((ip, "unknown" if mine else "not checked yet"))
        else:
            states.append((ip, "clean"))
    name = "sending IPs not blocklisted"
    if listed:
        checks.append(Preflight(name, False, "; ".join(listed), forceable=True))
    elif unknown:
        checks.append(Preflight(name, False, f"unknown for {', '.join(unknown)}", blocking=False))
    else:
        checks.append(Preflight(name, True, f"{len(ips)} IP(s) clean on every list"))
    return tuple(states)


def _spf_rule(
    snapshot: EstateSnapshot, config: NocConfig, target: str, checks: list[Preflight]
) -> None:
    if not config.email.domain:
        return
    name = "SPF covers the target"
    sample = next((s for s in snapshot.email_auth if s.region == target), None)
    if sample is None:
        checks.append(Preflight(name, False, "not checked yet", blocking=False))
    elif sample.spf.ok is None:
        checks.append(Preflight(name, False, f"unknown: {sample.spf.reason}", blocking=False))
    else:
        checks.append(Preflight(name, sample.spf.ok, sample.spf.reason, forceable=True))


def _mta_sts_rules(
    snapshot: EstateSnapshot, config: NocConfig, target: str, checks: list[Preflight]
) -> None:
    """The target's MX must be one senders that enforce MTA-STS or DANE deliver to:
    within the policy's mx patterns, and matching its TLSA records where they exist."""
    region = config.region(target)
    if not config.email.mta_sts or region is None or not region.mx_host:
        return
    host = region.mx_host.lower().rstrip(".")
    name = "MX in the MTA-STS policy"
    sample = snapshot.mta_sts
    if sample is None:
        checks.append(Preflight(name, False, "not checked yet", blocking=False))
        return
    if sample.error is not None:
        # Senders that cached the policy still enforce it: unknown, not a pass.
        checks.append(Preflight(name, False, f"unknown: {sample.error}", blocking=False))
    elif sample.policy_id is None or sample.mode is None:
        checks.append(Preflight(name, True, f"{sample.domain} publishes no MTA-STS policy"))
    elif any(mx_matches(p, host) for p in sample.mx_patterns) or sample.mode == "none":
        checks.append(
            Preflight(name, True, f"{host} matches mx: {', '.join(sample.mx_patterns) or '-'}")
        )
    else:
        outside = (
            f"{host} matches none of the policy's mx: {', '.join(sample.mx_patterns)} "
            f"(mode {sample.mode})"
        )
        if sample.mode == "enforce":
            checks.append(
                Preflight(
                    name,
                    False,
                    f"{outside}: senders that enforce MTA-STS will refuse to deliver to "
                    f"{target}; publish the policy with {host} first",
                    forceable=True,
                )
            )
        else:
            checks.append(
                Preflight(name, False, f"{outside}: reported, not refused", blocking=False)
            )
    if sample.error is None and sample.mode in ("enforce", "testing"):
        checks.append(_mx_certificate_rule(snapshot, target, host, sample.mode))
    tlsa = sample.tlsa_for(host)
    name = "MX certificate matches DANE TLSA"
    if tlsa is None or not tlsa.records:
        return
    if tlsa.matches is None:
        checks.append(Preflight(name, False, f"unknown: {tlsa.reason}", blocking=False))
    elif tlsa.matches:
        checks.append(Preflight(name, True, f"{host}: {tlsa.reason}"))
    else:
        checks.append(
            Preflight(
                name,
                False,
                f"{host}: {tlsa.reason}; senders that use DANE will refuse to deliver to {target}",
                forceable=True,
            )
        )


def _mx_certificate_rule(snapshot: EstateSnapshot, target: str, host: str, mode: str) -> Preflight:
    """Senders that apply MTA-STS verify the MX's certificate against the MX's name:
    judged from the target's own SMTP probes of that name ([[regions.smtp]] with
    `tls_name` = the MX host), which validate the chain and the name on every probe."""
    name = "MX certificate valid for its name"
    region = next((r for r in snapshot.regions if r.id == target), None)
    probes = [
        p
        for p in (region.smtp if region is not None else ())
        if p.target.tls_name.lower().rstrip(".") == host and p.target.tls is not SmtpTls.NONE
    ]
    if not probes:
        return Preflight(
            name, False,
            f"not probed: no [[regions.smtp]] of {target} with tls_name = \"{host}\"",
            blocking=False,
        )  # fmt: skip
    samples = [p.last for p in probes if p.last is not None]
    if not samples:
        return Preflight(name, False, f"{host}: not probed yet", blocking=False)
    good = next((s for s in samples if s.ok and s.tls_version and not s.tls_broken), None)
    if good is not None:
        left = "" if good.cert_days_left is None else f", {good.cert_days_left:.0f} days left"
        return Preflight(name, True, f"{host}: {good.tls_version}, chain and name valid{left}")
    broken = next((s for s in samples if s.tls_broken), None)
    if broken is None:  # no answer at all: nothing known of the certificate
        error = samples[0].error
        return Preflight(name, False, f"{host}: unknown ({error})", blocking=False)
    refusal = (
        f"{host}: {broken.error}; senders that enforce MTA-STS will refuse to deliver to {target}"
        if mode == "enforce"
        else f"{host}: {broken.error} (policy in testing: reported, not refused)"
    )
    return Preflight(name, False, refusal, blocking=mode == "enforce", forceable=mode == "enforce")


def mail_queue_drained(
    snapshot: EstateSnapshot, config: NocConfig, target: str
) -> tuple[bool, str]:
    """Whether the target's deferred queue is at most its failback threshold."""
    region = config.region(target)
    if region is None or region.mta is None:
        return True, f"no MTA metrics configured for {target}"
    limit = region.mta.failback_deferred_threshold
    sample = snapshot.mta_of(target)
    if sample is None or sample.queue_deferred is None:
        why = "not read" if sample is None else sample.error or "not read"
        return False, f"waiting: {target} deferred queue unknown ({why})"
    if sample.queue_deferred > limit:
        return False, f"waiting: {target} has {sample.queue_deferred} deferred (> {limit})"
    return True, f"{target} has {sample.queue_deferred} deferred (≤ {limit})"


def _failback_queue_rule(
    snapshot: EstateSnapshot, config: NocConfig, target: str, checks: list[Preflight]
) -> None:
    region = config.region(target)
    if region is None or region.mta is None:
        return
    drained, detail = mail_queue_drained(snapshot, config, target)
    limit = region.mta.failback_deferred_threshold
    text = detail if drained else f"{detail}; the failback waits for it to drain to {limit}"
    # A failback waits for the queue rather than refusing: shown, never blocking.
    checks.append(Preflight("target mail queue drained", drained, text, blocking=False))


def _maintenance_rule(
    snapshot: EstateSnapshot,
    kind: ActionKind,
    source: str | None,
    target: str,
    checks: list[Preflight],
) -> None:
    """A region in a maintenance window, named in the plan: moving traffic onto it is
    refused unless forced (it is being worked on); leaving it, or draining it, is what
    the window is for, and is only said. No window involved, no line."""
    name = "maintenance window"
    arriving = snapshot.region(target)
    window = arriving.maintenance if arriving is not None else None
    if window is not None:
        said = f"{target} is in maintenance until {window.until:%H:%M} UTC by {window.by}: "
        if kind is ActionKind.DRAIN:
            checks.append(Preflight(name, True, said + "draining it is what the window is for"))
        else:
            checks.append(
                Preflight(name, False, said + f"traffic would go to it ({window.reason})",
                          forceable=True)
            )  # fmt: skip
    leaving = snapshot.region(source) if source and source != target else None
    if leaving is not None and leaving.maintenance is not None:
        window = leaving.maintenance
        checks.append(
            Preflight(
                name,
                True,
                f"{source} (active) is in maintenance until {window.until:%H:%M} UTC by "
                f"{window.by} ({window.reason}); automated failover leaves it alone",
            )
        )


def cooldown_now(snapshot: EstateSnapshot, config: NocConfig) -> Preflight:
    """The cooldown rule as it stands now (for the ack: is there anything to ack?)."""
    return _cooldown_rule(snapshot, config, snapshot.generated_at)


def _cooldown_rule(snapshot: EstateSnapshot, config: NocConfig, now: datetime) -> Preflight:
    name = "cooldown"
    cooldown = config.failover.cooldown_seconds
    flag = current_flag(snapshot)
    at = _parse_time(flag.at) if flag is not None else None
    if flag is None or at is None or cooldown <= 0:
        return Preflight(name, True, "no recent failover recorded")
    age = (now - at).total_seconds()
    last = (
        f"last {flag.previous or '?'} -> {flag.active} {_ago(age)} ago by "
        f"{flag.operator or '?'} (action {flag.action_id or '?'})"
    )
    if age >= cooldown:
        return Preflight(name, True, f"{last}; cooldown {cooldown:g} s passed")
    if flag.cooldown_ack:
        return Preflight(name, True, f"{last}; cooldown cleared by {flag.cooldown_ack}")
    return Preflight(
        name,
        False,
        f"{last}; {_ago(cooldown - age)} of the {cooldown:g} s cooldown left",
        forceable=True,
        remedy=Remedy.ACK_COOLDOWN,
    )


def _lock_rule(facts: ActuatorFacts, config: NocConfig) -> Preflight:
    name = "failover lock"
    if facts.lock_holder is not None and facts.lock_stale:
        return Preflight(
            name, True, f"left by {facts.lock_holder.describe()}, which is dead: taken over"
        )
    if facts.lock_holder is not None:
        return Preflight(
            name,
            False,
            f"held by {facts.lock_holder.describe()}: another failover is running "
            f"(it expires by itself within {config.failover.lock_ttl_seconds:g} s)",
        )
    if facts.lock_error is not None:
        return Preflight(name, False, facts.lock_error, blocking=False)
    return Preflight(name, True, "free; taken on a majority of stores before any change")


def actuator_checks(
    config: NocConfig, chain: Iterable[str], facts: ActuatorFacts
) -> list[Preflight]:
    checks = []
    if "dns" in chain and config.failover.dns is not None:
        dns = config.failover.dns
        if facts.dns_key_error is None:
            detail = f"{dns.server} accepts key {dns.key_name} for {dns.zone}"
            checks.append(Preflight("DNS update key", True, detail))
        else:
            checks.append(Preflight("DNS update key", False, facts.dns_key_error))
    hooks = config.failover.hooks
    if hooks.pre:
        checks.append(Preflight("pre hook", True, f"runs {hooks.pre} first; non-zero aborts"))
    return checks


def target_health_rule(health: Health, target: str, kind: ActionKind) -> Preflight:
    if kind is ActionKind.DRAIN:
        return Preflight("target healthy", True, f"{target} is {health.value} (being drained)")
    return Preflight(
        "target healthy", health is Health.HEALTHY, f"{target} is {health.value}", forceable=True
    )


def _complaint_rate(snapshot: EstateSnapshot, target: str) -> float | None:
    sample = snapshot.deliverability
    if sample is None:
        return None
    region = next((r for r in sample.regions if r.region == target), None)
    return None if region is None or region.counts is None else region.counts.complaint_rate


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)  # 3.11 reads the trailing Z itself
    except ValueError:
        return None


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# A heartbeat-based lag overstates by up to the heartbeat period, so "drained" means
# the replica holds every byte (offset lag 0) where that is known, else under this.
DRAINED_LAG_SECONDS = 1.0


def replication_drained(
    snapshot: EstateSnapshot, source: str | None, target: str
) -> tuple[bool, str]:
    """Whether every link from `source` to `target` has caught up, and how far each is."""
    links = [
        link
        for link in snapshot.replication
        if link.spec.target == target and (source is None or link.spec.source == source)
    ]
    if not links:
        return True, f"no replication toward {target} is configured"
    waiting = []
    for link in links:
        last = link.last
        if last is None or last.link is not LinkState.UP:
            waiting.append(
                f"{link.spec.data_class}: link {last.link.value if last else 'not read'}"
            )
        elif last.offset_lag_bytes is not None:
            if last.offset_lag_bytes > 0:
                waiting.append(f"{link.spec.data_class}: {last.offset_lag_bytes} bytes behind")
        elif last.lag_seconds is None or last.lag_seconds > DRAINED_LAG_SECONDS:
            lag = "unknown" if last.lag_seconds is None else f"{last.lag_seconds:.1f} s"
            waiting.append(f"{link.spec.data_class}: lag {lag}")
    if waiting:
        return False, "waiting: " + "; ".join(waiting)
    return True, f"{len(links)} link(s) toward {target} drained"


def remaining_regions_rule(
    config: NocConfig, snapshot: EstateSnapshot, changes: Sequence[RecordChange]
) -> Preflight:
    """After a drain, every record must still point at a healthy region."""
    name = "a healthy region remains"
    orphaned = []
    for change in changes:
        hosts = {answer_target(v) for v in change.new}
        regions = [
            r
            for r in config.regions
            if hosts
            & {
                answer_target(v)
                for v in _region_values(r, RRsetState(change.name, change.rtype, change.new))
            }
        ]
        healthy = [
            r.id
            for r in regions
            if (status := snapshot.region(r.id)) and status.health is Health.HEALTHY
        ]
        if not healthy:
            left = ", ".join(r.id for r in regions) or "no region"
            orphaned.append(f"{change.name} {change.rtype.value} would point only at {left}")
    if orphaned:
        return Preflight(name, False, "; ".join(orphaned) + ", none of it healthy", forceable=True)
    return Preflight(name, True, "every record keeps a healthy region")
