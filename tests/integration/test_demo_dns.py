"""The demo estate's DNS server, asked by noc's real collectors and by dnspython clients.

Every test gets a fresh server on the demo zones (it starts in milliseconds), so a
test's updates and faults never leak into another.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from noc.model import DnsErrorKind, DnsRecordSample, FailoverRecord, FailoverRecordType
from noc.simulator.dns_server import (
    DEMO_BLOCKLIST_ZONE,
    DEMO_DKIM_SELECTOR,
    DEMO_DNS_REGIONS,
    DEMO_DOMAIN,
    DemoDnsServer,
    demo_zones,
)
from noc_collectors.dns_records import DnsRecordCollector, ResolverAddress, parse_resolver, query
from noc_collectors.dnsbl import DnsblCollector, dnsbl_query_name
from noc_collectors.email_auth import EmailAuthCollector

KEY_NAME = dns.name.from_text("demo-failover.")
KEY_TEXT = KEY_NAME.to_text()
KEYRING = dns.tsigkeyring.from_text(
    {KEY_TEXT: ("hmac-sha256", "+wlR0stmB1XQFW6I2EjBuLPTlDF1X42H8zIC0JeEKeU=")}
)
WRONG_SECRET = dns.tsigkeyring.from_text(
    {KEY_TEXT: ("hmac-sha256", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")}
)
SMTP = f"smtp.{DEMO_DOMAIN}."
SENDING_IPS = {r.id: [r.sending_ip] for r in DEMO_DNS_REGIONS}
TIMEOUT = 2.0


@pytest.fixture
async def server() -> AsyncIterator[DemoDnsServer]:
    dns_server = DemoDnsServer(demo_zones(), keyring=KEYRING)
    await dns_server.start()
    try:
        yield dns_server
    finally:
        await dns_server.stop()


@pytest.fixture
def resolver(server: DemoDnsServer) -> ResolverAddress:
    return parse_resolver(server.address)


async def probe(resolver: ResolverAddress, name: str, rtype: str) -> DnsRecordSample:
    record = FailoverRecord(name, FailoverRecordType(rtype))
    return await DnsRecordCollector(timeout_seconds=TIMEOUT).probe(record, resolver)


async def ask(
    server: DemoDnsServer, name: str, rdtype: str, *, edns: bool = True
) -> dns.message.Message:
    request = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=1232)
    return await dns.asyncquery.udp(request, "127.0.0.1", TIMEOUT, port=server.port)


async def serial(server: DemoDnsServer) -> int:
    response = await ask(server, DEMO_DOMAIN, "SOA")
    return int(response.answer[0][0].serial)


def update(keyring: dict[dns.name.Name, dns.tsig.Key] | None = KEYRING) -> dns.update.UpdateMessage:
    if keyring is None:
        return dns.update.UpdateMessage(DEMO_DOMAIN)
    return dns.update.UpdateMessage(DEMO_DOMAIN, keyring=keyring, keyname=KEY_NAME)


async def send(server: DemoDnsServer, message: dns.message.Message) -> dns.message.Message:
    """Over TCP as failover will send it; dnspython checks the answer's TSIG."""
    return await dns.asyncquery.tcp(message, "127.0.0.1", TIMEOUT, port=server.port)


async def exchange_raw(server: DemoDnsServer, wire: bytes) -> dns.message.Message:
    """One TCP exchange with no TSIG checking, to read what a refusal says."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            length = int.from_bytes(await reader.readexactly(2), "big")
            return dns.message.from_wire(await reader.readexactly(length), keyring=False)
        finally:
            writer.close()
            await writer.wait_closed()


# Answers


async def test_failover_records_answer_with_the_zones_ttls(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    smtp = await probe(resolver, SMTP, "A")
    assert smtp.error is None and smtp.answers == ("192.0.2.10",) and smtp.ttl == 60
    mx = await probe(resolver, f"{DEMO_DOMAIN}.", "MX")
    assert mx.answers == (f"10 mx.ro.{DEMO_DOMAIN}",) and mx.ttl == 300
    raw = await ask(server, SMTP, "A")
    assert raw.flags & dns.flags.AA


async def test_negative_answers(server: DemoDnsServer, resolver: ResolverAddress) -> None:
    missing = await probe(resolver, f"nosuch.{DEMO_DOMAIN}", "A")
    assert missing.error is not None and missing.error.kind is DnsErrorKind.NXDOMAIN
    no_aaaa = await probe(resolver, SMTP, "AAAA")
    assert no_aaaa.error is not None and no_aaaa.error.kind is DnsErrorKind.NODATA
    # ro.demo-mail.test holds no records but mx.ro does: it exists, empty (RFC 8020).
    empty = await probe(resolver, f"ro.{DEMO_DOMAIN}", "A")
    assert empty.error is not None and empty.error.kind is DnsErrorKind.NODATA
    elsewhere = await probe(resolver, "www.example.com", "A")
    assert elsewhere.error is not None and elsewhere.error.kind is DnsErrorKind.REFUSED

    raw = await ask(server, f"nosuch.{DEMO_DOMAIN}", "A")
    assert raw.rcode() == dns.rcode.NXDOMAIN and raw.flags & dns.flags.AA
    # The SOA for negative caching, at its minimum TTL (RFC 2308).
    assert raw.authority[0].rdtype == dns.rdatatype.SOA and raw.authority[0].ttl == 60


async def test_cname_is_followed_within_the_zones(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    server.add_record(DEMO_DOMAIN, "mail", "CNAME", "smtp")
    sample = await probe(resolver, f"mail.{DEMO_DOMAIN}", "A")
    assert sample.answers == ("192.0.2.10",) and sample.ttl == 60


async def test_big_answers_are_truncated_over_udp_and_complete_over_tcp(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    name = f"big.{DEMO_DOMAIN}"
    for i in range(4):  # about 680 bytes: over 512, under 1232
        server.add_record(DEMO_DOMAIN, "big", "TXT", f'"{i:02d}{"x" * 150}"')
    assert (await ask(server, name, "TXT", edns=False)).flags & dns.flags.TC
    fits = await ask(server, name, "TXT")
    assert not fits.flags & dns.flags.TC and len(fits.answer[0]) == 4
    for i in range(4, 12):  # about 2000 bytes: over the EDNS payload too
        server.add_record(DEMO_DOMAIN, "big", "TXT", f'"{i:02d}{"x" * 150}"')
    assert (await ask(server, name, "TXT")).flags & dns.flags.TC
    answer = await query(resolver, name, "TXT", TIMEOUT)  # retries over TCP
    assert answer.error is None and len(answer.records) == 12


# Email authentication and blocklists


async def test_email_auth_passes_for_every_region(resolver: ResolverAddress) -> None:
    samples = await EmailAuthCollector(resolver, timeout_seconds=TIMEOUT).check(
        DEMO_DOMAIN, SENDING_IPS, [DEMO_DKIM_SELECTOR]
    )
    assert [s.region for s in samples] == ["ro", "bg", "pa"]
    for sample in samples:
        assert sample.spf.ok is True, sample.spf.reason
        assert sample.dkim.ok is True, sample.dkim.reason
        assert sample.dmarc.ok is True and sample.dmarc.policy == "quarantine"
        assert sample.ptr.ok is True, sample.ptr.reason


async def test_blocklist_listing_shows_and_goes(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    collector = DnsblCollector(resolver, [DEMO_BLOCKLIST_ZONE], per_zone_spacing_seconds=0)

    async def listed() -> dict[str, bool | None]:
        return {s.region: s.listed for s in await collector.check(SENDING_IPS)}

    assert await listed() == {"ro": False, "bg": False, "pa": False}
    name = dnsbl_query_name(ipaddress.ip_address("198.51.100.20"), DEMO_BLOCKLIST_ZONE)
    server.add_record(DEMO_BLOCKLIST_ZONE, name, "A", "127.0.0.2")
    server.add_record(DEMO_BLOCKLIST_ZONE, name, "TXT", '"listed: demo fault"')
    samples = {s.region: s for s in await collector.check(SENDING_IPS)}
    assert samples["bg"].listed is True and samples["bg"].code == "127.0.0.2"
    assert samples["bg"].meaning.endswith("listed: demo fault")
    assert samples["ro"].listed is False and samples["pa"].listed is False
    server.remove_record(DEMO_BLOCKLIST_ZONE, name, "A")
    server.remove_record(DEMO_BLOCKLIST_ZONE, name, "TXT", '"listed: demo fault"')
    assert await listed() == {"ro": False, "bg": False, "pa": False}


async def test_hijack_override_answers_another_value_and_clears_exactly(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    before = await serial(server)
    server.set_override(SMTP, "A", ["203.0.113.66"])
    hijacked = await probe(resolver, SMTP, "A")
    assert hijacked.answers == ("203.0.113.66",)
    server.set_override(SMTP, "A", None)
    restored = await probe(resolver, SMTP, "A")
    assert restored.answers == ("192.0.2.10",) and restored.ttl == 60
    assert await serial(server) == before  # the zone itself was never touched
    with pytest.raises(ValueError, match="no zone"):
        server.set_override("smtp.example.com", "A", ["203.0.113.66"])


# RFC 2136 updates


async def test_signed_update_replaces_smtp(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    before = await serial(server)
    message = update()
    message.present("smtp", "A")
    message.replace("smtp", 60, "A", "198.51.100.10")
    response = await send(server, message)  # raises unless the answer is signed
    assert response.rcode() == dns.rcode.NOERROR and response.had_tsig
    sample = await probe(resolver, SMTP, "A")
    assert sample.answers == ("198.51.100.10",) and sample.ttl == 60
    assert await serial(server) == before + 1


async def test_update_operations(server: DemoDnsServer, resolver: ResolverAddress) -> None:
    before = await serial(server)
    message = update()
    message.add("smtp", 60, "A", "198.51.100.10")  # add a record
    message.delete("smtp", "A", "192.0.2.10")  # delete a record
    message.delete("mail.pa", "A")  # delete an RRset
    message.delete(f"mx.pa.{DEMO_DOMAIN}.")  # delete every RRset of a name
    assert (await send(server, message)).rcode() == dns.rcode.NOERROR
    assert (await probe(resolver, SMTP, "A")).answers == ("198.51.100.10",)
    for gone in (f"mail.pa.{DEMO_DOMAIN}", f"mx.pa.{DEMO_DOMAIN}"):
        sample = await probe(resolver, gone, "A")
        assert sample.error is not None and sample.error.kind is DnsErrorKind.NXDOMAIN
    assert await serial(server) == before + 1  # one update, one serial step

    apex = update()
    apex.delete("@")  # everything at the apex but its SOA and NS
    assert (await send(server, apex)).rcode() == dns.rcode.NOERROR
    mx = await probe(resolver, f"{DEMO_DOMAIN}.", "MX")
    assert mx.error is not None and mx.error.kind is DnsErrorKind.NODATA
    assert (await ask(server, DEMO_DOMAIN, "NS")).answer
    assert await serial(server) == before + 2


@pytest.mark.parametrize(
    ("prerequisite", "rcode"),
    [
        (
            lambda m: m.present("smtp", dns.rdata.from_text("IN", "A", "203.0.113.99")),
            dns.rcode.NXRRSET,
        ),
        (lambda m: m.present("smtp", "AAAA"), dns.rcode.NXRRSET),
        (lambda m: m.absent("smtp", "A"), dns.rcode.YXRRSET),
        (lambda m: m.absent("smtp"), dns.rcode.YXDOMAIN),
        (lambda m: m.present("nosuch"), dns.rcode.NXDOMAIN),
    ],
    ids=["value-dependent", "rrset-exists", "rrset-absent", "name-absent", "name-in-use"],
)
async def test_failed_prerequisite_changes_nothing(
    server: DemoDnsServer,
    resolver: ResolverAddress,
    prerequisite: Callable[[dns.update.UpdateMessage], None],
    rcode: dns.rcode.Rcode,
) -> None:
    before = await serial(server)
    message = update()
    prerequisite(message)
    message.replace("smtp", 60, "A", "198.51.100.10")
    assert (await send(server, message)).rcode() == rcode
    assert (await probe(resolver, SMTP, "A")).answers == ("192.0.2.10",)
    assert await serial(server) == before


async def test_wrong_key_is_notauth_and_changes_nothing(
    server: DemoDnsServer, resolver: ResolverAddress
) -> None:
    before = await serial(server)
    forged = update(WRONG_SECRET)
    forged.replace("smtp", 60, "A", "203.0.113.66")
    with pytest.raises(dns.tsig.PeerBadSignature):  # what dnspython makes of BADSIG
        await send(server, forged)
    refusal = await exchange_raw(server, forged.to_wire())
    assert refusal.rcode() == dns.rcode.NOTAUTH and refusal.tsig_error == dns.rcode.BADSIG
    assert refusal.mac == b""  # unsigned: the server will not sign with a key it doubts

    stranger = dns.update.UpdateMessage(
        DEMO_DOMAIN,
        keyring=dns.tsigkeyring.from_text({"stranger.": ("hmac-sha256", "AAAA")}),
        keyname=dns.name.from_text("stranger."),
    )
    stranger.replace("smtp", 60, "A", "203.0.113.66")
    refusal = await exchange_raw(server, stranger.to_wire())
    assert refusal.rcode() == dns.rcode.NOTAUTH and refusal.tsig_error == dns.rcode.BADKEY

    assert (await probe(resolver, SMTP, "A")).answers == ("192.0.2.10",)
    assert await serial(server) == before


async def test_unsigned_update_is_refused(server: DemoDnsServer, resolver: ResolverAddress) -> None:
    before = await serial(server)
    message = update(keyring=None)
    message.replace("smtp", 60, "A", "203.0.113.66")
    assert (await send(server, message)).rcode() == dns.rcode.REFUSED
    assert (await probe(resolver, SMTP, "A")).answers == ("192.0.2.10",)
    assert await serial(server) == before


async def test_updates_outside_the_served_zones(server: DemoDnsServer) -> None:
    foreign = dns.update.UpdateMessage("example.com", keyring=KEYRING, keyname=KEY_NAME)
    foreign.replace("smtp", 60, "A", "203.0.113.66")
    assert (await send(server, foreign)).rcode() == dns.rcode.NOTAUTH
    stray = update()
    stray.add("smtp.example.com.", 60, "A", "203.0.113.66")
    assert (await send(server, stray)).rcode() == dns.rcode.NOTZONE


# Robustness and lifecycle


async def test_garbage_gets_no_answer_and_does_not_stop_the_server(
    server: DemoDnsServer,
) -> None:
    query_message = dns.message.make_query(SMTP, "A")
    response_message = dns.message.make_response(query_message)
    garbage = [
        b"",
        b"\x00",
        bytes(range(256)),  # counts no message this size can hold
        query_message.to_wire()[:20],  # cut short inside the question
        response_message.to_wire(),  # a response: answering it could loop
    ]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setblocking(False)
        for datagram in [*garbage, query_message.to_wire()]:
            await loop.sock_sendto(udp, datagram, ("127.0.0.1", server.port))
        # The first reply is the real question's: the garbage before it got none.
        reply = await asyncio.wait_for(loop.sock_recv(udp, 65535), TIMEOUT)
    assert dns.message.from_wire(reply).id == query_message.id

    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for frame in [*garbage, query_message.to_wire()]:
            writer.write(len(frame).to_bytes(2, "big") + frame)
        length = int.from_bytes(await reader.readexactly(2), "big")
        assert dns.message.from_wire(await reader.readexactly(length)).id == query_message.id
        writer.write(b"\x01")  # half a length, then hang up
        writer.close()
        await writer.wait_closed()

    assert (await ask(server, SMTP, "A")).answer
    assert (await send(server, query_message)).answer


async def test_an_internal_error_answers_servfail(
    server: DemoDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> dns.rcode.Rcode:
        raise RuntimeError("a bug in the demo server")

    monkeypatch.setattr(server, "_query", broken)
    assert (await ask(server, SMTP, "A")).rcode() == dns.rcode.SERVFAIL  # not a timeout
    monkeypatch.undo()
    assert (await ask(server, SMTP, "A")).answer


async def test_stop_closes_connections_and_is_idempotent() -> None:
    dns_server = DemoDnsServer(demo_zones())
    await dns_server.start()
    port = dns_server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await dns_server.stop()
    await dns_server.stop()
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""  # the idle connection was closed
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def test_demo_zones_need_a_region() -> None:
    with pytest.raises(ValueError, match="at least one region"):
        demo_zones([])
