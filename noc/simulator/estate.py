"""The demo estate: three regions of real loopback servers, and a fault panel's hooks.

Each region has a /health endpoint (aiohttp) and a Redis store (redis-server).
Checks run every 2 s with a threshold of 3, so an injected fault turns a region
down in about 6 s: slow enough to watch, fast enough for a demo.

The stores carry live data for noc's data alerts (see noc.simulator.traffic):
deliverability counters and suppression lists in every region, synced between
regions every 5 s. Each secondary also has a replica of the primary's store,
reached through a relay (noc.simulator.relay) standing in for the WAN; the region
stores themselves stay writable masters, since each holds its region's failover
flag. Faults, several of which can be active in a region at once:

- down / slow / flap / garbage: the region's /health endpoint (one at a time).
- break replication: partitions the region's replication path. On a secondary,
  its replica's link; on the primary (the source of every link), all of them.
  Lag grows at once (the suppression lag alert is pending after 10 s and fires
  after 20 s; subscribers after 20 s and 35 s); after the replica's repl-timeout
  (45 s) the link drops and the link-down alerts take over.
- stall sync: suppression entries stop reaching the region's store; the oldest
  unsynced one passes the 20 s SLO about 20 s later. Restore copies the backlog.
- complaint spike: the region's complaints jump to 3 % of delivered; over a
  5-minute window its rate passes 0.1 % in seconds and 0.3 % within about 30 s.
  After restore the rate falls back as the spike's minutes leave the window.
- SMTP (one at a time, like health faults): a 421 banner, STARTTLS not offered, a
  TLS handshake that fails, a certificate expiring in 5 days, a certificate for the
  wrong name. The region's SMTP probe (every 3 s, threshold 2) shows each within
  about 6 s: smtp_down, tls_broken, cert_expiry.
- queue held and growing: the region's MTA holds every new message and stops
  delivering, so hold and deferred grow and the oldest deferred ages: queue_backlog
  fires after its 15 s sustain. Restore releases the hold; the backlog drains
  within a minute, which a failback to the region waits for.
- rejection spike: hundreds of 5xx/4xx rejections a minute; `rejections` fires on
  the next read.
- mx outside policy: the domain's MTA-STS policy (served over HTTPS, its id in
  `_mta-sts` TXT on the demo's DNS) stops naming the region's MX: mta_sts_mismatch
  on the active region, a refused failover plan to any other.
- restore: clears every fault of the region. A secondary's replication path stays
  partitioned while the primary's "break replication" is on.
"""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import dns.tsigkeyring
import redis.asyncio as aioredis

from noc.config import NocConfig, parse_config
from noc.model import Fault, Role
from noc.simulator.dns_server import (
    DEMO_BLOCKLIST_ZONE,
    DEMO_DKIM_SELECTOR,
    DEMO_DNS_REGIONS,
    DEMO_DOMAIN,
    DemoDnsServer,
    demo_zones,
)
from noc.simulator.health_endpoint import EndpointMode, HealthEndpoint
from noc.simulator.mail import (
    DemoCa,
    DemoQueue,
    MailWeb,
    QueueTuning,
    SimulatedSmtp,
    SmtpMode,
    sts_policy,
    sts_policy_id,
)
from noc.simulator.redis_server import RedisServer, find_redis_server
from noc.simulator.relay import TcpRelay
from noc.simulator.traffic import MailTraffic, SuppressionSync, TrafficTuning
from noc_collectors.dnsbl import dnsbl_query_name

__all__ = ["DEMO_REGIONS", "DemoEstate", "DemoRegion"]


@dataclass(frozen=True, slots=True)
class DemoRegion:
    id: str
    name: str
    role: Role
    location: tuple[float, float]


DEMO_REGIONS = (
    DemoRegion("ro", "Bucharest", Role.PRIMARY, (44.43, 26.10)),
    DemoRegion("bg", "Sofia", Role.SECONDARY, (42.70, 23.32)),
    DemoRegion("pa", "Panama City", Role.SECONDARY, (8.98, -79.52)),
)

_MODE_FOR_FAULT = {
    Fault.DOWN: EndpointMode.DOWN,
    Fault.SLOW: EndpointMode.SLOW,
    Fault.FLAP: EndpointMode.FLAP,
    Fault.GARBAGE: EndpointMode.GARBAGE,
}

_SMTP_MODE_FOR_FAULT = {
    Fault.SMTP_421: SmtpMode.BANNER_421,
    Fault.NO_STARTTLS: SmtpMode.NO_STARTTLS,
    Fault.TLS_HANDSHAKE: SmtpMode.HANDSHAKE_FAILURE,
    Fault.CERT_EXPIRING: SmtpMode.EXPIRING,
    Fault.CERT_WRONG_NAME: SmtpMode.WRONG_NAME,
}
# Faults of which one at a time is active in a region: a new one replaces the last.
_EXCLUSIVE = (_MODE_FOR_FAULT, _SMTP_MODE_FOR_FAULT)

# Replicated data classes: every secondary's replica carries both (one store, two
# RPOs), so one broken path shows the tighter class alerting first.
_REPLICATED: dict[str, dict[str, Any]] = {
    "suppression": {
        "threshold_seconds": 10,
        "sustain_seconds": 10,
        "interval_seconds": 2,
        "heartbeat_key": "noc:heartbeat",
    },
    "subscribers": {
        "threshold_seconds": 20,
        "sustain_seconds": 15,
        "interval_seconds": 5,
        "heartbeat_key": "noc:heartbeat:subscribers",
    },
}
# Past both classes' lag alerts firing, so a partition shows as lag first, then
# as link down.
REPLICA_TIMEOUT_SECONDS = 45.0
# The simulator's own clients: a store it cannot reach within this skips a tick.
_CLIENT_TIMEOUT_SECONDS = 1.0


SMTP_RECORD = f"smtp.{DEMO_DOMAIN}."
MTA_STS_RECORD = f"_mta-sts.{DEMO_DOMAIN}."
# The demo's queue thresholds: a held queue passes its depth within a minute.
_MTA_LIMITS: dict[str, Any] = {
    "interval_seconds": 3,
    "queue_depth_threshold": 150,
    "oldest_deferred_threshold_seconds": 900,
    "backlog_sustain_seconds": 15,
    "rejections_per_minute_threshold": 60,
    "failback_deferred_threshold": 20,
}
DEMO_TSIG_KEY = "noc-demo."
# An address of no region (RFC 2544's benchmarking range): what a hijacked
# resolver answers in the demo.
HIJACKED_ANSWER = "198.18.0.66"


class DemoEstate:
    """Starts the demo's servers and injects faults into them (a `FaultInjector`).

    `tuning`, `queue_tuning` and `replica_timeout_seconds` exist for tests, which need
    the same behaviour in seconds rather than minutes; the defaults are the demo's.
    `certificate_dir` is where the demo CA and its certificates are written (`noc
    demo`: the demo's state directory); None, a temp dir removed by stop().
    """

    def __init__(
        self,
        regions: Sequence[DemoRegion] = DEMO_REGIONS,
        *,
        tuning: TrafficTuning | None = None,
        replica_timeout_seconds: float = REPLICA_TIMEOUT_SECONDS,
        seed: int | None = None,
        queue_tuning: QueueTuning | None = None,
        certificate_dir: Path | None = None,
    ) -> None:
        self._regions = tuple(regions)
        self._primary = next(
            (r.id for r in self._regions if r.role is Role.PRIMARY), self._regions[0].id
        )
        self._tuning = tuning or TrafficTuning()
        self._replica_timeout = replica_timeout_seconds
        self._rng = random.Random(seed)
        self._endpoints: dict[str, HealthEndpoint] = {}
        self._stores: dict[str, RedisServer] = {}
        # Secondary region id -> its replica of the primary's store, and its WAN path.
        self._replicas: dict[str, RedisServer] = {}
        self._relays: dict[str, TcpRelay] = {}
        self._clients: dict[str, aioredis.Redis] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Tuples, replaced whole: the dashboard's thread reads them while this one writes.
        self._faults: dict[str, tuple[Fault, ...]] = {}
        # Read by the traffic and the sync service on every tick.
        self._spiking: set[str] = set()
        self._stalled: set[str] = set()
        # A fresh TSIG key per run: noc's DNS actuator signs its failover updates with
        # it, exactly as it would for BIND's `allow-update { key ...; }`.
        self._tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self._dns = DemoDnsServer(
            demo_zones(DEMO_DNS_REGIONS),
            keyring=dns.tsigkeyring.from_text({DEMO_TSIG_KEY: ("hmac-sha256", self._tsig_secret)}),
        )
        self._dns_regions = {r.id: r for r in DEMO_DNS_REGIONS}
        self._config: NocConfig | None = None
        self._queue_tuning = queue_tuning
        self._certificate_dir = certificate_dir
        self._owned_certificate_dir: Path | None = None
        self._ca: DemoCa | None = None
        self._smtp: dict[str, SimulatedSmtp] = {}
        self._queues: dict[str, DemoQueue] = {}
        # Replaced whole when a fault changes it; the policy server reads element 0.
        self._policy = [""]
        self._mail_web = MailWeb(self._queues, self._policy)

    async def start(self) -> NocConfig:
        """Start every server and the traffic; raises RedisUnavailable without redis-server."""
        if self._config is not None:
            return self._config
        # Fails fast, with the install hint, before anything is started.
        executable = await asyncio.to_thread(find_redis_server)
        # Keys, certificates and contexts: file I/O and a little CPU, off the loop.
        await asyncio.to_thread(self._make_certificates)
        assert self._ca is not None
        policy_context = self._ca.context("mta-sts", ["127.0.0.1", f"mta-sts.{DEMO_DOMAIN}"])
        now = asyncio.get_running_loop().time()
        for region in self._regions:
            self._endpoints[region.id] = HealthEndpoint(region.id)
            self._stores[region.id] = RedisServer(executable=executable)
            mx_name = self._dns_regions[region.id].mx_host.rstrip(".")
            self._smtp[region.id] = SimulatedSmtp(mx_name, self._ca)
            self._queues[region.id] = DemoQueue(self._rng, now, self._queue_tuning)
            if region.id != self._primary:
                self._replicas[region.id] = RedisServer(
                    ["--repl-timeout", f"{self._replica_timeout:g}"], executable=executable
                )
        # Every start runs to its end before a failure is handled, so stop() below
        # finds nothing half-started.
        outcomes = await asyncio.gather(
            self._dns.start(),
            self._mail_web.start(policy_context),
            *(server.start() for server in self._smtp.values()),
            *(endpoint.start() for endpoint in self._endpoints.values()),
            *(store.astart() for store in (*self._stores.values(), *self._replicas.values())),
            return_exceptions=True,
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        try:
            if failures:
                raise failures[0]
            self._apply_mail_faults()
            config = parse_config(self._config_data(), "demo estate")
            await self._start_replication()
            await self._start_traffic(config)
        except BaseException:
            await self.stop()
            raise
        self._config = config
        return config

    async def stop(self) -> None:
        """Stop the traffic and every server; idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        clients, self._clients = self._clients, {}
        relays, self._relays = self._relays, {}
        endpoints, self._endpoints = self._endpoints, {}
        stores = [*self._stores.values(), *self._replicas.values()]
        self._stores, self._replicas = {}, {}
        smtp_servers = list(self._smtp.values())
        self._smtp.clear()
        self._queues.clear()
        self._faults.clear()
        self._spiking.clear()
        self._stalled.clear()
        self._config = None
        await asyncio.gather(
            *(client.aclose() for client in clients.values()),
            *(relay.stop() for relay in relays.values()),
        )
        await asyncio.gather(
            self._dns.stop(),
            self._mail_web.stop(),
            *(server.stop() for server in smtp_servers),
            *(endpoint.stop() for endpoint in endpoints.values()),
            *(store.astop() for store in stores),
        )
        self._ca = None
        owned, self._owned_certificate_dir = self._owned_certificate_dir, None
        if owned is not None:
            await asyncio.to_thread(shutil.rmtree, owned, True)

    def _make_certificates(self) -> None:
        directory = self._certificate_dir
        if directory is None:
            directory = self._owned_certificate_dir = Path(tempfile.mkdtemp(prefix="noc-demo-"))
        self._ca = DemoCa(directory / "tls")

    def region_ids(self) -> Sequence[str]:
        return [region.id for region in self._regions]

    def current_fault(self, region_id: str) -> Fault | None:
        """The fault injected last among those still active in the region."""
        active = self._faults.get(region_id, ())
        return active[-1] if active else None

    def active_faults(self, region_id: str) -> Sequence[Fault]:
        """Every fault active in the region, oldest first."""
        return self._faults.get(region_id, ())

    async def inject(self, region_id: str, fault: Fault) -> None:
        endpoint = self.endpoint(region_id)
        if fault is Fault.RESTORE:
            active: tuple[Fault, ...] = ()
        else:
            kept = [f for f in self._faults.get(region_id, ()) if not _replaces(fault, f)]
            active = (*kept, fault)
        self._faults[region_id] = active
        mode = next((_MODE_FOR_FAULT[f] for f in active if f in _MODE_FOR_FAULT), None)
        await endpoint.set_mode(mode or EndpointMode.HEALTHY)
        _toggle(self._spiking, region_id, Fault.COMPLAINT_SPIKE in active)
        _toggle(self._stalled, region_id, Fault.STALL_SYNC in active)
        self._apply_dns_faults()
        self._apply_mail_faults()
        source_broken = Fault.BREAK_REPLICATION in self._faults.get(self._primary, ())
        for target, relay in self._relays.items():
            if source_broken or Fault.BREAK_REPLICATION in self._faults.get(target, ()):
                relay.partition()
            else:
                relay.heal()

    def _apply_dns_faults(self) -> None:
        """A hijack from any region's panel answers smtp with an address of no region;
        a listing puts that region's sending IP on the demo blocklist."""
        hijacked = any(Fault.DNS_HIJACK in faults for faults in self._faults.values())
        self._dns.set_override(SMTP_RECORD, "A", [HIJACKED_ANSWER] if hijacked else None)
        for region_id, region in self._dns_regions.items():
            name = dnsbl_query_name(ip_address(region.sending_ip), DEMO_BLOCKLIST_ZONE)
            if Fault.BLOCKLIST in self._faults.get(region_id, ()):
                self._dns.add_record(DEMO_BLOCKLIST_ZONE, name, "A", "127.0.0.2")
                self._dns.add_record(
                    DEMO_BLOCKLIST_ZONE, name, "TXT", '"listed by the demo fault panel"'
                )
            else:
                self._dns.remove_record(DEMO_BLOCKLIST_ZONE, name, "A")
                self._dns.remove_record(DEMO_BLOCKLIST_ZONE, name, "TXT")

    def _apply_mail_faults(self) -> None:
        """Each region's SMTP mode and queue from its faults; the MTA-STS policy names
        every region's MX but those "outside policy", and its TXT id follows it."""
        outside: set[str] = set()
        for region_id, server in self._smtp.items():
            active = self._faults.get(region_id, ())
            server.mode = next(
                (_SMTP_MODE_FOR_FAULT[f] for f in active if f in _SMTP_MODE_FOR_FAULT),
                SmtpMode.HEALTHY,
            )
            queue = self._queues[region_id]
            if Fault.QUEUE_HELD in active:
                queue.held_and_growing = True
            elif queue.held_and_growing:
                queue.release()
            queue.rejection_spike = Fault.REJECTION_SPIKE in active
            if Fault.MX_OUTSIDE_POLICY in active:
                outside.add(region_id)
        policy = sts_policy(
            self._dns_regions[region.id].mx_host.rstrip(".")
            for region in self._regions
            if region.id not in outside
        )
        self._policy[0] = policy
        self._dns.set_override(MTA_STS_RECORD, "TXT", [f'"v=STSv1; id={sts_policy_id(policy)}"'])

    def smtp_server(self, region_id: str) -> SimulatedSmtp:
        try:
            return self._smtp[region_id]
        except KeyError:
            raise KeyError(f"no running demo region {region_id!r}") from None

    def endpoint(self, region_id: str) -> HealthEndpoint:
        try:
            return self._endpoints[region_id]
        except KeyError:
            raise KeyError(f"no running demo region {region_id!r}") from None

    def store(self, region_id: str) -> RedisServer:
        try:
            return self._stores[region_id]
        except KeyError:
            raise KeyError(f"no running demo region {region_id!r}") from None

    def replica(self, region_id: str) -> RedisServer:
        """The region's replica of the primary's store (secondaries only)."""
        try:
            return self._replicas[region_id]
        except KeyError:
            raise KeyError(f"no running demo replica in region {region_id!r}") from None

    async def _start_replication(self) -> None:
        source_port = self._stores[self._primary].port
        for target, replica in self._replicas.items():
            relay = TcpRelay(source_port)
            self._relays[target] = relay
            await relay.start()
            # Set here rather than on the command line: the relay's port is only known now.
            client = aioredis.Redis.from_url(replica.url)
            try:
                await client.replicaof("127.0.0.1", relay.port)
            finally:
                await client.aclose()

    async def _start_traffic(self, config: NocConfig) -> None:
        self._clients = {
            region: aioredis.Redis.from_url(
                store.url,
                socket_timeout=_CLIENT_TIMEOUT_SECONDS,
                socket_connect_timeout=_CLIENT_TIMEOUT_SECONDS,
                decode_responses=True,
            )
            for region, store in self._stores.items()
        }
        traffic = MailTraffic(
            self._clients,
            primary=self._primary,
            flag_key=config.failover.flag_key,
            counter_pattern=config.deliverability.key_pattern,
            suppression_pattern=config.suppression.key_pattern,
            spiking=self._spiking,
            tuning=self._tuning,
            rng=self._rng,
        )
        sync = SuppressionSync(
            self._clients,
            key_pattern=config.suppression.key_pattern,
            lists=config.suppression.lists,
            stalled=self._stalled,
            tuning=self._tuning,
        )
        await traffic.prefill()
        self._tasks = [
            asyncio.create_task(traffic.run(), name="demo-traffic"),
            asyncio.create_task(sync.run(), name="demo-suppression-sync"),
        ]

    def _ca_bundle(self) -> Path:
        assert self._ca is not None, "start() first"
        return self._ca.bundle

    def _config_data(self) -> dict[str, Any]:
        return {
            "estate": {"name": "demo-mail", "topology": "active-passive"},
            "health": {"interval_seconds": 2, "failure_threshold": 3, "timeout_seconds": 1},
            "regions": [
                {
                    "id": region.id,
                    "name": region.name,
                    "role": region.role.value,
                    "location": list(region.location),
                    "redis_url": self._stores[region.id].url,
                    "service_ips": [self._dns_regions[region.id].service_ip],
                    "mx_host": self._dns_regions[region.id].mx_host,
                    "sending_ips": [self._dns_regions[region.id].sending_ip],
                    # In-process SMTP servers on loopback, named as the region's MX;
                    # the demo CA signs their certificates.
                    "mx_port": self._smtp[region.id].port,
                    "smtp": [
                        {
                            "host": "127.0.0.1",
                            "port": self._smtp[region.id].port,
                            "tls": "starttls",
                            "tls_name": self._dns_regions[region.id].mx_host.rstrip("."),
                            "ehlo": f"noc.{DEMO_DOMAIN}",
                            "ca_file": str(self._ca_bundle()),
                            "interval_seconds": 3,
                            "failure_threshold": 2,
                            "timeout_seconds": 2,
                        }
                    ],
                    "mta": {"metrics_url": self._mail_web.metrics_url(region.id), **_MTA_LIMITS},
                    "checks": [
                        {
                            "name": f"api.{region.id}.demo-mail /health",
                            "url": self._endpoints[region.id].url,
                            "body_contains": "healthy",
                        }
                    ],
                }
                for region in self._regions
            ],
            "replication": [
                {
                    "data_class": data_class,
                    "source": self._primary,
                    "target": target,
                    "kind": "redis",
                    "url": replica.url,
                    **settings,
                }
                for data_class, settings in _REPLICATED.items()
                for target, replica in self._replicas.items()
            ],
            # An SLO of 20 s (60 s in production) lets a stalled sync alert within
            # a demo's attention span; entries normally sync within 5 s.
            "suppression": {"lookback_seconds": 600, "slo_seconds": 20, "interval_seconds": 3},
            # A 5-minute window: a spike shows within a minute and, once restored,
            # leaves the window within five.
            "deliverability": {"window_minutes": 5, "interval_seconds": 5},
            # The demo's own authoritative server answers for the domain, its reverse
            # zones and a blocklist; short intervals so faults show within seconds.
            # Failover moves the demo's DNS for real: a signed RFC 2136 update to the
            # demo's own server. A 2-minute cooldown keeps flapping visible in a demo.
            # Automated failover is on here (off by default elsewhere) so that the
            # demo shows it: take ro down and watch; P is the pause switch.
            "failover": {
                "actuators": ["flag", "dns"],
                "cooldown_seconds": 120,
                "auto": True,
                "auto_after_seconds": 20,
                "drain_timeout_seconds": 60,
                "dns": {
                    "server": self._dns.address,
                    "zone": f"{DEMO_DOMAIN}.",
                    "key_name": DEMO_TSIG_KEY,
                    "key_secret": self._tsig_secret,
                },
            },
            "dns": {
                "resolvers": [self._dns.address],
                "interval_seconds": 3,
                "disagree_sustain_seconds": 10,
                "records": [
                    {"name": SMTP_RECORD, "type": "A"},
                    {"name": f"{DEMO_DOMAIN}.", "type": "MX"},
                ],
            },
            "email": {
                "domain": DEMO_DOMAIN,
                "dkim_selectors": [DEMO_DKIM_SELECTOR],
                "dnsbl_zones": [DEMO_BLOCKLIST_ZONE],
                "interval_seconds": 5,
                # The policy over HTTPS with the demo CA's certificate for 127.0.0.1;
                # the MX hosts publish no TLSA records, so DANE does not apply and noc
                # never connects to their (documentation-range) addresses.
                "mta_sts": True,
                "mta_sts_policy_url": self._mail_web.policy_url,
                "mta_sts_ca_file": str(self._ca_bundle()),
            },
        }


def _replaces(new: Fault, old: Fault) -> bool:
    # The endpoint and the SMTP server answer one way at a time: a new health (or
    # SMTP) fault replaces the last.
    return new is old or any(new in group and old in group for group in _EXCLUSIVE)


def _toggle(regions: set[str], region_id: str, on: bool) -> None:
    if on:
        regions.add(region_id)
    else:
        regions.discard(region_id)
