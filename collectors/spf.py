"""SPF's check_host() (RFC 7208), asynchronous, over any resolver and port.

Why our own evaluator, with pyspf as the test oracle
----------------------------------------------------
pyspf 2.0.14 evaluates one IP correctly (it passes the RFC 7208 suite on its own
emulated DNS), but:

- it is synchronous and resolves through one module-global function over
  dnspython's default resolver (/etc/resolv.conf, port 53). Pointing it at the
  configured resolver and port means replacing process-wide state, or copying its
  private `query.dns` method, and holding a worker thread per evaluation for up to
  its 20 s budget per lookup; noc's collectors are asyncio and share one
  bounded-concurrency query path (`collectors.dns_records.query`) with a timeout
  per exchange;
- it answers only "what does a receiver say for this IP": noc also walks the
  whole record eagerly, past the matching term, to find what breaks for other
  senders (a lookup limit crossed after the match, a void include), and it cannot
  do that walk;
- it is untyped (strict mypy) and its last release is from 2020.

So noc evaluates with this module, and the tests hold it to pyspf and to the RFC
7208 test suite (tests/data/rfc7208-tests.yml, run on a real named). Where RFC
7208 leaves a choice, this follows pyspf (what receivers running it do): every
term's syntax is checked before evaluation (a malformed term after the matching
one is still permerror), every empty answer counts as a void lookup, and an
`include` of the current domain is permerror.

One question per IP: `check_host(ip, domain, sender, helo)` is the receiver's
answer. `walk_all(...)` is the eager walk: every term is evaluated and none
matches, so it answers "what does a sender that matches nothing until the end
get", with every over-broad allowlist found on the way.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import dns.exception
import dns.name
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.nsbase
import dns.rdtypes.txtbase
import dns.reversename

from noc_collectors.dns_records import DnsAnswer

__all__ = [
    "SPF_LOOKUP_LIMIT",
    "SPF_VOID_LIMIT",
    "Lookup",
    "SpfEvaluator",
    "SpfOutcome",
    "SpfResult",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SPF_LOOKUP_LIMIT = 10  # §4.6.4: include, a, mx, ptr, exists, redirect
SPF_VOID_LIMIT = 2  # §4.6.4: lookups answering NXDOMAIN or no records
SPF_MX_LIMIT = 10  # §4.6.4: more MX than this for one mx mechanism is permerror
SPF_PTR_LIMIT = 10  # §4.6.4: only the first 10 PTR names are validated
MAX_DOMAIN_LENGTH = 253  # §7.3: longer expansions lose labels from the left
# Allowlists at least this broad authorize whole providers' networks, not a region.
BROAD_IPV4_PREFIX = 16
BROAD_IPV6_PREFIX = 32


class SpfResult(StrEnum):
    NONE = "none"
    NEUTRAL = "neutral"
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


# (name, rdtype) -> answer; the collector's is fresh per poll and shared by its walks.
Lookup = Callable[[str, str], Awaitable[DnsAnswer]]


@dataclass(frozen=True, slots=True)
class SpfOutcome:
    result: SpfResult
    reason: str  # the matching term (a > b for includes), or what went wrong
    lookups: int  # DNS-querying terms evaluated (the limit is 10)
    broad: tuple[str, ...] = ()  # over-broad allowlists seen (eager walk only)
    notes: tuple[str, ...] = ()  # worth saying, not failing (eager walk only)


class _Stop(Exception):
    """Ends check_host with a temperror or permerror."""

    def __init__(self, result: SpfResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def _perm(reason: str) -> _Stop:
    return _Stop(SpfResult.PERMERROR, reason)


_QUALIFIERS = {
    "+": SpfResult.PASS,
    "-": SpfResult.FAIL,
    "~": SpfResult.SOFTFAIL,
    "?": SpfResult.NEUTRAL,
}
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_DOMAIN_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER = re.compile(r"([a-z][a-z0-9_\-.]*)=(.*)", re.IGNORECASE | re.DOTALL)
_DUAL_CIDR = re.compile(r"//(0|[1-9]\d*)$")
_CIDR = re.compile(r"/(0|[1-9]\d*)$")
_OCTET = r"(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])"
_IP4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# §7.1 macro-expand: "%{" letter *DIGIT ["r"] *delimiter "}", "%%", "%_" or "%-".
_MACRO = re.compile(
    r"%(?:\{(?P<letter>[a-z])(?P<digits>\d*)(?P<r>r?)(?P<delims>[^}]*)\}|(?P<esc>[%_-]))",
    re.IGNORECASE,
)
_DELIMITERS = frozenset(".-+,/_=")
# domain-end (§7.1): "." toplabel ["."], or a macro-expand.
_DOMAIN_END = re.compile(
    r"(?:\.(?:[0-9a-z]*[a-z][0-9a-z]*|[0-9a-z]+-[0-9a-z-]*[0-9a-z])\.?"
    r"|%(?:%|_|-|\{[^}]*\}))$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Mechanism:
    result: SpfResult  # what a match returns
    name: str  # lower case
    target: str  # expanded domain, or the address of ip4/ip6; "" for all
    cidr4: int
    cidr6: int
    text: str  # as written


@dataclass(slots=True)
class _Context:
    ip: IPAddress
    sender: str
    helo: str
    eager: bool
    lookups: int = 0
    voids: int = 0
    validated: list[str] | None = None  # %{p} and ptr: validated PTR names, once
    broad: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def local(self) -> str:
        return self.sender.rpartition("@")[0] or "postmaster"

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]

    def count(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > SPF_LOOKUP_LIMIT:
            raise _perm(f"over {SPF_LOOKUP_LIMIT} DNS lookups (at {term})")


class SpfEvaluator:
    """check_host() for one IP at a time; every DNS question goes through `lookup`."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup

    async def check_host(self, ip: IPAddress, domain: str, sender: str, helo: str) -> SpfOutcome:
        """What a receiver answers for mail from `sender` (HELO `helo`) at `ip`."""
        return await self._run(_Context(_plain(ip), sender, helo, eager=False), domain)

    async def walk_all(self, ip: IPAddress, domain: str, sender: str, helo: str) -> SpfOutcome:
        """The eager walk: every term evaluated, none matching (see the module doc)."""
        return await self._run(_Context(_plain(ip), sender, helo, eager=True), domain)

    async def _run(self, context: _Context, domain: str) -> SpfOutcome:
        domain = domain.rstrip(".").lower()
        try:
            record = await self._record(domain, context)
            if record is None:
                result, reason = SpfResult.NONE, f"no SPF record at {domain}"
            else:
                result, reason = await self._evaluate(record, domain, context, depth=0)
        except _Stop as stop:
            result, reason = stop.result, stop.reason
        return SpfOutcome(
            result, reason, context.lookups, tuple(context.broad), tuple(context.notes)
        )

    async def _query(self, name: str, rdtype: str, context: _Context) -> DnsAnswer:
        """One lookup; an empty answer is void (§4.6.4), a doubtful one a temperror."""
        if not _valid_name(name):
            return DnsAnswer()  # never sent; receivers treat it as no match
        answer = await self._lookup(name, rdtype)
        if answer.error is not None and not answer.error.absent:
            raise _Stop(SpfResult.TEMPERROR, f"{name} {rdtype}: {answer.error}")
        if not answer.records:
            context.voids += 1
            if context.voids > SPF_VOID_LIMIT:
                raise _perm(f"over {SPF_VOID_LIMIT} void DNS lookups (at {name} {rdtype})")
        return answer

    async def _record(self, domain: str, context: _Context) -> str | None:
        """The one SPF record at `domain` (§4.5), None if there is none."""
        if not _valid_name(domain) or "." not in domain:
            return None  # §4.3: a malformed or single-label domain has no policy
        answer = await self._lookup(domain, "TXT")
        if answer.error is not None and not answer.error.absent:
            raise _Stop(SpfResult.TEMPERROR, f"{domain} TXT: {answer.error}")
        texts = [
            b"".join(r.strings)
            for r in answer.records
            if isinstance(r, dns.rdtypes.txtbase.TXTBase)
        ]
        records = [t for t in texts if t.lower() == b"v=spf1" or t.lower().startswith(b"v=spf1 ")]
        if len(records) > 1:
            raise _perm(f"{len(records)} SPF records at {domain}")
        if not records:
            return None
        try:
            return records[0].decode("ascii")
        except UnicodeDecodeError:
            raise _perm(f"non-ASCII SPF record at {domain}") from None

    async def _evaluate(
        self, record: str, domain: str, context: _Context, depth: int
    ) -> tuple[SpfResult, str]:
        mechanisms, redirect = await self._parse(record, domain, context)
        for mechanism in mechanisms:
            matched, via = await self._matches(mechanism, domain, context, depth)
            if matched and not context.eager:
                return mechanism.result, via
        if redirect is not None and not (
            context.eager and any(m.name == "all" for m in mechanisms)
        ):
            context.count(f"redirect={redirect}")
            target = await self._record(redirect, context)
            if target is None:
                raise _perm(f"redirect={redirect}: no SPF record there")
            result, via = await self._evaluate(target, redirect, context, depth + 1)
            return result, f"redirect={redirect} > {via}"
        return SpfResult.NEUTRAL, f"no term of {domain} matches"

    async def _parse(
        self, record: str, domain: str, context: _Context
    ) -> tuple[list[_Mechanism], str | None]:
        """Every term's syntax, before any is evaluated (a later error is still permerror)."""
        mechanisms: list[_Mechanism] = []
        redirect: str | None = None
        seen: set[str] = set()
        # §4.6.1: terms are separated by SP only; a tab or CR is part of a (bad) term.
        for term in record.split(" ")[1:]:
            if not term:
                continue
            if any(not 0x21 <= ord(c) <= 0x7E for c in term):
                raise _perm(f"{term!r} at {domain}: a character no term may hold")
            if modifier := _MODIFIER.fullmatch(term):
                name, value = modifier[1].lower(), modifier[2]
                if name in ("redirect", "exp"):
                    if name in seen:
                        raise _perm(f"two {name}= at {domain}")
                    seen.add(name)
                    if not value:
                        raise _perm(f"{term} at {domain}: empty domain-spec")
                    _check_domain_end(value, term)
                    if name == "redirect":
                        redirect = await self._expand(value, domain, context)
                        if not redirect:
                            raise _perm(f"{term} at {domain}: empty domain")
                    else:
                        # exp= only words a fail; its syntax is all that can break things.
                        _check_macros(value, term, domain_spec=True)
                else:
                    _check_macros(value, term)  # §6: unknown modifiers are ignored
                continue
            mechanisms.append(await self._mechanism(term, domain, context))
        return mechanisms, redirect

    async def _mechanism(self, term: str, domain: str, context: _Context) -> _Mechanism:
        text = term
        result = _QUALIFIERS.get(term[0])
        if result is None:
            result = SpfResult.PASS
        else:
            term = term[1:]
        cidr6: int | None = None
        cidr4: int | None = None
        if dual := _DUAL_CIDR.search(term):
            cidr6, term = int(dual[1]), term[: dual.start()]
        if single := _CIDR.search(term):
            cidr4, term = int(single[1]), term[: single.start()]
        name, colon, argument = term.partition(":")
        name = name.lower()
        if name not in _MECHANISMS:
            raise _perm(f"unknown mechanism {text!r} at {domain}")
        if name == "all":
            if colon or cidr4 is not None or cidr6 is not None:
                raise _perm(f"{text!r} at {domain}: all takes nothing")
            if result is SpfResult.PASS:
                context.broad.append(f"{text} at {domain} authorizes every host")
            elif result is SpfResult.NEUTRAL and context.eager:
                context.notes.append(f"?all at {domain}: other hosts get neutral, not fail")
            return _Mechanism(result, name, "", 0, 0, text)
        if name in ("ip4", "ip6"):
            return self._network(result, name, argument, cidr4, cidr6, text, domain, context)
        if name in ("a", "mx"):
            if (cidr4 or 0) > 32 or (cidr6 or 0) > 128:
                raise _perm(f"{text!r} at {domain}: cidr out of range")
            if result is SpfResult.PASS and (
                (cidr4 is not None and cidr4 < BROAD_IPV4_PREFIX)
                or (cidr6 is not None and cidr6 < BROAD_IPV6_PREFIX)
            ):
                context.broad.append(f"{text} at {domain} is over-broad")
        elif cidr4 is not None or cidr6 is not None:
            raise _perm(f"{text!r} at {domain}: {name} takes no cidr")
        if name == "exists" and not argument:
            raise _perm(f"{text!r} at {domain}: exists needs a domain")
        if colon and not argument:
            raise _perm(f"{text!r} at {domain}: empty domain-spec")
        if name == "a" and _IP4.fullmatch(argument):
            raise _perm(f"{text!r} at {domain}: an address where a domain goes (ip4:)")
        target = domain
        if argument:
            _check_domain_end(argument, text)
            target = await self._expand(argument, domain, context)
            if not target:
                raise _perm(f"{text!r} at {domain}: empty domain")
        if name == "include" and target == domain:
            raise _perm(f"{text!r} at {domain}: includes itself")
        return _Mechanism(result, name, target, 32 if cidr4 is None else cidr4,
                          128 if cidr6 is None else cidr6, text)  # fmt: skip

    @staticmethod
    def _network(
        result: SpfResult,
        name: str,
        argument: str,
        cidr4: int | None,
        cidr6: int | None,
        text: str,
        domain: str,
        context: _Context,
    ) -> _Mechanism:
        if cidr6 is not None:
            raise _perm(f"{text!r} at {domain}: {name} takes one cidr")
        try:
            if name == "ip4":
                if not _IP4.fullmatch(argument) or (cidr4 or 0) > 32:
                    raise ValueError(text)
                address: IPAddress = ipaddress.IPv4Address(argument)
            else:
                # ipaddress reads what RFC 4291 allows (and a trailing v4 part); no zone ids.
                if "%" in argument or (cidr4 or 0) > 128:
                    raise ValueError(text)
                address = ipaddress.IPv6Address(argument)
        except ValueError:
            raise _perm(f"malformed {text!r} at {domain}") from None
        bits = cidr4 if cidr4 is not None else address.max_prefixlen
        network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
        limit = BROAD_IPV4_PREFIX if network.version == 4 else BROAD_IPV6_PREFIX
        if result is SpfResult.PASS and network.prefixlen < limit:
            context.broad.append(f"{text} at {domain} is over-broad")
        return _Mechanism(result, name, str(address), bits, bits, text)

    async def _matches(
        self, mechanism: _Mechanism, domain: str, context: _Context, depth: int
    ) -> tuple[bool, str]:
        ip, text = context.ip, mechanism.text
        match mechanism.name:
            case "all":
                return True, text
            case "ip4" | "ip6":
                network = ipaddress.ip_network(
                    f"{mechanism.target}/{mechanism.cidr4}", strict=False
                )
                return network.version == ip.version and ip in network, text
        context.count(text)
        match mechanism.name:
            case "include":
                record = await self._record(mechanism.target, context)
                if record is None:
                    raise _perm(f"{text} at {domain}: no SPF record at {mechanism.target}")
                inner, via = await self._evaluate(record, mechanism.target, context, depth + 1)
                # §5.2: only an included pass matches; errors end the evaluation.
                return inner is SpfResult.PASS, f"{text} > {via}"
            case "exists":
                answer = await self._query(mechanism.target, "A", context)
                return bool(answer.records), text
            case "a":
                found = await self._addresses(mechanism.target, context)
                return self._within(found, mechanism, ip), text
            case "mx":
                exchanges = (await self._query(mechanism.target, "MX", context)).records
                if len(exchanges) > SPF_MX_LIMIT:
                    raise _perm(f"{text} at {domain}: over {SPF_MX_LIMIT} MX records")
                hosts = sorted(
                    (r.preference, r.exchange.to_text(omit_final_dot=True).lower())
                    for r in exchanges
                    if isinstance(r, dns.rdtypes.ANY.MX.MX)
                )
                for _, host in hosts:
                    if host and self._within(await self._addresses(host, context), mechanism, ip):
                        return True, f"{text} ({host})"
                return False, text
        # ptr (§5.5): a validated name of the IP at or under the target.
        target = mechanism.target
        for name in await self._validated(context):
            if name == target or name.endswith("." + target):
                return True, f"{text} ({name})"
        return False, text

    async def _addresses(self, host: str, context: _Context) -> list[IPAddress]:
        rdtype = "A" if context.ip.version == 4 else "AAAA"
        answer = await self._query(host, rdtype, context)
        return [
            ipaddress.ip_address(r.address)
            for r in answer.records
            if isinstance(r, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
        ]

    @staticmethod
    def _within(found: list[IPAddress], mechanism: _Mechanism, ip: IPAddress) -> bool:
        bits = mechanism.cidr4 if ip.version == 4 else mechanism.cidr6
        return any(
            a.version == ip.version and ip in ipaddress.ip_network(f"{a}/{bits}", strict=False)
            for a in found
        )

    async def _validated(self, context: _Context) -> list[str]:
        """The IP's PTR names that resolve back to it (§5.5), first 10 only, once."""
        if context.validated is None:
            reverse = dns.reversename.from_address(str(context.ip)).to_text(omit_final_dot=True)
            answer = await self._query(reverse, "PTR", context)
            names = [
                r.target.to_text(omit_final_dot=True).lower()
                for r in answer.records
                if isinstance(r, dns.rdtypes.nsbase.NSBase)
            ][:SPF_PTR_LIMIT]
            validated = []
            for name in names:
                try:
                    back = await self._addresses(name, context)
                except _Stop as stop:
                    if stop.result is SpfResult.PERMERROR:
                        raise
                    continue  # §5.5: a DNS error skips that name
                if context.ip in back:
                    validated.append(name)
            context.validated = validated
        return context.validated

    async def _expand(self, spec: str, domain: str, context: _Context) -> str:
        """A domain-spec with its macros expanded (§7), shortened to 253 characters."""
        _check_macros(spec, spec, domain_spec=True)
        parts: list[str] = []
        end = 0
        for macro in _MACRO.finditer(spec):
            parts.append(spec[end : macro.start()])
            end = macro.end()
            if escape := macro["esc"]:
                parts.append({"%": "%", "_": " ", "-": "%20"}[escape])
                continue
            letter = macro["letter"]
            value = await self._macro_value(letter.lower(), domain, context)
            parts.append(_transform(value, macro["digits"], macro["r"], macro["delims"],
                                    escape=letter.isupper()))  # fmt: skip
        parts.append(spec[end:])
        expanded = "".join(parts).rstrip(".")
        while len(expanded) > MAX_DOMAIN_LENGTH and "." in expanded:
            expanded = expanded.partition(".")[2]
        return expanded.lower()

    async def _macro_value(self, letter: str, domain: str, context: _Context) -> str:
        ip = context.ip
        match letter:
            case "s":
                return context.sender
            case "l":
                return context.local
            case "o":
                return context.sender_domain
            case "d":
                return domain
            case "h":
                return context.helo
            case "v":
                return "in-addr" if ip.version == 4 else "ip6"
            case "i":
                if ip.version == 4:
                    return str(ip)
                return ".".join(ip.exploded.replace(":", ""))
            case "p":
                validated = await self._validated(context)
                if domain in validated:
                    return domain
                below = [n for n in validated if n.endswith("." + domain)]
                return (below or validated or ["unknown"])[0]
        # c, r and t belong to exp= text only (§7.2).
        raise _perm(f"%{{{letter}}} is not allowed in a domain-spec")


def _plain(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address is the IPv4 address it maps (§5)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _valid_name(name: str) -> bool:
    """A name DNS can carry: labels of 1 to 63 octets, 253 in all (§4.3)."""
    labels = name.rstrip(".").split(".")
    if not name or any(not 0 < len(label) <= 63 for label in labels):
        return False
    try:
        dns.name.from_text(name)
    except (dns.exception.DNSException, UnicodeError):
        return False
    return True


def _check_domain_end(spec: str, term: str) -> None:
    if not _DOMAIN_END.search(spec):
        raise _perm(f"{term!r}: not a domain-spec (it must end in a top label or a macro)")


def _check_macros(text: str, term: str, *, domain_spec: bool = False) -> None:
    """Every % starts a valid macro-expand (§7.1); c, r and t only in explanation text."""
    position = 0
    while (position := text.find("%", position)) >= 0:
        macro = _MACRO.match(text, position)
        if macro is None:
            raise _perm(f"{term!r}: malformed macro at {text[position : position + 4]!r}")
        if macro["letter"] is not None:
            letters = "slodiphv" if domain_spec else "slodiphcrtv"
            if macro["letter"].lower() not in letters:
                raise _perm(f"{term!r}: unknown macro letter {macro['letter']!r}")
            if not set(macro["delims"]) <= _DELIMITERS:
                raise _perm(f"{term!r}: bad macro delimiter in {macro[0]!r}")
            if macro["digits"] and int(macro["digits"]) == 0:
                raise _perm(f"{term!r}: a macro keeps at least one part ({macro[0]!r})")
        position = macro.end()


def _transform(value: str, digits: str, reverse: str, delimiters: str, *, escape: bool) -> str:
    """§7.3: split on the delimiters, maybe reverse, keep the rightmost parts, join by dots."""
    if digits or reverse or delimiters:
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits) :]
        value = ".".join(parts)
    # Upper-case macro letters are URL-escaped (§7.3): for exists lookups of odd senders.
    return urllib.parse.quote(value, safe="~") if escape else value
