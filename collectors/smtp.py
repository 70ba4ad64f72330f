"""The SMTP probe: banner, EHLO, STARTTLS (or implicit TLS), the certificate, QUIT.

One probe is one SMTP session through aiosmtplib, every step under the target's
timeout. `probe()` never raises (cancellation aside): every way the session can fail
becomes a `ProbeError` in the sample, and a failure of TLS (STARTTLS required but not
offered, a handshake or a certificate that fails) is flagged `tls_broken` as well.

Probes of one host are serialised: a mail server that limits concurrent sessions per
client (Postfix's anvil) must not see noc's own probes as a burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

import aiosmtplib

from noc.clock import Clock, SystemClock
from noc.model import ErrorKind, ProbeError, SmtpSample, SmtpTarget, SmtpTls
from noc_collectors.certificates import certificate_not_after, days_left

__all__ = ["SmtpCollector"]

log = logging.getLogger(__name__)

DETAIL_LIMIT = 120

_E = TypeVar("_E", bound=BaseException)


class _Failed(Exception):
    """A probe's finding, raised to end the session early."""

    def __init__(self, error: ProbeError, *, tls_broken: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.tls_broken = tls_broken


class _Session:
    """What one probe learnt so far, kept when a later step fails."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.phases: list[tuple[str, float]] = []
        self.banner_code: int | None = None
        self.tls_version: str | None = None
        self.not_after: datetime | None = None
        self.phase = "connect"

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        self.phase = phase
        started = self.clock.monotonic()
        try:
            yield
        finally:
            self.phases.append((phase, round((self.clock.monotonic() - started) * 1000, 1)))


class SmtpCollector:
    """Probes SMTP endpoints. TLS contexts are built once per CA file (loading a
    bundle takes tens of milliseconds, off the event loop)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self._hosts: dict[str, asyncio.Lock] = {}

    async def probe(self, target: SmtpTarget) -> SmtpSample:
        # One lock per configured host: bounded by the configuration.
        lock = self._hosts.setdefault(target.host.lower(), asyncio.Lock())
        async with lock:
            session = _Session(self._clock)
            error: ProbeError | None = None
            tls_broken = False
            started = self._clock.monotonic()
            try:
                async with asyncio.timeout(target.timeout_seconds):
                    await self._session(target, session, await self._context(target.ca_file))
            except _Failed as failed:
                error, tls_broken = failed.error, failed.tls_broken
            except Exception as exc:  # a probe reports every failure, it never raises
                error, tls_broken = _classify(exc, target, session)
                if _in_chain(exc, ssl.SSLCertVerificationError) is not None:
                    # An expired certificate fails the handshake before it can be read:
                    # a second look, unverified, tells by how many days.
                    left = target.timeout_seconds - (self._clock.monotonic() - started)
                    session.not_after = await self._peek(target, left)
            finished = self._clock.monotonic()
        wall = self._clock.utcnow()
        not_after = session.not_after
        return SmtpSample(
            check_id=target.check_id,
            region_id=target.region_id,
            at=finished,
            wall=wall,
            ok=error is None,
            banner_code=session.banner_code,
            tls_version=session.tls_version,
            cert_not_after=not_after,
            cert_days_left=None if not_after is None else days_left(not_after, wall),
            tls_broken=tls_broken,
            error=error,
            phase_ms=tuple(session.phases),
        )

    async def _context(self, ca_file: str | None) -> ssl.SSLContext:
        context = self._contexts.get(ca_file)
        if context is None:
            context = await asyncio.to_thread(ssl.create_default_context, cafile=ca_file)
            self._contexts[ca_file] = context
        return context

    async def _peek(self, target: SmtpTarget, seconds: float) -> datetime | None:
        """The certificate's not-after, read in a session that verifies nothing (it
        only looks: the probe has already failed). None if that fails too."""
        if seconds <= 0:
            return None
        # No trust store is loaded for a context that verifies nothing: nothing blocks.
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        look = _Session(self._clock)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(seconds):
                await self._session(target, look, unverified)
        return look.not_after

    async def _session(
        self, target: SmtpTarget, session: _Session, tls_context: ssl.SSLContext
    ) -> None:
        context = None if target.tls is SmtpTls.NONE else tls_context
        timeout = target.timeout_seconds
        with session.timed("connect"):
            sock = await _connect(target.host, target.port)
        # The host is the name the certificate is checked against: the socket is ours,
        # already connected, so an address in `host` can still be verified by name.
        client = aiosmtplib.SMTP(
            hostname=target.tls_name,
            local_hostname=target.ehlo,
            timeout=timeout,
            use_tls=target.tls is SmtpTls.IMPLICIT,
            start_tls=False,
            tls_context=context,
            sock=sock,
        )
        try:
            with session.timed("tls+banner" if target.tls is SmtpTls.IMPLICIT else "banner"):
                try:
                    banner = await client.connect()
                except aiosmtplib.SMTPConnectResponseError as refused:
                    session.banner_code = refused.code
                    raise _Failed(_status(refused.code, refused.message, "banner")) from None
            session.banner_code = banner.code
            if target.tls is SmtpTls.IMPLICIT:
                self._note_tls(client, session)
            with session.timed("ehlo"):
                await self._ehlo(client)
            if target.tls in (SmtpTls.STARTTLS, SmtpTls.OPTIONAL):
                if not client.supports_extension("starttls"):
                    if target.tls is SmtpTls.STARTTLS:
                        raise _Failed(
                            ProbeError(ErrorKind.TLS, "STARTTLS not offered"), tls_broken=True
                        )
                else:
                    with session.timed("starttls"):
                        answer = await client.starttls(server_hostname=target.tls_name)
                    if not 200 <= answer.code < 300:
                        raise _Failed(
                            _status(answer.code, answer.message, "STARTTLS"), tls_broken=True
                        )
                    self._note_tls(client, session)
                    with session.timed("ehlo"):
                        await self._ehlo(client)
            with session.timed("quit"):
                await client.quit()
        finally:
            # The socket is the transport's from here: asyncio closes it once the
            # transport has closed (after TLS's close_notify). Closing it here would
            # free its descriptor while the transport still watches it, and the next
            # probe's socket, given the same number, would be refused by the loop.
            client.close()

    async def _ehlo(self, client: aiosmtplib.SMTP) -> None:
        answer = await client.ehlo()
        if not 200 <= answer.code < 300:
            raise _Failed(_status(answer.code, answer.message, "EHLO"))

    def _note_tls(self, client: aiosmtplib.SMTP, session: _Session) -> None:
        tls = client.get_transport_info("ssl_object")
        if isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
            session.tls_version = tls.version()
            der = tls.getpeercert(binary_form=True)
            session.not_after = certificate_not_after(der) if der else None


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket to the first address of `host` that answers."""
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last or OSError(f"{host}: no address")


def _status(code: int, message: str, step: str) -> ProbeError:
    text = " ".join(message.split())
    return ProbeError(ErrorKind.SMTP_STATUS, _tidy(f"{code} {text} ({step})"))


def _classify(exc: BaseException, target: SmtpTarget, session: _Session) -> tuple[ProbeError, bool]:
    seconds = str(float(target.timeout_seconds))
    tls_phase = session.phase in ("starttls", "tls+banner")
    if (cert := _in_chain(exc, ssl.SSLCertVerificationError)) is not None:
        reason = cert.verify_message or cert.reason or "unknown reason"
        return ProbeError(ErrorKind.TLS, _tidy(f"certificate verify failed: {reason}")), True
    if (tls := _in_chain(exc, ssl.SSLError)) is not None:
        reason = (tls.reason or type(tls).__name__).lower().replace("_", " ")
        return ProbeError(ErrorKind.TLS, _tidy(f"handshake failed: {reason}")), True
    if (dns := _in_chain(exc, socket.gaierror)) is not None:
        return ProbeError(ErrorKind.DNS, _tidy(f"{target.host}: {dns.strerror or dns}")), False
    if _in_chain(exc, ConnectionRefusedError) is not None:
        return ProbeError(ErrorKind.REFUSED, "connection refused"), False
    if isinstance(exc, TimeoutError) or _in_chain(exc, TimeoutError) is not None:
        if session.phase == "connect":
            return ProbeError(ErrorKind.CONNECT_TIMEOUT, f"no connection within {seconds} s"), False
        # A handshake that never completes is TLS broken, as much as one that fails.
        return ProbeError(
            ErrorKind.TIMEOUT, f"no answer to {session.phase} within {seconds} s"
        ), tls_phase
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _status(exc.code, exc.message, session.phase), tls_phase
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        detail = f"connection closed during {session.phase}"
        return ProbeError(ErrorKind.PROTOCOL, detail), tls_phase
    if isinstance(exc, aiosmtplib.SMTPException):
        return ProbeError(ErrorKind.PROTOCOL, _tidy(f"{session.phase}: {exc}")), tls_phase
    if isinstance(exc, OSError):
        reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
        return ProbeError(ErrorKind.NETWORK, _tidy(reason)), False
    # A bug of ours must not read as the server failing (see the HTTP collector).
    log.exception("unexpected error probing SMTP %s", target.check_id)
    return ProbeError(ErrorKind.NETWORK, f"internal error: {type(exc).__name__}"), False


def _in_chain(exc: BaseException, kind: type[_E]) -> _E | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tidy(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= DETAIL_LIMIT else line[: DETAIL_LIMIT - 1] + "…"
