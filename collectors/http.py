"""The HTTP health collector: one GET of a /health endpoint, judged, as a CheckSample.

`probe()` never raises (cancellation aside): every way a check can fail becomes a
`ProbeError` whose kind tells the engine whether the endpoint answered badly or
noc could not reach it at all (see `noc.model.UNREACHABLE_KINDS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, TypeVar
from urllib.parse import SplitResult, urlsplit

import httpx

from noc.clock import Clock, SystemClock
from noc.model import CheckSample, CheckTarget, ErrorKind, ProbeError, mask_url, url_secrets
from noc_collectors.certificates import certificate_not_after, days_left

__all__ = ["BODY_LIMIT", "HttpHealthCollector", "Transport"]

log = logging.getLogger(__name__)

# A health answer is small; reading more only lets a broken endpoint waste memory.
BODY_LIMIT = 64 * 1024
DETAIL_LIMIT = 120
USER_AGENT = "noc-healthcheck"

_E = TypeVar("_E", bound=BaseException)

# What carries httpx's requests. aiohttp costs about a tenth of httpcore's CPU per
# check (bench/probe_cpu.py); httpcore stays selectable, for comparison.
Transport = Literal["aiohttp", "httpcore"]


@dataclass(slots=True)
class _Progress:
    """How far one exchange got, so a failure can be told apart by phase."""

    request_sent: bool = False
    status: int | None = None
    certificate: bytes | None = None  # the server's (DER), once an HTTPS answer came


# The exchange a probe is in, for aiohttp's trace callbacks: they run in the probing
# task, but are configured once per session rather than passed with each request.
_PROGRESS: ContextVar[_Progress | None] = ContextVar("noc_probe_progress", default=None)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    truncated: bool
    encoding: str
    certificate: bytes | None = None  # the server's, DER, over HTTPS


class HttpHealthCollector:
    """Probes health endpoints over two reused httpx clients (TLS verified or not).

    A semaphore bounds the probes in flight across every target; time spent
    waiting for a slot does not count against a probe's deadline.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        max_in_flight: int = 16,
        transport: Transport = "aiohttp",
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._clock = clock or SystemClock()
        self._max_in_flight = max_in_flight
        self._transport = transport
        self._slots = asyncio.Semaphore(max_in_flight)
        self._clients: dict[bool, httpx.AsyncClient] = {}
        self._clients_lock = asyncio.Lock()

    async def probe(self, target: CheckTarget) -> CheckSample:
        async with self._slots:
            progress = _Progress()
            started: float | None = None
            try:
                client = await self._client(target.verify_tls)
                started = self._clock.monotonic()
                answer = await self._exchange(client, target, progress)
            except Exception as exc:  # a probe reports every failure, it never raises
                error: ProbeError | None = _classify(exc, target, progress)
                status = progress.status
            else:
                error = _judge(target, answer)
                status = answer.status
            finished = self._clock.monotonic()
        latency = None
        if status is not None and started is not None:
            latency = (finished - started) * 1000
        wall = self._clock.utcnow()
        der = progress.certificate
        not_after = certificate_not_after(der) if der else None
        return CheckSample(
            check_id=target.check_id,
            region_id=target.region_id,
            at=finished,
            wall=wall,
            ok=error is None,
            status=status,
            latency_ms=latency,
            error=error,
            cert_not_after=not_after,
            cert_days_left=None if not_after is None else days_left(not_after, wall),
        )

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()

    async def _client(self, verify_tls: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify_tls)
        if client is None:
            async with self._clients_lock:
                client = self._clients.get(verify_tls)
                if client is None:
                    # Loading the CA bundle takes 30-120 ms, importing aiohttp ~110 ms:
                    # both off the event loop the UI shares (its first frame is drawn
                    # meanwhile).
                    context = await asyncio.to_thread(self._prepare_client, verify_tls)
                    client = self._new_client(context)
                    self._clients[verify_tls] = client
        return client

    def _prepare_client(self, verify_tls: bool) -> ssl.SSLContext:
        """What a client needs that blocks: the CA bundle, and the transport's import."""
        if self._transport == "aiohttp":
            import noc_collectors.http_aiohttp  # noqa: F401
        return httpx.create_ssl_context(verify_tls)

    def _new_client(self, context: ssl.SSLContext) -> httpx.AsyncClient:
        # The pool holds as many connections as probes may be in flight, so a probe
        # never waits for a connection slot inside its own deadline.
        limits = httpx.Limits(
            max_connections=self._max_in_flight,
            max_keepalive_connections=self._max_in_flight,
        )
        transport = None
        if self._transport == "aiohttp":
            # Imported here: aiohttp takes ~140 ms to import, which a command that
            # probes nothing (`noc --version`) should not pay.
            from noc_collectors.http_aiohttp import probe_transport

            transport = probe_transport(context, limits, _request_sent)
        return httpx.AsyncClient(
            verify=context,
            # A health endpoint that redirects is a finding, judged against expect_status.
            follow_redirects=False,
            limits=limits,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )

    async def _exchange(
        self, client: httpx.AsyncClient, target: CheckTarget, progress: _Progress
    ) -> _Answer:
        async def trace(event: str, info: dict[str, Any]) -> None:
            # Reused keep-alive connections skip the connect events, so "the request
            # went out" is the reliable marker that a connection existed.
            if event.endswith(".send_request_headers.started"):
                progress.request_sent = True

        # httpx's timeouts apply per phase (and per chunk while reading), so a body
        # trickling in byte by byte would never trip them: the outer deadline does.
        # The variable is the probing task's own: probes in other tasks see theirs.
        token = _PROGRESS.set(progress)
        try:
            async with asyncio.timeout(target.timeout_seconds):
                async with client.stream(
                    "GET",
                    target.url,
                    timeout=httpx.Timeout(target.timeout_seconds),
                    extensions={"trace": trace},  # httpcore's way to report progress
                ) as response:
                    progress.status = response.status_code
                    progress.certificate = _peer_certificate(response)
                    body, truncated = await _read_bounded(response)
                    encoding = response.encoding or "utf-8"
                    return _Answer(response.status_code, body, truncated, encoding)
        finally:
            _PROGRESS.reset(token)


def _peer_certificate(response: httpx.Response) -> bytes | None:
    """The server's certificate (DER) from the transport: aiohttp's (our extension) or
    httpcore's network stream; None over plain HTTP."""
    der = response.extensions.get("noc_peer_certificate")
    if isinstance(der, bytes):
        return der
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    tls = stream.get_extra_info("ssl_object")
    if isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
        return tls.getpeercert(binary_form=True)
    return None


def _request_sent() -> None:
    progress = _PROGRESS.get()
    if progress is not None:
        progress.request_sent = True


async def _read_bounded(response: httpx.Response) -> tuple[bytes, bool]:
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= BODY_LIMIT:
            return bytes(received[:BODY_LIMIT]), True
    return bytes(received), False


def _judge(target: CheckTarget, answer: _Answer) -> ProbeError | None:
    if answer.status != target.expect_status:
        return ProbeError(ErrorKind.HTTP_STATUS, str(answer.status))
    scope = f" (first {BODY_LIMIT // 1024} KiB)" if answer.truncated else ""
    if target.body_contains is not None:
        text = answer.body.decode(answer.encoding, errors="replace")
        if target.body_contains not in text:
            wanted = _tidy(repr(target.body_contains), target)
            return ProbeError(ErrorKind.BODY_MISMATCH, f"{wanted} not in body{scope}")
    if target.json_field is not None:
        try:
            document = json.loads(answer.body)
        except (ValueError, RecursionError):
            return ProbeError(ErrorKind.PROTOCOL, f"body is not JSON{scope}")
        return _judge_json(target, target.json_field, document)
    return None


def _judge_json(target: CheckTarget, field: str, document: Any) -> ProbeError | None:
    found, value = _dig(document, field)
    expected = target.json_equals
    if not found:
        wanted = f", expected {expected!r}" if expected is not None else ""
        return ProbeError(ErrorKind.JSON_MISMATCH, _tidy(f"{field} missing{wanted}", target))
    actual = value if isinstance(value, str) else json.dumps(value)
    if expected is not None and actual != expected:
        detail = f"{field} = {actual!r}, expected {expected!r}"
        return ProbeError(ErrorKind.JSON_MISMATCH, _tidy(detail, target))
    return None


def _dig(document: Any, dotted: str) -> tuple[bool, Any]:
    """Follow `a.b.0.c` through objects and (by index) arrays."""
    node = document
    for key in dotted.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False, None
    return True, node


def _classify(exc: Exception, target: CheckTarget, progress: _Progress) -> ProbeError:
    seconds = str(float(target.timeout_seconds))  # "2.0", "0.25": as configured
    # The cause chain holds the precise reason (a gaierror, a refused connect, a
    # certificate error) under httpx's generic ConnectError.
    if (cert := _in_chain(exc, ssl.SSLCertVerificationError)) is not None:
        reason = cert.verify_message or cert.reason or "unknown reason"
        return ProbeError(ErrorKind.TLS, _tidy(f"certificate verify failed: {reason}", target))
    if (tls := _in_chain(exc, ssl.SSLError)) is not None:
        reason = (tls.reason or type(tls).__name__).lower().replace("_", " ")
        return ProbeError(ErrorKind.TLS, _tidy(reason, target))
    if (dns := _in_chain(exc, socket.gaierror)) is not None:
        parts = _split(target.url)
        host = (parts.hostname if parts else None) or "host"
        return ProbeError(ErrorKind.DNS, _tidy(f"{host}: {dns.strerror or dns}", target))
    if _in_chain(exc, ConnectionRefusedError) is not None:
        return ProbeError(ErrorKind.REFUSED, "connection refused")
    # The aiohttp transport maps aiohttp's errors to httpx's coarsely (any lost
    # connection becomes httpx.ConnectTimeout), so its own error, the cause, decides.
    aiohttp = _aiohttp()
    if aiohttp is not None and (aio := _in_chain(exc, aiohttp.ClientError)) is not None:
        match aio:
            case aiohttp.ServerTimeoutError():  # a connect or a read timed out
                return _timed_out(progress, seconds)
            case aiohttp.ClientConnectorError():  # no connection, for a reason above none
                return ProbeError(ErrorKind.NETWORK, _tidy(_network_reason(aio), target))
            case (
                aiohttp.ServerDisconnectedError()
                | aiohttp.ClientPayloadError()
                | aiohttp.ClientResponseError()
                | aiohttp.InvalidURL()
            ):
                return ProbeError(ErrorKind.PROTOCOL, _tidy(str(aio) or type(aio).__name__, target))
            case aiohttp.ClientOSError():
                return ProbeError(ErrorKind.NETWORK, _tidy(_network_reason(aio), target))
    match exc:
        case httpx.ConnectTimeout():
            return ProbeError(ErrorKind.CONNECT_TIMEOUT, f"no connection within {seconds} s")
        case httpx.TimeoutException() | TimeoutError():
            return _timed_out(progress, seconds)
        case (
            httpx.ProtocolError()
            | httpx.DecodingError()
            | httpx.UnsupportedProtocol()
            | httpx.InvalidURL()
        ):
            return ProbeError(ErrorKind.PROTOCOL, _tidy(str(exc) or type(exc).__name__, target))
        case httpx.TransportError():
            return ProbeError(ErrorKind.NETWORK, _tidy(_network_reason(exc), target))
    # A bug of ours must not read as the endpoint failing: NETWORK counts as
    # "could not reach", which keeps the region's last known state. The log names
    # the check, not the URL: a URL this odd may not even mask cleanly.
    log.exception("unexpected error probing check %s", target.check_id)
    return ProbeError(ErrorKind.NETWORK, f"internal error: {type(exc).__name__}")


def _timed_out(progress: _Progress, seconds: str) -> ProbeError:
    if not progress.request_sent:
        # The outer deadline fired before a connection was up: the same finding as
        # httpx's own connect timeout, which it pre-empts.
        return ProbeError(ErrorKind.CONNECT_TIMEOUT, f"no connection within {seconds} s")
    if progress.status is not None:
        return ProbeError(ErrorKind.TIMEOUT, f"body not complete within {seconds} s")
    return ProbeError(ErrorKind.TIMEOUT, f"no answer within {seconds} s")


def _network_reason(exc: BaseException) -> str:
    os_error = _in_chain(exc, OSError)
    if os_error is not None and os_error.strerror:
        return os_error.strerror.lower()
    return str(exc) or type(exc).__name__


def _in_chain(exc: BaseException, kind: type[_E]) -> _E | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    # aiohttp's connection errors subclass OSError and ssl's errors without their
    # details: the error they carry is the one to match, unless aiohttp's is sought.
    aiohttp = _aiohttp()
    see_through = aiohttp is not None and not issubclass(kind, aiohttp.ClientError)
    while current is not None and id(current) not in seen:
        if isinstance(current, kind) and not (see_through and _wrapped(current) is not None):
            return current
        seen.add(id(current))
        current = _wrapped(current) or current.__cause__ or current.__context__
    return None


def _aiohttp() -> ModuleType | None:
    """aiohttp, if the aiohttp transport has loaded it: if not, none of its errors
    can have been raised, and classifying need not import it."""
    return sys.modules.get("aiohttp")


def _wrapped(exc: BaseException) -> BaseException | None:
    """The error an aiohttp connection error carries (not always as its cause): a
    certificate error inside aiohttp's own ssl.CertificateError subclass, say."""
    aiohttp = _aiohttp()
    if aiohttp is None:
        return None
    carried: BaseException | None = None
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        carried = exc.certificate_error
    elif isinstance(exc, aiohttp.ClientConnectorError):
        carried = exc.os_error
    return carried


def _tidy(text: str, target: CheckTarget) -> str:
    """One short line, safe for the health table: no newlines, no credential of the URL
    (its password or bare-token user, a token-like query parameter), even quoted alone."""
    for secret in url_secrets(target.url):
        text = text.replace(secret, "****")
    line = " ".join(mask_url(text).split())
    if len(line) > DETAIL_LIMIT:
        line = line[: DETAIL_LIMIT - 1] + "…"
    return line


def _split(url: str) -> SplitResult | None:
    # A URL malformed enough to fail the probe can fail urlsplit too.
    try:
        return urlsplit(url)
    except ValueError:
        return None
