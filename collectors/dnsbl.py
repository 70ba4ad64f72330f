"""Sending reputation: every sending IP of every region, looked up in every DNS blocklist.

A lookup asks `<reversed IP>.<zone>` for A (RFC 5782): NXDOMAIN means not listed,
a 127.0.0.0/8 answer means listed, and then the zone's TXT record says why. IPv6
addresses are reversed nibble by nibble.

Some answers look like listings but are not. Spamhaus answers 127.255.255.252
(typo in the zone), .254 (query came through a public or open resolver, which it
refuses) and .255 (rate limited): those, and any answer outside 127.0.0.0/8 (a
resolver rewriting NXDOMAIN to an ad server), leave the state unknown
(listed=None), never "listed".

Blocklists throttle or ban heavy askers, so each zone has its own pacing: a cap on
questions in flight and a minimum spacing between their starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import dns.rdtypes.IN.A
import dns.rdtypes.txtbase
from noc_collectors.dns_records import ResolverAddress, query

from noc.clock import Clock, SystemClock
from noc.model import DnsblSample

__all__ = ["RESOLVER_ERROR_CODES", "ZONE_CODES", "DnsblCollector", "dnsbl_query_name"]

_SPAMHAUS = {
    "127.0.0.2": "SBL (Spamhaus Block List)",
    "127.0.0.3": "SBL CSS (snowshoe spam sources)",
    "127.0.0.4": "XBL (exploited or infected host)",
    "127.0.0.5": "XBL (exploited or infected host)",
    "127.0.0.6": "XBL (exploited or infected host)",
    "127.0.0.7": "XBL (exploited or infected host)",
    "127.0.0.9": "SBL DROP (hijacked or rogue netblock)",
    "127.0.0.10": "PBL (end-user range, per the ISP)",
    "127.0.0.11": "PBL (end-user range, per Spamhaus)",
}
# What each known zone's return codes mean; other zones get "listed (<code>)".
ZONE_CODES: Mapping[str, Mapping[str, str]] = {
    "zen.spamhaus.org": _SPAMHAUS,
    "sbl.spamhaus.org": _SPAMHAUS,
    "xbl.spamhaus.org": _SPAMHAUS,
    "sbl-xbl.spamhaus.org": _SPAMHAUS,
    "pbl.spamhaus.org": _SPAMHAUS,
}
# Answers that say "I will not tell you", not "listed".
RESOLVER_ERROR_CODES: Mapping[str, str] = {
    "127.255.255.252": "typo in the DNSBL zone name",
    "127.255.255.254": "query refused: it came through a public or open resolver",
    "127.255.255.255": "rate limited: too many queries",
}
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def dnsbl_query_name(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str) -> str:
    """`d.c.b.a.<zone>` for IPv4, 32 reversed nibbles then the zone for IPv6."""
    # reverse_pointer is "...in-addr.arpa" or "...ip6.arpa": keep the reversed part.
    reversed_part = ip.reverse_pointer.rsplit(".", 2)[0]
    return f"{reversed_part}.{zone}"


class _Pacer:
    """At most `in_flight` questions at once, their starts at least `spacing` apart."""

    def __init__(self, in_flight: int, spacing: float) -> None:
        self._slots = asyncio.Semaphore(in_flight)
        self._turn = asyncio.Lock()
        self._spacing = spacing
        self._next_start = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            async with self._turn:
                loop = asyncio.get_running_loop()
                wait = self._next_start - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_start = loop.time() + self._spacing
            yield


class DnsblCollector:
    """Looks sending IPs up in `zones` through one resolver, fresh each poll.

    Spamhaus refuses queries that arrive through public resolvers (8.8.8.8,
    1.1.1.1, ...): give it a resolver of your own, or its answers stay unknown.
    """

    def __init__(
        self,
        resolver: ResolverAddress,
        zones: Sequence[str],
        clock: Clock | None = None,
        *,
        timeout_seconds: float = 2.0,
        per_zone_in_flight: int = 4,
        per_zone_spacing_seconds: float = 0.05,
    ) -> None:
        if per_zone_in_flight < 1:
            raise ValueError("per_zone_in_flight must be at least 1")
        if per_zone_spacing_seconds < 0:
            raise ValueError("per_zone_spacing_seconds must not be negative")
        self._resolver = resolver
        self._zones = tuple(dict.fromkeys(_zone_name(z) for z in zones))
        self._clock = clock or SystemClock()
        self._timeout = timeout_seconds
        self._in_flight = per_zone_in_flight
        self._spacing = per_zone_spacing_seconds
        self._pacers: dict[str, _Pacer] = {}

    async def check(self, sending_ips: Mapping[str, Sequence[str]]) -> tuple[DnsblSample, ...]:
        """Every IP of every region (region -> IPs) in every zone, in that order."""
        return tuple(
            await asyncio.gather(
                *(
                    self.lookup(ip, region, zone)
                    for region, ips in sending_ips.items()
                    for ip in ips
                    for zone in self._zones
                )
            )
        )

    async def lookup(self, ip_text: str, region: str, zone: str) -> DnsblSample:
        """One IP in one zone (configured or not: each zone gets its own pacing)."""
        zone = _zone_name(zone)
        listed, code, meaning = await self._judge(ip_text, zone)
        return DnsblSample(
            ip=ip_text,
            region=region,
            zone=zone,
            at=self._clock.monotonic(),
            wall=self._clock.utcnow(),
            listed=listed,
            code=code,
            meaning=meaning,
        )

    async def _judge(self, ip_text: str, zone: str) -> tuple[bool | None, str | None, str]:
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            return None, None, "not an IP address"
        name = dnsbl_query_name(ip, zone)
        pacer = self._pacers.get(zone)
        if pacer is None:
            pacer = self._pacers[zone] = _Pacer(self._in_flight, self._spacing)
        async with pacer.slot():
            answer = await query(self._resolver, name, "A", self._timeout)
        if answer.error is not None:
            # NXDOMAIN is the list saying "not here"; an empty NOERROR says the same.
            if answer.error.absent:
                return False, None, "not listed"
            return None, None, str(answer.error)
        codes = sorted(
            {r.address for r in answer.records if isinstance(r, dns.rdtypes.IN.A.A)},
            key=ipaddress.IPv4Address,
        )
        code = ",".join(codes)
        refusals = [RESOLVER_ERROR_CODES[c] for c in codes if c in RESOLVER_ERROR_CODES]
        if refusals:
            return None, code, "; ".join(refusals)
        if any(ipaddress.IPv4Address(c) not in _LOOPBACK for c in codes):
            return None, code, f"{code} is not a DNSBL code: the resolver may rewrite NXDOMAIN"
        table = ZONE_CODES.get(zone, {})
        meaning = "; ".join(dict.fromkeys(table.get(c, f"listed ({c})") for c in codes))
        async with pacer.slot():
            reason = await query(self._resolver, name, "TXT", self._timeout)
        # The TXT reason is a courtesy: without it the listing stands as decoded.
        texts = [
            " ".join(b"".join(r.strings).decode("utf-8", "replace").split())
            for r in reason.records
            if isinstance(r, dns.rdtypes.txtbase.TXTBase)
        ]
        if texts:
            meaning = f"{meaning}: {' | '.join(texts)}"
        return True, code, meaning


def _zone_name(zone: str) -> str:
    return zone.strip().rstrip(".").lower()
