"""Supervised polling: one asyncio task per source, feeding the engine.

Each check has its own loop, so a hanging endpoint delays nothing else, and
never more than one probe of a check is in flight (the loop awaits its probe
before scheduling the next). Flag stores back off while unreachable. Nothing
here blocks: everything is awaited on the event loop it runs in. With probe_thread
(the dashboard, 100+ checks) the HTTP check loops run on a second event loop in a
thread of its own; the engine is still touched only on the loop that started the
scheduler (ProbeThread, OwnerHandoff).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from noc.alert_journal import AlertJournal
from noc.audit import EstatePaths, estate_paths
from noc.clock import Clock
from noc.config import NocConfig, ReplicationConfig
from noc.engine import Engine
from noc.maintenance import MaintenanceStore
from noc.model import (
    AlertNotice,
    CheckSample,
    CheckTarget,
    DnsRecordSample,
    ErrorKind,
    EstateSnapshot,
    FlagSample,
    MtaStsSample,
    ProbeError,
    ReplicationSample,
    SmtpSample,
    SmtpTarget,
)
from noc.notify import Notifier, Outbox
from noc_collectors.dns_names import parse_resolver
from noc_collectors.http import HttpHealthCollector

# Every other collector, and the actuators, are imported only by an estate that has
# what they watch: Redis, DNS and the metrics parser are most of noc's start-up, and
# `noc check` on an estate of HTTP checks needs none of them.
if TYPE_CHECKING:
    from noc.failover import Actuators
    from noc_collectors.canary import CanaryProber
    from noc_collectors.deliverability import DeliverabilityCollector
    from noc_collectors.dns_records import DnsRecordCollector
    from noc_collectors.dnsbl import DnsblCollector
    from noc_collectors.email_auth import EmailAuthCollector
    from noc_collectors.flag_store import FlagStore
    from noc_collectors.mta import MtaCollector
    from noc_collectors.mta_sts import MtaStsCollector
    from noc_collectors.smtp import SmtpCollector
    from noc_collectors.suppression import SuppressionCollector

log = logging.getLogger(__name__)

MAX_STORE_BACKOFF_SECONDS = 60.0
ALERT_TICK_SECONDS = 1.0
# A loop that dies is started again after 1 s, 2 s, 4 s ... at most this long, so a
# bug that kills it at once costs a log line a minute, not a busy loop.
FIRST_RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 60.0
# A loop that ran this long before dying is restarted after FIRST_RESTART_SECONDS
# again: it failed once, not in a tight circle.
HEALTHY_RUN_SECONDS = 120.0
# How often stop() cancels again a loop that has not ended: on Python 3.11 a
# cancellation can be swallowed inside a library (redis-py's wait_for and timeouts
# race with it), and the loop then polls on as if nothing had asked it to stop.
RECANCEL_SECONDS = 0.1

# How many other checks a check that went dark wakes to tell its own outage from
# noc's (an answer from any of them is enough; each is probed once, early).
CORROBORATORS = 2

T = TypeVar("T")

# Whether this process has frozen what it built before its first poll (see
# freeze_long_lived_objects): once a process, however many schedulers it starts.
_long_lived_frozen = False

# `noc check` reads a seed mailbox this often while its canaries are awaited.
CANARY_CHECK_POLL_SECONDS = 1.0


def canary_prober(config: NocConfig, clock: Clock) -> CanaryProber:
    """The canary prober of an estate's [[canary]] seeds and [regions.submission]s."""
    from noc_collectors.canary import CanaryProber, SeedMailbox, SubmissionEndpoint

    endpoints = {}
    for region in config.regions:
        sub = region.submission
        if sub is None:
            continue
        endpoints[region.id] = SubmissionEndpoint(
            region=region.id,
            host=sub.host,
            port=sub.port,
            implicit_tls=sub.tls == "implicit",
            tls_name=sub.tls_name or sub.host,
            username=sub.username,
            password_env=sub.password_env,
            from_address=sub.from_address,
            ca_file=str(Path(sub.ca_file).expanduser()) if sub.ca_file else None,
            timeout_seconds=sub.timeout_seconds,
        )
    seeds = [
        SeedMailbox(
            name=seed.name,
            address=seed.address,
            imap_host=seed.imap_host,
            imap_port=seed.imap_port,
            imap_user=seed.imap_user,
            imap_password_env=seed.imap_password_env,
            regions=tuple(config.canary_regions(seed)),
            inbox=seed.inbox,
            spam_folders=tuple(seed.spam_folders),
            imap_ca_file=str(Path(seed.imap_ca_file).expanduser()) if seed.imap_ca_file else None,
            deadline_seconds=seed.deadline_seconds,
            max_outstanding=seed.max_outstanding,
            scan_limit=seed.scan_limit,
            timeout_seconds=seed.timeout_seconds,
        )
        for seed in config.canary
    ]
    sending = [ip for ips in config.sending_ips().values() for ip in ips]
    return CanaryProber(endpoints, seeds, clock, sending_ips=sending)


class LagSource(Protocol):
    async def poll(self) -> ReplicationSample: ...

    async def aclose(self) -> None: ...


def lag_source(
    link: ReplicationConfig, config: NocConfig, clock: Clock, *, read_only: bool = False
) -> LagSource:
    if link.kind != "redis":
        from noc_collectors.metrics import MetricsLagCollector

        return MetricsLagCollector(link.spec(), timeout_seconds=link.timeout_seconds, clock=clock)
    from noc_collectors.replication import RedisReplicationCollector

    source = config.region(link.source)
    return RedisReplicationCollector(
        link.spec(),
        source_url=source.redis_url if source else None,
        # Read-only writes nothing anywhere, not even a heartbeat.
        heartbeat_key=None if read_only else (link.heartbeat_key or None),
        timeout_seconds=link.timeout_seconds,
        clock=clock,
    )


@dataclass(frozen=True)
class LoopFailure:
    """A poll loop that died of an unexpected error: what the operator is shown."""

    name: str
    at: datetime  # when it last died (UTC)
    error: str  # "KeyError: 'x'"
    deaths: int  # how many times since it last ran cleanly
    restart_in_seconds: float

    def describe(self) -> str:
        again = "" if self.deaths == 1 else f" ({self.deaths} times)"
        return (
            f"poll loop {self.name} died at {self.at:%H:%M:%S} UTC{again}: {self.error}; "
            f"restarting in {self.restart_in_seconds:.0f} s (see noc.log)"
        )


class Scheduler:
    def __init__(
        self,
        config: NocConfig,
        clock: Clock,
        *,
        single_round: bool = False,
        on_change: Callable[[], None] | None = None,
        on_alerts: Callable[[list[AlertNotice]], None] | None = None,
        state_dir: Path | None = None,
        read_only: bool = False,
        observer: Callable[[str, object], None] | None = None,
        probe_thread: bool = False,
    ) -> None:
        self.config = config
        # The HTTP check loops on an event loop of their own, in a thread (see
        # ProbeThread); never for one round, which has no UI to share a loop with.
        self._probe_thread_wanted = probe_thread and not single_round
        self._probes: ProbeThread | None = None
        self._handoff: OwnerHandoff | None = None
        self._threaded: set[str] = set()  # the loops (by name) that run in the thread
        # Told every sample a running loop ingests, with its kind ("check", "smtp",
        # "flag", or the poll loop's name up to its colon): `noc agent` publishes them.
        self._observe = observer or (lambda _kind, _sample: None)
        self.clock = clock
        self.engine = Engine(config, clock, single_round=single_round)
        # One round (`noc check`) probes each check once: aiohttp's lower CPU per probe
        # cannot repay its import (~110 ms, a third of the command), so httpx's own
        # transport carries it. Both classify every failure alike (test_collector_http).
        self.collector = HttpHealthCollector(
            clock,
            max_in_flight=config.health.max_in_flight,
            transport="httpcore" if single_round else "aiohttp",
        )
        # What the check loops probe with: the collector above, or in probe-thread mode
        # one of the thread's own (a client's connections belong to one event loop; the
        # one above stays for probes asked for on this loop, e.g. a failover's).
        self.check_collector = self.collector
        if self._probe_thread_wanted:
            self.check_collector = HttpHealthCollector(
                clock, max_in_flight=config.health.max_in_flight, transport="aiohttp"
            )
        self.smtp: SmtpCollector | None = None
        if self.engine.smtp_targets:
            from noc_collectors.smtp import SmtpCollector

            self.smtp = SmtpCollector(clock)
        stores = {r.id: r.redis_url for r in config.regions if r.redis_url}
        self.stores: dict[str, FlagStore] = {}
        self.suppression: SuppressionCollector | None = None
        self.deliverability: DeliverabilityCollector | None = None
        if stores:
            from noc_collectors.deliverability import DeliverabilityCollector
            from noc_collectors.flag_store import FlagStore
            from noc_collectors.suppression import SuppressionCollector

            self.stores = {
                region: FlagStore(
                    region,
                    url,
                    config.failover.flag_key,
                    config.failover.store_timeout_seconds,
                    clock,
                )
                for region, url in stores.items()
            }
            if config.suppression.enabled and len(stores) >= 2:
                self.suppression = SuppressionCollector(
                    stores,
                    lists=config.suppression.lists,
                    key_pattern=config.suppression.key_pattern,
                    lookback_seconds=config.suppression.lookback_seconds,
                    max_examined=config.suppression.max_examined,
                    bucket_seconds=config.suppression.bucket_seconds,
                    verify_buckets=config.suppression.verify_buckets,
                    clock=clock,
                )
            if config.deliverability.enabled:
                self.deliverability = DeliverabilityCollector(
                    stores,
                    window_minutes=config.deliverability.window_minutes,
                    key_pattern=config.deliverability.key_pattern,
                    clock=clock,
                )
        self.lag_sources = {
            link.link_id: lag_source(link, config, clock, read_only=read_only)
            for link in config.replication
        }
        dns = config.dns
        self.dns: DnsRecordCollector | None = None
        if dns.records:
            from noc_collectors.dns_records import DnsRecordCollector

            self.dns = DnsRecordCollector(clock, timeout_seconds=dns.timeout_seconds)
        self._resolvers = [parse_resolver(text) for text in dns.resolvers]
        email = config.email
        resolver = parse_resolver(config.email_resolver) if config.email_resolver else None
        self.email_auth: EmailAuthCollector | None = None
        self.dnsbl: DnsblCollector | None = None
        if resolver and email.domain and config.sending_ips():
            from noc_collectors.email_auth import EmailAuthCollector

            self.email_auth = EmailAuthCollector(
                resolver, clock, timeout_seconds=dns.timeout_seconds
            )
        if resolver and email.dnsbl_zones and config.sending_ips():
            from noc_collectors.dnsbl import DnsblCollector

            self.dnsbl = DnsblCollector(
                resolver, email.dnsbl_zones, clock, timeout_seconds=dns.timeout_seconds
            )
        self.mta: dict[str, MtaCollector] = {}
        if any(r.mta is not None for r in config.regions):
            from noc_collectors.mta import MtaCollector, MtaMetrics

            for region in config.regions:
                if region.mta is None:
                    continue
                m = region.mta
                self.mta[region.id] = MtaCollector(
                    region.id,
                    m.metrics_url,
                    MtaMetrics(
                        queue_active=m.queue_active_metric,
                        queue_deferred=m.queue_deferred_metric,
                        queue_hold=m.queue_hold_metric,
                        oldest_histogram=m.oldest_deferred_histogram,
                        oldest_gauge=m.oldest_deferred_metric,
                        rejections=m.rejections_metric,
                        code_label=m.rejection_code_label,
                    ),
                    timeout_seconds=m.timeout_seconds,
                    clock=clock,
                )
        self.mta_sts: MtaStsCollector | None = None
        if resolver and email.domain and email.mta_sts:
            from noc_collectors.mta_sts import MtaStsCollector

            self.mta_sts = MtaStsCollector(
                resolver,
                clock,
                policy_url=email.mta_sts_policy_url or None,
                ca_file=email.mta_sts_ca_file or None,
                timeout_seconds=dns.timeout_seconds,
            )
        self.canary: CanaryProber | None = canary_prober(config, clock) if config.canary else None
        self._state_dir = state_dir
        self.notifier: Notifier | None = None
        self._outbox: Outbox | None = None
        self.notifications_problem: str | None = None
        self._on_change = on_change or (lambda: None)
        self._on_alerts = on_alerts or (lambda _: None)
        # No journal for one-shot rounds (`noc check`): a probe leaves no state behind.
        self.journal = AlertJournal(EstatePaths(state_dir).alerts, clock) if state_dir else None
        if self.journal is not None:
            damaged = self.journal.restore(self.engine.alerts)
            if damaged:
                log.warning(
                    "alert journal %s: skipped %d damaged lines", self.journal.path, len(damaged)
                )
        # Maintenance windows are read by every process, `noc check` included (a check
        # reads the file, never creates it); the engine sees them through its book.
        paths = EstatePaths(state_dir) if state_dir else estate_paths(config)
        self.maintenance = MaintenanceStore(paths.maintenance, clock, self.engine.maintenance)
        self._maintenance_shown: frozenset[tuple[str, str]] = frozenset()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        # The supervisor's record: loops that died and are waiting for their restart
        # (or have restarted and not yet run HEALTHY_RUN_SECONDS), by name.
        self.loop_failures: dict[str, LoopFailure] = {}
        self._restarts: dict[str, asyncio.TimerHandle] = {}
        self._started_at: dict[str, float] = {}
        self._stopping = False
        # When each seed's next canaries are due (monotonic); absent: at once.
        self._next_canary: dict[str, float] = {}

    async def collect_once(self) -> None:
        """One probe of every check and one read of every store, all at once."""
        samples, smtp = await asyncio.gather(
            asyncio.gather(*(self._probe(t) for t in self.engine.targets)),
            asyncio.gather(*(self._probe_smtp(t) for t in self.engine.smtp_targets)),
        )
        for sample in samples:
            self.engine.ingest(sample)
        for smtp_sample in smtp:
            self.engine.ingest_smtp(smtp_sample)
        await asyncio.gather(
            self.read_flags(),
            *(self._poll_link(link_id) for link_id in self.lag_sources),
            self._poll_suppression(),
            self._poll_deliverability(),
            self._poll_dns(),
            self._poll_email(),
            *(self._poll_mta(region) for region in self.mta),
            self._poll_mta_sts(),
            self._canaries_once(),
        )
        await self.evaluate_alerts()

    async def _canaries_once(self) -> None:
        """One canary through every region to every seed (`noc check`): awaited until
        it arrives or the seed's check_wait_seconds pass (it then shows as pending)."""
        if self.canary is None:
            return
        prober = self.canary
        waits = []
        for seed in self.config.canary:
            regions = self.config.canary_regions(seed)
            for sample in await asyncio.gather(*(prober.send(r, seed.name) for r in regions)):
                self.engine.ingest_canary(sample)
            waits.append(self._await_canaries(seed.name, seed.check_wait_seconds))
        await asyncio.gather(*waits)

    async def _await_canaries(self, seed: str, wait_seconds: float) -> None:
        assert self.canary is not None
        deadline = self.clock.monotonic() + wait_seconds
        while self.canary.awaited(seed) and self.clock.monotonic() < deadline:
            await asyncio.sleep(min(CANARY_CHECK_POLL_SECONDS, wait_seconds))
            for sample in await self.canary.read(seed):
                self.engine.ingest_canary(sample)

    async def _canary_round(self, seed_name: str) -> None:
        """Send when the seed's interval has come round, then read the seed if a canary
        is awaited: one round of a seed's loop."""
        assert self.canary is not None
        seed = next(s for s in self.config.canary if s.name == seed_name)
        now = self.clock.monotonic()
        if now >= self._next_canary.get(seed_name, now):
            self._next_canary[seed_name] = now + seed.interval_seconds
            regions = self.config.canary_regions(seed)
            for sample in await asyncio.gather(
                *(self.canary.send(region, seed_name) for region in regions)
            ):
                self.engine.ingest_canary(sample)
        for sample in await self.canary.read(seed_name):
            self.engine.ingest_canary(sample)

    async def poll_replication(self) -> None:
        """Read every replication link now (a switchover waiting for lag to drain):
        only those, not the whole estate's sources."""
        await asyncio.gather(*(self._poll_link(link_id) for link_id in self.lag_sources))
        self._on_change()

    async def _poll_link(self, link_id: str) -> None:
        sample = await self.lag_sources[link_id].poll()
        self.engine.ingest_replication(link_id, sample)

    async def _poll_suppression(self) -> None:
        if self.suppression is not None:
            self.engine.ingest_suppression(await self.suppression.poll())

    async def _poll_dns(self) -> None:
        if self.dns is not None:
            self.engine.ingest_dns(await self._collect_dns())

    async def _collect_dns(self) -> tuple[DnsRecordSample, ...]:
        assert self.dns is not None
        records = [record.record() for record in self.config.dns.records]
        return await self.dns.collect(records, self._resolvers)

    async def _poll_email(self) -> None:
        """Authentication alignment and blocklists: slow-moving, checked together."""
        sending = self.config.sending_ips()
        if self.email_auth is not None:
            email = self.config.email
            self.engine.ingest_email_auth(
                await self.email_auth.check(email.domain, sending, email.dkim_selectors)
            )
        if self.dnsbl is not None:
            self.engine.ingest_dnsbl(await self.dnsbl.check(sending))

    async def _poll_mta(self, region: str) -> None:
        self.engine.ingest_mta(await self.mta[region].poll())

    async def poll_mta(self) -> None:
        """Read every region's MTA now (a failback waiting for a queue to drain)."""
        await asyncio.gather(*(self._poll_mta(region) for region in self.mta))
        self._on_change()

    async def _collect_mta_sts(self) -> MtaStsSample:
        assert self.mta_sts is not None
        mx_hosts = {r.mx_host: r.mx_port for r in self.config.regions if r.mx_host}
        return await self.mta_sts.check(self.config.email.domain, mx_hosts)

    async def _poll_mta_sts(self) -> None:
        if self.mta_sts is not None:
            self.engine.ingest_mta_sts(await self._collect_mta_sts())

    async def _poll_deliverability(self) -> None:
        if self.deliverability is not None:
            self.engine.ingest_deliverability(await self.deliverability.poll())

    async def evaluate_alerts(self) -> None:
        await self.refresh_maintenance()
        notices = self.engine.evaluate_alerts()
        if notices and self.journal is not None:
            try:
                await self.journal.record(notices)
            except OSError:  # a full disk must not stop the pages: notify regardless
                log.exception("alert journal %s: cannot write", self.journal.path)
        if self.notifier is not None:
            for notice in notices:
                await self.notifier.notify(notice)
            await self.notifier.firing_now(self.engine.alerts.alerts())
        if notices:
            self._on_alerts(notices)
            self._on_change()

    async def refresh_maintenance(self) -> None:
        """Take in windows another process added or ended (`noc maintenance`), and
        tell the screen when a window starts or ends by its time."""
        try:
            if self.maintenance.changed():
                await asyncio.to_thread(self.maintenance.reload)
        except OSError:  # an unreadable file or directory must not stop alerting
            log.exception("maintenance %s: cannot read", self.maintenance.path)
        active = self.engine.maintenance.active(self.clock.utcnow())
        shown = frozenset((region, window.id) for region, window in active.items())
        if shown != self._maintenance_shown:
            self._maintenance_shown = shown
            self._on_change()

    @cached_property
    def actuators(self) -> Actuators:
        """What an operator action acts through: the flag stores, and the DNS updater.

        Built on first use: a dashboard that is only watched, and `noc check`, never
        import the actuators (Redis writes, DNS updates) at all."""
        from noc.failover import Actuators

        return Actuators(self.config, self.stores)

    def snapshot(self, *, read_only: bool = False) -> EstateSnapshot:
        """The engine's snapshot with what only the scheduler knows: notification delivery."""
        snapshot = self.engine.snapshot(read_only=read_only)
        if self.notifier is None and self.notifications_problem is None:
            return snapshot
        return replace(
            snapshot,
            notifications=tuple(self.notifier.status()) if self.notifier else (),
            notifications_problem=self.notifications_problem,
        )

    async def _notifications(self) -> None:
        """Open the outbox (a blocking file read and lock) and send until stopped."""
        assert self._state_dir is not None
        try:
            outbox = await asyncio.to_thread(
                Outbox.open, EstatePaths(self._state_dir).outbox, self.clock
            )
        except Exception as exc:  # OutboxLocked, OSError: run on, and say so
            self.notifications_problem = f"notifications off: outbox unusable: {exc}"
            log.error("%s", self.notifications_problem)
            self._on_change()
            return
        self._outbox = outbox
        alerts = self.config.alerts
        self.notifier = Notifier(
            self.config.notify,
            outbox,
            self.clock,
            estate=self.config.estate.name,
            group_by=alerts.group_by,
            group_wait_seconds=alerts.group_wait_seconds,
            group_interval_seconds=alerts.group_interval_seconds,
        )
        await self.notifier.run()

    async def read_flags(self) -> None:
        for sample in await asyncio.gather(*(s.read() for s in self.stores.values())):
            self.engine.ingest_flag(sample)
        self._on_change()

    def start(self) -> None:
        freeze_long_lived_objects()
        targets = self.engine.targets
        if self._probe_thread_wanted and targets:
            self._probes = ProbeThread()
            self._handoff = OwnerHandoff(asyncio.get_running_loop())
            self._threaded = {target.check_id for target in targets}
        for index, target in enumerate(targets):
            # Every check probes at once on start (the first picture comes quickly),
            # then each keeps its own phase, spread across its interval: a thousand
            # checks at 1 s are due one a millisecond, not all in the same instant.
            phase = target.interval_seconds * index / len(targets)
            check_loop = partial(self._check_loop, target, phase)
            if self._probes is not None:
                check_loop = partial(self._probes.run, check_loop)
            self._spawn(target.check_id, check_loop)
        smtp_targets = self.engine.smtp_targets
        for index, smtp_target in enumerate(smtp_targets):
            # A loop of its own per probe, as for HTTP checks: a slow mail server holds
            # up only its own probes (and, by the collector's lock, its host's).
            phase = smtp_target.interval_seconds * index / len(smtp_targets)
            self._spawn(
                f"smtp:{smtp_target.check_id}", partial(self._smtp_loop, smtp_target, phase)
            )
        for region_id, store in self.stores.items():
            self._spawn(f"store:{region_id}", partial(self._store_loop, store))
        for link in self.config.replication:
            self._spawn_poll(
                f"lag:{link.link_id}",
                link.interval_seconds,
                self.lag_sources[link.link_id].poll,
                partial(self.engine.ingest_replication, link.link_id),
            )
        if self.suppression is not None:
            interval = self.config.suppression.interval_seconds
            self._spawn_poll(
                "suppression", interval, self.suppression.poll, self.engine.ingest_suppression
            )
        if self.deliverability is not None:
            interval = self.config.deliverability.interval_seconds
            self._spawn_poll(
                "deliverability",
                interval,
                self.deliverability.poll,
                self.engine.ingest_deliverability,
            )
        if self.dns is not None:
            interval = self.config.dns.interval_seconds
            self._spawn_poll("dns", interval, self._collect_dns, self.engine.ingest_dns)
        if self.email_auth is not None or self.dnsbl is not None:
            interval = self.config.email.interval_seconds
            self._spawn_poll("email", interval, self._poll_email, lambda _: None)
        for region, collector in self.mta.items():
            mta = self.config.region(region)
            assert mta is not None and mta.mta is not None
            self._spawn_poll(
                f"mta:{region}", mta.mta.interval_seconds, collector.poll, self.engine.ingest_mta
            )
        if self.mta_sts is not None:
            self._spawn_poll(
                "mta_sts",
                self.config.email.interval_seconds,
                self._collect_mta_sts,
                self.engine.ingest_mta_sts,
            )
        for seed in self.config.canary if self.canary is not None else ():
            self._spawn_poll(
                f"canary:{seed.name}",
                seed.poll_seconds,
                partial(self._canary_round, seed.name),
                lambda _: None,
            )
        if self.config.notify and self._state_dir is not None:
            self._spawn("notifications", self._notifications)
        self._spawn("alerts", self._alert_loop)

    def poll_now(self, prefix: str = "") -> None:
        """Wake every loop (or those whose name starts with `prefix`, "lag:" for the
        replication links) for an immediate round: the operator pressed refresh."""
        for name in self._wake:
            if name.startswith(prefix):
                self._set_wake(name)

    def _set_wake(self, name: str) -> None:
        event = self._wake[name]
        if self._probes is not None and name in self._threaded:
            # A check loop waits on its event in the probe thread's loop: set there.
            self._probes.loop.call_soon_threadsafe(event.set)
        else:
            event.set()

    async def stop(self) -> None:
        self._stopping = True
        for handle in self._restarts.values():
            handle.cancel()
        self._restarts.clear()
        await end_tasks(self._tasks.values())
        self._tasks.clear()
        if self._probes is not None:
            # The check loops' own tasks end (cancelled with their supervising tasks
            # above, perhaps not yet finished) before their collector closes.
            await self._probes.run(partial(self._probes.end_all))
            await self._probes.run(self.check_collector.aclose)
            await self._probes.close()
            self._probes = None
        if self.notifier is not None:
            await self.notifier.aclose()
        if self._outbox is not None:
            self._outbox.close()
        await self.collector.aclose()
        for store in self.stores.values():
            await store.aclose()
        for source in self.lag_sources.values():
            await source.aclose()
        for mta in self.mta.values():
            await mta.aclose()
        for collector in (self.suppression, self.deliverability):
            if collector is not None:
                await collector.aclose()

    def _spawn(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop()` as a supervised task: if it ever ends other than by stop(), the
        death is logged with its traceback, shown (loop_failures), and the loop is started
        afresh after a backoff."""
        self._wake.setdefault(name, asyncio.Event())
        self._started_at[name] = self.clock.monotonic()
        task = asyncio.create_task(loop(), name=f"noc:{name}")
        self._tasks[name] = task
        task.add_done_callback(partial(self._loop_ended, name, loop))

    def _loop_ended(
        self, name: str, loop: Callable[[], Coroutine[Any, Any, None]], task: asyncio.Task[None]
    ) -> None:
        if self._stopping or task.cancelled():
            return
        error = task.exception()
        ran = self.clock.monotonic() - self._started_at.get(name, 0.0)
        previous = self.loop_failures.get(name)
        deaths = 1 if previous is None or ran >= HEALTHY_RUN_SECONDS else previous.deaths + 1
        delay = min(FIRST_RESTART_SECONDS * 2 ** (deaths - 1), MAX_RESTART_SECONDS)
        described = f"{type(error).__name__}: {error}" if error else "ended without an error"
        self.loop_failures[name] = LoopFailure(name, self.clock.utcnow(), described, deaths, delay)
        log.error(
            "poll loop %s died (%d in a row); restarting in %.0f s",
            name, deaths, delay, exc_info=error,
        )  # fmt: skip
        self._restarts[name] = asyncio.get_running_loop().call_later(
            delay, self._restart, name, loop
        )
        self._on_change()

    def _restart(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._restarts.pop(name, None)
        if self._stopping:
            return
        log.info("poll loop %s restarted", name)
        self._spawn(name, loop)

    def forget_recovered_loops(self) -> None:
        """Drop the failure of every loop that has run HEALTHY_RUN_SECONDS since its
        restart: the banner says what is wrong now, not what was."""
        now = self.clock.monotonic()
        for name in list(self.loop_failures):
            task = self._tasks.get(name)
            alive = task is not None and not task.done() and name not in self._restarts
            if alive and now - self._started_at.get(name, now) >= HEALTHY_RUN_SECONDS:
                del self.loop_failures[name]

    def _spawn_poll(
        self,
        name: str,
        interval: float,
        poll: Callable[[], Awaitable[T]],
        ingest: Callable[[T], None],
    ) -> None:
        self._spawn(name, partial(self._poll_loop, name, interval, poll, ingest))

    async def _poll_loop(
        self,
        name: str,
        interval: float,
        poll: Callable[[], Awaitable[T]],
        ingest: Callable[[T], None],
    ) -> None:
        """One poll in flight, every `interval` seconds. The collectors report their own
        failures in their samples; an unexpected exception is logged and retried later
        rather than ending the loop."""
        kind = name.partition(":")[0]
        while True:
            try:
                sample = await poll()
                ingest(sample)
                if sample is not None:
                    self._observe(kind, sample)
                self._on_change()
            except Exception:
                log.exception("poll of %s failed unexpectedly", name)
            await self._sleep(name, interval)
            self._woken(name)

    async def _alert_loop(self) -> None:
        while True:
            try:
                await self.evaluate_alerts()
            except Exception:  # a failed journal write must not stop alerting
                log.exception("alert evaluation failed")
            await asyncio.sleep(ALERT_TICK_SECONDS)

    async def _check_loop(self, target: CheckTarget, phase: float = 0.0) -> None:
        """Probe at every slot of the check's interval; between slots, while the check
        is failing toward its threshold (or recovering), retry it every
        retry_interval_seconds, so detection takes about threshold x retry after the
        first failed probe rather than threshold x interval."""
        name = target.check_id
        fast = target.retry_interval_seconds < target.interval_seconds
        # The second probe's slot; the first is now.
        next_due = self.clock.monotonic() + target.interval_seconds + phase
        asked = False  # whether this dark run has asked other checks to corroborate
        while True:
            sample = await self._probe(target, self.check_collector)
            retry_soon, asked = await self._on_owner(
                partial(self._checked, target, sample, fast=fast, asked=asked)
            )
            now = self.clock.monotonic()
            if next_due <= now:
                # Anchored to the schedule, so the steady-state load stays one probe an
                # interval; retries are extra probes between slots. After a stall we
                # skip missed rounds rather than burst.
                next_due = max(next_due + target.interval_seconds, now)
            wake_at = next_due
            if retry_soon:
                wake_at = min(next_due, now + target.retry_interval_seconds)
            await self._sleep(name, wake_at - now)
            if self._woken(name):
                next_due = self.clock.monotonic()
                continue
            if wake_at < next_due and not await self._on_owner(partial(self.engine.retrying, name)):
                # Nothing corroborated the failure (noc may be the one cut off), or
                # the verdict settled: back to the schedule.
                await self._sleep(name, next_due - self.clock.monotonic())
                if self._woken(name):
                    next_due = self.clock.monotonic()

    def _checked(
        self, target: CheckTarget, sample: CheckSample, *, fast: bool, asked: bool
    ) -> tuple[bool, bool]:
        """A check's sample taken in: whether to retry before the next slot, and whether
        this dark run has now asked other checks to corroborate. On the engine's loop."""
        name = target.check_id
        self.engine.ingest(sample)
        self._observe("check", sample)
        self._on_change()
        retry_soon = False
        if fast and self.engine.unsettled(name):
            if not asked and not self.engine.corroborated(name):
                # A connection error, and nothing answered since: is noc cut off?
                # A few other checks probe now; if one answers, this one retries.
                asked = self._corroborate(target)
            retry_soon = True
        if self.engine.corroborated(name):
            asked = False
        return retry_soon, asked

    async def _on_owner(self, call: Callable[[], T]) -> T:
        """`call()` on the loop that owns the engine (the UI's): at once when that is
        this loop, else handed over and awaited (a check loop in the probe thread)."""
        if self._handoff is None:
            return call()
        return await asyncio.wrap_future(self._handoff.submit(call))

    async def _smtp_loop(self, target: SmtpTarget, phase: float = 0.0) -> None:
        """Probe at every slot of the interval; while the verdict is changing, again
        after retry_interval_seconds (as HTTP checks do, without corroboration)."""
        name = f"smtp:{target.check_id}"
        next_due = self.clock.monotonic() + target.interval_seconds + phase
        while True:
            smtp_sample = await self._probe_smtp(target)
            self.engine.ingest_smtp(smtp_sample)
            self._observe("smtp", smtp_sample)
            self._on_change()
            now = self.clock.monotonic()
            if next_due <= now:
                next_due = max(next_due + target.interval_seconds, now)
            wake_at = next_due
            if self.engine.smtp_unsettled(target.check_id):
                wake_at = min(next_due, now + target.retry_interval_seconds)
            await self._sleep(name, wake_at - now)
            if self._woken(name):
                next_due = self.clock.monotonic()

    async def _probe_smtp(self, target: SmtpTarget) -> SmtpSample:
        assert self.smtp is not None
        try:
            # The collector has its own deadline (and waits for its host's turn first):
            # this one only guards against a bug.
            async with asyncio.timeout(target.timeout_seconds * 2 + 5):
                return await self.smtp.probe(target)
        except Exception as exc:  # a broken probe must not kill its loop
            log.exception("SMTP probe of %s failed unexpectedly", target.display)
            return SmtpSample(
                check_id=target.check_id,
                region_id=target.region_id,
                at=self.clock.monotonic(),
                wall=self.clock.utcnow(),
                ok=False,
                error=ProbeError(ErrorKind.NETWORK, f"internal error: {type(exc).__name__}"),
            )

    def _corroborate(self, target: CheckTarget) -> bool:
        """Wake a few other checks' loops to probe now; whether any was woken."""
        others = self.engine.corroborators(target.check_id, CORROBORATORS)
        for check_id in others:
            if check_id in self._wake:
                self._set_wake(check_id)
        return bool(others)

    async def _store_loop(self, store: FlagStore) -> None:
        name = f"store:{store.region_id}"
        interval = self.config.failover.flag_interval_seconds
        delay = interval
        while True:
            sample = await self._read(store)
            self.engine.ingest_flag(sample)
            self._observe("flag", sample)
            self._on_change()
            # A dead store is backed off; one that answers (a refused password) is
            # not, so the poll after the fix clears it, not one several intervals on.
            answered = sample.reachable or sample.store_answered
            delay = interval if answered else min(delay * 2, MAX_STORE_BACKOFF_SECONDS)
            await self._sleep(name, delay)
            if self._woken(name):
                delay = interval

    async def _sleep(self, name: str, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake[name].wait(), timeout=max(0.0, seconds))

    def _woken(self, name: str) -> bool:
        event = self._wake[name]
        woken = event.is_set()
        event.clear()
        return woken

    async def _probe(
        self, target: CheckTarget, collector: HttpHealthCollector | None = None
    ) -> CheckSample:
        try:
            # The collector has its own deadline; this one only guards against a bug.
            async with asyncio.timeout(target.timeout_seconds + 5):
                return await (collector or self.collector).probe(target)
        except Exception as exc:  # a broken probe must not kill its loop
            log.exception("probe of %s failed unexpectedly", target.display_url)
            return CheckSample(
                check_id=target.check_id,
                region_id=target.region_id,
                at=self.clock.monotonic(),
                wall=self.clock.utcnow(),
                ok=False,
                # As the collector does for its own internal errors: noc could not
                # probe, which says nothing about the endpoint.
                error=ProbeError(ErrorKind.NETWORK, f"internal error: {type(exc).__name__}"),
            )

    async def _read(self, store: FlagStore) -> FlagSample:
        try:
            return await store.read()
        except Exception as exc:  # a broken read must not kill its loop
            log.exception("flag read from %s failed unexpectedly", store.display_url)
            return FlagSample(
                store.region_id,
                self.clock.monotonic(),
                self.clock.utcnow(),
                reachable=False,
                error=f"internal error: {type(exc).__name__}",
            )


class ProbeThread:
    """An event loop of its own, in a thread, for the HTTP check loops.

    Why: at 1,000 checks the dashboard's repaint (the health table, the map's labels, a
    snapshot of every check) holds the UI's loop for 60-450 ms at a time, and every
    probe due meanwhile waited (bench/schedule_lateness.py: p99 lateness 204 ms with
    the app, 7 ms without). Here only probes and their timers run; the GIL is handed
    over every few ms (sys.getswitchinterval), not at the end of a repaint. The
    engine is not touched here: each sample is handed to its loop (OwnerHandoff)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="noc-probes")
        self._thread.daemon = True  # a crash elsewhere must not leave the process hung
        self._thread.start()

    async def run(self, coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `coroutine()` on the probe loop; cancelling the caller cancels it there."""
        future = asyncio.run_coroutine_threadsafe(coroutine(), self.loop)
        return await asyncio.wrap_future(future)

    async def end_all(self) -> None:
        """End every task still on the probe loop (run on the probe loop)."""
        current = asyncio.current_task()
        await end_tasks(task for task in asyncio.all_tasks() if task is not current)

    async def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)
        self.loop.close()


class OwnerHandoff:
    """Calls from the probe thread run on the engine's loop, batched: one wake-up of
    that loop for however many calls arrived since it last ran them.

    Bounded: each check loop waits for its call's result before it makes another, so
    at most one call per check is ever pending."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = []

    def submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            self._pending.append((call, future))
            first = len(self._pending) == 1
        if first:
            self._loop.call_soon_threadsafe(self._run_pending)
        return future

    def _run_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        for call, future in batch:
            if not future.set_running_or_notify_cancel():
                continue  # its check loop was cancelled meanwhile
            try:
                future.set_result(call())
            except Exception as exc:  # the check loop's own error: it dies of it
                future.set_exception(exc)


def freeze_long_lived_objects() -> None:
    """Move everything built so far (modules, the configuration, the engine, the
    widgets) out of the garbage collector's sight, once a process.

    Why: a full collection walks every tracked object, and at 1,000 checks those built
    at start-up are most of them: bench/schedule_lateness.py measured full collections
    of 36-60 ms every ~2 s, each stalling every probe due meanwhile (p99 lateness 49 ms;
    frozen, full collections took 11-14 ms and p99 fell to 18 ms). Objects made later
    are collected as before; what is frozen lives as long as the process anyway."""
    global _long_lived_frozen
    if _long_lived_frozen:
        return
    _long_lived_frozen = True
    gc.collect()  # start-up's own garbage goes now, not frozen with the rest
    gc.freeze()


async def end_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again each
    RECANCEL_SECONDS those still running. One cancel() is a request a library can lose
    (see RECANCEL_SECONDS); a shutdown that waited on it hung the app's exit for good.
    Each task's own result or error is its business (supervision has logged it)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not report it at exit
