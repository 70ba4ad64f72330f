"""The demo estate's own authoritative DNS server: UDP and TCP on one loopback port.

Zones live in memory as dnspython `dns.zone.Zone`s built from zone text; every
message is parsed and built with dnspython (no hand-made wire format). The server
answers authoritatively (AA), follows CNAMEs through the zones it serves, returns
NXDOMAIN, NODATA (with the zone's SOA for negative caching) or REFUSED for names
outside every zone, and truncates UDP answers larger than the client's EDNS payload
(512 bytes without EDNS) so the client asks again over TCP. Malformed messages get
no answer and a bug of ours gets SERVFAIL: nothing a client sends stops the server.

RFC 2136 updates must be signed with a key of the server's keyring: unsigned ones
are REFUSED; a bad signature or an unknown key gets NOTAUTH with the TSIG error
(BADSIG, BADKEY or BADTIME) in an unsigned TSIG record, as BIND answers. A signed
update has its prerequisites checked, then all of its changes applied in one zone
transaction; the SOA serial goes up by one when anything changed. Answers to
signed messages are signed with the request's key.

Fault hooks for the demo, called on the server's event loop: `set_override` makes a
name answer other values (a hijack) without touching the zone, so clearing it
restores the exact answer; `add_record` and `remove_record` edit a zone (a DNSBL
listing is a record in the blocklist zone) with the same rules as an update.

Left out, since the demo needs none of it: wildcards, delegations (each name is
answered from the deepest zone served), zone transfers (refused), DNSSEC, SOA
records in an update (ignored: the server owns the serial) and a signed BADTIME
answer (it goes unsigned; dnspython clients raise PeerBadTime either way).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.SOA
import dns.reversename
import dns.rrset
import dns.transaction
import dns.tsig
import dns.update
import dns.zone

__all__ = [
    "DEMO_BLOCKLIST_ZONE",
    "DEMO_DKIM_SELECTOR",
    "DEMO_DNS_REGIONS",
    "DEMO_DOMAIN",
    "DemoDnsServer",
    "DnsRegion",
    "demo_zones",
]

log = logging.getLogger(__name__)

DEMO_DOMAIN = "demo-mail.test"
DEMO_BLOCKLIST_ZONE = f"bl.{DEMO_DOMAIN}"
DEMO_DKIM_SELECTOR = "s1"
# An Ed25519 public key (RFC 8463). The demo signs no mail: the key only has to be
# well formed, so its private half was thrown away.
_DKIM_KEY = "6YozyqEa+ioVeeog/z5NoTy6P5bokqRYRWbjcha7KIw="

# BIND's default max-udp-size (DNS Flag Day 2020): the most we answer over UDP.
_UDP_PAYLOAD = 1232
_PLAIN_UDP_LIMIT = 512  # RFC 1035, for a client without EDNS
_MAX_TCP_CONNECTIONS = 64
_TCP_IDLE_SECONDS = 10.0  # RFC 7766 §6.2.3: close idle connections after seconds
_BIND_ATTEMPTS = 20
# RFC 2136 §3.4.2.4: an update never removes the zone's apex SOA or NS records.
_APEX_KEPT = frozenset({dns.rdatatype.SOA, dns.rdatatype.NS})
_IN = dns.rdataclass.IN


class DnsRegion(NamedTuple):
    """What DNS says about one region; the demo's NocConfig takes the same values."""

    id: str
    service_ip: str  # where smtp points while this region is active
    mx_host: str  # absolute, inside the demo domain: "mx.ro.demo-mail.test."
    sending_ip: str  # SPF-authorized, with a forward-confirmed PTR


DEMO_DNS_REGIONS = (
    DnsRegion("ro", "192.0.2.10", f"mx.ro.{DEMO_DOMAIN}.", "192.0.2.20"),
    DnsRegion("bg", "198.51.100.10", f"mx.bg.{DEMO_DOMAIN}.", "198.51.100.20"),
    DnsRegion("pa", "203.0.113.10", f"mx.pa.{DEMO_DOMAIN}.", "203.0.113.20"),
)


def demo_zones(
    regions: Sequence[tuple[str, str, str, str]] = DEMO_DNS_REGIONS,
    *,
    domain: str = DEMO_DOMAIN,
) -> list[tuple[str, str]]:
    """(origin, zone text) for the mail domain, reverse zones and an empty blocklist.

    `regions` are (id, service_ip, mx_host, sending_ip); the first is the primary:
    `smtp` (TTL 60) and the MX point at it. SPF authorizes every region's sending
    IP, which has a PTR to `mail.<id>.<domain>` resolving back to it (FCrDNS).
    DMARC is p=quarantine; DKIM selector `s1` publishes a key. The blocklist zone
    `bl.<domain>` starts empty: listings are added with `add_record`.
    """
    if not regions:
        raise ValueError("the demo DNS needs at least one region")
    _, primary_ip, primary_mx, _ = regions[0]
    spf = " ".join(f"ip{_version(ip)}:{ip}" for _, _, _, ip in regions)
    lines = [
        _soa(domain),
        "ns 300 A 127.0.0.1",
        f"smtp 60 {_address_type(primary_ip)} {primary_ip}",
        f"@ 300 MX 10 {primary_mx}",
        f'@ 300 TXT "v=spf1 {spf} -all"',
        f'_dmarc 300 TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{domain}"',
        f'{DEMO_DKIM_SELECTOR}._domainkey 300 TXT "v=DKIM1; k=ed25519; p={_DKIM_KEY}"',
    ]
    reverse: dict[dns.name.Name, list[str]] = {}
    for region_id, service_ip, mx_host, sending_ip in regions:
        lines.append(f"{mx_host} 300 {_address_type(service_ip)} {service_ip}")
        lines.append(f"mail.{region_id} 300 {_address_type(sending_ip)} {sending_ip}")
        pointer = dns.reversename.from_address(sending_ip)
        # One reverse zone per parent of the PTR name: the /24 for IPv4.
        reverse.setdefault(pointer.parent(), []).append(
            f"{pointer} 300 PTR mail.{region_id}.{domain}."
        )
    zones = [(domain, "\n".join(lines) + "\n")]
    zones += [
        (origin.to_text(omit_final_dot=True), "\n".join([_soa(domain), *ptrs]) + "\n")
        for origin, ptrs in reverse.items()
    ]
    zones.append((f"bl.{domain}", _soa(domain) + "\n"))
    return zones


def _soa(domain: str) -> str:
    # Negative answers are cached for the SOA minimum (60 s), RFC 2308.
    return (
        f"$TTL 300\n@ SOA ns.{domain}. hostmaster.{domain}. 1 3600 600 86400 60\n@ NS ns.{domain}."
    )


def _version(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def _address_type(ip: str) -> str:
    return "A" if _version(ip) == 4 else "AAAA"


class DemoDnsServer:
    """Serves `zones` ((origin, zone text) pairs) on one UDP and TCP port of `host`.

    `keyring` holds the TSIG keys allowed to update (as `dns.tsigkeyring.from_text`
    builds it); without one every update is refused.
    """

    def __init__(
        self,
        zones: Iterable[tuple[str, str]],
        *,
        keyring: Mapping[dns.name.Name, dns.tsig.Key] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        for origin, text in zones:
            # Absolute owner names throughout: what queries and updates carry.
            zone = dns.zone.from_text(text, origin, relativize=False)
            assert zone.origin is not None  # from_text was given one
            self._zones[zone.origin] = zone
        self._keyring = dict(keyring or {})
        self._host = host
        self._port: int | None = None
        self._overrides: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the demo DNS server has not been started yet")
        return self._port

    @property
    def address(self) -> str:
        """Where to send questions, in noc's resolver syntax: "127.0.0.1:PORT"."""
        return f"{self._host}:{self.port}"

    async def start(self) -> None:
        """Listen on a port free for both UDP and TCP."""
        if self._udp is not None:
            raise RuntimeError("the demo DNS server is already running")
        loop = asyncio.get_running_loop()
        for _ in range(_BIND_ATTEMPTS):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(lambda wire: self._respond(wire, udp=True)),
                local_addr=(self._host, 0),
            )
            port = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self._host, port)
            except OSError as exc:
                udp.close()
                # Another program holds this port for TCP: try another one.
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._udp, self._port = udp, port
            return
        raise RuntimeError(f"no port on {self._host} was free for both UDP and TCP")

    async def stop(self) -> None:
        """Close both listeners and every open connection; idempotent."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            server, self._tcp = self._tcp, None
            server.close()
            connections = list(self._connections)
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()

    # Fault hooks

    def set_override(
        self, name: str, rdtype: str, values: Sequence[str] | None, ttl: int = 60
    ) -> None:
        """Answer `values` (with `ttl`) for (name, rdtype) instead of the zone; None clears.

        Values are in zone-file syntax ("203.0.113.66", "10 mx.evil.test."). The zone
        is left as it was, so clearing the override restores the exact answer.
        """
        owner = dns.name.from_text(name)
        zone = self._zone_for(owner)
        if zone is None:
            raise ValueError(f"{name} is in no zone this server serves")
        key = (owner, dns.rdatatype.from_text(rdtype))
        if values is None:
            self._overrides.pop(key, None)
            return
        if not values:
            raise ValueError("an override needs at least one value (None clears it)")
        rdatas = [_rdata(zone, key[1], value) for value in values]
        self._overrides[key] = dns.rrset.from_rdata_list(owner, ttl, rdatas)

    def add_record(self, zone: str, name: str, rdtype: str, value: str, ttl: int = 300) -> None:
        """Add one record, as an RFC 2136 update would (the serial goes up if it is new).

        `name` is relative to the zone ("20.2.0.192") or a full name inside it; `value`
        is in zone-file syntax, so TXT text is quoted: '"listed for the demo"'.
        """
        served = self._served(zone)
        owner = _owner(served, name)
        rdata = _rdata(served, rdtype, value)
        _commit(served, [dns.rrset.from_rdata(owner, ttl, rdata)])

    def remove_record(self, zone: str, name: str, rdtype: str, value: str | None = None) -> None:
        """Remove one record, or with no `value` the whole RRset; as `add_record` names it."""
        served = self._served(zone)
        owner = _owner(served, name)
        kind = dns.rdatatype.from_text(rdtype)
        if value is None:
            doomed = dns.rrset.RRset(owner, _IN, kind, deleting=dns.rdataclass.ANY)
        else:
            doomed = dns.rrset.RRset(owner, _IN, kind, deleting=dns.rdataclass.NONE)
            doomed.add(_rdata(served, kind, value))
        _commit(served, [doomed])

    def _served(self, zone: str) -> dns.zone.Zone:
        served = self._zones.get(dns.name.from_text(zone))
        if served is None:
            raise ValueError(f"this server does not serve the zone {zone}")
        return served

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        """The deepest zone served that contains `name`: a child zone wins over its parent."""
        origin = max((o for o in self._zones if name.is_subdomain(o)), key=len, default=None)
        return None if origin is None else self._zones[origin]

    # Transports

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= _MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._connections.add(task)
        try:
            while True:
                async with asyncio.timeout(_TCP_IDLE_SECONDS):
                    length = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(length)
                # A malformed message gets no answer, but the framing still holds,
                # so the connection goes on.
                reply = self._respond(wire, udp=False)
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client hung up, or went quiet
        finally:
            self._connections.discard(task)
            writer.close()

    def _respond(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The answer's wire format, or None when the message deserves none."""
        parsed = self._parse(wire)
        if parsed is None:
            log.debug("demo DNS: ignored a malformed message of %d bytes", len(wire))
            return None
        request, tsig_error = parsed
        if request.flags & dns.flags.QR:
            return None  # a response: answering it could start a loop
        try:
            response = self._handle(request, tsig_error)
            if not udp:
                return response.to_wire(max_size=65535)
            limit = _PLAIN_UDP_LIMIT
            if request.edns >= 0:
                limit = max(_PLAIN_UDP_LIMIT, min(request.payload, _UDP_PAYLOAD))
            return response.to_wire(max_size=limit, prefer_truncation=True)
        except Exception:
            # A bug of ours must not take the demo's DNS down with it; SERVFAIL tells
            # the client at once, as BIND does, instead of leaving it to time out.
            log.exception("demo DNS: could not answer %s", request.question)
            return _servfail(request)

    def _parse(self, wire: bytes) -> tuple[dns.message.Message, int] | None:
        """The message and its TSIG error (0: valid or unsigned); None when malformed."""
        try:
            return dns.message.from_wire(wire, keyring=self._keyring), 0
        except (dns.message.UnknownTSIGKey, dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            error = dns.rcode.BADKEY
        except dns.tsig.BadSignature:
            error = dns.rcode.BADSIG
        except dns.tsig.BadTime:
            error = dns.rcode.BADTIME
        except Exception:
            return None
        try:
            # Read again without checking the signature, only to tell the sender why.
            return dns.message.from_wire(wire, keyring=False), error
        except Exception:
            return None

    # Answers

    def _handle(self, request: dns.message.Message, tsig_error: int) -> dns.message.Message:
        response = dns.message.make_response(request, our_payload=_UDP_PAYLOAD)
        if tsig_error:
            _refuse_signature(request, response, tsig_error)
        elif isinstance(request, dns.update.UpdateMessage):
            response.set_rcode(self._update(request))
        elif request.opcode() == dns.opcode.QUERY:
            response.set_rcode(self._query(request, response))
        else:
            response.set_rcode(dns.rcode.NOTIMP)
        return response

    def _query(
        self, request: dns.message.Message, response: dns.message.Message
    ) -> dns.rcode.Rcode:
        if len(request.question) != 1:
            return dns.rcode.FORMERR
        question = request.question[0]
        name, rdtype = question.name, question.rdtype
        zone = self._zone_for(name)
        if zone is None or question.rdclass != _IN:
            return dns.rcode.REFUSED
        if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
            return dns.rcode.REFUSED  # zone transfers and the like are not offered
        response.flags |= dns.flags.AA
        seen: set[dns.name.Name] = set()
        # Each turn answers `name`, or follows its CNAME to the next name (RFC 1034 §4.3.2).
        while name not in seen:
            seen.add(name)
            override = self._overrides.get((name, rdtype))
            if override is not None:
                response.answer.append(override)
                return dns.rcode.NOERROR
            node = zone.get_node(name)
            if node is None:
                response.authority.append(_negative_soa(zone))
                # A name with names below it exists, empty (RFC 8020): NODATA.
                below = any(n.is_subdomain(name) for n in zone.nodes)
                return dns.rcode.NOERROR if below else dns.rcode.NXDOMAIN
            found = [r for r in node.rdatasets if rdtype in (r.rdtype, dns.rdatatype.ANY)]
            if found:
                response.answer += [_rrset(name, r) for r in found]
                return dns.rcode.NOERROR
            cname = node.get_rdataset(_IN, dns.rdatatype.CNAME)
            if cname is None:
                response.authority.append(_negative_soa(zone))
                return dns.rcode.NOERROR
            response.answer.append(_rrset(name, cname))
            name = cast(dns.rdtypes.ANY.CNAME.CNAME, cname[0]).target
            next_zone = self._zone_for(name)
            if next_zone is None:
                break  # the chain leaves our zones: the client follows it elsewhere
            zone = next_zone
        return dns.rcode.NOERROR

    # Updates (RFC 2136)

    def _update(self, request: dns.update.UpdateMessage) -> dns.rcode.Rcode:
        if len(request.zone) != 1:
            return dns.rcode.FORMERR
        zone = self._zones.get(request.zone[0].name)
        if zone is None:
            return dns.rcode.NOTAUTH  # §3.1.2: not a zone we are authoritative for
        if not request.had_tsig:
            return dns.rcode.REFUSED
        assert zone.origin is not None
        if not all(r.name.is_subdomain(zone.origin) for r in request.prerequisite):
            return dns.rcode.NOTZONE
        rcode = _check_prerequisites(zone, request.prerequisite)
        if rcode != dns.rcode.NOERROR:
            return rcode
        if not all(r.name.is_subdomain(zone.origin) for r in request.update):
            return dns.rcode.NOTZONE
        if not all(_valid_change(r) for r in request.update):
            return dns.rcode.FORMERR
        _commit(zone, request.update)
        return dns.rcode.NOERROR


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, respond: Callable[[bytes], bytes | None]) -> None:
        self._respond = respond
        self._transport: asyncio.DatagramTransport | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    # The transport calls these as its send buffer passes the high and low water
    # marks: while it is full, replies are dropped rather than queued (a DNS client
    # asks again), so a flood cannot grow memory.
    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._transport is None or self._paused:
            return
        reply = self._respond(data)
        if reply is not None:
            self._transport.sendto(reply, addr)


def _servfail(request: dns.message.Message) -> bytes | None:
    try:
        response = dns.message.make_response(request)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire(max_size=_PLAIN_UDP_LIMIT)
    except Exception:
        return None


def _refuse_signature(
    request: dns.message.Message, response: dns.message.Message, error: int
) -> None:
    """NOTAUTH with the TSIG error in an unsigned TSIG record (RFC 8945 §5.2, as BIND)."""
    response.set_rcode(dns.rcode.NOTAUTH)
    # _parse reports a TSIG error only for a message that carries a TSIG record.
    assert request.tsig is not None and request.keyname is not None
    signed = request.tsig[0]
    # No MAC: the key is unknown or untrusted, so nothing is signed with it.
    tsig = signed.replace(time_signed=int(time.time()), mac=b"", error=error, other=b"")
    response.tsig = dns.rrset.from_rdata(request.keyname, 0, tsig)


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))


def _negative_soa(zone: dns.zone.Zone) -> dns.rrset.RRset:
    assert zone.origin is not None
    soa = zone.find_rdataset(zone.origin, dns.rdatatype.SOA)
    rrset = _rrset(zone.origin, soa)
    # RFC 2308 §3: the SOA's TTL in a negative answer is the lesser of it and its minimum.
    rrset.ttl = min(soa.ttl, cast(dns.rdtypes.ANY.SOA.SOA, soa[0]).minimum)
    return rrset


def _rdata(
    zone: dns.zone.Zone, rdtype: dns.rdatatype.RdataType | str, text: str
) -> dns.rdata.Rdata:
    """A record's data from zone-file text; relative names ("smtp") end in the zone."""
    # relativize=False: names stay absolute, as the zone holds them (and as they go
    # on the wire).
    return dns.rdata.from_text(_IN, rdtype, text, origin=zone.origin, relativize=False)


def _owner(zone: dns.zone.Zone, name: str) -> dns.name.Name:
    assert zone.origin is not None
    full = dns.name.from_text(name)
    owner = full if full.is_subdomain(zone.origin) else dns.name.from_text(name, zone.origin)
    if not owner.is_subdomain(zone.origin):
        raise ValueError(f"{name} is outside the zone {zone.origin}")
    return owner


def _check_prerequisites(
    zone: dns.zone.Zone, prerequisites: Sequence[dns.rrset.RRset]
) -> dns.rcode.Rcode:
    """RFC 2136 §3.2: NOERROR when every prerequisite holds, else the rcode of the first."""
    # Value-dependent prerequisites are compared as whole RRsets, after the others.
    wanted: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], set[dns.rdata.Rdata]] = {}
    for rrset in prerequisites:
        name, rdtype = rrset.name, rrset.rdtype
        in_use = zone.get_node(name) is not None
        exists = in_use and zone.get_rdataset(name, rdtype) is not None
        match rrset.deleting:
            case dns.rdataclass.ANY if rdtype == dns.rdatatype.ANY:
                if not in_use:
                    return dns.rcode.NXDOMAIN  # fails: "name is in use"
            case dns.rdataclass.ANY:
                if not exists:
                    return dns.rcode.NXRRSET  # fails: "RRset exists (value independent)"
            case dns.rdataclass.NONE if rdtype == dns.rdatatype.ANY:
                if in_use:
                    return dns.rcode.YXDOMAIN  # fails: "name is not in use"
            case dns.rdataclass.NONE:
                if exists:
                    return dns.rcode.YXRRSET  # fails: "RRset does not exist"
            case _:  # "RRset exists (value dependent)": these records, exactly
                if rrset.ttl != 0:
                    return dns.rcode.FORMERR
                wanted.setdefault((name, rdtype), set()).update(rrset)
    for (name, rdtype), rdatas in wanted.items():
        if set(zone.get_rdataset(name, rdtype) or ()) != rdatas:
            return dns.rcode.NXRRSET  # fails: "RRset exists (value dependent)"
    return dns.rcode.NOERROR


def _valid_change(rrset: dns.rrset.RRset) -> bool:
    """RFC 2136 §3.4.1.3: the types each kind of change may name."""
    if rrset.deleting == dns.rdataclass.ANY:  # delete an RRset, or every RRset (ANY)
        return rrset.rdtype == dns.rdatatype.ANY or not dns.rdatatype.is_metatype(rrset.rdtype)
    return not dns.rdatatype.is_metatype(rrset.rdtype)  # add, or delete one record


def _commit(zone: dns.zone.Zone, changes: Iterable[dns.rrset.RRset]) -> None:
    """Apply every change in one transaction (all or nothing), bumping the serial once."""
    assert zone.origin is not None
    with zone.writer() as txn:
        changed = False
        for rrset in changes:
            changed = _apply(txn, zone.origin, rrset) or changed
        if changed:
            txn.update_serial(name=zone.origin)


def _apply(txn: dns.transaction.Transaction, origin: dns.name.Name, rrset: dns.rrset.RRset) -> bool:
    """One change of RFC 2136 §3.4.2; True when it changed the zone."""
    name, rdtype = rrset.name, rrset.rdtype
    if rdtype == dns.rdatatype.SOA:
        return False  # the server owns the serial
    kept = _APEX_KEPT if name == origin else frozenset()
    existing = txn.get(name, rdtype)
    if rrset.deleting == dns.rdataclass.ANY:
        node = txn.get_node(name)
        if node is None:
            return False
        doomed = [
            r.rdtype
            for r in node.rdatasets
            if r.rdtype not in kept and rdtype in (r.rdtype, dns.rdatatype.ANY)
        ]
        for doomed_type in doomed:
            txn.delete(name, doomed_type)
        return bool(doomed)
    if rrset.deleting == dns.rdataclass.NONE:
        gone = [rd for rd in rrset if existing is not None and rd in existing]
        if not gone or (rdtype in kept and existing is not None and len(gone) == len(existing)):
            return False  # absent, or the apex's last NS
        txn.delete(name, *gone)
        return True
    node = txn.get_node(name)
    types = {r.rdtype for r in node.rdatasets} if node is not None else set()
    if (rdtype == dns.rdatatype.CNAME and types - {rdtype}) or (
        rdtype != dns.rdatatype.CNAME and dns.rdatatype.CNAME in types
    ):
        return False  # §3.4.2.2: a CNAME and other data never share a name
    if existing is not None and existing.ttl == rrset.ttl and all(rd in existing for rd in rrset):
        return False
    # The whole RRset takes the new record's TTL, as BIND does (RFC 2181 §5.2).
    merged = dns.rdataset.from_rdata_list(rrset.ttl, [*(existing or ()), *rrset])
    txn.replace(name, merged)
    return True
