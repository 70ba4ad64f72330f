"""Domain types shared by every part of noc.

Everything here is immutable plain data. This module imports nothing of ours, so
collectors, the engine, widgets and the CLI can all depend on it without
depending on each other.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True, slots=True)
class FailoverFlag:
    """The STOP-pattern flag kept in every region's store: which region is active."""

    active: str
    previous: str | None
    operator: str
    reason: str
    at: str  # UTC ISO-8601
    action_id: str = ""

    def as_mapping(self) -> dict[str, str]:
        return {
            "active": self.active,
            "previous": self.previous or "",
            "operator": self.operator,
            "reason": self.reason,
            "at": self.at,
            "action_id": self.action_id,
        }

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


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What noc last read of the failover flag in one region's store."""

    region_id: str
    reachable: bool | None  # None: not read yet
    flag: FailoverFlag | None
    error: str | None
    age_seconds: float | None


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

    @property
    def failing_checks(self) -> int:
        return sum(1 for c in self.checks if c.health is Health.DOWN)


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


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    rule: str
    severity: str  # "critical" | "warning" | "info"
    state: str  # "pending" | "firing" | "resolved"
    region: str | None
    summary: str
    since: datetime


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
    alerts: tuple[Alert, ...] = field(default=())

    @property
    def active_region(self) -> str | None:
        return self.authority.active_region

    def region(self, region_id: str) -> RegionStatus | None:
        return next((r for r in self.regions if r.id == region_id), None)

    @property
    def healthy_count(self) -> int:
        return sum(1 for r in self.regions if r.health is Health.HEALTHY)


# Operator actions: a plan computed from state, and what executing it did.


class ActionKind(StrEnum):
    FAILOVER = "failover"
    FAILBACK = "failback"


@dataclass(frozen=True, slots=True)
class Preflight:
    name: str
    ok: bool
    detail: str
    # A failed blocking check refuses the action; `forceable` ones can be
    # overridden by a second, recorded confirmation.
    blocking: bool = True
    forceable: bool = False


@dataclass(frozen=True, slots=True)
class StorePlan:
    region_id: str
    reachable: bool | None
    current_active: str | None
    error: str | None


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

    @property
    def failed(self) -> tuple[Preflight, ...]:
        return tuple(c for c in self.checks if c.blocking and not c.ok)

    @property
    def needs_force(self) -> bool:
        """Refused only by checks that a forced confirmation may override."""
        return bool(self.failed) and all(c.forceable for c in self.failed)

    @property
    def overridden(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.failed) if self.forced and self.needs_force else ()

    @property
    def allowed(self) -> bool:
        return not self.failed or (self.forced and self.needs_force)

    @property
    def refusal(self) -> str | None:
        if self.allowed:
            return None
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)

    @property
    def writable_stores(self) -> tuple[str, ...]:
        return tuple(s.region_id for s in self.stores if s.reachable)

    def describe(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "action": self.kind.value,
            "from": self.source,
            "to": self.target,
            "target_health": self.target_health.value,
            "forced": self.forced,
            "overridden": list(self.overridden),
            "preflight": [
                {"check": c.name, "ok": c.ok, "detail": c.detail, "blocking": c.blocking}
                for c in self.checks
            ],
            "stores": {
                s.region_id: "reachable" if s.reachable else (s.error or "not read")
                for s in self.stores
            },
        }


class StoreOutcome(StrEnum):
    VERIFIED = "verified"
    WRITTEN = "written, read-back differs"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class StoreResult:
    region_id: str
    outcome: StoreOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ActionResult:
    plan: ActionPlan
    flag: FailoverFlag
    stores: tuple[StoreResult, ...] = field(default=())

    @property
    def verified(self) -> tuple[str, ...]:
        return tuple(s.region_id for s in self.stores if s.outcome is StoreOutcome.VERIFIED)

    @property
    def success(self) -> bool:
        written = [s for s in self.stores if s.outcome is not StoreOutcome.UNREACHABLE]
        every_written_verified = all(s.outcome is StoreOutcome.VERIFIED for s in written)
        return every_written_verified and len(self.verified) > len(self.stores) / 2

    @property
    def summary(self) -> str:
        verdict = "verified" if self.success else "FAILED"
        parts = ", ".join(f"{s.region_id} {s.outcome.value}" for s in self.stores)
        return (
            f"{self.plan.kind.value} to {self.plan.target} {verdict}: "
            f"{len(self.verified)}/{len(self.stores)} stores verified ({parts})"
        )


class Fault(StrEnum):
    """Faults the demo's fault panel can inject into a simulated region."""

    DOWN = "down"
    SLOW = "slow"
    FLAP = "flap"
    GARBAGE = "garbage"
    RESTORE = "restore"


class FaultInjector(Protocol):
    """What the app needs from a simulated estate to show a fault panel.

    The simulator implements this; the app only sees the protocol, so no product
    logic depends on the simulator.
    """

    def region_ids(self) -> Sequence[str]: ...

    def current_fault(self, region_id: str) -> Fault | None: ...

    def inject(self, region_id: str, fault: Fault) -> Awaitable[None]: ...


_URL_PASSWORD = re.compile(r"(?P<prefix>//[^/@:]*:)(?P<secret>[^/@]+)(?P<suffix>@)")


def mask_url(url: str) -> str:
    """Hide the password (and a bare token user) of a URL: `redis://:****@host`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a malformed URL (say, port 99999) is still masked, by pattern
        return _URL_PASSWORD.sub(r"\g<prefix>****\g<suffix>", url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    user = parts.username or ""
    credentials = f"{user}:****" if parts.password is not None else "****"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))
