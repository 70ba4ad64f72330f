"""The control plane on Redis: what agents publish and screens read.

Keys (all under `[control] key_prefix` and the estate's name, so one Redis can serve
several estates):

- `<prefix>:<estate>:observations`: a Stream of every sample an agent's collectors
  produced, trimmed to about `stream_max_entries` (XADD MAXLEN ~).
- `<prefix>:<estate>:vantages`: a hash, one field per vantage, holding that agent's
  latest report (its engine's verdicts, its cut-off state and `last_seen`, the
  heartbeat). This hash is the shared snapshot: one HGETALL is every vantage's view,
  and the quorum merge (noc.quorum, pure) turns it into one verdict per region the
  same way on every reader. Writers never race: each agent writes only its field.

- `<prefix>:<estate>:leader` and `:leader-token`: the leader's lease and the fencing
  token counter (noc.lease); `:outbox`: the leader's notification outbox
  (noc.shared_outbox); `:automation`: the leader's automated failover state;
  `:alerts`: the leader's alert book, as every screen shows it; `:operator-events`:
  acks and silences from attached screens, for the leader to apply; `:audit`: what the
  leaders applied, in order. Every write of a leader is fenced by its token.

A report is JSON with a version number; a report this noc cannot read is skipped
(and logged), never fatal: an agent of another version must not blind the screens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import redis.asyncio as aioredis

from noc.alert_journal import shown_alert, shown_alert_record, silence_of, silence_record
from noc.clock import Clock, iso_utc
from noc.config import ControlConfig, NocConfig
from noc.lease import Holder
from noc.model import (
    Alert,
    Authority,
    CheckSample,
    CheckStatus,
    ErrorKind,
    EstateSnapshot,
    Health,
    LeaderStatus,
    ProbeError,
    RegionStatus,
    Silence,
    StoreStatus,
)
from noc.quorum import QuorumView, VantageReport, merge

log = logging.getLogger(__name__)

REPORT_VERSION = 1
# Operator events kept in the stream (XADD MAXLEN ~): acts are rare; the leader keeps
# its place by id, so only a leader away for this many acts would miss some.
OPERATOR_EVENTS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class ControlKeys:
    observations: str
    vantages: str
    # The leader's lease, the fencing-token counter, and the shared notification outbox
    # (noc.lease, noc.shared_outbox).
    leader: str = ""
    token: str = ""
    outbox: str = ""
    automation: str = ""  # the leader's automated failover: fired, paused
    # The leader's alert book as screens show it (alerts, silences, the last operator
    # event applied); the operator events screens send the leader; the shared audit.
    alert_book: str = ""
    operator_events: str = ""
    audit: str = ""

    @classmethod
    def of(cls, config: NocConfig, control: ControlConfig) -> ControlKeys:
        base = f"{control.key_prefix}:{config.estate.name}"
        return cls(
            observations=f"{base}:observations",
            vantages=f"{base}:vantages",
            leader=f"{base}:leader",
            token=f"{base}:leader-token",
            outbox=f"{base}:outbox",
            automation=f"{base}:automation",
            alert_book=f"{base}:alerts",
            operator_events=f"{base}:operator-events",
            audit=f"{base}:audit",
        )


def connect(control: ControlConfig) -> aioredis.Redis:
    """The control plane's client. With Sentinel, the primary is asked of the Sentinels
    at each (re)connection: after a promotion the next command reaches the new
    primary, and the commands between the loss and the promotion fail (the agents
    buffer or retry, the screens say the control plane is unreachable: a gap, shown as
    one, never filled in)."""
    if control.redis_url is not None:
        return aioredis.Redis.from_url(
            control.redis_url,
            socket_timeout=control.timeout_seconds,
            socket_connect_timeout=control.timeout_seconds,
            decode_responses=True,
        )
    from redis.asyncio.sentinel import Sentinel

    assert control.service_name is not None  # ControlConfig's validator
    timeouts = {
        "socket_timeout": control.timeout_seconds,
        "socket_connect_timeout": control.timeout_seconds,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        control.sentinel_addresses(), sentinel_kwargs=timeouts, **timeouts
    )
    password = control.password.get_secret_value() if control.password else None
    primary: aioredis.Redis = sentinel.master_for(
        control.service_name, db=control.db, password=password, decode_responses=True
    )
    return primary


def _plain(value: Any) -> Any:
    """A sample as JSON can carry it: dataclasses as objects, enums by value, times
    in ISO 8601 UTC."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)  # inside a tuple (DNS answers come several at a time)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON: {type(value).__name__}")


def observation_fields(vantage: str, kind: str, sample: object) -> dict[str, str]:
    """One stream entry: who saw it, what kind, and the sample itself as JSON."""
    data = asdict(sample) if is_dataclass(sample) and not isinstance(sample, type) else sample
    fields = {"vantage": vantage, "kind": kind, "data": json.dumps(data, default=_plain)}
    if isinstance(sample, CheckSample):
        # The fields a reader filters on, without parsing the JSON.
        fields.update(check=sample.check_id, region=sample.region_id, ok="1" if sample.ok else "0")
    return fields


def _check_json(check: CheckStatus) -> dict[str, Any]:
    last = check.last
    return {
        "health": check.health.value,
        "consecutive_failures": check.consecutive_failures,
        "consecutive_successes": check.consecutive_successes,
        "age_seconds": check.age_seconds,
        "last": None
        if last is None
        else {
            "wall": iso_utc(last.wall),
            "ok": last.ok,
            "status": last.status,
            "latency_ms": last.latency_ms,
            "error_kind": None if last.error is None else last.error.kind.value,
            "error": None if last.error is None else last.error.detail,
            "cert_days_left": last.cert_days_left,
        },
    }


def report_of(
    vantage: str, snapshot: EstateSnapshot, interval_seconds: float, now: datetime
) -> dict[str, Any]:
    """What an agent publishes: its engine's snapshot, reduced to what screens show."""
    authority = snapshot.authority
    return {
        "version": REPORT_VERSION,
        "vantage": vantage,
        # To the microsecond: staleness is judged against two report intervals.
        "last_seen": now.astimezone(UTC).isoformat(),
        "interval_seconds": interval_seconds,
        "cut_off": snapshot.cut_off,
        "estate_outage": snapshot.estate_outage,
        "authority": {
            "active_region": authority.active_region,
            "source": authority.source,
            "agreeing": list(authority.agreeing),
            "disagreeing": [list(pair) for pair in authority.disagreeing],
            "unreadable": list(authority.unreadable),
        },
        "regions": {
            region.id: {
                "health": region.health.value,
                "store": {"reachable": region.store.reachable, "error": region.store.error},
                "checks": {c.target.check_id: _check_json(c) for c in region.checks},
            }
            for region in snapshot.regions
        },
    }


@dataclass(frozen=True, slots=True)
class SharedReport:
    """A vantage's report as read back: the part the quorum merge needs, and the rest
    (check details, authority) as published."""

    vantage: VantageReport
    body: Mapping[str, Any]


def parse_report(name: str, text: str) -> SharedReport | None:
    try:
        body = json.loads(text)
        if body.get("version") != REPORT_VERSION or body.get("vantage") != name:
            raise ValueError(f"version {body.get('version')!r} of vantage {body.get('vantage')!r}")
        regions = body["regions"]
        report = VantageReport(
            name=name,
            last_seen=datetime.fromisoformat(body["last_seen"]),
            interval_seconds=float(body["interval_seconds"]),
            cut_off=bool(body["cut_off"]),
            regions=tuple((rid, Health(region["health"])) for rid, region in regions.items()),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("control plane: the report of vantage %r is unreadable: %s", name, exc)
        return None
    return SharedReport(report, body)


async def read_reports(client: aioredis.Redis, keys: ControlKeys) -> list[SharedReport]:
    """Every vantage's latest report: one round trip."""
    raw = await client.hgetall(keys.vantages)
    return _parsed_reports(raw)


def _parsed_reports(raw: Mapping[Any, Any]) -> list[SharedReport]:
    # decode_responses=True: names and reports are text.
    parsed = (parse_report(str(name), str(text)) for name, text in sorted(raw.items()))
    return [report for report in parsed if report is not None]


async def read_shared(
    client: aioredis.Redis, keys: ControlKeys
) -> tuple[list[SharedReport], LeaderStatus | None]:
    """Every vantage's latest report and who leads: one round trip."""
    reports, leader, _ = await read_shared_all(client, keys)
    return reports, leader


async def read_shared_all(
    client: aioredis.Redis, keys: ControlKeys
) -> tuple[list[SharedReport], LeaderStatus | None, AlertBookView | None]:
    """Every vantage's latest report, who leads and the leader's alert book: one round
    trip."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.vantages)
    pipe.get(keys.leader)
    pipe.get(keys.alert_book)
    raw, lease, book = await pipe.execute()
    return _parsed_reports(raw), leader_status(lease), parse_alert_book(book)


@dataclass(frozen=True, slots=True)
class AlertBookView:
    """The leader's alert book as published: what every screen shows as the alerts,
    and through which operator event (a stream id) the leader has applied acts."""

    alerts: tuple[Alert, ...]
    silences: tuple[Silence, ...]
    applied_through: str
    term: int
    at: datetime | None


def alert_book_text(
    alerts: Sequence[Alert], silences: Sequence[Silence], applied_through: str, term: int
) -> str:
    """The book without its time: the leader compares it with the last one it
    published and writes only a change (then with the time: see `stamped`)."""
    return json.dumps(
        {
            "version": REPORT_VERSION,
            "term": term,
            "applied_through": applied_through,
            "alerts": [shown_alert_record(a) for a in alerts],
            "silences": [silence_record(s) for s in silences],
        }
    )


def stamped(book_text: str, now: datetime) -> str:
    body = json.loads(book_text)
    body["at"] = now.astimezone(UTC).isoformat()
    return json.dumps(body)


def parse_alert_book(text: str | None) -> AlertBookView | None:
    if not text:
        return None
    try:
        body = json.loads(text)
        if body.get("version") != REPORT_VERSION:
            raise ValueError(f"version {body.get('version')!r}")
        return AlertBookView(
            alerts=tuple(shown_alert(raw) for raw in body["alerts"]),
            silences=tuple(silence_of(raw) for raw in body["silences"]),
            applied_through=str(body.get("applied_through") or "0-0"),
            term=int(body.get("term") or 0),
            at=datetime.fromisoformat(body["at"]) if body.get("at") else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("control plane: the alert book is unreadable: %s", exc)
        return None


def leader_status(text: str | None) -> LeaderStatus | None:
    holder = Holder.from_text(str(text)) if text else None
    if holder is None:
        return None
    try:
        since = datetime.fromisoformat(holder.since)
    except ValueError:
        log.warning("control plane: the leader's lease is unreadable: %r", text)
        return None
    return LeaderStatus(holder.vantage, since, holder.token)


def _sample(target_check: str, region: str, last: Mapping[str, Any], clock: Clock) -> CheckSample:
    wall = datetime.fromisoformat(last["wall"])
    age = max(0.0, (clock.utcnow() - wall).total_seconds())
    kind = last.get("error_kind")
    return CheckSample(
        check_id=target_check,
        region_id=region,
        at=clock.monotonic() - age,
        wall=wall,
        ok=bool(last["ok"]),
        status=last.get("status"),
        latency_ms=last.get("latency_ms"),
        error=None if kind is None else ProbeError(ErrorKind(kind), last.get("error") or ""),
        cert_days_left=last.get("cert_days_left"),
    )


def _representative(
    region_id: str, merged: Health, reports: Sequence[SharedReport], voting: frozenset[str]
) -> SharedReport | None:
    """Whose check details to show for a region: a voting vantage that sees what the
    merge decided (so the details explain the verdict), else any voting one, else the
    newest report."""
    voters = [r for r in reports if r.vantage.name in voting]
    agreeing = [r for r in voters if r.vantage.health_of(region_id) is merged]
    pool = agreeing or voters or sorted(reports, key=lambda r: r.vantage.last_seen, reverse=True)
    return pool[0] if pool else None


def shared_snapshot(
    config: NocConfig,
    reports: Sequence[SharedReport],
    clock: Clock,
    leader: LeaderStatus | None = None,
) -> EstateSnapshot:
    """The estate as the vantages see it together: each region's health merged by
    quorum, with the check details of a vantage that agrees with the verdict."""
    now = clock.utcnow()
    view: QuorumView = merge(
        (r.vantage for r in reports), [r.id for r in config.regions], config.health.quorum, now
    )
    voting = frozenset(view.voting)
    freshest = next(
        (r for r in sorted(reports, key=lambda r: r.vantage.last_seen, reverse=True)
         if r.vantage.name in voting),
        None,
    )  # fmt: skip
    authority = Authority(None, "no vantage can vote")
    if freshest is not None:
        a = freshest.body.get("authority") or {}
        authority = Authority(
            a.get("active_region"),
            f"{a.get('source', '?')} (as vantage {freshest.vantage.name} reads it)",
            agreeing=tuple(a.get("agreeing") or ()),
            disagreeing=tuple((s, t) for s, t in a.get("disagreeing") or ()),
            unreadable=tuple(a.get("unreadable") or ()),
        )
    targets = config.check_targets()
    regions = []
    for region in config.regions:
        merged = view.region(region.id)
        assert merged is not None  # merge() was given every region id
        health, votes = merged
        shown = _representative(region.id, health, reports, voting)
        body = (shown.body.get("regions") or {}).get(region.id) or {} if shown else {}
        details = body.get("checks") or {}
        checks = []
        for target in (t for t in targets if t.region_id == region.id):
            detail = details.get(target.check_id) or {}
            last = detail.get("last")
            checks.append(
                CheckStatus(
                    target=target,
                    health=Health(detail.get("health", Health.UNKNOWN.value)),
                    consecutive_failures=int(detail.get("consecutive_failures", 0)),
                    consecutive_successes=int(detail.get("consecutive_successes", 0)),
                    last=None if last is None else _sample(target.check_id, region.id, last, clock),
                    seconds_until_down=None,
                    age_seconds=detail.get("age_seconds"),
                )
            )
        store = body.get("store") or {}
        regions.append(
            RegionStatus(
                id=region.id,
                name=region.name or region.id,
                role=region.role,
                location=region.location,
                health=health,
                checks=tuple(checks),
                store=StoreStatus(
                    region.id, store.get("reachable"), None, store.get("error"), None
                ),
                is_active=authority.active_region == region.id,
                votes=votes,
            )
        )
    newest = max((v.last_seen for v in view.vantages), default=None)
    return EstateSnapshot(
        estate=config.estate.name,
        topology=config.estate.topology,
        generated_at=now,
        regions=tuple(regions),
        authority=authority,
        # No vantage can vote: every one is cut off or stale (or none ever reported).
        cut_off=not voting,
        cut_off_since=None,
        last_poll_age=None if newest is None else max(0.0, (now - newest).total_seconds()),
        stale=not any(not v.stale for v in view.vantages),
        estate_outage=bool(freshest and freshest.body.get("estate_outage")),
        vantages=view.vantages,
        leader=leader,
    )


def quorum_overlay(own: EstateSnapshot, shared: EstateSnapshot | None) -> EstateSnapshot:
    """An agent's own snapshot with each region's health, and noc's cut-off state, as
    the vantages decided together: what the leader's alert rules judge, so that one
    vantage's broken path is a split (a warning), not a page."""
    if shared is None:
        # The control plane was never read: this vantage's own view, as a standalone
        # noc would judge (the leader reads it before it judges: see noc.agent).
        return own
    merged = {r.id: r for r in shared.regions}
    return replace(
        own,
        regions=tuple(
            replace(r, health=merged[r.id].health, votes=merged[r.id].votes)
            if r.id in merged
            else r
            for r in own.regions
        ),
        cut_off=shared.cut_off,
    )


class SharedReader:
    """A screen's (or `noc check`'s) view of the control plane: every vantage's latest
    report, read in one round trip and merged by quorum."""

    def __init__(self, config: NocConfig, control: ControlConfig, clock: Clock) -> None:
        self.config = config
        self.control = control
        self.clock = clock
        self.keys = ControlKeys.of(config, control)
        self._client = connect(control)
        # The silences in force, as the leader's book last said (the palette's
        # "Expire silence" list on an attached screen).
        self.silences: tuple[Silence, ...] = ()

    async def read(self) -> EstateSnapshot | None:
        """The shared snapshot; None when no vantage has reported yet. Raises RedisError
        (or OSError) when the control plane cannot be read."""
        reports, leader, book = await read_shared_all(self._client, self.keys)
        self.silences = book.silences if book is not None else ()
        if not reports:
            return None
        snapshot = shared_snapshot(self.config, reports, self.clock, leader)
        # The alerts are the leader's (judged on the vantages' verdict, acked and
        # silenced from any screen); none while no agent has led yet.
        return replace(snapshot, alerts=book.alerts) if book is not None else snapshot

    async def submit(self, kind: str, operator: Mapping[str, str], **fields: str) -> str:
        """An operator's act (ack, silence, expire_silence) for the leader to apply:
        appended to the operator events; its stream id."""
        entry = {"kind": kind, "operator": json.dumps(dict(operator)), **fields}
        event_id = await self._client.xadd(
            self.keys.operator_events,
            entry,  # type: ignore[arg-type]
            maxlen=OPERATOR_EVENTS_KEPT,
            approximate=True,
        )
        return str(event_id)

    async def aclose(self) -> None:
        await self._client.aclose()
