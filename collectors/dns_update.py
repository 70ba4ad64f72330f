"""The DNS actuator of a failover: RFC 2136 updates signed with TSIG, then propagation.

`DnsUpdater` talks to one authoritative server about one zone with one key:

- `probe()` proves the key is accepted before anything is written (an update whose
  only content is the prerequisite "the zone's SOA exists");
- `read()` asks the server for the failover records as it holds them now;
- `replace()` sends every change in one update, each guarded by a prerequisite that
  the RRset is still exactly what noc planned from, so the server applies all of
  them or none (RFC 2136 §3.2, §3.4), and a record edited behind noc's back is
  left alone;
- `watch()` polls the authoritative server and the resolvers until all answer the
  new values or the longest TTL has run out.

Updates go over TCP: a big update must not come back truncated, and a TCP answer
cannot be spoofed as cheaply as a datagram. Questions go through
`collectors.dns_records`, like every other question noc asks.

Nothing here raises for a server that is down, slow, or answers garbage (cancellation
aside): each failure is an operator-readable text naming the server, the zone and the
key. Only a configuration that can never work (a secret that is not base64, an
unknown algorithm, a zone that is not a domain name) is a ValueError, from
`__init__`, so it surfaces when noc's configuration is loaded rather than mid-failover.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
from collections.abc import Callable, Sequence

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update
from noc_collectors.dns_records import DnsRecordCollector, ResolverAddress, answer_text

from noc.clock import Clock
from noc.model import (
    DnsRecordSample,
    FailoverRecord,
    FailoverRecordType,
    PropagationProgress,
    RecordChange,
    RRsetState,
)

__all__ = ["OUTCOME_UNKNOWN", "PREREQUISITE_FAILED", "DnsUpdater"]

# How an error says what happened, for callers that must tell the cases apart.
OUTCOME_UNKNOWN = "the update may have been applied"  # sent, but no usable answer came
PREREQUISITE_FAILED = "prerequisite failed"  # the records are not what the update expects

log = logging.getLogger(__name__)

# BIND's name for MD5 is not the name that goes on the wire (RFC 8945 §6).
_ALGORITHM_ALIASES = {"hmac-md5": dns.tsig.HMAC_MD5}

# Why a server that verified the key still turned the update down: what to check.
_RCODE_HINTS = {
    # BIND also refuses content its integrity checks reject, e.g. an MX whose
    # exchange has no address record in the zone: its log says which.
    dns.rcode.REFUSED: "updates not allowed for this key/zone, or content the server rejects "
    "(BIND: an MX target without an address record?)",
    dns.rcode.NOTAUTH: "the server is not authoritative for this zone",
    dns.rcode.NOTZONE: "a name in the update is outside the zone",
    dns.rcode.SERVFAIL: "the server failed: zone not loaded, or its journal not writable?",
    dns.rcode.NOTIMP: "the server does not support dynamic updates",
    dns.rcode.FORMERR: "the server could not parse the update",
}

# A verdict on the key or the zone, rather than a failure of the server.
_REFUSALS = frozenset({dns.rcode.REFUSED, dns.rcode.NOTAUTH, dns.rcode.NOTZONE})

# The rcodes of RFC 2136 §3.2 for a prerequisite that does not hold.
_PREREQUISITE_FAILED = frozenset(
    {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}
)


class _NotSent(Exception):
    """A change noc cannot even express as an update: its text is the error returned."""


class DnsUpdater:
    """Signed dynamic updates to `server` for `zone` with the TSIG key `key_name`.

    ValueError from `__init__` when the secret is not base64 (or is empty), the
    algorithm is one dnspython cannot sign with, a name is not a domain name, or the
    timeout is not positive; every later failure is a returned text, never raised.
    Record names may be written with or without the final dot: both are absolute.
    """

    def __init__(
        self,
        server: ResolverAddress,
        zone: str,
        key_name: str,
        key_secret: str,
        algorithm: str = "hmac-sha256",
        timeout_seconds: float = 2.0,
    ) -> None:
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, not {timeout_seconds}")
        self._server = server
        self._zone = _absolute(zone, "zone")
        self._key_name = _absolute(key_name, "TSIG key name")
        try:
            # Key files wrap long secrets over lines; whitespace is never part of one.
            secret = base64.b64decode("".join(key_secret.split()), validate=True)
        except binascii.Error:
            raise ValueError(f"TSIG key {self._key_name}: the secret is not valid base64") from None
        if not secret:
            raise ValueError(f"TSIG key {self._key_name}: the secret is empty")
        wire_algorithm = _ALGORITHM_ALIASES.get(algorithm.strip().lower())
        if wire_algorithm is None:
            wire_algorithm = _absolute(algorithm, "TSIG algorithm")
        key = dns.tsig.Key(self._key_name, secret, wire_algorithm)
        self._keyring = {self._key_name: key}
        try:
            # dnspython only finds out it cannot sign with an algorithm when it
            # signs: do it once now, so a typo fails at startup, not mid-failover.
            self._message().to_wire()
        except (KeyError, NotImplementedError):
            raise ValueError(
                f"TSIG key {self._key_name}: unsupported algorithm {algorithm!r} "
                "(hmac-sha256, hmac-sha512, hmac-sha1, hmac-md5, ...)"
            ) from None
        self._timeout = timeout_seconds
        self._reader = DnsRecordCollector(timeout_seconds=timeout_seconds)

    @property
    def server(self) -> ResolverAddress:
        return self._server

    async def probe(self) -> str | None:
        """None when the server accepts the key for the zone; else why not.

        The update carries only the prerequisite that the zone's SOA exists, which
        always holds for a zone the server serves, so nothing can be written.
        """
        message = self._message()
        message.present(self._zone, dns.rdatatype.SOA)
        response = await self._exchange(message, changes_sent=False)
        if isinstance(response, str):
            return response
        return self._rcode_error(response.rcode())

    async def read(self, records: Sequence[FailoverRecord]) -> tuple[RRsetState, ...]:
        """Each record's RRset as the server holds it now, in the order given."""
        return tuple(await asyncio.gather(*(self._read_one(record) for record in records)))

    async def replace(self, changes: Sequence[RecordChange]) -> str | None:
        """Apply every changed RRset in one update; None when the server applied it."""
        todo = [change for change in changes if change.changed]
        if not todo:
            return None
        message = self._message()
        try:
            for change in todo:
                self._guard_and_delete(message, change)
            # Every RRset is deleted before any is added: the server applies the
            # update section in order, and BIND silently ignores a CNAME added
            # beside other data (or data beside a CNAME) that a later delete removes.
            for change in todo:
                self._add_new(message, change)
        except _NotSent as exc:
            return f"update not sent to ns {self._server}: {exc}"
        response = await self._exchange(message, changes_sent=True)
        if isinstance(response, str):
            return response
        rcode = response.rcode()
        if rcode in _PREREQUISITE_FAILED:
            return await self._explain_stale(todo)
        return self._rcode_error(rcode)

    async def watch(
        self,
        changes: Sequence[RecordChange],
        servers: Sequence[ResolverAddress],
        clock: Clock,
        deadline_seconds: float,
        interval_seconds: float = 1.0,
        on_progress: Callable[[PropagationProgress], None] | None = None,
    ) -> PropagationProgress:
        """Poll `servers` until all answer every change's new values, or the deadline.

        A server listed twice is asked once. The deadline is measured on `clock`;
        as a backstop the watch also ends after one round more than the deadline
        holds intervals, so a clock that never moves (a FakeClock nobody advances)
        cannot keep it polling forever.
        """
        watched = [
            (_record(change), {_normal(change.rtype, value) for value in change.new})
            for change in changes
            if change.changed
        ]
        targets = list(dict.fromkeys(servers))
        deadline = max(0.0, deadline_seconds)  # NaN and negatives: one round, then done
        max_rounds = None
        if interval_seconds > 0 and math.isfinite(deadline):
            max_rounds = math.ceil(deadline / interval_seconds) + 1
        start = clock.monotonic()
        reported: tuple[tuple[str, ...], tuple[tuple[str, str], ...]] | None = None
        rounds = 0
        while True:
            behind = await asyncio.gather(*(self._behind(server, watched) for server in targets))
            rounds += 1
            elapsed = clock.monotonic() - start
            moved = tuple(str(s) for s, still in zip(targets, behind, strict=True) if still is None)
            waiting = tuple(
                (str(s), still)
                for s, still in zip(targets, behind, strict=True)
                if still is not None
            )
            out_of_time = elapsed >= deadline or (max_rounds is not None and rounds >= max_rounds)
            expired = bool(waiting) and out_of_time
            done = not waiting or expired
            progress = PropagationProgress(elapsed, moved, waiting, done, ttl_expired=expired)
            if on_progress is not None and (done or (moved, waiting) != reported):
                _report(on_progress, progress)
            reported = (moved, waiting)
            if done:
                return progress
            # The last wait ends at the deadline, so an expiry is not late by an interval.
            await asyncio.sleep(max(0.0, min(interval_seconds, deadline - elapsed)))

    # Reading

    async def _read_one(self, record: FailoverRecord) -> RRsetState:
        try:
            owner = self._owner(record.name)
        except _NotSent as exc:
            return RRsetState(record.name, record.rtype, error=str(exc))
        sample = await self._ask(self._server, FailoverRecord(owner.to_text(), record.rtype))
        if sample.error is None:
            return RRsetState(record.name, record.rtype, sample.answers, sample.ttl)
        if sample.error.absent:
            return RRsetState(record.name, record.rtype)
        return RRsetState(record.name, record.rtype, error=f"ns {self._server}: {sample.error}")

    async def _ask(self, server: ResolverAddress, record: FailoverRecord) -> DnsRecordSample:
        # The collector's probe is `query` plus noc's answer forms, in noc's order.
        return await self._reader.probe(record, server)

    async def _behind(
        self, server: ResolverAddress, watched: Sequence[tuple[FailoverRecord, set[str]]]
    ) -> str | None:
        """None when `server` answers every new value; else what it still answers."""
        samples = await asyncio.gather(*(self._ask(server, record) for record, _ in watched))
        stale: list[str] = []
        for (record, wanted), sample in zip(watched, samples, strict=True):
            label = f"{_display(record.name)} {record.rtype.value}"
            if sample.error is not None and not sample.error.absent:
                stale.append(f"{label}: {sample.error}")
            elif {_normal(record.rtype, value) for value in sample.answers} != wanted:
                stale.append(f"{label}: {', '.join(sample.answers) or 'absent'}")
        return "; ".join(stale) or None

    # Updating

    def _message(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self._zone, keyring=self._keyring, keyname=self._key_name)

    def _owner(self, name: str) -> dns.name.Name:
        try:
            owner = dns.name.from_text(name.strip())
        except (dns.exception.DNSException, ValueError) as exc:
            raise _NotSent(f"{name!r} is not a domain name: {exc}") from None
        if not owner.is_subdomain(self._zone):
            raise _NotSent(f"{owner} is outside the zone {self._zone}")
        return owner

    def _guard_and_delete(self, message: dns.update.UpdateMessage, change: RecordChange) -> None:
        owner = self._owner(change.name)
        rdtype = dns.rdatatype.from_text(change.rtype.value)
        if change.old:
            # RFC 2136 §2.4.2 "RRset exists (value dependent)": exactly these
            # records, compared by value; a prerequisite's TTL must be 0.
            message.present(owner, dns.rdataset.from_rdata_list(0, _rdatas(change, change.old)))
        else:
            message.absent(owner, rdtype)
        message.delete(owner, rdtype)

    def _add_new(self, message: dns.update.UpdateMessage, change: RecordChange) -> None:
        if change.new:
            rdataset = dns.rdataset.from_rdata_list(change.ttl, _rdatas(change, change.new))
            message.add(self._owner(change.name), rdataset)

    async def _exchange(
        self, message: dns.update.UpdateMessage, *, changes_sent: bool
    ) -> dns.message.Message | str:
        """The server's verified answer, or why there is none."""
        try:
            # One deadline for the whole exchange, connect included.
            async with asyncio.timeout(self._timeout):
                return await dns.asyncquery.tcp(
                    message, self._server.host, timeout=self._timeout, port=self._server.port
                )
        except Exception as exc:  # an actuator reports every failure, it never raises
            text, outcome_unknown = self._failure(exc)
            if changes_sent and outcome_unknown:
                # The update may have reached the server before the answer was
                # lost: retrying blindly could apply it twice or on top of a change.
                text += f"; {OUTCOME_UNKNOWN}: read the records before retrying"
            return text

    def _failure(self, exc: Exception) -> tuple[str, bool]:
        """The text for a failed exchange, and whether the server may have applied it."""
        refused = f"ns {self._server} refused key {self._key_name} for zone {self._zone}"
        about = f"ns {self._server} (zone {self._zone}, key {self._key_name})"
        # A TSIG error comes back as NOTAUTH with the reason in an unsigned TSIG
        # record, which dnspython turns into these exceptions before the rcode is seen.
        match exc:
            case dns.tsig.PeerBadSignature():
                return f"{refused}: NOTAUTH (BADSIG: wrong secret?)", False
            case dns.tsig.PeerBadKey():
                return (
                    f"{refused}: NOTAUTH (BADKEY: unknown key name, or another algorithm?)",
                    False,
                )
            case dns.tsig.PeerBadTime():
                return f"{refused}: NOTAUTH (BADTIME: clocks differ, check NTP)", False
            case dns.tsig.PeerError():
                return f"{refused}: NOTAUTH (TSIG error: {exc or type(exc).__name__})", False
            case dns.tsig.BadSignature():
                return f"{about}: the answer's TSIG signature does not verify", True
            case dns.tsig.BadTime():
                return f"{about}: the answer's TSIG time is off: clocks differ, check NTP", True
            case dns.tsig.BadKey() | dns.tsig.BadAlgorithm() | dns.message.UnknownTSIGKey():
                return f"{about}: the answer is signed with another key", True
            case TimeoutError() | dns.exception.Timeout():
                return f"{about}: timed out after {self._timeout:g} s", True
            case ConnectionRefusedError():
                return f"{about}: connection refused (nothing listening on TCP?)", False
            case OSError():
                # A reset or a closed connection may come after the update was sent.
                return f"{about}: {(exc.strerror or str(exc)).lower()}", True
            case dns.exception.FormError() if "requires a TSIG" in str(exc):
                # No signature means no proof the answer came from the server holding
                # the key, so even a NOERROR in it proves nothing.
                return f"{about}: the answer is unsigned (does the server know this key?)", True
            case dns.exception.DNSException():
                return f"{about}: unreadable answer: {exc or type(exc).__name__}", True
        # A bug of ours must not read as a verdict on the server, nor escape.
        log.exception("unexpected error in a DNS update")
        return f"{about}: internal error: {type(exc).__name__}", True

    def _rcode_error(self, rcode: dns.rcode.Rcode) -> str | None:
        if rcode == dns.rcode.NOERROR:
            return None
        name = dns.rcode.to_text(rcode)
        hint = f"{name} ({_RCODE_HINTS[rcode]})" if rcode in _RCODE_HINTS else name
        if rcode in _REFUSALS:
            return f"ns {self._server} refused key {self._key_name} for zone {self._zone}: {hint}"
        return f"ns {self._server} answered {hint} to key {self._key_name} for zone {self._zone}"

    async def _explain_stale(self, changes: Sequence[RecordChange]) -> str:
        """Name the RRsets that no longer hold what noc planned from.

        The server only says that some prerequisite failed, not which one: reading the
        records again tells the operator which were edited. When the read does not
        tell (an error, or a record changed back since), every change is named.
        """
        states = await self.read([_record(change) for change in changes])
        described: list[str] = []
        for change, state in zip(changes, states, strict=True):
            old = {_normal(change.rtype, value) for value in change.old}
            if state.error is None and set(state.values) != old:
                now = ", ".join(state.values) or "absent"
                described.append(f"{_stale_text(change)}, now {now}")
        if not described:
            described = [_stale_text(change) for change in changes]
        return f"{PREREQUISITE_FAILED}: {'; '.join(described)} (changed behind noc's back?)"


def _absolute(text: str, what: str) -> dns.name.Name:
    if not text.strip():
        # from_text would make it the root, which no failover ever means.
        raise ValueError(f"{what} is empty")
    try:
        return dns.name.from_text(text.strip())
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"{what} {text!r} is not a domain name: {exc}") from None


def _record(change: RecordChange) -> FailoverRecord:
    return FailoverRecord(change.name, change.rtype)


def _rdata(change: RecordChange, value: str) -> dns.rdata.Rdata:
    try:
        # origin=root, relativize=False: a target written without its final dot
        # ("10 mx.ro.example.com") is absolute, as noc's configuration means it.
        return dns.rdata.from_text(
            dns.rdataclass.IN,
            change.rtype.value,
            value,
            origin=dns.name.root,
            relativize=False,
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise _NotSent(f"{change.name} {change.rtype.value}: bad value {value!r}: {exc}") from None


def _rdatas(change: RecordChange, values: Sequence[str]) -> list[dns.rdata.Rdata]:
    return [_rdata(change, value) for value in values]


def _normal(rtype: FailoverRecordType, value: str) -> str:
    """A value in answer_text form, however it was written ("10 MX.Example.COM.")."""
    try:
        return answer_text(
            dns.rdata.from_text(
                dns.rdataclass.IN, rtype.value, value, origin=dns.name.root, relativize=False
            )
        )
    except (dns.exception.DNSException, ValueError):
        return value.strip().rstrip(".").lower()


def _display(name: str) -> str:
    """A record name as noc's texts show it: absolute, with its final dot."""
    try:
        return dns.name.from_text(name.strip()).to_text()
    except (dns.exception.DNSException, ValueError):
        return name


def _stale_text(change: RecordChange) -> str:
    old = ", ".join(change.old) or "absent"
    return f"{_display(change.name)} {change.rtype.value} is no longer {old}"


def _report(
    on_progress: Callable[[PropagationProgress], None], progress: PropagationProgress
) -> None:
    try:
        on_progress(progress)
    except Exception:
        # The watch's result matters more than one display update; the bug is logged.
        log.exception("on_progress failed")
