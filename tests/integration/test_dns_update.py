"""The DNS actuator against a real BIND 9 (and once against the demo's own server).

Every test that writes gets its own `named`, so no update leaks into another test.
The TSIG secret is random per run: nothing here depends on a known key.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

import dns.message
import dns.rcode
import dns.rdtypes.ANY.SOA
import pytest
from named import NamedServer, TsigKey, Zone, named_servers  # noqa: F401

from noc.clock import FakeClock, SystemClock
from noc.model import FailoverRecord, FailoverRecordType, PropagationProgress, RecordChange
from noc.simulator.dns_server import DEMO_DOMAIN, DemoDnsServer, demo_zones
from noc_collectors.dns_records import ResolverAddress, parse_resolver, query
from noc_collectors.dns_update import DnsUpdater


def random_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


KEY = TsigKey("noc-failover", random_secret())
ZONE = "example.test"
SOA = "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
ZONE_TEXT = (
    SOA
    + "smtp 60 A 192.0.2.10\n"
    + "@ 300 MX 10 mx.ro.example.test.\n"
    + "mx.ro A 192.0.2.10\nmx.bg A 198.51.100.10\n"
    + "www 60 A 192.0.2.10\n"
)
LOCKED_ZONE = "locked.test"  # served, but without allow-update

A, MX = FailoverRecordType.A, FailoverRecordType.MX
# Names without the final dot, as noc's configuration writes them.
SMTP = FailoverRecord("smtp.example.test", A)
APEX_MX = FailoverRecord("example.test", MX)
SMTP_TO_BG = RecordChange(SMTP.name, A, ("192.0.2.10",), ("198.51.100.10",), 60)
MX_TO_BG = RecordChange(
    APEX_MX.name, MX, ("10 mx.ro.example.test",), ("10 mx.bg.example.test",), 300
)

# A watch that gives up fast: the tests never wait out a real TTL.
DEADLINE, INTERVAL = 0.5, 0.05


@pytest.fixture
def primary(named_servers: Callable[..., NamedServer]) -> NamedServer:  # noqa: F811
    """A fresh primary for example.test (updatable with KEY) and locked.test (not)."""
    return named_servers(
        [Zone(ZONE, ZONE_TEXT, allow_update=True), Zone(LOCKED_ZONE, SOA)], tsig=KEY
    )


def updater(
    address: str,
    *,
    zone: str = ZONE,
    key_name: str = KEY.name,
    secret: str = KEY.secret,
    timeout: float = 2.0,
) -> DnsUpdater:
    return DnsUpdater(parse_resolver(address), zone, key_name, secret, timeout_seconds=timeout)


async def serial(address: str, zone: str = ZONE) -> int:
    answer = await query(parse_resolver(address), zone, "SOA", 2.0)
    return int(cast(dns.rdtypes.ANY.SOA.SOA, answer.records[0]).serial)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Construction


def test_a_zone_that_is_not_a_domain_name_is_a_value_error() -> None:
    for zone in ("", "bad..zone"):
        with pytest.raises(ValueError, match="zone"):
            DnsUpdater(ResolverAddress("127.0.0.1"), zone, KEY.name, KEY.secret)


@pytest.mark.parametrize(
    ("secret", "algorithm", "fault"),
    [
        ("not base64!", "hmac-sha256", "not valid base64"),
        ("", "hmac-sha256", "empty"),
        (KEY.secret, "hmac-sha999", "unsupported algorithm"),
    ],
    # The secret is random per process: ids name the fault, so that parallel workers
    # collect the same tests.
    ids=["not-base64", "empty", "unsupported-algorithm"],
)
def test_a_key_that_can_never_work_is_a_value_error(
    secret: str, algorithm: str, fault: str
) -> None:
    with pytest.raises(ValueError, match=fault):
        DnsUpdater(ResolverAddress("127.0.0.1"), ZONE, KEY.name, secret, algorithm)


# probe


async def test_probe_accepts_the_right_key(primary: NamedServer) -> None:
    assert await updater(primary.address).probe() is None


async def test_probe_names_a_wrong_secret(primary: NamedServer) -> None:
    error = await updater(primary.address, secret=random_secret()).probe()
    assert error is not None
    assert error.startswith(
        f"ns {primary.address} refused key noc-failover. for zone example.test."
    )
    assert "NOTAUTH (BADSIG" in error


async def test_probe_names_an_unknown_key(primary: NamedServer) -> None:
    error = await updater(primary.address, key_name="stranger").probe()
    assert error is not None
    assert "key stranger." in error and "BADKEY" in error


async def test_probe_names_a_zone_without_allow_update(primary: NamedServer) -> None:
    error = await updater(primary.address, zone=LOCKED_ZONE).probe()
    assert error is not None
    assert "for zone locked.test.: REFUSED (updates not allowed" in error


async def test_probe_names_a_zone_the_server_does_not_serve(primary: NamedServer) -> None:
    error = await updater(primary.address, zone="elsewhere.test").probe()
    assert error is not None
    assert "for zone elsewhere.test.: NOTAUTH (the server is not authoritative" in error


async def test_probe_reports_a_closed_port() -> None:
    error = await updater(f"127.0.0.1:{closed_port()}", timeout=0.5).probe()
    assert error is not None
    assert error.startswith("ns 127.0.0.1:")
    assert "connection refused" in error or "timed out" in error


# Servers that misbehave: real sockets on loopback, answering what BIND never would.


@asynccontextmanager
async def misbehaving(behaviour: str) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length = int.from_bytes(await reader.readexactly(2), "big")
            wire = await reader.readexactly(length)
            if behaviour == "silent":
                await reader.read()  # until the client gives up and hangs up
            elif behaviour == "garbage":
                writer.write(b"\x00\x05hello")
            else:  # "unsigned": a plausible NOERROR, but without the key's signature
                request = dns.message.from_wire(wire, keyring=False)
                response = dns.message.make_response(request)
                response.set_rcode(dns.rcode.NOERROR)
                answer = response.to_wire()
                writer.write(len(answer).to_bytes(2, "big") + answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("silent", "timed out after 0.3 s"),
        ("garbage", "unreadable answer"),
        ("unsigned", "the answer is unsigned"),
    ],
)
async def test_a_misbehaving_server_gives_a_text_not_an_exception(
    behaviour: str, expected: str
) -> None:
    async with misbehaving(behaviour) as address:
        dns_updater = updater(address, timeout=0.3)
        probe_error = await dns_updater.probe()
        replace_error = await dns_updater.replace([SMTP_TO_BG])
    assert probe_error is not None and expected in probe_error
    assert "zone example.test." in probe_error and "key noc-failover." in probe_error
    # After sending changes without a trustworthy answer, the outcome is unknown.
    assert replace_error is not None and expected in replace_error
    assert "may have been applied" in replace_error


# read


async def test_read_gives_values_and_ttls(primary: NamedServer) -> None:
    missing = FailoverRecord("nowhere.example.test.", A)
    no_data = FailoverRecord("smtp.example.test.", MX)
    outside = FailoverRecord("smtp.other.test", A)
    states = await updater(primary.address).read([SMTP, APEX_MX, missing, no_data, outside])
    smtp, mx, nowhere, nodata, other = states
    assert (smtp.name, smtp.values, smtp.ttl, smtp.error) == (SMTP.name, ("192.0.2.10",), 60, None)
    assert (mx.values, mx.ttl, mx.error) == (("10 mx.ro.example.test",), 300, None)
    assert (nowhere.values, nowhere.ttl, nowhere.error) == ((), None, None)
    assert (nodata.values, nodata.ttl, nodata.error) == ((), None, None)
    assert other.values == () and other.error is not None
    assert "outside the zone example.test." in other.error


async def test_read_reports_an_unreachable_server() -> None:
    (state,) = await updater(f"127.0.0.1:{closed_port()}", timeout=0.3).read([SMTP])
    assert state.values == () and state.error is not None


# replace


async def test_replace_applies_every_change_in_one_update(primary: NamedServer) -> None:
    dns_updater = updater(primary.address)
    before = await serial(primary.address)
    assert await dns_updater.replace([SMTP_TO_BG, MX_TO_BG]) is None
    smtp, mx = await dns_updater.read([SMTP, APEX_MX])
    assert (smtp.values, smtp.ttl) == (("198.51.100.10",), 60)
    assert (mx.values, mx.ttl) == (("10 mx.bg.example.test",), 300)
    # One update, one transaction: BIND bumps the serial once for the lot.
    assert await serial(primary.address) == before + 1


async def test_replace_creates_and_deletes_an_rrset(primary: NamedServer) -> None:
    dns_updater = updater(primary.address)
    spare = FailoverRecord("spare.example.test.", A)
    create = RecordChange(spare.name, A, (), ("203.0.113.10", "203.0.113.11"), 120)
    assert await dns_updater.replace([create]) is None
    (state,) = await dns_updater.read([spare])
    assert (state.values, state.ttl) == (("203.0.113.10", "203.0.113.11"), 120)
    # Creating it again is stale: the RRset is no longer absent.
    again = await dns_updater.replace([create])
    assert again is not None and again.startswith("prerequisite failed: spare.example.test. A")
    assert await dns_updater.replace([create.reverse()]) is None
    (state,) = await dns_updater.read([spare])
    assert state.values == () and state.error is None
    # A deletion has propagated once the server answers NXDOMAIN.
    gone = await dns_updater.watch(
        [create.reverse()], [dns_updater.server], SystemClock(), DEADLINE, INTERVAL
    )
    assert gone.done and not gone.ttl_expired and gone.moved == (primary.address,)


async def test_replace_can_turn_an_address_into_an_alias_in_one_update(
    primary: NamedServer,
) -> None:
    # The CNAME comes first on purpose: BIND would ignore it beside the A still there.
    www = "www.example.test"
    changes = [
        RecordChange(www, FailoverRecordType.CNAME, (), ("mx.bg.example.test",), 60),
        RecordChange(www, A, ("192.0.2.10",), (), 60),
    ]
    dns_updater = updater(primary.address)
    assert await dns_updater.replace(changes) is None
    (alias,) = await dns_updater.read([FailoverRecord(www, FailoverRecordType.CNAME)])
    assert (alias.values, alias.ttl) == (("mx.bg.example.test",), 60)


async def test_read_names_an_alias_instead_of_taking_its_targets_records(
    primary: NamedServer,
) -> None:
    www = "www.example.test"
    dns_updater = updater(primary.address)
    alias = [
        RecordChange(www, FailoverRecordType.CNAME, (), ("mx.bg.example.test",), 60),
        RecordChange(www, A, ("192.0.2.10",), (), 60),
    ]
    assert await dns_updater.replace(alias) is None
    (state,) = await dns_updater.read([FailoverRecord(www, A)])
    assert (state.cname, state.values, state.error) == (
        "mx.bg.example.test",
        ("198.51.100.10",),
        None,
    )
    # A plan made before the alias appeared fails, and says what the record is now.
    error = await dns_updater.replace(
        [RecordChange(www, A, ("192.0.2.10",), ("198.51.100.10",), 60)]
    )
    assert error == (
        "prerequisite failed: www.example.test. A is no longer 192.0.2.10, "
        "now a CNAME to mx.bg.example.test (changed behind noc's back?)"
    )


async def test_replace_writes_only_the_records_that_differ(primary: NamedServer) -> None:
    dns_updater = updater(primary.address)
    grow = RecordChange(SMTP.name, A, ("192.0.2.10",), ("192.0.2.10", "203.0.113.9"), 60)
    assert await dns_updater.replace([grow]) is None
    move = RecordChange(
        SMTP.name, A, ("192.0.2.10", "203.0.113.9"), ("198.51.100.10", "203.0.113.9"), 60
    )
    assert await dns_updater.replace([move]) is None
    (smtp,) = await dns_updater.read([SMTP])
    assert (smtp.values, smtp.ttl) == (("198.51.100.10", "203.0.113.9"), 60)
    assert await dns_updater.replace([move.reverse()]) is None
    (smtp,) = await dns_updater.read([SMTP])
    assert (smtp.values, smtp.ttl) == (("192.0.2.10", "203.0.113.9"), 60)


async def test_replace_sends_nothing_when_nothing_changes() -> None:
    # Nothing listens there: any attempt to send would come back as an error.
    dns_updater = updater(f"127.0.0.1:{closed_port()}", timeout=0.3)
    unchanged = RecordChange(SMTP.name, A, ("192.0.2.10",), ("192.0.2.10",), 60)
    assert await dns_updater.replace([]) is None
    assert await dns_updater.replace([unchanged]) is None


async def test_replace_outside_the_zone_is_not_sent(primary: NamedServer) -> None:
    before = await serial(primary.address)
    outside = RecordChange("smtp.other.test", A, ("192.0.2.10",), ("198.51.100.10",), 60)
    error = await updater(primary.address).replace([SMTP_TO_BG, outside])
    assert error is not None and "outside the zone" in error and "not sent" in error
    assert await serial(primary.address) == before


async def test_replace_with_a_wrong_key_changes_nothing(primary: NamedServer) -> None:
    error = await updater(primary.address, secret=random_secret()).replace([SMTP_TO_BG, MX_TO_BG])
    assert error is not None and "BADSIG" in error
    smtp, mx = await updater(primary.address).read([SMTP, APEX_MX])
    assert smtp.values == ("192.0.2.10",) and mx.values == ("10 mx.ro.example.test",)


async def test_replace_refuses_a_plan_made_stale_behind_its_back(primary: NamedServer) -> None:
    hijack = RecordChange(SMTP.name, A, ("192.0.2.10",), ("203.0.113.66",), 60)
    # Someone else, with the same key, edits smtp after noc read it.
    assert await updater(primary.address).replace([hijack]) is None
    before = await serial(primary.address)
    error = await updater(primary.address).replace([SMTP_TO_BG, MX_TO_BG])
    assert error == (
        "prerequisite failed: smtp.example.test. A is no longer 192.0.2.10, now 203.0.113.66"
        " (changed behind noc's back?)"
    )
    # All or nothing: the MX change, whose own prerequisite held, was not applied either.
    smtp, mx = await updater(primary.address).read([SMTP, APEX_MX])
    assert smtp.values == ("203.0.113.66",) and mx.values == ("10 mx.ro.example.test",)
    assert await serial(primary.address) == before


async def test_replace_accepts_values_written_loosely(primary: NamedServer) -> None:
    # Final dots and case as an operator may type them: the prerequisite still holds.
    loose = RecordChange(
        "EXAMPLE.test.", MX, ("10 MX.ro.Example.test.",), ("10 mx.bg.example.test",), 300
    )
    dns_updater = updater(primary.address)
    assert await dns_updater.replace([loose]) is None
    (mx,) = await dns_updater.read([APEX_MX])
    assert mx.values == ("10 mx.bg.example.test",)


# watch


async def test_watch_sees_the_change_arrive(primary: NamedServer) -> None:
    dns_updater = updater(primary.address)
    reports: list[PropagationProgress] = []
    first_round = asyncio.Event()

    def on_progress(progress: PropagationProgress) -> None:
        reports.append(progress)
        first_round.set()

    address = parse_resolver(primary.address)
    watch = asyncio.create_task(
        dns_updater.watch(
            [SMTP_TO_BG, MX_TO_BG],
            [address, address],  # listed twice, asked once
            SystemClock(),
            deadline_seconds=30,
            interval_seconds=0.05,
            on_progress=on_progress,
        )
    )
    await asyncio.wait_for(first_round.wait(), timeout=10)
    assert await dns_updater.replace([SMTP_TO_BG, MX_TO_BG]) is None
    result = await asyncio.wait_for(watch, timeout=10)

    assert result.done and not result.ttl_expired
    assert result.moved == (primary.address,) and result.waiting == ()
    assert reports[0].waiting == (
        (
            primary.address,
            "stale (serial 1): still smtp.example.test. A: 192.0.2.10; "
            "example.test. MX: 10 mx.ro.example.test",
        ),
    )
    assert not reports[0].done and reports[-1] is result
    # Only changes are reported: nothing but "waiting" before "moved".
    assert len(reports) == 2


async def test_watch_gives_up_at_the_deadline_with_who_still_answers_the_old_value(
    primary: NamedServer,
    named_servers: Callable[..., NamedServer],  # noqa: F811
) -> None:
    # A second server still serving the zone as it was: a lagging secondary, in effect.
    lagging = named_servers([Zone(ZONE, ZONE_TEXT)])
    dns_updater = updater(primary.address)
    assert await dns_updater.replace([SMTP_TO_BG]) is None
    reports: list[PropagationProgress] = []
    servers = [parse_resolver(primary.address), parse_resolver(lagging.address)]
    result = await dns_updater.watch(
        [SMTP_TO_BG],
        servers,
        SystemClock(),
        on_progress=reports.append,
        deadline_seconds=DEADLINE,
        interval_seconds=INTERVAL,
    )
    assert result.done and result.ttl_expired
    assert result.moved == (primary.address,)
    # Named, with the zone version it serves: a stale secondary, not a silent one.
    assert result.waiting == (
        (lagging.address, "stale (serial 1): still smtp.example.test. A: 192.0.2.10"),
    )
    assert result.asked == 2
    assert reports[-1] is result and 1 <= len(reports) <= 2


async def test_watch_reports_an_unreachable_server_as_waiting(primary: NamedServer) -> None:
    dns_updater = updater(primary.address, timeout=0.2)
    assert await dns_updater.replace([SMTP_TO_BG]) is None
    dead = ResolverAddress("127.0.0.1", closed_port())
    result = await dns_updater.watch(
        [SMTP_TO_BG],
        [parse_resolver(primary.address), dead],
        SystemClock(),
        deadline_seconds=DEADLINE,
        interval_seconds=INTERVAL,
    )
    assert result.ttl_expired and result.moved == (primary.address,)
    ((server, still),) = result.waiting
    assert server == str(dead) and still.startswith("not answering: smtp.example.test. A: ")


async def test_watch_ends_even_on_a_clock_that_never_moves(primary: NamedServer) -> None:
    # Without the round backstop this would poll forever: FakeClock stays put.
    result = await updater(primary.address).watch(
        [SMTP_TO_BG], [parse_resolver(primary.address)], FakeClock(), DEADLINE, INTERVAL
    )
    assert result.done and result.ttl_expired and result.elapsed_seconds == 0


async def test_watch_survives_a_failing_callback(primary: NamedServer) -> None:
    def broken(progress: PropagationProgress) -> None:
        raise RuntimeError("a display bug")

    result = await updater(primary.address).watch(
        [SMTP_TO_BG],
        [parse_resolver(primary.address)],
        SystemClock(),
        on_progress=broken,
        deadline_seconds=DEADLINE,
        interval_seconds=INTERVAL,
    )
    assert result.ttl_expired
    assert result.waiting[0][1] == "stale (serial 1): still smtp.example.test. A: 192.0.2.10"


# The demo's own server speaks the same protocol.


@pytest.fixture
async def demo_server() -> AsyncIterator[DemoDnsServer]:
    server = DemoDnsServer(demo_zones(), keyring=KEY.keyring())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_demo_server_takes_the_same_updates(demo_server: DemoDnsServer) -> None:
    dns_updater = updater(demo_server.address, zone=DEMO_DOMAIN)
    smtp = FailoverRecord(f"smtp.{DEMO_DOMAIN}", A)
    mx = FailoverRecord(DEMO_DOMAIN, MX)
    assert await dns_updater.probe() is None
    wrong = await updater(demo_server.address, zone=DEMO_DOMAIN, secret=random_secret()).probe()
    assert wrong is not None and "BADSIG" in wrong
    before = await dns_updater.read([smtp, mx])
    assert [(s.values, s.ttl) for s in before] == [
        (("192.0.2.10",), 60),
        ((f"10 mx.ro.{DEMO_DOMAIN}",), 300),
    ]
    changes = [
        RecordChange(smtp.name, A, ("192.0.2.10",), ("198.51.100.10",), 60),
        RecordChange(mx.name, MX, (f"10 mx.ro.{DEMO_DOMAIN}",), (f"10 mx.bg.{DEMO_DOMAIN}",), 300),
    ]
    assert await dns_updater.replace(changes) is None
    after = await dns_updater.read([smtp, mx])
    assert [(s.values, s.ttl) for s in after] == [
        (("198.51.100.10",), 60),
        ((f"10 mx.bg.{DEMO_DOMAIN}",), 300),
    ]
    # The plan is stale now: the demo server checks prerequisites as BIND does.
    stale = await dns_updater.replace(changes)
    assert stale is not None and stale.startswith("prerequisite failed: ")
    progress = await dns_updater.watch(
        changes,
        [parse_resolver(demo_server.address)],
        SystemClock(),
        deadline_seconds=DEADLINE,
        interval_seconds=INTERVAL,
    )
    assert progress.done and not progress.ttl_expired
