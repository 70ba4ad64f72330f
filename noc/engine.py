"""The engine: folds samples into one estate state. Pure, synchronous, clock-injected.

No I/O and no sleeping happens here, so tests drive it with a FakeClock.

Health verdicts follow domain.md: a check is down after `failure_threshold`
consecutive failures and recovers after `recovery_threshold` consecutive
successes. Partial failure is a state of its own: a check that is not down but
failed `failure_threshold` of its last `2 x failure_threshold` probes is degraded
(a flapping endpoint never fails three times in a row, yet fails half its
probes), and flapping when its probes changed between pass and fail at least
FLAP_CHANGES times in that window.

Cut off is a judgement over every source, not HTTP alone. When every health check
fails with connection errors at once, noc may be the one cut off: each check
shows its last known status. But the failures are still counted underneath, and
as soon as any other source answers after the checks went dark (a flag store, a
replica, a DNS server, a suppression store), noc is evidently not cut off: it is
an estate-wide outage (a bad deploy, a shared load balancer), the counted
failures stand and the regions go down. When a health check answers again
instead, the dark run was noc's own and its failures are dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise

from noc.alerts import AlertBook, AlertPolicy
from noc.clock import Clock
from noc.config import NocConfig
from noc.maintenance import MaintenanceBook
from noc.model import (
    AlertNotice,
    Authority,
    AutoStatus,
    CanarySample,
    CanaryState,
    CheckSample,
    CheckStatus,
    CheckTarget,
    DeliverabilitySample,
    DnsblSample,
    DnsConsensus,
    DnsErrorKind,
    DnsRecordSample,
    DnsView,
    DrillDue,
    EmailAuthSample,
    EstateSnapshot,
    FlagSample,
    Health,
    LagPoint,
    LinkState,
    LinkStatus,
    MtaSample,
    MtaStsSample,
    RegionStatus,
    ReplicationSample,
    SmtpSample,
    SmtpStatus,
    SmtpTarget,
    StoreStatus,
    SuppressionSample,
)
from noc.rules import (
    apply_overrides,
    canary_conditions,
    data_conditions,
    dns_conditions,
    estate_conditions,
    mail_conditions,
    mta_conditions,
)
from noc_collectors.dns_names import answer_target, map_answers_to_region

# A link's chart covers the last hour; polls are at least a second apart.
LAG_HISTORY_SECONDS = 3600
MAX_LAG_POINTS = 3600
# pass -> fail -> pass -> fail within the recent window: flapping, not a one-off blip.
FLAP_CHANGES = 3
# DNS errors that mean no server answered at all (as opposed to SERVFAIL, NXDOMAIN...).
_DNS_SILENCE = frozenset({DnsErrorKind.TIMEOUT, DnsErrorKind.NETWORK, DnsErrorKind.INVALID_QUERY})


@dataclass(frozen=True, slots=True)
class _Verdict:
    health: Health = Health.UNKNOWN
    failures: int = 0
    successes: int = 0

    def after(self, ok: bool, target: CheckTarget | SmtpTarget) -> _Verdict:
        if ok:
            successes = self.successes + 1
            recovered = self.health is not Health.DOWN or successes >= target.recovery_threshold
            return _Verdict(Health.HEALTHY if recovered else Health.DOWN, 0, successes)
        failures = self.failures + 1
        health = Health.DOWN if failures >= target.failure_threshold else self.health
        return _Verdict(health, failures, 0)


class _CheckMachine:
    """One check's state machine, with what it looked like before its current run of
    unreachable failures (so a cut-off can restore the last known status)."""

    def __init__(self, target: CheckTarget) -> None:
        self.target = target
        self.verdict = _Verdict()
        # While noc may be cut off: show the status from before the dark run.
        self.held = False
        self.recent: deque[bool] = deque(maxlen=2 * target.failure_threshold)
        self.probes = 0  # since this engine started
        self.last: CheckSample | None = None
        self.before_unreachable_run: _Verdict | None = None
        self.recent_before_unreachable_run: tuple[bool, ...] = ()
        self.unreachable_since: float | None = None

    @property
    def unreachable(self) -> bool:
        return self.last is not None and self.last.error is not None and self.last.error.unreachable

    def ingest(self, sample: CheckSample) -> None:
        unreachable = sample.error is not None and sample.error.unreachable and not sample.ok
        if unreachable and not self.unreachable:
            self.before_unreachable_run = self.verdict
            self.recent_before_unreachable_run = tuple(self.recent)
            self.unreachable_since = sample.at
        elif not unreachable:
            self.before_unreachable_run = None
            self.unreachable_since = None
        self.last = sample
        self.probes += 1
        before = self.verdict.health
        self.verdict = self.verdict.after(sample.ok, self.target)
        if before is Health.DOWN and self.verdict.health is Health.HEALTHY:
            # Recovered: the outage's failures are history, not a partial failure
            # (recovery_threshold successes mean healthy, as they always did).
            self.recent.clear()
        self.recent.append(sample.ok)

    @property
    def unsettled(self) -> bool:
        """Counting toward a change of verdict: failing but not yet down, or down and
        passing but not yet recovered. The scheduler retries such a check sooner."""
        verdict = self.verdict
        if verdict.health is Health.DOWN:
            return verdict.successes > 0
        return verdict.failures > 0

    def drop_dark_run(self) -> None:
        """noc was cut off: the run's failures were noc's, not the endpoint's."""
        if self.held and self.before_unreachable_run is not None:
            self.verdict = self.before_unreachable_run
            self.recent.clear()
            self.recent.extend(self.recent_before_unreachable_run)
        self.held = False

    def _shown(self) -> tuple[_Verdict, tuple[bool, ...]]:
        if self.held and self.before_unreachable_run is not None:
            return self.before_unreachable_run, self.recent_before_unreachable_run
        return self.verdict, tuple(self.recent)

    def _partial(self, outcomes: tuple[bool, ...]) -> tuple[int, bool]:
        """Failures among the recent probes, and whether they flap."""
        failures = outcomes.count(False)
        changes = sum(1 for a, b in pairwise(outcomes) if a != b)
        return failures, failures > 0 and changes >= FLAP_CHANGES

    def status(self, now: float, *, retrying: bool = False) -> CheckStatus:
        """`retrying`: the scheduler probes this check at its retry interval now."""
        (verdict, recent), last = self._shown(), self.last
        recent_failures, flapping = self._partial(recent)
        health = verdict.health
        if health is Health.HEALTHY and recent_failures >= self.target.failure_threshold:
            health = Health.DEGRADED
        until_down: float | None = None
        if last is not None and 0 < verdict.failures < self.target.failure_threshold:
            remaining = self.target.failure_threshold - verdict.failures
            pace = self.target.retry_interval_seconds if retrying else self.target.interval_seconds
            until_down = max(0.0, last.at + remaining * pace - now)
        return CheckStatus(
            target=self.target,
            health=health,
            consecutive_failures=verdict.failures,
            consecutive_successes=verdict.successes,
            last=last,
            seconds_until_down=until_down,
            age_seconds=None if last is None else max(0.0, now - last.at),
            recent_failures=recent_failures,
            recent_probes=len(recent),
            flapping=flapping,
        )


class _SmtpMachine:
    """One SMTP probe's verdict: down after failure_threshold failures in a row, up
    again after recovery_threshold successes, as an HTTP check."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target
        self.verdict = _Verdict()
        self.last: SmtpSample | None = None

    def ingest(self, sample: SmtpSample) -> None:
        self.last = sample
        self.verdict = self.verdict.after(sample.ok, self.target)

    @property
    def unsettled(self) -> bool:
        if self.verdict.health is Health.DOWN:
            return self.verdict.successes > 0
        return self.verdict.failures > 0

    def status(self, now: float) -> SmtpStatus:
        last = self.last
        age = None if last is None else max(0.0, now - last.at)
        return SmtpStatus(self.target, self.verdict.health, self.verdict.failures, last, age)


def region_health(checks: tuple[CheckStatus, ...]) -> Health:
    """Healthy when all checks are, down when all are, degraded in between (and when
    any check fails part of its probes).

    Checks with no verdict yet do not count while others have one."""
    known = [c.health for c in checks if c.health is not Health.UNKNOWN]
    if not known:
        return Health.UNKNOWN
    if all(h is Health.DOWN for h in known):
        return Health.DOWN
    if any(h is not Health.HEALTHY for h in known):
        return Health.DEGRADED
    return Health.HEALTHY


class Engine:
    """Folds check and flag samples into state; `snapshot()` gives one consistent picture.

    `single_round=True` is for `noc check`: one probe per check decides, so a
    failure threshold applies without waiting for repeated failures.
    """

    def __init__(self, config: NocConfig, clock: Clock, *, single_round: bool = False) -> None:
        self.config = config
        self.clock = clock
        targets = config.check_targets()
        if single_round:
            targets = [replace(t, failure_threshold=1, recovery_threshold=1) for t in targets]
        self._machines = {t.check_id: _CheckMachine(t) for t in targets}
        smtp = config.smtp_targets()
        if single_round:
            smtp = [replace(t, failure_threshold=1, recovery_threshold=1) for t in smtp]
        self._smtp = {t.check_id: _SmtpMachine(t) for t in smtp}
        self._flags: dict[str, FlagSample] = {}
        self._cut_off_since: datetime | None = None
        # When a source other than the health checks last answered (monotonic).
        self._other_answer_at: float | None = None
        # When a health check last got an answer (monotonic): noc reaches something.
        self._check_answer_at: float | None = None
        self._last_sample_at: float | None = None
        self._started_at = clock.monotonic()
        self._longest_cycle = max(
            (t.interval_seconds + t.timeout_seconds for t in targets), default=30.0
        )
        self._links = {link.link_id: link for link in config.replication}
        self._lag: dict[str, deque[LagPoint]] = {
            link_id: deque(
                maxlen=min(MAX_LAG_POINTS, int(LAG_HISTORY_SECONDS / link.interval_seconds) + 1)
            )
            for link_id, link in self._links.items()
        }
        self._last_lag: dict[str, ReplicationSample] = {}
        self._suppression: SuppressionSample | None = None
        self._deliverability: DeliverabilitySample | None = None
        self._dns: dict[tuple[str, str, str], DnsRecordSample] = {}
        self._email_auth: tuple[EmailAuthSample, ...] = ()
        self._dnsbl: tuple[DnsblSample, ...] = ()
        self._mta: dict[str, MtaSample] = {}
        self._mta_sts: MtaStsSample | None = None
        # The latest canary sample per (region, seed): bounded by the configuration.
        self._canary: dict[tuple[str, str], CanarySample] = {}
        # Told by whoever runs the automation (the app), so that its alerts page too.
        self.automation: AutoStatus | None = None
        # The leading agent judges alerts on the vantages' verdict, not on its own view
        # alone (noc.quorum): it sets this to put the shared verdict over its snapshot.
        self.verdict_overlay: Callable[[EstateSnapshot], EstateSnapshot] | None = None
        # Told by the app from the drill history (noc.drills.drill_schedule).
        self.drill: DrillDue | None = None
        self._region_values = {r.id: r.failover_values() for r in config.regions}
        self._all_values = {
            v.lower().rstrip(".") for vs in self._region_values.values() for v in vs
        }
        policy = config.alerts
        self.alerts = AlertBook(
            clock,
            AlertPolicy(
                policy.keep_firing_seconds, policy.flap_window_seconds, policy.flap_transitions
            ),
            single_round=single_round,
            hold_restored=True,  # released by evaluate_alerts once windows are full
        )
        # Filled by the scheduler's MaintenanceStore (the engine does no I/O).
        self.maintenance = MaintenanceBook()
        self.alerts.maintenance_of = self.maintenance.of_region

    def evaluate_alerts(self) -> list[AlertNotice]:
        """Run every rule against the current state; returns the alert transitions.

        Nothing is judged until every check has answered once (or a full cycle has
        passed): right after a restart there is no data yet, and alerts restored as
        firing must not resolve, only to fire and page again, for lack of it."""
        if not self._warmed_up():
            return []
        if self._windows_full():
            self.alerts.release_restored()
        snapshot = self.snapshot()
        if self.verdict_overlay is not None:
            snapshot = self.verdict_overlay(snapshot)
        conditions = [
            *estate_conditions(snapshot),
            *mail_conditions(snapshot, self.config),
            *data_conditions(snapshot, self.config),
            *dns_conditions(snapshot, self.config),
            *mta_conditions(snapshot, self.config),
            *canary_conditions(snapshot, self.config),
        ]
        return self.alerts.evaluate(apply_overrides(iter(conditions), self.config.alerts))

    def unsettled(self, check_id: str) -> bool:
        machine = self._machines.get(check_id)
        return machine is not None and machine.unsettled

    def retrying(self, check_id: str) -> bool:
        """Whether the check is to be probed again at its retry interval rather than at
        its next slot: its verdict is changing, and its failures are not ones noc may
        have caused itself (a connection error while nothing else has answered since:
        noc may be cut off, and such failures count no faster than the schedule)."""
        machine = self._machines.get(check_id)
        return machine is not None and machine.unsettled and self.corroborated(check_id)

    def corroborated(self, check_id: str) -> bool:
        """The check's latest failure is the endpoint's, as far as noc can tell: it
        answered (a status, a body), or something else answered after it went dark."""
        machine = self._machines.get(check_id)
        if machine is None or not machine.unreachable:
            return True
        since = machine.unreachable_since
        answered = max(self._check_answer_at or -1e18, self._other_answer_at or -1e18)
        # Strictly after, as in _everything_unreachable.
        return since is None or answered > since

    def corroborators(self, check_id: str, count: int) -> list[str]:
        """Up to `count` other checks whose answer would tell whether noc can reach
        anything: not dark themselves, other regions' first."""
        machine = self._machines.get(check_id)
        if machine is None:
            return []
        region = machine.target.region_id
        candidates = [m for m in self._machines.values() if m is not machine and not m.unreachable]
        candidates.sort(key=lambda m: m.target.region_id == region)
        return [m.target.check_id for m in candidates[:count]]

    @property
    def targets(self) -> list[CheckTarget]:
        return [m.target for m in self._machines.values()]

    @property
    def smtp_targets(self) -> list[SmtpTarget]:
        return [m.target for m in self._smtp.values()]

    def smtp_unsettled(self, check_id: str) -> bool:
        machine = self._smtp.get(check_id)
        return machine is not None and machine.unsettled

    def ingest_smtp(self, sample: SmtpSample) -> None:
        """SMTP is judged apart from the HTTP checks (a region's health stays theirs),
        but a mail server that answered shows noc is not cut off."""
        machine = self._smtp.get(sample.check_id)
        if machine is None:
            return
        machine.ingest(sample)
        if sample.ok or (sample.error is not None and not sample.error.unreachable):
            self._other_source_answered(sample.at)

    @property
    def cut_off(self) -> bool:
        return self._cut_off_since is not None

    def ingest(self, sample: CheckSample) -> None:
        machine = self._machines.get(sample.check_id)
        if machine is None:
            return
        self._last_sample_at = max(self._last_sample_at or sample.at, sample.at)
        answered = sample.error is None or not sample.error.unreachable or sample.ok
        if answered:
            self._check_answer_at = max(self._check_answer_at or sample.at, sample.at)
        if self.cut_off and answered:
            # A health endpoint answers: the dark run was noc's own.
            for each in self._machines.values():
                each.drop_dark_run()
            self._cut_off_since = None
        machine.ingest(sample)
        if not self.cut_off and self._everything_unreachable():
            self._enter_cut_off(sample)

    def _other_source_answered(self, at: float | None = None) -> None:
        """A store, replica, DNS server or metrics source answered: noc is not cut off,
        and failures counted while it seemed to be are real (an estate-wide outage)."""
        at = self.clock.monotonic() if at is None else at
        self._other_answer_at = max(self._other_answer_at or at, at)
        if self.cut_off:
            for machine in self._machines.values():
                machine.held = False
            self._cut_off_since = None

    def _windows_full(self) -> bool:
        """Every check has a full partial-failure window of probes since the start (or
        the time for one has passed): a restored "degraded" can be judged again."""
        if all(m.probes >= 2 * m.target.failure_threshold for m in self._machines.values()):
            return True
        window = max(
            (2 * m.target.failure_threshold * m.target.interval_seconds + m.target.timeout_seconds
             for m in self._machines.values()), default=0.0,
        )  # fmt: skip
        return self.clock.monotonic() - self._started_at > window

    def _warmed_up(self) -> bool:
        if all(m.last is not None for m in self._machines.values()):
            return True
        return self.clock.monotonic() - self._started_at > self._longest_cycle

    def ingest_flag(self, sample: FlagSample) -> None:
        self._flags[sample.store_region] = sample
        if sample.reachable:
            self._other_source_answered(sample.at)

    def ingest_replication(self, link_id: str, sample: ReplicationSample) -> None:
        history = self._lag.get(link_id)
        if history is None:
            return
        self._last_lag[link_id] = sample
        history.append(LagPoint(sample.at, sample.wall, sample.lag_seconds, sample.link))
        if sample.lag_seconds is not None or sample.link is not LinkState.UNKNOWN:
            self._other_source_answered(sample.at)

    def ingest_suppression(self, sample: SuppressionSample) -> None:
        self._suppression = sample
        if any(count.error is None for count in sample.counts):
            self._other_source_answered(sample.at)

    def ingest_deliverability(self, sample: DeliverabilitySample) -> None:
        self._deliverability = sample

    def ingest_dns(self, samples: tuple[DnsRecordSample, ...]) -> None:
        for sample in samples:
            self._dns[(sample.name, sample.rtype.value, sample.resolver)] = sample
            if sample.error is None or sample.error.kind not in _DNS_SILENCE:
                self._other_source_answered(sample.at)

    def ingest_email_auth(self, samples: tuple[EmailAuthSample, ...]) -> None:
        self._email_auth = samples

    def ingest_dnsbl(self, samples: tuple[DnsblSample, ...]) -> None:
        self._dnsbl = samples

    def ingest_mta(self, sample: MtaSample) -> None:
        self._mta[sample.region] = sample

    def ingest_canary(self, sample: CanarySample) -> None:
        """The latest word on a region's canaries to a seed: a new canary in flight
        (PENDING) only updates the count awaited, keeping the last verdict in view."""
        key = (sample.region, sample.seed)
        last = self._canary.get(key)
        if sample.state is CanaryState.PENDING and last is not None:
            self._canary[key] = replace(last, outstanding=sample.outstanding)
        else:
            self._canary[key] = sample

    def ingest_mta_sts(self, sample: MtaStsSample) -> None:
        self._mta_sts = sample

    def _dns_views(self) -> tuple[DnsView, ...]:
        views = []
        for sample in self._dns.values():
            region = map_answers_to_region(sample.answers, self._region_values)
            unexpected = tuple(
                a for a in sample.answers if answer_target(a) not in self._all_values
            ) if sample.rtype.value != "CNAME" else ()  # fmt: skip
            views.append(DnsView(sample, region, unexpected))
        return tuple(views)

    def _consensus(self, views: tuple[DnsView, ...]) -> tuple[DnsConsensus, ...]:
        result = []
        for record in self.config.dns.records:
            asked = [
                v
                for v in views
                if (v.sample.name, v.sample.rtype.value) == (record.name, record.type)
            ]
            answered = [v for v in asked if v.sample.error is None and v.sample.answers]
            votes: dict[str | None, int] = {}
            for view in answered:
                votes[view.region] = votes.get(view.region, 0) + 1
            region = max(votes, key=lambda r: (votes[r], r is not None), default=None)
            result.append(
                DnsConsensus(
                    name=record.name,
                    rtype=record.record().rtype,
                    region=region,
                    agreeing=votes.get(region, 0),
                    answered=len(answered),
                    asked=len(asked),
                    others=tuple(
                        (v.sample.resolver, v.region, v.sample.ttl)
                        for v in answered
                        if v.region != region
                    ),
                )
            )
        return tuple(result)

    def _links_status(self, now: float) -> tuple[LinkStatus, ...]:
        statuses = []
        for link_id, link in self._links.items():
            last = self._last_lag.get(link_id)
            statuses.append(
                LinkStatus(
                    id=link_id,
                    spec=link.spec(),
                    last=last,
                    history=tuple(
                        p for p in self._lag[link_id] if now - p.at <= LAG_HISTORY_SECONDS
                    ),
                    age_seconds=None if last is None else max(0.0, now - last.at),
                )
            )
        return tuple(statuses)

    def _everything_unreachable(self) -> bool:
        """Every health check fails with a connection error, and no other source has
        answered since the first of them went dark."""
        machines = self._machines.values()
        if not machines or not all(m.unreachable for m in machines):
            return False
        dark_since = min(m.unreachable_since or 0.0 for m in machines)
        # Strictly after: an answer stamped the same instant proves nothing about the dark.
        return self._other_answer_at is None or self._other_answer_at <= dark_since

    def _enter_cut_off(self, sample: CheckSample) -> None:
        """Show each check's last known status, not what the dark run counted. A check
        that was failing on its own for longer than one of its intervals before
        everything went dark keeps its verdict."""
        self._cut_off_since = sample.wall
        went_dark = max(m.unreachable_since or sample.at for m in self._machines.values())
        for machine in self._machines.values():
            started = machine.unreachable_since
            own_failure = (
                started is not None and started < went_dark - machine.target.interval_seconds
            )
            machine.held = machine.before_unreachable_run is not None and not own_failure

    def _estate_outage(self) -> bool:
        """Every health check failing while noc is not cut off: the estate, not noc."""
        machines = self._machines.values()
        return (
            not self.cut_off
            and bool(machines)
            and all(m.last is not None and not m.last.ok for m in machines)
        )

    def _authority(self) -> Authority:
        if not any(r.redis_url for r in self.config.regions):
            return Authority(self.config.primary.id, "configured primary (no stores configured)")
        readable = [s for s in self._flags.values() if s.reachable]
        unreadable = tuple(
            r.id for r in self.config.regions if r.redis_url and not self._reachable(r.id)
        )
        if not readable:
            return Authority(None, "no store could be read", unreadable=unreadable)
        flagged = [s for s in readable if s.flag is not None]
        if not flagged:
            return Authority(
                self.config.primary.id,
                "configured primary (no failover flag written yet)",
                agreeing=tuple(s.store_region for s in readable),
                unreadable=unreadable,
            )
        votes: dict[str, list[FlagSample]] = {}
        for s in flagged:
            assert s.flag is not None
            votes.setdefault(s.flag.active, []).append(s)
        # Most stores win; a tie goes to the most recently written flag.
        active = max(
            votes, key=lambda a: (len(votes[a]), max(s.flag.at for s in votes[a] if s.flag))
        )
        agreeing = tuple(s.store_region for s in votes[active])
        disagreeing = tuple(
            (s.store_region, s.flag.active if s.flag else "no flag")
            for s in readable
            if s.store_region not in agreeing
        )
        return Authority(
            active,
            f"failover flag on {len(agreeing)}/{len(readable)} readable stores",
            agreeing=agreeing,
            disagreeing=disagreeing,
            unreadable=unreadable,
        )

    def _reachable(self, region_id: str) -> bool:
        sample = self._flags.get(region_id)
        return sample is not None and sample.reachable

    def _store(self, region_id: str, has_store: bool, now: float) -> StoreStatus:
        sample = self._flags.get(region_id)
        if not has_store:
            return StoreStatus(region_id, None, None, "no redis_url configured", None)
        if sample is None:
            return StoreStatus(region_id, None, None, None, None)
        return StoreStatus(
            region_id, sample.reachable, sample.flag, sample.error, max(0.0, now - sample.at)
        )

    def snapshot(self, *, read_only: bool = False) -> EstateSnapshot:
        now = self.clock.monotonic()
        authority = self._authority()
        views = self._dns_views()
        consensus = self._consensus(views)
        listed = {d.region for d in self._dnsbl if d.listed}
        in_maintenance = self.maintenance.active(self.clock.utcnow())
        regions = []
        for region in self.config.regions:
            checks = tuple(
                m.status(now, retrying=self.retrying(m.target.check_id))
                for m in self._machines.values()
                if m.target.region_id == region.id
            )
            regions.append(
                RegionStatus(
                    id=region.id,
                    name=region.name or region.id,
                    role=region.role,
                    location=region.location,
                    health=region_health(checks),
                    checks=checks,
                    store=self._store(region.id, region.redis_url is not None, now),
                    is_active=authority.active_region == region.id,
                    dns_records=tuple(c.name for c in consensus if c.region == region.id),
                    sending_listed=region.id in listed,
                    mx_host=region.mx_host,
                    smtp=tuple(
                        m.status(now)
                        for m in self._smtp.values()
                        if m.target.region_id == region.id
                    ),
                    maintenance=in_maintenance.get(region.id),
                )
            )
        last_poll_age = None if self._last_sample_at is None else now - self._last_sample_at
        waited = now - (self._last_sample_at or self._started_at)
        return EstateSnapshot(
            estate=self.config.estate.name,
            topology=self.config.estate.topology,
            generated_at=self.clock.utcnow(),
            regions=tuple(regions),
            authority=authority,
            cut_off=self.cut_off,
            cut_off_since=self._cut_off_since,
            estate_outage=self._estate_outage(),
            last_poll_age=last_poll_age,
            stale=waited > 2 * self._longest_cycle,
            read_only=read_only,
            alerts=self.alerts.alerts(),
            replication=self._links_status(now),
            suppression=self._suppression,
            deliverability=self._deliverability,
            dns=views,
            consensus=consensus,
            email_auth=self._email_auth,
            dnsbl=self._dnsbl,
            mta=tuple(self._mta[r.id] for r in self.config.regions if r.id in self._mta),
            mta_sts=self._mta_sts,
            canary=tuple(self._canary[key] for key in sorted(self._canary)),
            automation=self.automation,
            drill=self.drill,
        )
