"""Domain types shared by every part of noc.

Everything here is immutable plain data. This module imports nothing of ours, so
collectors, the engine, widgets and the CLI can all depend on it without
depending on each other.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


class Role(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


class Topology(StrEnum):
    ACTIVE_PASSIVE = "active-passive"
    ACTIVE_ACTIVE = "active-active"


class ErrorKind(StrEnum):
    """Why one probe failed, in the words an operator reads in the health table."""

    CONNECT_TIMEOUT = "connect timeout"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    DNS = "dns"
    NETWORK = "network"
    TLS = "tls"
    HTTP_STATUS = "http"
    BODY_MISMATCH = "body mismatch"
    JSON_MISMATCH = "json mismatch"
    PROTOCOL = "bad response"
    SMTP_STATUS = "smtp"  # a 4xx/5xx reply where an SMTP probe wanted success


# Failures that say "the checker could not reach the endpoint" rather than "the
# endpoint answered badly". When every check of every region fails this way at
# once, the problem is on noc's side of the network (insufficient data).
UNREACHABLE_KINDS = frozenset(
    {ErrorKind.CONNECT_TIMEOUT, ErrorKind.REFUSED, ErrorKind.DNS, ErrorKind.NETWORK}
)


@dataclass(frozen=True, slots=True)
class ProbeError:
    kind: ErrorKind
    detail: str = ""

    @property
    def unreachable(self) -> bool:
        return self.kind in UNREACHABLE_KINDS

    def __str__(self) -> str:
        if self.kind is ErrorKind.HTTP_STATUS:
            return f"HTTP {self.detail}" if self.detail else "HTTP error"
        if self.kind is ErrorKind.SMTP_STATUS:
            return f"SMTP {self.detail}" if self.detail else "SMTP error"
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """One health check, resolved from configuration: what to ask and how to judge it."""

    check_id: str
    region_id: str
    name: str
    url: str
    expect_status: int = 200
    body_contains: str | None = None
    json_field: str | None = None
    json_equals: str | None = None
    timeout_seconds: float = 2.0
    interval_seconds: float = 30.0
    failure_threshold: int = 3
    recovery_threshold: int = 3
    verify_tls: bool = True
    # While failing toward failure_threshold (or recovering toward recovery_threshold)
    # the check is probed at this pace instead of interval_seconds.
    retry_interval_seconds: float = 2.0

    @property
    def display_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True, slots=True)
class CheckSample:
    """The result of one probe. Collectors return these instead of raising."""

    check_id: str
    region_id: str
    at: float  # the injected clock's monotonic seconds
    wall: datetime  # UTC, for display and logs only
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    error: ProbeError | None = None
    # An HTTPS check's certificate: when it expires, and the days left then (negative
    # once expired). None for plain HTTP, or when no handshake completed.
    cert_not_after: datetime | None = None
    cert_days_left: float | None = None


class SmtpTls(StrEnum):
    """How an SMTP probe secures its session."""

    STARTTLS = "starttls"  # required: not offered, or failing, is a failure
    OPTIONAL = "optional"  # used when offered; a failing handshake is still a failure
    IMPLICIT = "implicit"  # TLS from the first byte (port 465)
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """One SMTP probe, resolved from configuration ([[regions.smtp]])."""

    check_id: str  # "ro/smtp0"
    region_id: str
    host: str
    port: int
    tls: SmtpTls
    tls_name: str  # the name the certificate must be valid for
    ehlo: str
    timeout_seconds: float = 5.0
    interval_seconds: float = 30.0
    failure_threshold: int = 3
    recovery_threshold: int = 3
    retry_interval_seconds: float = 2.0
    ca_file: str | None = None  # None: the system's trust store

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SmtpSample:
    """One SMTP probe's findings. Collectors return these instead of raising."""

    check_id: str
    region_id: str
    at: float
    wall: datetime
    ok: bool
    banner_code: int | None = None
    tls_version: str | None = None  # "TLSv1.3"; None: the session stayed plain
    cert_not_after: datetime | None = None
    cert_days_left: float | None = None
    # STARTTLS required but not offered, or a handshake (chain, name) that failed.
    tls_broken: bool = False
    error: ProbeError | None = None
    # Milliseconds per phase, in order: connect, banner, ehlo, starttls, quit.
    phase_ms: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class SmtpStatus:
    """The engine's verdict on one SMTP probe."""

    target: SmtpTarget
    health: Health
    consecutive_failures: int
    last: SmtpSample | None
    age_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class FailoverFlag:
    """The STOP-pattern flag kept in every region's store: which region is active."""

    active: str
    previous: str | None
    operator: str
    reason: str
    at: str  # UTC ISO-8601
    action_id: str = ""
    # Who cleared the anti-flap cooldown after this failover ("alice@noc1 at ..."):
    # set in the stores by an explicit ack, so every process sees it.
    cooldown_ack: str = ""

    def as_mapping(self) -> dict[str, str]:
        fields = {
            "active": self.active,
            "previous": self.previous or "",
            "operator": self.operator,
            "reason": self.reason,
            "at": self.at,
            "action_id": self.action_id,
        }
        return fields | ({"cooldown_ack": self.cooldown_ack} if self.cooldown_ack else {})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str]) -> FailoverFlag | None:
        active = raw.get("active", "")
        if not active:
            return None
        return cls(
            active=active,
            previous=raw.get("previous") or None,
            operator=raw.get("operator", ""),
            reason=raw.get("reason", ""),
            at=raw.get("at", ""),
            action_id=raw.get("action_id", ""),
            cooldown_ack=raw.get("cooldown_ack", ""),
        )


@dataclass(frozen=True, slots=True)
class FlagSample:
    """One read of the failover flag from one region's store."""

    store_region: str
    at: float
    wall: datetime
    reachable: bool
    flag: FailoverFlag | None = None
    error: str | None = None
    # Unreadable, yet the store answered (it refused noc's password): it is up, so
    # it is read again at the normal interval, not backed off like a dead one.
    store_answered: bool = False


@dataclass(frozen=True, slots=True)
class CheckStatus:
    """The engine's verdict on one check, with everything the health table shows."""

    target: CheckTarget
    health: Health
    consecutive_failures: int
    consecutive_successes: int
    last: CheckSample | None
    # Seconds until the check's region would be declared down if failures go on;
    # None when no failure is in progress (or the check is already down).
    seconds_until_down: float | None
    age_seconds: float | None
    # The recent probes: how many failed of how many (a window of 2 x failure_threshold).
    # A check that is not down but failed failure_threshold of them is DEGRADED.
    recent_failures: int = 0
    recent_probes: int = 0
    # Its probes keep changing between pass and fail (a partial outage, a bad node
    # behind a load balancer): said, so that "degraded" is not read as "getting worse".
    flapping: bool = False


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What noc last read of the failover flag in one region's store."""

    region_id: str
    reachable: bool | None  # None: not read yet
    flag: FailoverFlag | None
    error: str | None
    age_seconds: float | None


@dataclass(frozen=True, slots=True)
class LeaderStatus:
    """The agent holding the control plane's lease (noc.lease)."""

    vantage: str
    since: datetime  # UTC: when its term began
    term: int  # its fencing token


@dataclass(frozen=True, slots=True)
class VantageStatus:
    """One agent (`noc agent --vantage NAME`) as the control plane last heard of it.

    A cut-off vantage saw nothing at all, and a stale one has not reported for two of
    its intervals: neither votes on a region's health."""

    name: str
    last_seen: datetime  # UTC
    age_seconds: float
    cut_off: bool
    stale: bool

    @property
    def votes(self) -> bool:
        return not self.cut_off and not self.stale


@dataclass(frozen=True, slots=True)
class RegionVotes:
    """A region's health as the vantages see it, merged by quorum (noc.quorum)."""

    quorum: int
    down_votes: int  # voting vantages that see the region down
    vantages_reporting: int  # voting vantages with a verdict on the region
    # Every voting vantage's verdict, by vantage name.
    by_vantage: tuple[tuple[str, Health], ...] = ()

    @property
    def down(self) -> bool:
        return self.down_votes >= self.quorum

    @property
    def split(self) -> bool:
        """Some vantages see the region down, too few for the quorum: a warning."""
        return 0 < self.down_votes < self.quorum


@dataclass(frozen=True, slots=True)
class RegionStatus:
    id: str
    name: str
    role: Role
    location: tuple[float, float]
    health: Health
    checks: tuple[CheckStatus, ...]
    store: StoreStatus
    is_active: bool
    # The failover records whose resolver consensus points here (DNS's view of "active").
    dns_records: tuple[str, ...] = ()
    # A sending IP of this region is on a blocklist: degraded for sending.
    sending_listed: bool = False
    # The SMTP probes ([[regions.smtp]]): mail flow, judged apart from the HTTP checks.
    smtp: tuple[SmtpStatus, ...] = ()
    # Attached to a control plane: how the vantages voted (None: noc polled by itself).
    votes: RegionVotes | None = None
    # The host its MX records name when it is active: what MTA-STS must cover.
    mx_host: str | None = None
    # The maintenance window covering this region now, if any: its alerts page no one
    # and the automation leaves it alone.
    maintenance: MaintenanceWindow | None = None

    @property
    def failing_checks(self) -> int:
        return sum(1 for c in self.checks if c.health is Health.DOWN)

    @property
    def degraded_checks(self) -> int:
        """Checks that are not down but fail part of their recent probes."""
        return sum(1 for c in self.checks if c.health is Health.DEGRADED)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Planned work on one region, from `starts_at` to `ends_at` (or until ended early).

    Scheduled ahead, it does nothing until it starts; it ends by itself at `ends_at`,
    or when an operator ends it (`ended_at`, `ended_by`)."""

    id: str
    region: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    by: str  # the operator who opened it
    created_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None

    @property
    def until(self) -> datetime:
        """When it stops covering its region: its end, or when it was ended early."""
        if self.ended_at is not None and self.ended_at < self.ends_at:
            return self.ended_at
        return self.ends_at

    def covers(self, now: datetime) -> bool:
        return self.starts_at <= now < self.until

    def state(self, now: datetime) -> str:
        """ "scheduled", "active", "ended" (by an operator) or "expired" (by its time)."""
        if self.ended_at is not None and self.ended_at <= now and self.ended_at < self.ends_at:
            return "ended"
        if now >= self.ends_at:
            return "expired"
        return "active" if now >= self.starts_at else "scheduled"


@dataclass(frozen=True, slots=True)
class Authority:
    """Which region is active, and how sure noc is of it.

    `source` says where the answer came from: the flag in the stores, or the
    configured primary when no flag was ever written. `disagreeing` lists the
    stores whose flag names another region: a split-brain risk.
    """

    active_region: str | None
    source: str
    agreeing: tuple[str, ...] = ()
    disagreeing: tuple[tuple[str, str], ...] = ()
    unreadable: tuple[str, ...] = ()

    @property
    def split(self) -> bool:
        return bool(self.disagreeing)


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"critical": 0, "warning": 1, "info": 2}[self.value]


class AlertState(StrEnum):
    PENDING = "pending"  # true, not yet for long enough
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Ack:
    """An operator has seen it: who, when, and a note. Distinct from a silence."""

    by: str
    note: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute matching alerts between two times; an author and a comment are mandatory."""

    id: str
    matchers: tuple[tuple[str, str], ...]  # ("rule", "replication_lag"), ("region", "bg")
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def matches(self, rule: str, region: str | None) -> bool:
        values = {"rule": rule, "region": region or ""}
        return all(values.get(key) == value for key, value in self.matchers)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.matchers) or "everything"


@dataclass(frozen=True, slots=True)
class Alert:
    """One episode of an alert: from the moment its condition became true to its resolve.

    `id` names the episode ("region_down:ro@2026-11-23T03:00:00.000000Z"), so two
    episodes of one rule and region never share it: every list and table of alerts can
    be keyed by it. `key` is the rule instance ("region_down:ro"), the same for every
    episode: what silences, inhibition and overrides match on.
    """

    id: str
    rule: str
    severity: Severity
    state: AlertState
    region: str | None
    summary: str
    since: datetime  # when it entered its current state
    started_at: datetime | None = None  # when the condition first became true
    value: float | None = None
    ack: Ack | None = None
    silenced_by: str | None = None  # silence id
    inhibited_by: str | None = None  # the key of the alert that mutes this one
    flapping: bool = False
    # The rule instance; left out (an Alert built by hand, an old record) it is `id`.
    key: str = ""
    # A worsening hands over from one episode to the next (lag into link down, warning
    # into critical): the episode it came from, or the one it became. Never a resolve.
    escalated_from: str | None = None
    escalated_to: str | None = None
    # The maintenance window covering the alert's region: it pages no one meanwhile.
    maintenance: str | None = None  # the window's id
    # The estate's own next step for its rule ([[alerts.rules]] hint); None: built in.
    hint: str | None = None

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.id)

    @property
    def muted(self) -> bool:
        return (
            self.silenced_by is not None
            or self.inhibited_by is not None
            or self.maintenance is not None
        )


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """What a notifier sends: an alert that started firing, repeats, or resolved."""

    alert: Alert
    event: str  # "firing" | "repeat" | "resolved" | "escalated" (ended by a worse one)
    at: datetime


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel, as the notifications panel shows it. `last_error` is text from a
    remote server with secrets masked: escape it before it reaches Rich markup."""

    name: str
    kind: str
    pending: int
    last_success: datetime | None
    last_failure: datetime | None
    last_error: str | None
    last_status: int | None
    consecutive_failures: int
    dropped: int
    # Seconds until the next try while messages wait; None when nothing is pending or
    # nothing can be tried (no secret).
    retry_in_seconds: float | None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


@dataclass(frozen=True, slots=True)
class DrillDue:
    """When the next failover drill is due, and which failure mode it drills."""

    mode: str
    due: date
    overdue: bool
    last: str | None  # the last drill's start (UTC ISO), if any

    def text(self) -> str:
        verdict = "OVERDUE since" if self.overdue else "due"
        return f"drill {verdict} {self.due.isoformat()}: {self.mode}"


@dataclass(frozen=True, slots=True)
class EstateSnapshot:
    """One consistent picture of the estate, as every view draws it."""

    estate: str
    topology: Topology
    generated_at: datetime
    regions: tuple[RegionStatus, ...]
    authority: Authority
    cut_off: bool
    cut_off_since: datetime | None
    last_poll_age: float | None
    stale: bool
    read_only: bool = False
    # Every health check failing while noc reaches other sources: the estate is down,
    # not noc's view of it (a bad deploy, a shared load balancer).
    estate_outage: bool = False
    alerts: tuple[Alert, ...] = field(default=())
    replication: tuple[LinkStatus, ...] = field(default=())
    suppression: SuppressionSample | None = None
    deliverability: DeliverabilitySample | None = None
    dns: tuple[DnsView, ...] = field(default=())
    consensus: tuple[DnsConsensus, ...] = field(default=())
    email_auth: tuple[EmailAuthSample, ...] = field(default=())
    dnsbl: tuple[DnsblSample, ...] = field(default=())
    mta: tuple[MtaSample, ...] = field(default=())
    mta_sts: MtaStsSample | None = None
    canary: tuple[CanarySample, ...] = field(default=())  # the last per region and seed
    notifications: tuple[ChannelStatus, ...] = field(default=())
    notifications_problem: str | None = None  # the outbox could not be opened, ...
    automation: AutoStatus | None = None  # None: automated failover is not configured
    # Read from a control plane: every vantage it knows (empty: noc polled by itself).
    vantages: tuple[VantageStatus, ...] = field(default=())
    # Read from a control plane: the agent that leads (runs automation and sends the
    # notifications), and since when; None: none leads, or noc polled by itself.
    leader: LeaderStatus | None = None
    # The drill schedule ([drills]); None: not known (no onboarding date, no drill yet).
    drill: DrillDue | None = None

    @property
    def active_region(self) -> str | None:
        return self.authority.active_region

    def region(self, region_id: str) -> RegionStatus | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def mta_of(self, region_id: str | None) -> MtaSample | None:
        return next((m for m in self.mta if m.region == region_id), None)

    @property
    def healthy_count(self) -> int:
        return sum(1 for r in self.regions if r.health is Health.HEALTHY)


# Operator actions: a plan computed from state, and what executing it did.


class ActionKind(StrEnum):
    FAILOVER = "failover"
    FAILBACK = "failback"
    # Planned: the source is healthy, replication drains to zero, then the flip.
    SWITCHOVER = "switchover"
    # Active-active: take a region's values out of the records, or put them back.
    DRAIN = "drain"
    RESTORE = "restore"

    @property
    def moves_flag(self) -> bool:
        return self not in (ActionKind.DRAIN, ActionKind.RESTORE)


class Interface(StrEnum):
    """Where a message is read; each names its own way to act (values as `via`)."""

    CLI = "cli"
    DASHBOARD = "tui"


class Remedy(StrEnum):
    """What an operator can do about a refusal; `hint` names it for an interface."""

    ACK_COOLDOWN = "ack-cooldown"
    FORCE = "force"


# None: a record or a page, read anywhere; it names the act, not a key or a command.
_HINTS: dict[Remedy, dict[Interface | None, str]] = {
    Remedy.ACK_COOLDOWN: {
        Interface.CLI: "`noc ack-cooldown` clears it",
        Interface.DASHBOARD: "c acks the cooldown",
        None: "an ack of the cooldown clears it",
    },
    Remedy.FORCE: {
        Interface.CLI: "--force breaks glass, and is recorded",
        Interface.DASHBOARD: "the dialog offers break glass (type FORCE), recorded",
        None: "breaking glass is allowed, and recorded",
    },
}


def hint(remedy: Remedy, interface: Interface | None) -> str:
    return _HINTS[remedy][interface]


def interface_of(via: str) -> Interface | None:
    """The interface an action came from (its `via`); None for the automation."""
    return next((i for i in Interface if i.value == via), None)


@dataclass(frozen=True, slots=True)
class Preflight:
    name: str
    ok: bool
    detail: str
    # A failed blocking check refuses the action; `forceable` ones can be
    # bypassed by a break-glass override: a second, recorded confirmation.
    blocking: bool = True
    forceable: bool = False
    # What clears it, named by each interface in its own words (`said_for`).
    remedy: Remedy | None = None

    def said_for(self, interface: Interface | None) -> str:
        """The detail, with what clears a failed rule in `interface`'s terms."""
        if self.ok or self.remedy is None:
            return self.detail
        return f"{self.detail}: {hint(self.remedy, interface)}"


@dataclass(frozen=True, slots=True)
class StorePlan:
    region_id: str
    reachable: bool | None
    error: str | None


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the cross-process failover lock, stored as its value in every store."""

    holder: str  # "alice@noc1"
    action_id: str
    at: str  # UTC ISO-8601
    pid: int = 0  # with `node`, lets a process on the same machine see the holder died
    node: str = ""  # the kernel boot and PID namespace the pid belongs to

    def as_text(self) -> str:
        return f"{self.holder} {self.action_id} {self.at} {self.pid} {self.node}"

    @classmethod
    def from_text(cls, text: str) -> LockHolder:
        holder, action_id, at, pid, node, *_ = [*text.split(" ", 4), "", "", "", "", ""]
        return cls(holder or text, action_id, at, int(pid) if pid.isdigit() else 0, node)

    @property
    def host(self) -> str:
        return self.holder.rpartition("@")[2]

    def describe(self) -> str:
        pid = f" pid {self.pid}" if self.pid else ""
        return f"{self.holder}{pid} (action {self.action_id or '?'}, since {self.at or '?'})"


@dataclass(frozen=True, slots=True)
class ActuatorFacts:
    """What the actuators said just before planning, so the plan itself stays pure.

    Gathered by I/O (`noc.failover.gather_facts`): the RRsets as the authoritative
    server holds them, whether it accepts noc's TSIG key, and the lock's holder.
    """

    rrsets: tuple[RRsetState, ...] = ()
    dns_key_error: str | None = None  # None: accepted (or no DNS actuator)
    lock_holder: LockHolder | None = None
    lock_stale: bool = False  # its holder is a dead process on this host: it will be taken over
    lock_error: str | None = None  # the lock could not be read on a majority of stores


@dataclass(frozen=True, slots=True)
class DataRisk:
    """Data a failover may lose: the current lag of one data class toward the target."""

    data_class: str
    link: str  # "suppression:ro>bg"
    lag_seconds: float | None  # None: unknown
    rpo_seconds: float
    is_floor: bool = False  # "at least": the link is down and the figure grows

    @property
    def within(self) -> bool:
        return self.lag_seconds is not None and self.lag_seconds <= self.rpo_seconds

    def describe(self) -> str:
        if self.lag_seconds is None:
            return f"{self.data_class}: lag unknown (RPO {self.rpo_seconds:g} s)"
        floor = "at least " if self.is_floor else ""
        return f"{self.data_class}: {floor}{self.lag_seconds:.1f} s (RPO {self.rpo_seconds:g} s)"


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """What an action will change and put at risk, shown before the key takes effect."""

    changes: tuple[RecordChange, ...] = ()
    # The target's sending IPs and their blocklist state ("clean", "listed on ...").
    sending_ips: tuple[tuple[str, str], ...] = ()
    complaint_rate: float | None = None  # the target's current rate
    complaint_limit: float = 0.003  # Gmail's
    data_at_risk: tuple[DataRisk, ...] = ()
    # Suppressed addresses the target lacks: they would be mailed against their will.
    unsynced_suppression: int | None = None
    # The source region's mail queue: what stays behind there when traffic moves.
    source_queue: MtaSample | None = None

    @property
    def queue_left_behind(self) -> str | None:
        """ "12 deferred, 3 active, 1 held in ro (oldest deferred 3600 s) stay behind"."""
        queue = self.source_queue
        if queue is None:
            return None
        if queue.queue_deferred is None:
            return f"{queue.region} queue unknown: {queue.error or 'not read'}"
        oldest = queue.oldest_deferred_seconds
        age = (
            ""
            if oldest is None or not queue.queue_deferred
            else f" (oldest deferred {'≥' if queue.oldest_is_lower_bound else ''}{oldest:.0f} s)"
        )
        return (
            f"{queue.queue_deferred} deferred, {queue.queue_active or 0} active, "
            f"{queue.queue_hold or 0} held in {queue.region}{age} stay behind"
        )

    @property
    def complaint_headroom(self) -> str:
        if self.complaint_rate is None:
            return f"unknown (no delivered mail in the window; limit {self.complaint_limit:.1%})"
        left = self.complaint_limit - self.complaint_rate
        return (
            f"{self.complaint_rate:.2%} now, {left:.2%} below the {self.complaint_limit:.1%} limit"
            if left > 0
            else f"{self.complaint_rate:.2%} now: OVER the {self.complaint_limit:.1%} limit"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": [
                {
                    "name": c.name,
                    "type": c.rtype.value,
                    "old": list(c.old),
                    "new": list(c.new),
                    "kept": list(c.kept),
                    "foreign": list(c.foreign),
                    "ttl": c.ttl,
                    "remaining_ttl": c.remaining_ttl,
                }
                for c in self.changes
            ],
            "sending_ips": dict(self.sending_ips),
            "complaint_rate": self.complaint_rate,
            "data_at_risk": {
                d.data_class: {"lag_seconds": d.lag_seconds, "rpo_seconds": d.rpo_seconds}
                for d in self.data_at_risk
            },
            "unsynced_suppression": self.unsynced_suppression,
            "source_queue": None if self.source_queue is None else self.source_queue.as_json(),
        }


@dataclass(frozen=True, slots=True)
class ActionPlan:
    action_id: str
    kind: ActionKind
    source: str | None
    target: str
    target_health: Health
    operator: Mapping[str, str]
    forced: bool
    checks: tuple[Preflight, ...]
    stores: tuple[StorePlan, ...]
    actuators: tuple[str, ...] = ("flag",)
    blast: BlastRadius = field(default_factory=BlastRadius)
    # The flag as the stores hold it now: what a rollback writes back.
    previous_flag: FailoverFlag | None = None
    # Per store, the flag (action id; "" for none) it held when planning: a store
    # holding another at execution time shows someone else's failover since.
    store_flags: Mapping[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[Preflight, ...]:
        return tuple(c for c in self.checks if c.blocking and not c.ok)

    @property
    def needs_force(self) -> bool:
        """Refused only by checks that a break-glass override may bypass."""
        return bool(self.failed) and all(c.forceable for c in self.failed)

    @property
    def overridden(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.failed) if self.forced and self.needs_force else ()

    @property
    def allowed(self) -> bool:
        return not self.failed or (self.forced and self.needs_force)

    @property
    def refusal(self) -> str | None:
        """Why it is refused, as a record says it: naming acts, not keys or commands."""
        return self.refusal_for(None)

    def refusal_for(self, interface: Interface | None) -> str | None:
        if self.allowed:
            return None
        return "; ".join(f"{c.name}: {c.said_for(interface)}" for c in self.failed)

    def describe(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "action": self.kind.value,
            "from": self.source,
            "to": self.target,
            "target_health": self.target_health.value,
            "forced": self.forced,
            "overridden": list(self.overridden),
            "actuators": list(self.actuators),
            "preflight": [
                {"check": c.name, "ok": c.ok, "detail": c.detail, "blocking": c.blocking}
                for c in self.checks
            ],
            "stores": {
                s.region_id: "reachable" if s.reachable else (s.error or "not read")
                for s in self.stores
            },
            "blast_radius": self.blast.as_json(),
        }


class StoreOutcome(StrEnum):
    VERIFIED = "verified"
    WRITTEN = "written, read-back differs"
    UNREACHABLE = "unreachable"
    CONFLICT = "changed by someone else"


@dataclass(frozen=True, slots=True)
class StoreResult:
    region_id: str
    outcome: StoreOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ActuatorStep:
    """What one actuator (or hook) did: applied, failed, rolled back, skipped."""

    actuator: str  # "flag", "dns", "hook", "pre hook", "post hook", "lock"
    ok: bool
    detail: str
    rolled_back: bool = False


@dataclass(frozen=True, slots=True)
class ActionResult:
    plan: ActionPlan
    flag: FailoverFlag | None
    stores: tuple[StoreResult, ...] = field(default=())
    steps: tuple[ActuatorStep, ...] = field(default=())
    # Set when nothing was left changed: the lock was held, a pre hook failed, or
    # an actuator failed and the earlier ones were rolled back.
    aborted: str | None = None
    propagation: PropagationProgress | None = None
    # (event, seconds since confirmation): the measured RTO of the change.
    timeline: tuple[tuple[str, float], ...] = field(default=())

    @property
    def verified(self) -> tuple[str, ...]:
        return tuple(s.region_id for s in self.stores if s.outcome is StoreOutcome.VERIFIED)

    @property
    def flag_verified(self) -> bool:
        written = [s for s in self.stores if s.outcome is not StoreOutcome.UNREACHABLE]
        every_written_verified = all(s.outcome is StoreOutcome.VERIFIED for s in written)
        return every_written_verified and len(self.verified) > len(self.stores) / 2

    @property
    def success(self) -> bool:
        if self.aborted is not None or not all(s.ok for s in self.steps):
            return False
        if self.propagation is not None and self.propagation.ttl_expired:
            return False  # a server still answers the old values after the TTL: look
        return self.flag_verified if "flag" in self.plan.actuators else True

    @property
    def changed_anything(self) -> bool:
        """Whether any actuator wrote (even if rolled back since)."""
        return any(s.actuator in ("flag", "dns", "hook") for s in self.steps)

    @property
    def rollback_failed(self) -> bool:
        return any(s.rolled_back and not s.ok for s in self.steps)

    @property
    def propagation_text(self) -> str | None:
        p = self.propagation
        if p is None:
            return None
        # What the servers now answer, said for what the action did to the target.
        answers = {
            ActionKind.DRAIN: f"no longer answer {self.plan.target}",
            ActionKind.RESTORE: f"answer {self.plan.target} again",
        }.get(self.plan.kind, f"on {self.plan.target}")
        text = f"{len(p.moved)}/{p.asked} DNS servers {answers} after {p.elapsed_seconds:.0f} s"
        text += " (TTL passed)" if p.ttl_expired else ""
        # Named, with what each serves: a stale secondary is not a frozen one.
        lagging = "; ".join(f"{server} {why}" for server, why in p.waiting)
        return f"{text}; behind: {lagging}" if lagging else text

    @property
    def summary(self) -> str:
        kind, target = self.plan.kind.value, self.plan.target
        # A drain takes its target out; a failover goes to it.
        head = f"{kind} {'to' if self.plan.kind.moves_flag else 'of'} {target}"
        if self.aborted is not None:
            state = (
                "ROLLBACK FAILED (check by hand)"
                if self.rollback_failed
                else ("nothing left changed")
            )
            return f"{head} ABORTED, {state}: {self.aborted}"
        verdict = "verified" if self.success else "FAILED"
        parts = []
        if "flag" in self.plan.actuators:
            stores = ", ".join(f"{s.region_id} {s.outcome.value}" for s in self.stores)
            parts.append(f"{len(self.verified)}/{len(self.stores)} stores verified ({stores})")
        parts += [f"{s.actuator}: {s.detail}" for s in self.steps if s.actuator != "flag"]
        if self.propagation_text:
            parts.append(self.propagation_text)
        return f"{head} {verdict}: " + "; ".join(parts)


class Fault(StrEnum):
    """Faults the demo's fault panel can inject into a simulated region."""

    DOWN = "down"
    SLOW = "slow"
    FLAP = "flap"
    GARBAGE = "garbage"
    BREAK_REPLICATION = "break replication"
    STALL_SYNC = "stall sync"
    COMPLAINT_SPIKE = "complaint spike"
    DNS_HIJACK = "dns hijack"
    BLOCKLIST = "blocklist listing"
    SMTP_421 = "421 banner"
    NO_STARTTLS = "starttls not offered"
    TLS_HANDSHAKE = "tls handshake failure"
    CERT_EXPIRING = "expiring certificate"
    CERT_WRONG_NAME = "certificate for the wrong name"
    QUEUE_HELD = "queue held and growing"
    REJECTION_SPIKE = "rejection spike"
    MX_OUTSIDE_POLICY = "mx outside policy"
    RESTORE = "restore"


class FaultInjector(Protocol):
    """What the app needs from a simulated estate to show a fault panel.

    The simulator implements this; the app only sees the protocol, so no product
    logic depends on the simulator.
    """

    def region_ids(self) -> Sequence[str]: ...

    def current_fault(self, region_id: str) -> Fault | None: ...

    def inject(self, region_id: str, fault: Fault) -> Awaitable[None]: ...


_URL_PASSWORD = re.compile(r"(?P<prefix>//[^/@:\s]*:)(?P<secret>[^/@\s]+)(?P<suffix>@)")
# A user with no password is a bare token (`https://TOKEN@host`).
_URL_BARE_USER = re.compile(r"(?P<prefix>//)(?!\*\*\*\*@)[^/@:\s]+@")
# Query parameters that carry a credential (compared lower-case, "-" read as "_"),
# alone or as the end of a longer name: `token`, `auth_token`, `X-Amz-Signature`.
SECRET_PARAMETERS = frozenset(
    {
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "signature",
        "auth",
        "credential",
        "credentials",
    }
)
_QUERY_PAIR = re.compile(r"(?P<prefix>[?&;](?P<name>[^=&;#?\s]+)=)(?P<value>[^&;#\s]*)")


def secret_parameter(name: str) -> bool:
    """Whether a query parameter of this name holds a credential."""
    normal = name.lower().replace("-", "_")
    return normal in SECRET_PARAMETERS or any(
        normal.endswith("_" + word) for word in SECRET_PARAMETERS
    )


def mask_url(url: str) -> str:
    """Hide every credential of a URL: the password (or a bare token user) and the
    value of every token-like query parameter: `redis://:****@host`, `?token=****`.

    Also masks URLs inside any text (an error message): it works by pattern where
    the text is not one clean URL."""
    masked = _QUERY_PAIR.sub(_mask_pair, url)
    try:
        parts = urlsplit(masked)
        _ = parts.port
    except ValueError:  # a malformed URL (say, port 99999) is still masked, by pattern
        return _URL_PASSWORD.sub(r"\g<prefix>****\g<suffix>", masked)
    if "@" not in parts.netloc or (" " in masked.strip()):
        return _URL_PASSWORD.sub(r"\g<prefix>****\g<suffix>", masked)
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    credentials = f"{user}:****" if colon else "****"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


def mask_secrets(text: str) -> str:
    """Every URL credential in free text (a log line, a traceback) masked, by pattern."""
    text = _URL_PASSWORD.sub(r"\g<prefix>****\g<suffix>", _QUERY_PAIR.sub(_mask_pair, text))
    return _URL_BARE_USER.sub(r"\g<prefix>****@", text)


def _mask_pair(match: re.Match[str]) -> str:
    if not match["value"] or not secret_parameter(match["name"]):
        return match[0]
    return f"{match['prefix']}****"


def url_secrets(url: str) -> list[str]:
    """The credential values a URL carries, to blank them wherever they may be echoed
    (an error message that quotes part of the URL)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [m["secret"] for m in _URL_PASSWORD.finditer(url)]
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    for match in _QUERY_PAIR.finditer("?" + parts.query):
        if match["value"] and secret_parameter(match["name"]):
            found.append(match["value"])
    return [secret for secret in found if secret]


# --- DNS truth and sending reputation ---


class DnsErrorKind(StrEnum):
    """Why one DNS question got no usable answer."""

    TIMEOUT = "timeout"
    NETWORK = "network"  # could not talk to the resolver at all (TCP refused, no route)
    TRUNCATED = "truncated"  # the UDP answer was truncated and the TCP retry failed too
    SERVFAIL = "servfail"
    REFUSED = "refused"
    NXDOMAIN = "nxdomain"
    NODATA = "no data"  # the name exists, but has no record of the type asked
    BAD_RESPONSE = "bad response"
    INVALID_QUERY = "invalid query"  # not a valid domain name: nothing was sent


@dataclass(frozen=True, slots=True)
class DnsError:
    kind: DnsErrorKind
    detail: str = ""

    @property
    def absent(self) -> bool:
        """The resolver answered, and the answer is "no such record": a finding, not a doubt.

        Every other kind leaves the truth unknown (ok=None for a check built on it).
        """
        return self.kind in (DnsErrorKind.NXDOMAIN, DnsErrorKind.NODATA)

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value


class FailoverRecordType(StrEnum):
    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    MX = "MX"


@dataclass(frozen=True, slots=True)
class FailoverRecord:
    """A DNS name whose answer says where traffic goes (flipped on failover)."""

    name: str
    rtype: FailoverRecordType


@dataclass(frozen=True, slots=True)
class DnsRecordSample:
    """What one resolver answered for one failover record, asked fresh (no cache).

    JSON: `{"name", "type": rtype, "resolver", "answers", "ttl", "region", "error"}`;
    the region is the engine's (see collectors.dns_records.map_answers_to_region).
    """

    name: str
    rtype: FailoverRecordType
    resolver: str  # as configured: "1.1.1.1", "127.0.0.1:5353", "[::1]:53"
    at: float
    wall: datetime
    # Sorted text forms: "192.0.2.1", "2001:db8::1", "target.example.com",
    # "10 mx.example.com" (MX keeps its preference: it says which exchange goes first).
    answers: tuple[str, ...] = ()
    ttl: int | None = None  # the remaining TTL the resolver gave (lowest along a CNAME chain)
    error: DnsError | None = None
    # When the name is an alias: its CNAME's target ("answers" are then the chain's end).
    cname: str | None = None


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """One authentication verdict. ok=None: could not be determined (e.g. a timeout).

    warning: ok, but worth a look (SPF: "passes for this IP, fragile: other senders
    get permerror"); "" when there is nothing to say.
    """

    ok: bool | None
    reason: str
    warning: str = ""


@dataclass(frozen=True, slots=True)
class DmarcCheck:
    ok: bool | None
    reason: str
    policy: str | None = None  # the p= tag: "none", "quarantine" or "reject"


@dataclass(frozen=True, slots=True)
class PtrResult:
    """Forward-confirmed reverse DNS of one sending IP."""

    ip: str
    ok: bool | None
    reason: str
    names: tuple[str, ...] = ()  # the PTR targets


@dataclass(frozen=True, slots=True)
class PtrCheck:
    ok: bool | None
    reason: str
    ips: tuple[PtrResult, ...] = ()


@dataclass(frozen=True, slots=True)
class EmailAuthSample:
    """Would mail sent from this region authenticate? One per region per poll."""

    region: str
    at: float
    wall: datetime
    spf: AuthCheck
    dkim: AuthCheck
    dmarc: DmarcCheck
    ptr: PtrCheck


@dataclass(frozen=True, slots=True)
class DnsblSample:
    """One sending IP looked up in one DNS blocklist zone.

    listed: True (on the list), False (NXDOMAIN: not listed), None (unknown: the
    query failed, or the list refused to answer through this resolver).
    """

    ip: str
    region: str
    zone: str
    at: float
    wall: datetime
    listed: bool | None
    code: str | None  # the A answer(s), "127.0.0.2" ("127.0.0.2,127.0.0.4" for several)
    meaning: str  # decoded code and the list's TXT reason, or why the state is unknown


@dataclass(frozen=True, slots=True)
class MtaSample:
    """One read of a region's MTA exporter: queue depths, oldest deferred, rejections.

    Every figure is None when it could not be read (error says why). The rejection
    rate is per code class ("4xx", "5xx") per minute, from the counters' increase
    since the previous read: None on the first read, which has nothing to compare with.
    """

    region: str
    at: float
    wall: datetime
    queue_active: int | None = None
    queue_deferred: int | None = None
    queue_hold: int | None = None
    oldest_deferred_seconds: float | None = None
    # From a histogram the oldest message is known only to be at least this old
    # (postfix_exporter publishes ages in buckets): a floor, never an overstatement.
    oldest_is_lower_bound: bool = False
    rejections_per_minute: Mapping[str, float] | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "queue_active": self.queue_active,
            "queue_deferred": self.queue_deferred,
            "queue_hold": self.queue_hold,
            "oldest_deferred_seconds": self.oldest_deferred_seconds,
            "oldest_deferred_is_lower_bound": self.oldest_is_lower_bound,
            "rejections_per_minute": None
            if self.rejections_per_minute is None
            else dict(self.rejections_per_minute),
            "error": self.error,
        }


class CanaryState(StrEnum):
    PENDING = "pending"  # sent, not yet found in the seed mailbox
    ARRIVED = "arrived"
    LOST = "lost"  # not found within its deadline
    FAILED = "failed"  # could not be submitted (error says why)
    UNREAD = "unread"  # the seed mailbox could not be read (error says why)


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """One method's result from an Authentication-Results header (RFC 8601): "pass",
    "fail", "softfail", "none", ...; None when the receiver wrote none."""

    spf: str | None = None
    dkim: str | None = None
    dmarc: str | None = None
    dkim_selector: str | None = None  # header.s of the DKIM result, else the signature's s=
    dkim_domain: str | None = None

    @property
    def failed(self) -> tuple[str, ...]:
        """The methods that did not pass ("SPF", "DKIM", "DMARC"); a missing result
        is a failure too: a receiver that checked nothing vouches for nothing."""
        results = (("SPF", self.spf), ("DKIM", self.dkim), ("DMARC", self.dmarc))
        return tuple(name for name, result in results if result != "pass")


@dataclass(frozen=True, slots=True)
class CanarySample:
    """The latest canary of one region to one seed mailbox, and what its arrival told.

    `sent_wall` is when noc submitted it; `latency_seconds` runs to the seed server's
    delivery time (IMAP INTERNALDATE, whole seconds); `folder` is "inbox" or "spam"."""

    region: str
    seed: str
    token: str
    state: CanaryState
    at: float  # monotonic, when this state was learnt
    sent_wall: datetime | None = None
    latency_seconds: float | None = None
    folder: str | None = None
    mailbox: str | None = None  # the IMAP folder it was found in
    sending_ip: str | None = None
    auth: AuthVerdict | None = None
    outstanding: int = 0  # canaries of this region and seed still awaited
    error: str | None = None

    def words(self) -> str:
        """ "seed: arrived in 4 s, inbox, SPF/DKIM/DMARC pass, from 192.0.2.20" or
        "seed: lost (not in seed within 900 s)"."""
        if self.state is not CanaryState.ARRIVED:
            return f"{self.seed}: {self.state.value}" + (f" ({self.error})" if self.error else "")
        failed = self.auth.failed if self.auth is not None else ("SPF", "DKIM", "DMARC")
        words = f"{self.seed}: arrived in {self.latency_seconds or 0:.0f} s, {self.folder}"
        words += f", failed {'/'.join(failed)}" if failed else ", SPF/DKIM/DMARC pass"
        return words + (f", from {self.sending_ip}" if self.sending_ip else "")

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The `noc check --json` block; age_seconds: since the canary was sent."""
        auth = self.auth
        age = None if self.sent_wall is None else (now - self.sent_wall).total_seconds()
        return {
            "region": self.region,
            "seed": self.seed,
            "token": self.token,
            "state": self.state.value,
            "sent_at": None if self.sent_wall is None else self.sent_wall.isoformat(),
            "latency_seconds": self.latency_seconds,
            "folder": self.folder,
            "sending_ip": self.sending_ip,
            "spf": None if auth is None else auth.spf,
            "dkim": None if auth is None else auth.dkim,
            "dmarc": None if auth is None else auth.dmarc,
            "dkim_selector": None if auth is None else auth.dkim_selector,
            "age_seconds": None if age is None else round(max(0.0, age), 1),
            "outstanding": self.outstanding,
            "error": self.error,
        }


def mx_matches(pattern: str, host: str) -> bool:
    """Whether an MX host matches an MTA-STS policy's `mx:` pattern (RFC 8461 4.1).

    Names compare case-insensitively, without a final dot. A pattern `*.example.com`
    matches exactly one more label on the left: `mx1.example.com`, never
    `example.com` itself nor `a.b.example.com`."""
    want = pattern.strip().lower().rstrip(".")
    name = host.strip().lower().rstrip(".")
    if not want or not name:
        return False
    if want.startswith("*."):
        first, dot, rest = name.partition(".")
        return bool(first) and bool(dot) and rest == want[2:]
    return name == want


@dataclass(frozen=True, slots=True)
class TlsaCheck:
    """One MX host's DANE TLSA records and whether its certificate matches them.

    matches: True (a record matches the certificate it presents), False (none does),
    None (no TLSA records, or the certificate could not be read: reason says).
    """

    host: str
    records: tuple[str, ...]
    matches: bool | None
    reason: str


@dataclass(frozen=True, slots=True)
class MtaStsSample:
    """The domain's MTA-STS policy, its live MX set, and DANE per MX host."""

    domain: str
    at: float
    wall: datetime
    policy_id: str | None = None  # the _mta-sts TXT id
    mode: str | None = None  # enforce, testing, none
    mx_patterns: tuple[str, ...] = ()
    live_mx: tuple[str, ...] = ()
    tlsa: tuple[TlsaCheck, ...] = ()
    error: str | None = None  # the policy could not be read

    def tlsa_for(self, host: str) -> TlsaCheck | None:
        key = host.lower().rstrip(".")
        return next((t for t in self.tlsa if t.host == key), None)


# --- Replication, suppression and deliverability ---


class ReplicationKind(StrEnum):
    """How noc learns one link's lag: Redis INFO (+ heartbeat), Prometheus text, or JSON."""

    REDIS = "redis"
    PROMETHEUS = "prometheus"
    JSON = "json"


class LinkState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"  # not read (store unreachable), or the source cannot tell (metrics)


class LagBasis(StrEnum):
    """Where a lag figure came from, so a screen can say how far to trust it."""

    # now - the newest noc heartbeat the replica holds (pt-heartbeat): overstates the
    # lag by at most the time between heartbeat writes.
    HEARTBEAT = "heartbeat"
    # No heartbeat (read-only deployment): seconds since the replica last heard from
    # its source. It sawtooths up to the source's ping period (10 s) with no fault.
    LAST_IO = "last io"
    # The link is down: a floor (the heartbeat's age, or how long the link has been
    # down, whichever is larger) that grows for as long as the link stays down.
    LINK_DOWN = "link down"
    METRIC = "metric"  # a figure some other system exports (Prometheus text or JSON)
    NONE = "none"  # unknown


@dataclass(frozen=True, slots=True)
class ReplicationSpec:
    """One replicated data class between two regions, resolved from configuration.

    url: for redis, the replica (in the target region); for prometheus and json, the
    metrics URL. metric: prometheus `name{label="value",...}`; json a dotted path to
    a number of seconds (`a.b.0.c`). The collector carries the threshold for display
    only: judging it (for sustain_seconds) is the engine's job.
    """

    data_class: str
    source: str
    target: str
    kind: ReplicationKind
    # Out of repr: a sample carries its spec, and a logged sample must not carry a password.
    url: str = field(repr=False)
    metric: str | None = None
    link_metric: str | None = None  # prometheus: 1 while the link is up, 0 when down
    threshold_seconds: float = 60.0
    sustain_seconds: float = 60.0

    @property
    def display_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True, slots=True)
class ReplicationSample:
    """One read of one replication link's lag.

    lag_is_floor: lag_seconds is a lower bound that keeps growing ("link down, lag at
    least N s"), never a frozen last value. `error` may be set alongside a lag (the
    heartbeat write failed while the replica still answered).
    """

    spec: ReplicationSpec
    at: float
    wall: datetime
    link: LinkState = LinkState.UNKNOWN
    lag_seconds: float | None = None
    lag_basis: LagBasis = LagBasis.NONE
    lag_is_floor: bool = False
    offset_lag_bytes: int | None = None  # the source's offset minus the replica's
    last_io_seconds: float | None = None
    link_down_seconds: float | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "data_class": self.spec.data_class,
            "source": self.spec.source,
            "target": self.spec.target,
            "kind": self.spec.kind.value,
            "lag_seconds": self.lag_seconds,
            "offset_lag_bytes": self.offset_lag_bytes,
            "threshold_seconds": self.spec.threshold_seconds,
            "link": self.link.value,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class SuppressionCount:
    """How many entries one region's store holds in one suppression list (ZCARD)."""

    region: str
    list: str
    count: int | None  # None: the store could not be read
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SuppressionDivergence:
    """Entries a source region added within the lookback window that a target lacks.

    Counted over the `examined` entries only: when `truncated`, the scan stopped at
    the per-poll cap (or an error) and `unsynced` is a lower bound. The scan runs
    oldest first, so the oldest unsynced entry is found even then. unsynced is None
    when nothing could be examined.
    """

    source: str
    target: str
    list: str
    unsynced: int | None
    oldest_unsynced_age_seconds: float | None  # None when nothing is unsynced (or unknown)
    examined: int = 0
    truncated: bool = False
    examples: tuple[str, ...] = ()  # a few unsynced members, oldest first
    error: str | None = None
    # The collector is still reading a store in full (noc's first look, a flushed or
    # replaced store): unsynced is a lower bound, truncated is set as well.
    rebuilding: bool = False
    # While rebuilding: the share (0-1) of both stores' window entries read so far.
    rebuild_progress: float = 1.0

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "list": self.list,
            "unsynced": self.unsynced,
            "oldest_unsynced_age_seconds": self.oldest_unsynced_age_seconds,
            "rebuilding": self.rebuilding,
        }


@dataclass(frozen=True, slots=True)
class SuppressionSample:
    """One poll of every region's suppression lists: sizes, and per ordered pair the gap."""

    at: float
    wall: datetime
    lookback_seconds: float
    counts: tuple[SuppressionCount, ...]
    pairs: tuple[SuppressionDivergence, ...]
    examined: int  # source entries read this poll, across every scan
    truncated: bool  # some scan stopped before the end of its window


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync-now run copied from a source list to a target."""

    list: str
    at: float
    wall: datetime
    examined: int  # source entries read within the lookback window
    missing: int  # of those, absent from the target when checked
    copied: int  # added to the target by this run (0 on a repeat: ZADD NX)
    truncated: bool  # stopped at the cap or an error: run it again
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliverabilityCounts:
    """Mail events summed over a window, and the two rates an operator watches.

    bounce_rate = (hard + soft) / sent: of the mail noc's regions sent, the share
    refused. complaint_rate = complaint / delivered: only delivered mail can be
    reported as spam, and mailbox providers (Gmail's 0.3 %) count against delivered
    mail. A rate with no denominator is None ("no data"), never 0.
    """

    sent: int = 0
    delivered: int = 0
    hard_bounce: int = 0
    soft_bounce: int = 0
    complaint: int = 0

    @property
    def bounce_rate(self) -> float | None:
        return (self.hard_bounce + self.soft_bounce) / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaint / self.delivered if self.delivered else None

    def __add__(self, other: DeliverabilityCounts) -> DeliverabilityCounts:
        return DeliverabilityCounts(
            sent=self.sent + other.sent,
            delivered=self.delivered + other.delivered,
            hard_bounce=self.hard_bounce + other.hard_bounce,
            soft_bounce=self.soft_bounce + other.soft_bounce,
            complaint=self.complaint + other.complaint,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "hard_bounce": self.hard_bounce,
            "soft_bounce": self.soft_bounce,
            "complaint": self.complaint,
            "bounce_rate": self.bounce_rate,
            "complaint_rate": self.complaint_rate,
        }


@dataclass(frozen=True, slots=True)
class RegionDeliverability:
    region: str
    counts: DeliverabilityCounts | None  # None: unknown (store unreachable, bad counter)
    complaint_series: tuple[int, ...] = ()  # complaints per minute, oldest first
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliverabilitySample:
    """Every region's counters over the same window, and their sum: one estate view.

    The window is the current (partial) UTC minute and the window_minutes - 1 before
    it, starting at window_start. `estate` sums the regions that could be read; the
    others are listed in `missing`, so a partial total never passes for a whole one.
    """

    at: float
    wall: datetime
    window_minutes: int
    window_start: datetime
    regions: tuple[RegionDeliverability, ...]
    estate: DeliverabilityCounts
    estate_complaint_series: tuple[int, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(r.region for r in self.regions if r.counts is None)

    def as_json(self) -> dict[str, Any]:
        empty = dict.fromkeys(DeliverabilityCounts().as_json())
        return {
            "window_minutes": self.window_minutes,
            "estate": {**self.estate.as_json(), "missing_regions": list(self.missing)},
            "regions": [
                {
                    "id": r.region,
                    **(r.counts.as_json() if r.counts is not None else empty),
                    "error": r.error,
                }
                for r in self.regions
            ],
        }


@dataclass(frozen=True, slots=True)
class LagPoint:
    """One reading of a link's lag, kept in a bounded history for charts."""

    at: float
    wall: datetime
    lag_seconds: float | None
    link: LinkState


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A replication link: its last sample and its recent history."""

    id: str  # "suppression:ro>bg"
    spec: ReplicationSpec
    last: ReplicationSample | None
    history: tuple[LagPoint, ...]
    age_seconds: float | None

    @property
    def over_threshold(self) -> bool:
        lag = None if self.last is None else self.last.lag_seconds
        return lag is not None and lag > self.spec.threshold_seconds


@dataclass(frozen=True, slots=True)
class DnsView:
    """One resolver's answer for one failover record, and the region it points to."""

    sample: DnsRecordSample
    region: str | None  # None: no answer, or an answer that maps to no (single) region
    unexpected: tuple[str, ...] = ()  # answers that belong to no region at all


@dataclass(frozen=True, slots=True)
class DnsConsensus:
    """Where one record sends traffic, by resolver vote: "smtp -> bg on 2/3"."""

    name: str
    rtype: FailoverRecordType
    region: str | None
    agreeing: int
    answered: int
    asked: int
    # Resolvers pointing elsewhere: (resolver, region or None, remaining TTL).
    others: tuple[tuple[str, str | None, int | None], ...] = ()

    @property
    def share(self) -> str:
        return f"{self.agreeing}/{self.asked}"


# --- Failover actuators: what the DNS actuator reads, changes and watches ---


@dataclass(frozen=True, slots=True)
class RRsetState:
    """One failover record's RRset as the authoritative server holds it right now.

    `values` are sorted text forms as `collectors.dns_records.answer_text` gives
    them ("192.0.2.10", "10 mx.ro.example.com"); () when the RRset does not exist.
    `error` says why it could not be read; such a record cannot be planned.
    """

    name: str
    rtype: FailoverRecordType
    values: tuple[str, ...] = ()
    ttl: int | None = None
    error: str | None = None
    # The name is an alias (a CNAME to this target): noc cannot move it, and `values`
    # are what the chain ends at, not records at the name itself.
    cname: str | None = None


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One RRset changed by an action: exactly `old` (a prerequisite) becomes `new`.

    Only the records in one set and not the other are written (deleted or added, one
    by one); the values in both are kept as they are.
    """

    name: str
    rtype: FailoverRecordType
    old: tuple[str, ...]
    new: tuple[str, ...]
    ttl: int
    # The longest TTL a configured resolver still reports for the old answer: how
    # long clients may keep using it. None when no resolver answered.
    remaining_ttl: int | None = None
    # Values of `old` that belong to no region (a third party's, or a hijack): kept.
    foreign: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return set(self.old) != set(self.new)

    @property
    def kept(self) -> tuple[str, ...]:
        """The values the change leaves in place, in `new`'s order."""
        old = set(self.old)
        return tuple(value for value in self.new if value in old)

    def reverse(self) -> RecordChange:
        return RecordChange(
            self.name, self.rtype, self.new, self.old, self.ttl, foreign=self.foreign
        )

    def value_words(self, value: str) -> str:
        """A value of `new` as the preview names it: marked when it is kept."""
        if value not in self.kept:
            return value
        return f"{value} (kept, no region)" if value in self.foreign else f"{value} (kept)"

    def describe(self) -> str:
        old = ", ".join(self.old) or "(none)"
        new = ", ".join(self.value_words(v) for v in self.new) or "(none)"
        return f"{self.name} {self.rtype.value}: {old} -> {new} (TTL {self.ttl} s)"


@dataclass(frozen=True, slots=True)
class PropagationProgress:
    """How many of the servers asked already serve the new answers, after how long."""

    elapsed_seconds: float
    moved: tuple[str, ...]  # servers (as "host:port") answering every change's new values
    # (server, why it is behind): "stale (serial 7): still smtp.example. A 192.0.2.10"
    # or "not answering: smtp.example. A: timeout".
    waiting: tuple[tuple[str, str], ...]
    done: bool  # every server moved, or the TTL has run out
    ttl_expired: bool = False

    @property
    def asked(self) -> int:
        return len(self.moved) + len(self.waiting)


class AutoMode(StrEnum):
    OFF = "off"  # [failover] auto = false
    ARMED = "armed"  # watching the active region
    COUNTING = "counting"  # the active region is down; acting at auto_after_seconds
    PAUSED = "paused"  # the operator's pause switch
    HELD = "held"  # due, but a safety rule or noc's own view says no
    FIRED = "fired"  # it has acted once; it will not act again until re-armed


@dataclass(frozen=True, slots=True)
class AutoStatus:
    """Automated failover, as the status bar and the wall show it."""

    mode: AutoMode
    detail: str = ""
