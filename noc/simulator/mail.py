"""The demo's mail servers, in-process: an SMTP server per region with TLS faults, an
MTA exporter page per region from a queue model, and an MTA-STS policy over HTTPS.

Nothing here needs a package installed beyond noc's own dependencies: the SMTP
servers are aiosmtpd protocols on loopback ports of the demo's event loop, the
certificates are made with `cryptography` at demo start (a CA of the demo's own, its
bundle where noc's `ca_file` points), and the exporter page is postfix_exporter's
text made by prometheus_client from `DemoQueue`, a model of one region's queue.

- `SmtpMode`: what a region's SMTP server does for the next connection (one at a
  time): a 421 banner, STARTTLS not offered, a handshake that cannot complete (the
  server speaks only TLS 1.0, which every current client refuses), a certificate that
  expires in `EXPIRING_DAYS`, or one for another name.
- `DemoQueue`: deferred messages arrive and leave on their retry; "held and growing"
  holds every new message and stops deliveries, so hold and deferred grow and the
  oldest deferred message ages; on restore the held messages are released and the
  backlog drains within a minute or two. Rejections count by SMTP reply code, a few a
  minute, hundreds a minute in a spike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import random
import ssl
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from aiohttp import web
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "EXPIRING_DAYS",
    "DemoCa",
    "DemoQueue",
    "MailWeb",
    "SimulatedSmtp",
    "SmtpMode",
    "sts_policy",
]

EXPIRING_DAYS = 5  # under noc's default cert_crit_days (7): critical at once
WRONG_NAME = "mx.elsewhere.invalid"
# aiosmtpd logs every session and every failed handshake at INFO or above; the demo's
# screen is the dashboard, not a log.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)


# -- certificates ----------------------------------------------------------------------


class DemoCa:
    """A CA of the demo's own, written to `directory`: `bundle` is what noc trusts, and
    `context(...)` a server context with a leaf it issues (key and chain in one file)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "noc demo CA")])
        now = datetime.now(UTC)
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = directory / "ca.pem"
        self.bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def context(
        self,
        label: str,
        names: Sequence[str],
        *,
        days: float = 365,
        anonymous_only: bool = False,
    ) -> ssl.SSLContext:
        """A server context presenting a leaf for `names` (DNS names or addresses) that
        expires in `days`. `anonymous_only`: a server that offers only TLS 1.2 ciphers
        without a certificate, which no verifying client accepts: every handshake fails
        with "no shared cipher"."""
        path = self.directory / f"{label}.pem"
        path.touch(mode=0o600)
        path.write_bytes(self._leaf(names, days))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if anonymous_only:
            # TLS 1.3 has no anonymous suites (and set_ciphers does not reach it).
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers("aNULL:@SECLEVEL=0")
        context.load_cert_chain(path)
        return context

    def _leaf(self, names: Sequence[str], days: float) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem + cert.public_bytes(serialization.Encoding.PEM)


# -- SMTP ------------------------------------------------------------------------------


class SmtpMode(StrEnum):
    HEALTHY = "healthy"
    BANNER_421 = "421 banner"
    NO_STARTTLS = "starttls not offered"
    HANDSHAKE_FAILURE = "handshake failure"
    EXPIRING = "expiring certificate"
    WRONG_NAME = "wrong name"


class _Greeting421(asyncio.Protocol):
    """What an MTA that is shutting down says to every new client, then hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"421 4.3.2 Service shutting down, closing transmission channel\r\n")
        transport.close()


class _Accepting:
    """aiosmtpd's handler: takes whatever a client sends and keeps nothing."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 Ok: accepted by the noc demo (not kept)"


class SimulatedSmtp:
    """One region's SMTP server on a loopback port; `mode` applies to new connections."""

    def __init__(self, mx_name: str, ca: DemoCa) -> None:
        self.mx_name = mx_name
        self.mode = SmtpMode.HEALTHY
        label = mx_name.replace(".", "_")
        self._contexts: dict[SmtpMode, ssl.SSLContext | None] = {
            SmtpMode.HEALTHY: ca.context(f"{label}", [mx_name]),
            SmtpMode.NO_STARTTLS: None,
            SmtpMode.HANDSHAKE_FAILURE: ca.context(
                f"{label}-anonymous", [mx_name], anonymous_only=True
            ),
            SmtpMode.EXPIRING: ca.context(f"{label}-expiring", [mx_name], days=EXPIRING_DAYS),
            SmtpMode.WRONG_NAME: ca.context(f"{label}-wrong-name", [WRONG_NAME]),
        }
        self._server: asyncio.Server | None = None
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the SMTP server has not been started yet")
        return self._port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", self._port or 0)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Python 3.12's wait_closed waits for every client; a probe hangs up in
            # seconds, but a stop should not wait on one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def _protocol(self) -> asyncio.BaseProtocol:
        if self.mode is SmtpMode.BANNER_421:
            return _Greeting421()
        return SMTP(
            _Accepting(),
            hostname=self.mx_name,
            ident="noc demo ESMTP",
            tls_context=self._contexts[self.mode],
            # Unauthenticated sessions only: no AUTH is offered, over TLS or not.
            auth_require_tls=False,
            timeout=30,
        )


# -- queues and rejections ---------------------------------------------------------------

# postfix_exporter's buckets: ages 10 s to 1e8 s, sizes 1 KB to 1 GB (powers of 10).
_AGE_BUCKETS = (10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
_SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
_MESSAGE_BYTES = 6_000.0
# A queue that grows stops growing here: every buffer of the demo is bounded.
QUEUE_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class QueueTuning:
    """Rates a minute (arrivals) or a second; the defaults are the demo's."""

    deferred_per_second: float = 0.05
    retry_seconds: tuple[float, float] = (60.0, 600.0)
    held_per_second: float = 3.0
    deferred_in_fault_per_second: float = 4.0
    drain_seconds: float = 60.0
    rejections_per_minute: Mapping[str, float] = field(
        default_factory=lambda: {"554": 3.0, "450": 1.0}
    )
    spike_per_minute: Mapping[str, float] = field(
        default_factory=lambda: {"554": 400.0, "421": 60.0}
    )


class DemoQueue:
    """One region's queue, advanced to `now` (the demo's monotonic clock) on each read."""

    def __init__(self, rng: random.Random, now: float, tuning: QueueTuning | None = None) -> None:
        self._rng = rng
        self._tuning = tuning or QueueTuning()
        self._at = now
        # (arrived, leaves) per deferred message, oldest first; bounded by QUEUE_LIMIT.
        self._deferred: deque[tuple[float, float]] = deque()
        self._held: deque[float] = deque()
        self.rejected: dict[str, float] = dict.fromkeys(self._tuning.rejections_per_minute, 0.0)
        self.held_and_growing = False
        self.rejection_spike = False
        # A few deferred messages from before the demo started.
        for _ in range(4):
            arrived = now - rng.uniform(30, 400)
            self._deferred.append((arrived, arrived + rng.uniform(*self._tuning.retry_seconds)))
        self._deferred = deque(sorted(self._deferred))

    def release(self) -> None:
        """The operator released the hold: every held message is deferred again and,
        with the backlog, leaves within the drain time."""
        self.held_and_growing = False
        released = [(arrived, self._at) for arrived in self._held]
        self._held.clear()
        self._deferred = deque(
            sorted(
                (arrived, min(leaves, self._at + self._rng.uniform(0, self._tuning.drain_seconds)))
                for arrived, leaves in (*self._deferred, *released)
            )
        )

    def advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._at)
        self._at = now
        tuning = self._tuning
        if self.held_and_growing:
            self._held.extend([now] * self._arrivals(tuning.held_per_second * elapsed))
            self._defer(tuning.deferred_in_fault_per_second * elapsed, now)
        else:
            self._defer(tuning.deferred_per_second * elapsed, now)
            self._deferred = deque(entry for entry in self._deferred if entry[1] > now)
        rates = tuning.spike_per_minute if self.rejection_spike else tuning.rejections_per_minute
        for code, per_minute in rates.items():
            self.rejected[code] = self.rejected.get(code, 0.0) + self._count(
                per_minute * elapsed / 60
            )

    def _count(self, expected: float) -> int:
        """A whole number of events with `expected` as its mean."""
        whole = int(expected)
        return whole + (1 if self._rng.random() < expected - whole else 0)

    def _arrivals(self, expected: float) -> int:
        """How many messages arrive, within the room QUEUE_LIMIT leaves."""
        room = QUEUE_LIMIT - len(self._deferred) - len(self._held)
        return min(self._count(expected), max(0, room))

    def _defer(self, expected: float, now: float) -> None:
        # Deliveries are retried from the queue manager's point of view: each message
        # leaves at its own time, drawn when it arrives.
        retry = self._tuning.retry_seconds
        for _ in range(self._arrivals(expected)):
            self._deferred.append((now, now + self._rng.uniform(*retry)))

    @property
    def active(self) -> int:
        # Messages in flight: a handful, more while a backlog drains.
        return min(len(self._deferred), 3) if not self.held_and_growing else 1

    @property
    def deferred_ages(self) -> list[float]:
        return [self._at - arrived for arrived, _ in self._deferred]

    @property
    def held_ages(self) -> list[float]:
        return [self._at - arrived for arrived in self._held]

    def page(self, now: float) -> bytes:
        """postfix_exporter's text for this queue, advanced to `now`."""
        self.advance(now)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_QueuePage(self))
        return generate_latest(registry)


class _QueuePage(Collector):
    def __init__(self, queue: DemoQueue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        queues = {
            "active": [1.0] * self._queue.active,
            "deferred": self._queue.deferred_ages,
            "hold": self._queue.held_ages,
            "incoming": [],
            "maildrop": [],
        }
        sizes = HistogramMetricFamily(
            "postfix_showq_message_size_bytes",
            "Size of messages in Postfix's message queue, in bytes",
            labels=["queue"],
        )
        ages = HistogramMetricFamily(
            "postfix_showq_message_age_seconds",
            "Age of messages in Postfix's message queue, in seconds",
            labels=["queue"],
        )
        for name, message_ages in queues.items():
            sizes.add_metric(
                [name],
                _buckets([_MESSAGE_BYTES] * len(message_ages), _SIZE_BUCKETS),
                _MESSAGE_BYTES * len(message_ages),
            )
            ages.add_metric([name], _buckets(message_ages, _AGE_BUCKETS), sum(message_ages))
        rejected = CounterMetricFamily(
            "postfix_smtpd_messages_rejected", "Total number of NOQUEUE rejects.", labels=["code"]
        )
        for code, total in sorted(self._queue.rejected.items()):
            rejected.add_metric([code], total)
        yield sizes
        yield ages
        yield rejected


def _buckets(values: Iterable[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    ordered = list(values)
    cumulative = [(_bound(b), float(sum(v <= b for v in ordered))) for b in bounds]
    return [*cumulative, ("+Inf", float(len(ordered)))]


def _bound(value: float) -> str:
    # As Go's exporter writes them: 10, 100, ..., 100000, 1e+06.
    return f"{value:g}"


# -- the web side: exporter pages and the MTA-STS policy ---------------------------------


def sts_policy(mx_hosts: Iterable[str], *, mode: str = "enforce", max_age: int = 86400) -> str:
    """An RFC 8461 policy file naming `mx_hosts` (without trailing dots)."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {host}" for host in mx_hosts)]
    return "\r\n".join([*lines, f"max_age: {max_age}", ""])


def sts_policy_id(policy: str) -> str:
    """The `_mta-sts` TXT id: changes whenever the policy does (1-32 alphanumerics)."""
    return hashlib.sha256(policy.encode()).hexdigest()[:20]


class MailWeb:
    """Each region's exporter page (plain HTTP, /mta/<region>/metrics) and the
    domain's MTA-STS policy (HTTPS, with the demo CA's certificate for 127.0.0.1)."""

    def __init__(self, queues: Mapping[str, DemoQueue], policy: list[str]) -> None:
        self._queues = queues
        # A one-element list the estate replaces: the policy as served now.
        self._policy = policy
        self._runners: list[web.AppRunner] = []
        self.metrics_port = 0
        self.policy_port = 0

    def metrics_url(self, region_id: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/mta/{region_id}/metrics"

    @property
    def policy_url(self) -> str:
        return f"https://127.0.0.1:{self.policy_port}/.well-known/mta-sts.txt"

    async def start(self, policy_context: ssl.SSLContext) -> None:
        metrics = web.Application()
        metrics.router.add_get("/mta/{region}/metrics", self._metrics)
        policy = web.Application()
        policy.router.add_get("/.well-known/mta-sts.txt", self._sts)
        self.metrics_port = await self._serve(metrics, None)
        self.policy_port = await self._serve(policy, policy_context)

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    async def _serve(self, app: web.Application, context: ssl.SSLContext | None) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return int(runner.addresses[0][1])

    async def _metrics(self, request: web.Request) -> web.Response:
        queue = self._queues.get(request.match_info["region"])
        if queue is None:
            raise web.HTTPNotFound()
        body = queue.page(asyncio.get_running_loop().time())
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _sts(self, _: web.Request) -> web.Response:
        return web.Response(text=self._policy[0], content_type="text/plain")
