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
from collections.abc import Sequence
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
from noc_collectors.dns_names import (
    ResolverAddress,
    answer_target,
    map_answers_to_region,
    parse_resolver,
    split_host_port,
)

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
