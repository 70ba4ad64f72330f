"""The DNS collectors against real BIND servers on loopback (started once for the module).

Server "a" serves the estate's zones; server "b" serves example.test with the
failover record flipped to the other region (a resolver that disagrees). Two fake
servers cover what named will not do: stay silent, and truncate with no TCP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import cast

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.update
import pytest
from named import NamedServer, TsigKey, Zone, free_port, named_servers  # noqa: F401

from noc.clock import FakeClock
from noc.model import (
    DnsErrorKind,
    EmailAuthSample,
    FailoverRecord,
    FailoverRecordType,
)
from noc_collectors.dns_records import (
    DnsRecordCollector,
    ResolverAddress,
    map_answers_to_region,
    parse_resolver,
    query,
)
from noc_collectors.dnsbl import DnsblCollector, dnsbl_query_name
from noc_collectors.email_auth import EmailAuthCollector

SOA = "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"

# Where each region's traffic lands, as the engine will configure it.
REGION_VALUES = {
    "ro": {"192.0.2.10", "mx.ro.example.test"},
    "bg": {"198.51.100.10", "mx.bg.example.test"},
}


def example_zone(mail_ip: str) -> str:
    big = "".join(f'big TXT "{"x" * 200}-{i}"\n' for i in range(10))  # > 1232 bytes
    return (
        SOA
        + f"mail 60 A {mail_ip}\n"
        + "www 30 CNAME mail\n"
        + "web 60 A 203.0.113.99\n"
        + "@ 300 MX 10 mx.ro\n@ 300 MX 20 mx.bg\n"
        + "mx.ro A 192.0.2.10\nmx.bg A 198.51.100.10\n"
        + big
    )


def chain(depth: int) -> str:
    """deep.mail.test includes l1, which includes l2, ... down to l<depth>."""
    lines = ['deep TXT "v=spf1 include:l1.deep.mail.test -all"\n']
    for level in range(1, depth):
        lines.append(f'l{level}.deep TXT "v=spf1 include:l{level + 1}.deep.mail.test -all"\n')
    lines.append(f'l{depth}.deep TXT "v=spf1 ip4:192.0.2.10 -all"\n')
    return "".join(lines)


# A whole 1024-bit RSA key (SubjectPublicKeyInfo): verifiers load it, so noc does too.
KEY = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDNLUbEW45rBZPPlfVHOLFdoNElVKtSOGpsYkyOmY/h"
    "1QQNaCcr4GrYm82sqDUl/30kdNQhmnKbj7eot9MX8ijrLgHfWls8Rn9wSL4DKNIyN6Scz2D7h63r1eyv"
    "5QUy8EOTPIbgz6I3685KJXgU+DdWwZZtLM76usr2t5jG0AO/mwIDAQAB"
)
MAIL_ZONE = (
    SOA
    # good: ro by ip4 range, bg through an include (ip6 range and an a: host)
    + 'good TXT "v=spf1 ip4:192.0.2.8/29 include:_spf.bg.mail.test -all"\n'
    + '_spf.bg TXT "v=spf1 ip6:2001:db8:b::/48 a:relay.bg.mail.test -all"\n'
    + "relay.bg A 198.51.100.10\nrelay.bg AAAA 2001:db8:b::25\n"
    + "mx.ro A 192.0.2.10\n"
    + "liar A 192.0.2.99\n"
    + '_dmarc.good TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.mail.test"\n'
    + f'ro2026._domainkey.good TXT "v=DKIM1; k=rsa; " "p={KEY}"\n'
    + f'bg2026._domainkey.good TXT "v=DKIM1; k=rsa; p={KEY}"\n'
    + 'old._domainkey.good TXT "v=DKIM1; k=rsa; p="\n'
    # missing: forgets bg; its DMARC only monitors
    + 'missing TXT "v=spf1 ip4:192.0.2.8/29 -all"\n'
    + '_dmarc.missing TXT "v=DMARC1; p=none; sp=quarantine; pct=50"\n'
    + chain(11)
    + 'open TXT "v=spf1 ip4:192.0.2.10 +all"\n'
    + 'wide TXT "v=spf1 ip4:10.0.0.0/8 ip4:192.0.2.10 ip4:198.51.100.10 ?all"\n'
    + 'redir TXT "v=spf1 redirect=good.mail.test"\n'
    + 'viamx TXT "v=spf1 mx:mx-host.mail.test/24 -all"\n'
    + "mx-host MX 10 mx.ro.mail.test.\n"
    + 'macro TXT "v=spf1 exists:%{i}._spf.mail.test -all"\n'
    + "192.0.2.10._spf A 127.0.0.2\n"
    + 'flaky TXT "v=spf1 include:_spf.broken.test -all"\n'
    + 'typo TXT "v=spf1 ip4:192.0.2.300 -all"\n'
    + 'loop TXT "v=spf1 include:loop.mail.test -all"\n'
    # the region's IP matches first; the include past it takes 11 lookups
    + 'fragile TXT "v=spf1 ip4:192.0.2.10 include:deep.mail.test -all"\n'
)
REVERSE_V4 = (
    SOA
    + "10 PTR mx.ro.mail.test.\n"  # forward-confirmed
    + "11 PTR liar.mail.test.\n"  # liar resolves to .99
)
REVERSE_BG = SOA + "10 PTR relay.bg.mail.test.\n"
BG_V6 = ipaddress.ip_address("2001:db8:b::25")
BG_V6_NIBBLES = BG_V6.reverse_pointer.removesuffix(".ip6.arpa")
REVERSE_V6_ZONE = "b.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"  # 2001:db8:b::/48
REVERSE_V6 = (
    SOA + f"{BG_V6.reverse_pointer.removesuffix('.' + REVERSE_V6_ZONE)} PTR relay.bg.mail.test.\n"
)
ZEN = (
    SOA
    + "10.2.0.192 A 127.0.0.2\n10.2.0.192 A 127.0.0.4\n"
    + '10.2.0.192 TXT "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL1"\n'
    + "11.2.0.192 A 127.255.255.254\n"
    + f"{BG_V6_NIBBLES} A 127.0.0.3\n"
)
OTHER_BL = SOA + "10.2.0.192 A 127.0.0.5\n12.2.0.192 A 198.51.100.1\n"

TSIG = TsigKey("noc-key", "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVz")


@pytest.fixture(scope="module")
def servers(named_servers: Callable[..., NamedServer]) -> dict[str, ResolverAddress]:  # noqa: F811
    a = named_servers(
        [
            Zone("example.test", example_zone("192.0.2.10")),
            Zone("mail.test", MAIL_ZONE),
            Zone("broken.test", SOA + "this line is not a record !\n"),
            Zone("2.0.192.in-addr.arpa", REVERSE_V4),
            Zone("100.51.198.in-addr.arpa", REVERSE_BG),
            Zone(REVERSE_V6_ZONE, REVERSE_V6),
            Zone("zen.spamhaus.org", ZEN),
            Zone("bl.example.test", OTHER_BL),
        ]
    )
    b = named_servers(
        [Zone("example.test", example_zone("198.51.100.10"), allow_update=True)], tsig=TSIG
    )
    return {"a": parse_resolver(a.address), "b": parse_resolver(b.address)}


@pytest.fixture
def silent() -> Iterator[ResolverAddress]:
    """A bound UDP socket that never answers: a resolver that is up but hung."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield ResolverAddress("127.0.0.1", sock.getsockname()[1])


class _Truncator(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        response = dns.message.make_response(dns.message.from_wire(data))
        response.flags |= dns.flags.TC
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def truncating() -> AsyncIterator[ResolverAddress]:
    """Answers every UDP question "truncated", and has no TCP listener at all."""
    port = free_port()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _Truncator, local_addr=("127.0.0.1", port)
    )
    try:
        yield ResolverAddress("127.0.0.1", port)
    finally:
        transport.close()


def record(name: str, rtype: str = "A") -> FailoverRecord:
    return FailoverRecord(name, FailoverRecordType(rtype))


# Resolver strings and the region helper


@pytest.mark.parametrize(
    ("text", "host", "port", "shown"),
    [
        ("1.1.1.1", "1.1.1.1", 53, "1.1.1.1"),
        (" 127.0.0.1:5353 ", "127.0.0.1", 5353, "127.0.0.1:5353"),
        ("[::1]:53", "::1", 53, "[::1]"),
        ("[2001:DB8::1]:5300", "2001:db8::1", 5300, "[2001:db8::1]:5300"),
        ("::1", "::1", 53, "[::1]"),
    ],
)
def test_parse_resolver(text: str, host: str, port: int, shown: str) -> None:
    resolver = parse_resolver(text)
    assert (resolver.host, resolver.port, str(resolver)) == (host, port, shown)


@pytest.mark.parametrize("text", ["dns.google", "1.1.1.1:0", "1.1.1.1:99999", "[::1", "[::1]x"])
def test_parse_resolver_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="resolver"):
        parse_resolver(text)


@pytest.mark.parametrize(
    ("answers", "region"),
    [
        (["192.0.2.10"], "ro"),
        (["mx.bg.example.test."], "bg"),
        (["10 MX.RO.example.test", "20 mx.bg.example.test"], "ro"),  # most preferred wins
        (["192.0.2.10", "198.51.100.10"], None),  # spans regions
        (["203.0.113.99"], None),  # belongs to none
        ([], None),
    ],
)
def test_map_answers_to_region(answers: list[str], region: str | None) -> None:
    assert map_answers_to_region(answers, REGION_VALUES) == region


def test_dnsbl_query_names() -> None:
    v4 = dnsbl_query_name(ipaddress.ip_address("192.0.2.10"), "zen.spamhaus.org")
    v6 = dnsbl_query_name(ipaddress.ip_address("2001:db8:b::25"), "zen.spamhaus.org")
    assert v4 == "10.2.0.192.zen.spamhaus.org"
    assert v6 == "5.2.0.0" + ".0" * 16 + ".b.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"


# Failover records


async def test_two_resolvers_agree_and_ttl_is_reported(servers: dict[str, ResolverAddress]) -> None:
    clock = FakeClock()
    collector = DnsRecordCollector(clock, timeout_seconds=1.0)
    samples = await collector.collect([record("example.test", "MX")], list(servers.values()))
    assert [s.answers for s in samples] == [("10 mx.ro.example.test", "20 mx.bg.example.test")] * 2
    assert [s.resolver for s in samples] == [str(servers["a"]), str(servers["b"])]
    assert all(s.error is None and s.ttl == 300 and s.wall == clock.utcnow() for s in samples)
    assert map_answers_to_region(samples[0].answers, REGION_VALUES) == "ro"


async def test_two_resolvers_disagree(servers: dict[str, ResolverAddress]) -> None:
    collector = DnsRecordCollector(timeout_seconds=1.0)
    a, b = await collector.collect([record("mail.example.test")], [servers["a"], servers["b"]])
    assert (a.answers, b.answers) == (("192.0.2.10",), ("198.51.100.10",))
    assert map_answers_to_region(a.answers, REGION_VALUES) == "ro"
    assert map_answers_to_region(b.answers, REGION_VALUES) == "bg"


async def test_cname_chain_gives_addresses_and_lowest_ttl(
    servers: dict[str, ResolverAddress],
) -> None:
    collector = DnsRecordCollector(timeout_seconds=1.0)
    via_a = await collector.probe(record("www.example.test"), servers["a"])
    cname = await collector.probe(record("www.example.test", "CNAME"), servers["a"])
    assert (via_a.answers, via_a.ttl) == (("192.0.2.10",), 30)
    assert cname.answers == ("mail.example.test",)


async def test_answer_mapping_to_no_region(servers: dict[str, ResolverAddress]) -> None:
    sample = await DnsRecordCollector().probe(record("web.example.test"), servers["a"])
    assert sample.answers == ("203.0.113.99",)
    assert map_answers_to_region(sample.answers, REGION_VALUES) is None


@pytest.mark.parametrize(
    ("name", "rtype", "kind"),
    [
        ("nope.example.test", "A", DnsErrorKind.NXDOMAIN),
        ("mail.example.test", "AAAA", DnsErrorKind.NODATA),
        ("www.broken.test", "A", DnsErrorKind.SERVFAIL),  # the zone failed to load
        ("mail.elsewhere.test", "A", DnsErrorKind.REFUSED),  # not served, no recursion
    ],
)
async def test_error_kinds(
    servers: dict[str, ResolverAddress], name: str, rtype: str, kind: DnsErrorKind
) -> None:
    sample = await DnsRecordCollector().probe(record(name, rtype), servers["a"])
    assert sample.error is not None and sample.error.kind is kind
    assert (sample.answers, sample.ttl) == ((), None)


async def test_silent_resolver_times_out(silent: ResolverAddress) -> None:
    started = time.monotonic()
    sample = await DnsRecordCollector(timeout_seconds=0.3).probe(
        record("mail.example.test"), silent
    )
    assert time.monotonic() - started < 1.0
    assert sample.error is not None and sample.error.kind is DnsErrorKind.TIMEOUT
    assert str(sample.error) == "timeout: no answer within 0.3 s"


async def test_truncated_answer_is_retried_over_tcp(servers: dict[str, ResolverAddress]) -> None:
    answer = await query(servers["a"], "big.example.test", "TXT", 1.0)
    assert answer.error is None and len(answer.records) == 10


async def test_truncated_answer_with_tcp_down_says_so(truncating: ResolverAddress) -> None:
    sample = await DnsRecordCollector(timeout_seconds=1.0).probe(
        record("mail.example.test"), truncating
    )
    assert sample.error is not None and sample.error.kind is DnsErrorKind.TRUNCATED
    assert "TCP retry failed: network: connection refused" in sample.error.detail


async def test_invalid_name_is_reported_not_raised(servers: dict[str, ResolverAddress]) -> None:
    sample = await DnsRecordCollector().probe(record("x" * 64 + ".example.test"), servers["a"])
    assert sample.error is not None and sample.error.kind is DnsErrorKind.INVALID_QUERY


async def test_every_poll_asks_again(servers: dict[str, ResolverAddress]) -> None:
    """No cache: a change on the server shows on the very next poll, TTL or not."""
    collector = DnsRecordCollector(timeout_seconds=1.0)
    name = record("drill.example.test")
    before = await collector.probe(name, servers["b"])
    update = dns.update.UpdateMessage("example.test", keyring=TSIG.keyring(), keyname=TSIG.name)
    update.replace("drill", 3600, "A", "198.51.100.77")
    response = await dns.asyncquery.tcp(update, servers["b"].host, 2.0, port=servers["b"].port)
    assert response.rcode() == dns.rcode.NOERROR  # the helper's TSIG key and allow-update work
    after = await collector.probe(name, servers["b"])
    assert before.error is not None and before.error.kind is DnsErrorKind.NXDOMAIN
    assert after.answers == ("198.51.100.77",)


# Email authentication

GOOD_IPS = {"ro": ["192.0.2.10"], "bg": ["198.51.100.10", "2001:db8:b::25"]}


async def auth(
    resolver: ResolverAddress,
    domain: str,
    ips: dict[str, list[str]] | None = None,
    selectors: tuple[str, ...] = ("ro2026", "bg2026"),
) -> dict[str, EmailAuthSample]:
    collector = EmailAuthCollector(resolver, timeout_seconds=1.0)
    samples = await collector.check(domain, ips or GOOD_IPS, selectors)
    return {s.region: s for s in samples}


async def test_aligned_domain_passes_everything(servers: dict[str, ResolverAddress]) -> None:
    result = await auth(servers["a"], "good.mail.test")
    for sample in result.values():
        assert sample.spf.ok, sample.spf.reason
        assert sample.dkim.ok and sample.dkim.reason == "2 selector(s) publish a key"
        assert sample.dmarc.ok and sample.dmarc.policy == "reject"
        assert sample.ptr.ok, sample.ptr.reason
    assert result["bg"].spf.reason == ("authorizes 198.51.100.10, 2001:db8:b::25 (2 DNS lookups)")
    assert [p.names for p in result["bg"].ptr.ips] == [("relay.bg.mail.test",)] * 2


async def test_spf_missing_one_regions_ip(servers: dict[str, ResolverAddress]) -> None:
    result = await auth(
        servers["a"], "missing.mail.test", {"ro": ["192.0.2.10"], "bg": ["198.51.100.10"]}
    )
    assert result["ro"].spf.ok is True
    assert result["bg"].spf.ok is False
    assert result["bg"].spf.reason == "198.51.100.10 not authorized: fail (-all)"


async def test_spf_over_ten_lookups(servers: dict[str, ResolverAddress]) -> None:
    result = await auth(servers["a"], "deep.mail.test", {"ro": ["192.0.2.10"]})
    assert result["ro"].spf.ok is False
    assert result["ro"].spf.reason == (
        "permerror: over 10 DNS lookups (at include:l11.deep.mail.test)"
    )


async def test_spf_fragile_past_the_match_is_a_warning_not_a_failure(
    servers: dict[str, ResolverAddress],
) -> None:
    result = await auth(servers["a"], "fragile.mail.test", {"ro": ["192.0.2.10"]})
    spf = result["ro"].spf
    assert spf.ok is True  # a receiver passes 192.0.2.10: it matches before the include
    assert spf.warning == (
        "passes for this IP, fragile: other senders get permerror "
        "(over 10 DNS lookups (at include:l10.deep.mail.test))"
    )
    assert "permerror" not in spf.reason.split("fragile")[0]


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("open.mail.test", "+all at open.mail.test authorizes every host"),
        (
            "wide.mail.test",
            "ip4:10.0.0.0/8 at wide.mail.test is over-broad; "
            "?all at wide.mail.test: other hosts get neutral, not fail",
        ),
    ],
)
async def test_spf_over_broad_allowlists_fail(
    servers: dict[str, ResolverAddress], domain: str, reason: str
) -> None:
    result = await auth(servers["a"], domain, {"ro": ["192.0.2.10"]})
    assert (result["ro"].spf.ok, result["ro"].spf.reason) == (False, reason)


@pytest.mark.parametrize(
    ("domain", "ok", "reason"),
    [
        ("redir.mail.test", True, "authorizes 192.0.2.10 (3 DNS lookups)"),
        ("viamx.mail.test", True, "authorizes 192.0.2.77 (1 DNS lookups)"),
        ("macro.mail.test", True, "authorizes 192.0.2.10 (1 DNS lookups)"),
        ("flaky.mail.test", None, "_spf.broken.test TXT: servfail"),
        ("typo.mail.test", False, "permerror: malformed 'ip4:192.0.2.300' at typo.mail.test"),
        (
            "loop.mail.test",
            False,
            "permerror: 'include:loop.mail.test' at loop.mail.test: includes itself",
        ),
        ("nothing.mail.test", False, "no SPF record at nothing.mail.test"),
    ],
)
async def test_spf_walk(
    servers: dict[str, ResolverAddress], domain: str, ok: bool | None, reason: str
) -> None:
    ip = "192.0.2.77" if domain.startswith("viamx") else "192.0.2.10"
    result = await auth(servers["a"], domain, {"ro": [ip]})
    assert (result["ro"].spf.ok, result["ro"].spf.reason) == (ok, reason)


async def test_dkim_selector_missing_or_revoked(servers: dict[str, ResolverAddress]) -> None:
    result = await auth(servers["a"], "good.mail.test", selectors=("ro2026", "gone", "old"))
    assert result["ro"].dkim.ok is False
    assert result["ro"].dkim.reason == (
        "gone: no DKIM key at gone._domainkey.good.mail.test; old: key revoked (empty p=)"
    )


async def test_dmarc_policy_parsed_and_missing(servers: dict[str, ResolverAddress]) -> None:
    monitoring = await auth(servers["a"], "missing.mail.test")
    assert monitoring["ro"].dmarc.ok is True
    assert monitoring["ro"].dmarc.policy == "none"
    assert monitoring["ro"].dmarc.reason == "p=none, sp=quarantine, pct=50"
    absent = await auth(servers["a"], "deep.mail.test")
    assert (absent["ro"].dmarc.ok, absent["ro"].dmarc.policy) == (False, None)
    assert absent["ro"].dmarc.reason == (
        "no DMARC record at _dmarc.deep.mail.test nor at _dmarc.mail.test"
    )


async def test_ptr_mismatch_and_missing(servers: dict[str, ResolverAddress]) -> None:
    result = await auth(
        servers["a"], "good.mail.test", {"ro": ["192.0.2.10", "192.0.2.11", "192.0.2.12"]}
    )
    ptr = result["ro"].ptr
    assert ptr.ok is False
    assert [(p.ip, p.ok) for p in ptr.ips] == [
        ("192.0.2.10", True),
        ("192.0.2.11", False),
        ("192.0.2.12", False),
    ]
    assert ptr.reason == (
        "192.0.2.11: liar.mail.test resolves to 192.0.2.99, not 192.0.2.11; "
        "192.0.2.12: no PTR record"
    )


async def test_unreachable_resolver_leaves_every_verdict_unknown(silent: ResolverAddress) -> None:
    collector = EmailAuthCollector(silent, timeout_seconds=0.2)
    (sample,) = await collector.check("good.mail.test", {"ro": ["192.0.2.10"]}, ["ro2026"])
    checks = (sample.spf, sample.dkim, sample.dmarc, sample.ptr)
    assert [c.ok for c in checks] == [None] * 4
    assert sample.spf.reason == "good.mail.test TXT: timeout: no answer within 0.2 s"


# DNSBL


async def test_dnsbl_listed_clean_and_refused(servers: dict[str, ResolverAddress]) -> None:
    collector = DnsblCollector(servers["a"], ["zen.spamhaus.org", "bl.example.test."])
    ips = {"ro": ["192.0.2.10", "192.0.2.11"], "bg": ["198.51.100.10", "2001:db8:b::25"]}
    samples = {(s.ip, s.zone): s for s in await collector.check(ips)}
    assert len(samples) == 8

    listed = samples["192.0.2.10", "zen.spamhaus.org"]
    assert (listed.listed, listed.code, listed.region) == (True, "127.0.0.2,127.0.0.4", "ro")
    assert listed.meaning == (
        "SBL (Spamhaus Block List); XBL (exploited or infected host): "
        "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL1"
    )
    refused = samples["192.0.2.11", "zen.spamhaus.org"]
    assert (refused.listed, refused.code) == (None, "127.255.255.254")
    assert refused.meaning == "query refused: it came through a public or open resolver"
    clean = samples["198.51.100.10", "zen.spamhaus.org"]
    assert (clean.listed, clean.code, clean.meaning) == (False, None, "not listed")
    v6 = samples["2001:db8:b::25", "zen.spamhaus.org"]
    assert (v6.listed, v6.meaning) == (True, "SBL CSS (snowshoe spam sources)")
    unknown_zone = samples["192.0.2.10", "bl.example.test"]
    assert (unknown_zone.listed, unknown_zone.meaning) == (True, "listed (127.0.0.5)")


async def test_dnsbl_answer_outside_loopback_is_unknown(
    servers: dict[str, ResolverAddress],
) -> None:
    sample = await DnsblCollector(servers["a"], []).lookup("192.0.2.12", "ro", "bl.example.test")
    assert (sample.listed, sample.code) == (None, "198.51.100.1")
    assert "not a DNSBL code" in sample.meaning


async def test_dnsbl_timeout_is_unknown(silent: ResolverAddress) -> None:
    collector = DnsblCollector(silent, ["zen.spamhaus.org"], timeout_seconds=0.2)
    (sample,) = await collector.check({"ro": ["192.0.2.10"]})
    assert (sample.listed, sample.meaning) == (None, "timeout: no answer within 0.2 s")


async def test_dnsbl_paces_queries_per_zone(servers: dict[str, ResolverAddress]) -> None:
    collector = DnsblCollector(
        servers["a"], ["zen.spamhaus.org"], per_zone_in_flight=2, per_zone_spacing_seconds=0.05
    )
    ips = {"bg": [f"198.51.100.{n}" for n in range(20, 26)]}  # all clean: one query each
    started = time.monotonic()
    samples = await collector.check(ips)
    assert time.monotonic() - started >= 5 * 0.05
    assert [s.listed for s in samples] == [False] * 6
