"""Where traffic goes: failover records as each configured resolver answers them, right now.

Every question is a raw query built with `dns.message.make_query` and sent to one
resolver with `dns.asyncquery` (UDP, then TCP when the answer is truncated): no
stub resolver and no cache in between, so a verdict always comes from a fresh
answer and the TTL shown is the one the resolver reports at this moment.

`query()` is the one way noc asks DNS anything; the email-auth and DNSBL collectors
use it too. It never raises (cancellation aside): every failure becomes a
`DnsError` whose kind says what went wrong.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.nsbase

from noc.clock import Clock, SystemClock
from noc.model import DnsError, DnsErrorKind, DnsRecordSample, FailoverRecord

__all__ = [
    "EDNS_PAYLOAD",
    "DnsAnswer",
    "DnsRecordCollector",
    "ResolverAddress",
    "answer_target",
    "answer_text",
    "map_answers_to_region",
    "parse_resolver",
    "query",
    "split_host_port",
]

log = logging.getLogger(__name__)

# The DNS Flag Day 2020 size: large enough for most answers, small enough to avoid
# IP fragmentation; anything bigger comes back truncated and is asked again over TCP.
EDNS_PAYLOAD = 1232


@dataclass(frozen=True, slots=True)
class ResolverAddress:
    """Where to send questions: an IP address and a port (names would need a resolver)."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 53 else f"{host}:{self.port}"


def split_host_port(text: str, default_port: int = 53) -> tuple[str, int]:
    """ "ns1.example.com:53", "1.1.1.1", "::1" or "[::1]:53" as (host, port); the host
    may be a name. ValueError says what is wrong."""
    spec = text.strip()
    port_text: str | None = None
    if spec.startswith("["):
        host, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("expected [IPv6] or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
    else:  # a name, an IPv4 address, or a bare IPv6 address (whose colons are not a port)
        host = spec
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("port must be 1-65535")
    return host, int(port_text)


def parse_resolver(text: str) -> ResolverAddress:
    """Parse "1.1.1.1", "127.0.0.1:5353", "::1" or "[::1]:53"; ValueError names the fault."""
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        raise ValueError(f"resolver {text!r}: {exc}") from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"resolver {text!r}: {host!r} is not an IP address") from None
    return ResolverAddress(str(address), port)


def answer_target(answer: str) -> str:
    """The value an answer points at: the IP, the name, or an MX's exchange."""
    last = answer.split()[-1] if answer.split() else answer
    return last.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The records answering one question (after any CNAME chain), or why there are none."""

    records: tuple[dns.rdata.Rdata, ...] = ()
    ttl: int | None = None  # the lowest TTL along the chain: when the answer may change
    error: DnsError | None = None
    # The name asked is an alias: the target of its CNAME (the chain's first step),
    # also when the chain ends without records of the type asked.
    cname: str | None = None


async def query(
    resolver: ResolverAddress, name: str | dns.name.Name, rdtype: str, timeout_seconds: float
) -> DnsAnswer:
    """Ask `resolver` once; the timeout bounds the whole exchange, TCP retry included."""
    try:
        request = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    except (dns.exception.DNSException, ValueError) as exc:
        return DnsAnswer(error=DnsError(DnsErrorKind.INVALID_QUERY, f"{name}: {exc}"))
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    try:
        async with asyncio.timeout_at(deadline):
            # A stray or late datagram must not end the wait for the real answer.
            response = await dns.asyncquery.udp(
                request, resolver.host, port=resolver.port, ignore_unexpected=True
            )
    except Exception as exc:  # a query reports every failure, it never raises
        return DnsAnswer(error=_classify(exc, timeout_seconds))
    if response.flags & dns.flags.TC:
        try:
            async with asyncio.timeout_at(deadline):
                response = await dns.asyncquery.tcp(request, resolver.host, port=resolver.port)
        except Exception as exc:
            detail = f"UDP answer truncated, TCP retry failed: {_classify(exc, timeout_seconds)}"
            return DnsAnswer(error=DnsError(DnsErrorKind.TRUNCATED, detail))
    return _judge(response)


def _judge(response: dns.message.Message) -> DnsAnswer:
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return DnsAnswer(error=DnsError(DnsErrorKind.NXDOMAIN))
    if rcode == dns.rcode.SERVFAIL:
        return DnsAnswer(error=DnsError(DnsErrorKind.SERVFAIL))
    if rcode == dns.rcode.REFUSED:
        return DnsAnswer(error=DnsError(DnsErrorKind.REFUSED))
    if rcode != dns.rcode.NOERROR:
        detail = f"rcode {dns.rcode.to_text(rcode)}"
        return DnsAnswer(error=DnsError(DnsErrorKind.BAD_RESPONSE, detail))
    if not isinstance(response, dns.message.QueryMessage):
        return DnsAnswer(error=DnsError(DnsErrorKind.BAD_RESPONSE, "not a query response"))
    try:
        # Follows an in-answer CNAME chain to the records of the type asked.
        chain = response.resolve_chaining()
    except dns.exception.DNSException as exc:
        return DnsAnswer(error=DnsError(DnsErrorKind.BAD_RESPONSE, str(exc)))
    cname = answer_text(chain.cnames[0][0]) if chain.cnames and len(chain.cnames[0]) else None
    if chain.answer is None or len(chain.answer) == 0:
        return DnsAnswer(error=DnsError(DnsErrorKind.NODATA), cname=cname)
    return DnsAnswer(records=tuple(chain.answer), ttl=chain.minimum_ttl, cname=cname)


def _classify(exc: Exception, timeout_seconds: float) -> DnsError:
    match exc:
        case TimeoutError() | dns.exception.Timeout():
            return DnsError(DnsErrorKind.TIMEOUT, f"no answer within {float(timeout_seconds)} s")
        case ConnectionRefusedError():
            return DnsError(DnsErrorKind.NETWORK, "connection refused")
        case OSError():
            return DnsError(DnsErrorKind.NETWORK, (exc.strerror or str(exc)).lower())
        case dns.exception.DNSException():
            return DnsError(DnsErrorKind.BAD_RESPONSE, str(exc) or type(exc).__name__)
    # A bug of ours must not read as a finding about DNS: NETWORK leaves the truth
    # unknown, as an unreachable resolver does.
    log.exception("unexpected error in a DNS query")
    return DnsError(DnsErrorKind.NETWORK, f"internal error: {type(exc).__name__}")


def answer_text(record: dns.rdata.Rdata) -> str:
    """One record as noc shows and compares it: names lower-case, no final dot."""
    match record:
        case dns.rdtypes.IN.A.A() | dns.rdtypes.IN.AAAA.AAAA():
            return str(ipaddress.ip_address(record.address))
        case dns.rdtypes.ANY.MX.MX():
            return f"{record.preference} {record.exchange.to_text(omit_final_dot=True).lower()}"
        case dns.rdtypes.nsbase.NSBase():  # CNAME (and NS, PTR)
            return record.target.to_text(omit_final_dot=True).lower()
    return record.to_text()


def _sort_key(record: dns.rdata.Rdata) -> tuple[int, str]:
    # MX preference sorts as a number ("5 b" before "10 a"), the rest as text.
    preference = record.preference if isinstance(record, dns.rdtypes.ANY.MX.MX) else 0
    return preference, answer_text(record)


class DnsRecordCollector:
    """Asks every resolver about every failover record, fresh each poll.

    A semaphore bounds the questions in flight; time spent waiting for a slot does
    not count against a question's timeout.
    """

    def __init__(
        self, clock: Clock | None = None, *, timeout_seconds: float = 2.0, max_in_flight: int = 16
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._clock = clock or SystemClock()
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(max_in_flight)

    async def probe(self, record: FailoverRecord, resolver: ResolverAddress) -> DnsRecordSample:
        async with self._slots:
            answer = await query(resolver, record.name, record.rtype.value, self._timeout)
        ordered = sorted(answer.records, key=_sort_key)
        return DnsRecordSample(
            name=record.name,
            rtype=record.rtype,
            resolver=str(resolver),
            at=self._clock.monotonic(),
            wall=self._clock.utcnow(),
            answers=tuple(answer_text(r) for r in ordered),
            ttl=answer.ttl,
            error=answer.error,
            cname=answer.cname,
        )

    async def collect(
        self, records: Sequence[FailoverRecord], resolvers: Sequence[ResolverAddress]
    ) -> tuple[DnsRecordSample, ...]:
        """Every record from every resolver, in (record, resolver) order."""
        return tuple(
            await asyncio.gather(
                *(self.probe(record, resolver) for record in records for resolver in resolvers)
            )
        )


def map_answers_to_region(
    answers: Sequence[str], region_values: Mapping[str, AbstractSet[str]]
) -> str | None:
    """The one region that every answer points at, or None.

    `region_values` maps a region to the values that mean "traffic goes here": its
    IPs, CNAME targets, MX hosts. For MX answers ("10 mx.ro.example.com") only the
    most preferred exchanges count, since senders try those first. None when there
    is no answer, when an answer belongs to no region, or when the answers span
    regions (active-active, or a split worth a look).
    """
    targets = _targets(answers)
    if not targets:
        return None
    known = {region: {_normal(v) for v in values} for region, values in region_values.items()}
    candidates = set(known)
    for target in targets:
        candidates &= {region for region, values in known.items() if target in values}
    return candidates.pop() if len(candidates) == 1 else None


def _targets(answers: Sequence[str]) -> set[str]:
    preferences: dict[str, int] = {}
    plain: set[str] = set()
    for answer in answers:
        first, _, rest = answer.strip().partition(" ")
        if rest and first.isdigit():
            host = _normal(rest)
            preferences[host] = min(int(first), preferences.get(host, int(first)))
        else:
            plain.add(_normal(answer))
    if preferences:
        best = min(preferences.values())
        plain |= {host for host, preference in preferences.items() if preference == best}
    return plain


def _normal(value: str) -> str:
    text = value.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(text))  # "2001:DB8:0::1" and "2001:db8::1" agree
    except ValueError:
        return text
