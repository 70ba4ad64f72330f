"""Canary messages: submitted through a region, found in a seed mailbox, deleted.

A canary is a small message with a token in its subject and in an `X-Noc-Canary`
header. `CanaryProber.send()` submits one through a region's submission endpoint
(aiosmtplib: SMTP AUTH over STARTTLS or implicit TLS, the password read from the
environment at that moment), to one seed mailbox. `read()` logs in to the seed over
IMAP (aioimaplib, TLS from the first byte), searches the inbox and the spam folders
for canary headers, and for each canary it awaits learns where it landed, how long it
took (to the server's INTERNALDATE), the sending IP from the Received headers and the
SPF/DKIM/DMARC results and DKIM selector from the receiver's Authentication-Results
(RFC 8601, parsed by `authres`); then deletes it. A canary not found within its
deadline is lost.

Bounded: canaries awaited per region and seed (`max_outstanding`: no new one is sent
past it), messages examined per folder (`scan_limit`, the newest), header bytes read
per message, and tokens remembered after they are settled. Methods never raise (a
cancellation aside): failures become samples with their error.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import ipaddress
import logging
import math
import os
import re
import secrets
import ssl
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from noc.clock import Clock, SystemClock
from noc.model import AuthVerdict, CanarySample, CanaryState
from noc_collectors.smtp import _connect as connect_socket

__all__ = [
    "CANARY_HEADER",
    "CanaryProber",
    "SeedMailbox",
    "SubmissionEndpoint",
    "auth_verdict",
    "sending_ip",
]

log = logging.getLogger(__name__)

CANARY_HEADER = "X-Noc-Canary"
TOKEN_PREFIX = "noc-"
# Only the headers a canary's verdict needs, and at most this many bytes of them.
_FETCH_FIELDS = "(X-NOC-CANARY RECEIVED AUTHENTICATION-RESULTS DKIM-SIGNATURE)"
HEADER_BYTES_LIMIT = 65536
# Settled tokens remembered, so a lost canary that arrives late is still deleted.
SETTLED_LIMIT = 1000
ERROR_LIMIT = 200

_FETCH_LINE = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
# "from host (rdns [192.0.2.1])", "from host ([IPv6:2001:db8::1])", "from [192.0.2.1]".
_RECEIVED_FROM_IP = re.compile(r"^\s*from\s[^;]*?\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]", re.IGNORECASE)
_DKIM_TAG = re.compile(r"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)")


@dataclass(frozen=True, slots=True)
class SubmissionEndpoint:
    region: str
    host: str
    port: int
    implicit_tls: bool
    tls_name: str
    username: str
    password_env: str  # read at each submission: a rotated secret needs no restart
    from_address: str
    ca_file: str | None = None
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class SeedMailbox:
    name: str
    address: str
    imap_host: str
    imap_port: int
    imap_user: str
    imap_password_env: str
    regions: tuple[str, ...]
    inbox: str = "INBOX"
    spam_folders: tuple[str, ...] = ("Junk",)
    imap_ca_file: str | None = None
    deadline_seconds: float = 900.0
    max_outstanding: int = 4
    scan_limit: int = 200
    timeout_seconds: float = 30.0


@dataclass(slots=True)
class _Pending:
    region: str
    seed: str
    token: str
    sent_wall: datetime
    sent_at: float  # monotonic


@dataclass(slots=True)
class _Found:
    uid: str
    token: str
    internaldate: datetime | None
    headers: bytes
    mailbox: str = ""  # the IMAP folder it was found in


@dataclass
class _SeedState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[str, _Pending] = field(default_factory=dict)
    # token -> None; an OrderedDict as a bounded set that forgets the oldest first.
    settled: OrderedDict[str, None] = field(default_factory=OrderedDict)


class CanaryProber:
    """Sends canaries and reads the seed mailboxes; keeps what is awaited."""

    def __init__(
        self,
        endpoints: Mapping[str, SubmissionEndpoint],
        seeds: Sequence[SeedMailbox],
        clock: Clock | None = None,
        *,
        sending_ips: Iterable[str] = (),
    ) -> None:
        self._clock = clock or SystemClock()
        self.endpoints = dict(endpoints)
        self.seeds = {seed.name: seed for seed in seeds}
        self._state = {seed.name: _SeedState() for seed in seeds}
        self._sending_ips = frozenset(sending_ips)
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    def awaited(self, seed: str) -> int:
        """Canaries sent to `seed` and neither found nor lost yet."""
        return len(self._state[seed].pending)

    def outstanding(self, region: str, seed: str) -> int:
        return sum(1 for p in self._state[seed].pending.values() if p.region == region)

    async def send(
        self, region: str, seed_name: str, *, beyond_bound: bool = False
    ) -> CanarySample:
        """Submit one canary through `region` to `seed_name`; PENDING, or FAILED.
        `beyond_bound`: a failover's verification sends even when max_outstanding
        canaries are awaited (one more, once; it must not fail for the routine ones)."""
        endpoint, seed = self.endpoints[region], self.seeds[seed_name]
        state = self._state[seed_name]
        now = self._clock.monotonic()
        waiting = self.outstanding(region, seed_name)
        if waiting >= seed.max_outstanding and not beyond_bound:
            return CanarySample(
                region, seed_name, "", CanaryState.FAILED, now, outstanding=waiting,
                error=f"{waiting} canaries still awaited (max_outstanding): none sent",
            )  # fmt: skip
        sent_wall = self._clock.utcnow()
        token = new_token(region, sent_wall)
        message = canary_message(token, endpoint.from_address, seed.address, region, sent_wall)
        try:
            async with asyncio.timeout(endpoint.timeout_seconds):
                await self._submit(endpoint, message)
        except Exception as exc:  # every failure is the sample's error
            return CanarySample(
                region, seed_name, token, CanaryState.FAILED, self._clock.monotonic(),
                sent_wall=sent_wall, outstanding=waiting,
                error=_words(f"submission via {endpoint.host}:{endpoint.port}", exc),
            )  # fmt: skip
        state.pending[token] = _Pending(region, seed_name, token, sent_wall, now)
        return CanarySample(
            region, seed_name, token, CanaryState.PENDING, self._clock.monotonic(),
            sent_wall=sent_wall, outstanding=waiting + 1,
        )  # fmt: skip

    async def _submit(self, endpoint: SubmissionEndpoint, message: EmailMessage) -> None:
        import aiosmtplib

        password = os.environ.get(endpoint.password_env)
        if not password:
            raise RuntimeError(f"${endpoint.password_env} is not set (the submission password)")
        context = await self._context(endpoint.ca_file)
        # The socket is connected here, so the certificate is checked against tls_name
        # even when host is an address (as the SMTP probe does).
        sock = await connect_socket(endpoint.host, endpoint.port)
        client = aiosmtplib.SMTP(
            hostname=endpoint.tls_name,
            timeout=endpoint.timeout_seconds,
            use_tls=endpoint.implicit_tls,
            start_tls=not endpoint.implicit_tls,
            tls_context=context,
            sock=sock,
        )
        try:
            await client.connect()
            await client.login(endpoint.username, password)
            await client.send_message(message)
            await client.quit()
        finally:
            client.close()  # the transport owns the socket: see the SMTP probe

    async def read(self, seed_name: str) -> list[CanarySample]:
        """Read the seed mailbox once: a sample for each canary that arrived or is now
        lost (an unreadable mailbox: one FAILED sample per region still awaiting)."""
        seed, state = self.seeds[seed_name], self._state[seed_name]
        async with state.lock:
            if not state.pending:
                return []  # nothing awaited: the mailbox is not read at all
            try:
                async with asyncio.timeout(seed.timeout_seconds):
                    found = await self._scan(seed, state)
            except Exception as exc:  # the mailbox could not be read
                error = _words(f"IMAP {seed.imap_host}:{seed.imap_port}", exc)
                now = self._clock.monotonic()
                samples = [
                    CanarySample(
                        region,
                        seed_name,
                        "",
                        CanaryState.UNREAD,
                        now,
                        outstanding=self.outstanding(region, seed_name),
                        error=error,
                    )
                    for region in sorted({p.region for p in state.pending.values()})
                ]
                return samples + self._expire(seed, state)
            arrived = [self._arrival(seed, state, folder, item) for folder, item in found]
            return [s for s in arrived if s is not None] + self._expire(seed, state)

    async def _scan(self, seed: SeedMailbox, state: _SeedState) -> list[tuple[str, _Found]]:
        import aioimaplib

        password = os.environ.get(seed.imap_password_env)
        if not password:
            raise RuntimeError(f"${seed.imap_password_env} is not set (the IMAP password)")
        context = await self._context(seed.imap_ca_file)
        client = aioimaplib.IMAP4_SSL(
            seed.imap_host, seed.imap_port, timeout=seed.timeout_seconds, ssl_context=context
        )
        found: list[tuple[str, _Found]] = []
        try:
            await client.wait_hello_from_server()
            _ok(await client.login(seed.imap_user, password), "login")
            folders = [(seed.inbox, "inbox"), *((f, "spam") for f in seed.spam_folders)]
            for folder, kind in folders:
                selected = await client.select(_quoted(folder))
                if selected.result != "OK":
                    if kind == "inbox":
                        raise RuntimeError(f"cannot open {folder}: {_text(selected.lines)}")
                    continue  # this provider has no such spam folder
                items = await self._canaries_in(client, seed)
                stale_before = self._clock.utcnow().timestamp() - 2 * seed.deadline_seconds
                ours = [
                    i
                    for i in items
                    if i.token in state.pending
                    or i.token in state.settled
                    or token_sent_at(i.token) < stale_before
                ]
                for item in ours:
                    item.mailbox = folder
                found.extend((kind, item) for item in ours)
                if ours:
                    await _delete(client, [i.uid for i in ours])
        finally:
            with contextlib.suppress(Exception):
                await client.logout()
            # logout() leaves the transport to the server's close: end it here.
            transport = getattr(client.protocol, "transport", None)
            if transport is not None:
                transport.close()
        return found

    async def _canaries_in(self, client: object, seed: SeedMailbox) -> list[_Found]:
        search = await client.uid_search("HEADER", CANARY_HEADER, TOKEN_PREFIX, charset=None)  # type: ignore[attr-defined]
        _ok(search, "search")
        uids = [u for line in search.lines[:1] for u in line.decode().split() if u.isdigit()]
        newest = uids[-seed.scan_limit :]
        if not newest:
            return []
        fetched = await client.uid(  # type: ignore[attr-defined]
            "fetch",
            ",".join(newest),
            f"(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS {_FETCH_FIELDS}]<0.{HEADER_BYTES_LIMIT}>)",
        )
        _ok(fetched, "fetch")
        return _fetched(fetched.lines)

    def _arrival(
        self, seed: SeedMailbox, state: _SeedState, folder: str, item: _Found
    ) -> CanarySample | None:
        pending = state.pending.pop(item.token, None)
        _remember(state.settled, item.token)
        if pending is None:
            return None  # a lost canary arriving late: deleted, already reported
        now = self._clock.monotonic()
        if item.internaldate is not None:
            latency = max(0.0, (item.internaldate - pending.sent_wall).total_seconds())
        else:  # no delivery time from the server: when noc saw it, an upper bound
            latency = now - pending.sent_at
        message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            item.headers
        )
        return CanarySample(
            pending.region, seed.name, item.token, CanaryState.ARRIVED, now,
            sent_wall=pending.sent_wall, latency_seconds=round(latency, 1),
            folder=folder, mailbox=item.mailbox,
            sending_ip=sending_ip(message.get_all("Received") or [], self._sending_ips),
            auth=auth_verdict(
                message.get_all("Authentication-Results") or [],
                message.get_all("DKIM-Signature") or [],
            ),
            outstanding=self.outstanding(pending.region, seed.name),
        )  # fmt: skip

    def _expire(self, seed: SeedMailbox, state: _SeedState) -> list[CanarySample]:
        now = self._clock.monotonic()
        lost = [p for p in state.pending.values() if now - p.sent_at > seed.deadline_seconds]
        samples = []
        for pending in lost:
            del state.pending[pending.token]
            _remember(state.settled, pending.token)
            samples.append(
                CanarySample(
                    pending.region,
                    seed.name,
                    pending.token,
                    CanaryState.LOST,
                    now,
                    sent_wall=pending.sent_wall,
                    outstanding=self.outstanding(pending.region, seed.name),
                    error=f"not in {seed.name} within {seed.deadline_seconds:g} s",
                )
            )
        return samples

    async def _context(self, ca_file: str | None) -> ssl.SSLContext:
        context = self._contexts.get(ca_file)
        if context is None:
            # Loading a bundle takes tens of milliseconds: off the event loop, once.
            context = await asyncio.to_thread(ssl.create_default_context, cafile=ca_file)
            self._contexts[ca_file] = context
        return context

    async def verify_region(
        self, region: str, *, poll_seconds: float = 1.0
    ) -> tuple[bool, str, list[CanarySample]]:
        """A canary through `region` to every seed it sends to, awaited until each
        arrives or is lost: (all arrived, in words, the final samples). The check a
        failover's verification makes: mail flows through the new active region."""
        seeds = [s for s in self.seeds.values() if region in s.regions]
        sent = await asyncio.gather(*(self.send(region, s.name, beyond_bound=True) for s in seeds))
        final = {s.seed: s for s in sent if s.state is not CanaryState.PENDING}
        awaited = {s.token: s.seed for s in sent if s.state is CanaryState.PENDING}
        while awaited:
            await asyncio.sleep(poll_seconds)
            for seed in {awaited[t] for t in awaited}:
                for sample in await self.read(seed):
                    if sample.token in awaited:
                        del awaited[sample.token]
                        final[sample.seed] = sample
                    elif sample.state is CanaryState.UNREAD and sample.region == region:
                        log.warning("canary verification: %s", sample.error)
        samples = [final[s.name] for s in seeds if s.name in final]
        ok = bool(samples) and all(s.state is CanaryState.ARRIVED for s in samples)
        return ok, "; ".join(s.words() for s in samples) or "no seed mailbox", samples


def new_token(region: str, sent: datetime) -> str:
    """`noc-<region>-<unix seconds>-<16 hex>`: unique, and its age readable by any noc
    (a canary another process sent and then stopped awaiting is deleted once stale)."""
    return f"{TOKEN_PREFIX}{region}-{int(sent.timestamp())}-{secrets.token_hex(8)}"


def token_sent_at(token: str) -> float:
    """The unix time in a token; +inf when it has none (never stale: not ours to judge)."""
    parts = token.split("-")
    try:
        return float(int(parts[-2])) if len(parts) >= 4 else math.inf
    except ValueError:
        return math.inf


def canary_message(
    token: str, sender: str, recipient: str, region: str, sent: datetime
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"noc canary {token}"
    message["Date"] = format_datetime(sent.astimezone(UTC))
    message["Message-ID"] = make_msgid(idstring=token)
    message[CANARY_HEADER] = token
    message.set_content(
        f"A canary from noc through region {region}: it measures mail flow and is "
        "deleted when read.\n"
    )
    return message


def auth_verdict(results: Sequence[str], signatures: Sequence[str] = ()) -> AuthVerdict:
    """SPF, DKIM and DMARC from the topmost Authentication-Results header.

    The topmost header is the last receiver's, the seed's provider: headers below it
    came with the message and vouch for nothing (RFC 8601 section 5). Of several
    results of one method the first that passes wins (a message may carry several
    DKIM signatures). The selector is the passing result's header.s, else the s= of
    the first DKIM-Signature."""
    import authres

    verdict: dict[str, str] = {}
    selector = domain = None
    for raw in results[:1]:
        try:
            header = authres.AuthenticationResultsHeader.parse(
                "Authentication-Results: " + " ".join(str(raw).split())
            )
        except Exception:  # authres raises its own error types; a bad header is no verdict
            log.debug("unparsable Authentication-Results: %r", raw)
            continue
        for result in header.results:
            method = str(result.method).lower()
            if method not in ("spf", "dkim", "dmarc"):
                continue
            outcome = str(result.result).lower()
            if verdict.get(method) == "pass":
                continue
            verdict[method] = outcome
            if method == "dkim":
                properties = {(p.type, p.name): str(p.value) for p in result.properties}
                selector = properties.get(("header", "s"), selector)
                domain = properties.get(("header", "d"), domain)
    if selector is None:
        for signature in signatures[:1]:
            tags = dict(_DKIM_TAG.findall(" ".join(str(signature).split())))
            selector = tags.get("s", "").strip() or None
            domain = domain or tags.get("d", "").strip() or None
    return AuthVerdict(
        spf=verdict.get("spf"), dkim=verdict.get("dkim"), dmarc=verdict.get("dmarc"),
        dkim_selector=selector, dkim_domain=domain,
    )  # fmt: skip


def sending_ip(received: Sequence[str], known: Iterable[str] = ()) -> str | None:
    """The IP that handed the message to the receiver, from the Received headers
    (topmost first): the first that is one of the estate's sending IPs, else the
    topmost "from ... [ip]" (the last hop into the receiver)."""
    addresses = []
    for header in received:
        match = _RECEIVED_FROM_IP.match(" ".join(str(header).split()))
        if match is None:
            continue
        try:
            addresses.append(str(ipaddress.ip_address(match[1])))
        except ValueError:
            continue
    wanted = set(known)
    return next((a for a in addresses if a in wanted), addresses[0] if addresses else None)


def _fetched(lines: Sequence[bytes | bytearray]) -> list[_Found]:
    """(uid, token, INTERNALDATE, headers) from aioimaplib's FETCH answer: a line
    `n FETCH (UID u INTERNALDATE "..." BODY[...] {size}` then the literal bytes."""
    found = []
    for index, line in enumerate(lines):
        if isinstance(line, bytearray) or not _FETCH_LINE.match(line):
            continue
        uid, date = _UID.search(line), _INTERNALDATE.search(line)
        following = lines[index + 1] if index + 1 < len(lines) else b""
        headers = bytes(following) if isinstance(following, bytearray) else b""
        if uid is None:
            continue
        message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(headers)
        token = " ".join(str(message.get(CANARY_HEADER, "")).split())
        if token.startswith(TOKEN_PREFIX):
            found.append(_Found(uid[1].decode(), token, _internaldate(date), headers))
    return found


def _internaldate(match: re.Match[bytes] | None) -> datetime | None:
    if match is None:
        return None
    try:
        return datetime.strptime(match[1].decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


async def _delete(client: object, uids: list[str]) -> None:
    """Flag the canaries deleted and expunge them (only them, where UIDPLUS allows)."""
    message_set = ",".join(uids)
    _ok(await client.uid("store", message_set, "+FLAGS.SILENT", r"(\Deleted)"), "store")  # type: ignore[attr-defined]
    if "UIDPLUS" in client.protocol.capabilities:  # type: ignore[attr-defined]
        _ok(await client.uid("expunge", message_set), "expunge")  # type: ignore[attr-defined]
    else:
        _ok(await client.expunge(), "expunge")  # type: ignore[attr-defined]


def _ok(response: object, what: str) -> None:
    if getattr(response, "result", None) != "OK":
        raise RuntimeError(f"IMAP {what} refused: {_text(getattr(response, 'lines', []))}")


def _text(lines: Sequence[bytes | bytearray]) -> str:
    return " ".join(bytes(line).decode(errors="replace") for line in lines[-1:])[:ERROR_LIMIT]


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _remember(settled: OrderedDict[str, None], token: str) -> None:
    settled[token] = None
    while len(settled) > SETTLED_LIMIT:
        settled.popitem(last=False)


def _words(where: str, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"{where}: timed out"
    detail = str(exc) or type(exc).__name__
    return f"{where}: {' '.join(detail.split())}"[:ERROR_LIMIT]
