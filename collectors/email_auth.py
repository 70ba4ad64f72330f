"""Authentication alignment per region: would mail sent from each region pass SPF, DKIM,
DMARC and forward-confirmed reverse DNS, as DNS says right now?

SPF is RFC 7208's check_host() (collectors.spf, which says why it is ours and not
pyspf's), asked once per sending IP: "would a receiver pass mail from this IP?".
The sender it asks about is `postmaster@<domain>` and the HELO name `<domain>`
(both constructor arguments): they matter only to records with %{s} %{l} %{o} %{h}
macros. A region's SPF is ok when every IP passes and the record has no
over-broad allowlist (`+all`, ip4 shorter than /16, ip6 shorter than /32, or an
a/mx cidr as wide): an over-broad record authorizes the world, so it is a finding
even though the region "passes".

noc also walks every record eagerly (collectors.spf.SpfEvaluator.walk_all), past
the term that matched, to find what breaks for senders that match later: a lookup
limit crossed after the match, a void include. A receiver would still pass the
region's IP, so that is never "fails" or "permerror" for the region: the check
stays ok with a warning, "passes for this IP, fragile: other senders get
permerror (...)". `?all` is reported in the reason without failing the check.

DMARC is ok when exactly one `v=DMARC1` record with a valid `p=` exists at
`_dmarc.<domain>` (no organizational-domain fallback). DKIM is ok when every
selector publishes a non-empty `p=`. PTR is ok when every sending IP has a PTR
whose name resolves back to it (FCrDNS).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.nsbase
import dns.rdtypes.txtbase
import dns.reversename
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from publicsuffixlist import PublicSuffixList

from noc_collectors.dns_records import DnsAnswer, ResolverAddress, query
from noc_collectors.spf import SPF_LOOKUP_LIMIT, Lookup, SpfEvaluator, SpfResult
from noc.clock import Clock, SystemClock
from noc.model import AuthCheck, DmarcCheck, DnsError, EmailAuthSample, PtrCheck, PtrResult

__all__ = ["SPF_LOOKUP_LIMIT", "EmailAuthCollector"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DMARC_POLICIES = ("none", "quarantine", "reject")
_DMARC_START = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")
# An eager walk ending in one of these: a sender matching later would not pass.
_ERRORS = (SpfResult.PERMERROR, SpfResult.TEMPERROR)


class EmailAuthCollector:
    """Checks one sending domain through one resolver; fresh queries every call."""

    def __init__(
        self,
        resolver: ResolverAddress,
        clock: Clock | None = None,
        *,
        timeout_seconds: float = 2.0,
        max_in_flight: int = 8,
        spf_sender: str = "",
        spf_helo: str = "",
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._resolver = resolver
        self._clock = clock or SystemClock()
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(max_in_flight)
        # SPF asks about mail from this sender and HELO name (default: postmaster@<domain>
        # and <domain>); they change only records with %{s} %{l} %{o} %{h} macros.
        self._sender = spf_sender
        self._helo = spf_helo

    async def check(
        self,
        domain: str,
        sending_ips: Mapping[str, Sequence[str]],
        dkim_selectors: Sequence[str],
    ) -> tuple[EmailAuthSample, ...]:
        """One sample per region of `sending_ips` (region -> IPs), in its order."""
        domain = domain.strip().rstrip(".").lower()
        addresses = {region: _parse_ips(ips) for region, ips in sending_ips.items()}
        all_ips = sorted({text for ips in sending_ips.values() for text in ips})
        lookup = self._memo()
        spf_checks, dmarc, dkim, ptrs = await asyncio.gather(
            asyncio.gather(*(self._spf(domain, ips, lookup) for ips in addresses.values())),
            self._dmarc(domain),
            self._dkim(domain, dkim_selectors),
            asyncio.gather(*(self._ptr(text) for text in all_ips)),
        )
        ptr_by_ip = dict(zip(all_ips, ptrs, strict=True))
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        return tuple(
            EmailAuthSample(
                region=region,
                at=at,
                wall=wall,
                spf=spf,
                dkim=dkim,
                dmarc=dmarc,
                ptr=_ptr_verdict([ptr_by_ip[text] for text in sending_ips[region]]),
            )
            for region, spf in zip(addresses, spf_checks, strict=True)
        )

    async def _query(self, name: str | dns.name.Name, rdtype: str) -> DnsAnswer:
        async with self._slots:
            return await query(self._resolver, name, rdtype, self._timeout)

    def _memo(self) -> Lookup:
        """Fresh answers for this poll, each asked once however many walks need it."""
        answers: dict[tuple[str, str], asyncio.Task[DnsAnswer]] = {}

        async def lookup(name: str, rdtype: str) -> DnsAnswer:
            key = (name.lower().rstrip("."), rdtype)
            if key not in answers:
                answers[key] = asyncio.ensure_future(self._query(key[0], rdtype))
            return await answers[key]

        return lookup

    async def _txt(self, name: str) -> tuple[list[str], DnsError | None]:
        answer = await self._query(name, "TXT")
        # One TXT record may be split into several strings: they join with nothing between.
        texts = [
            b"".join(r.strings).decode("utf-8", "replace")
            for r in answer.records
            if isinstance(r, dns.rdtypes.txtbase.TXTBase)
        ]
        return texts, answer.error

    # SPF

    async def _spf(
        self, domain: str, ips: list[tuple[IPAddress | None, str]], lookup: Lookup
    ) -> AuthCheck:
        """One region's verdict: the receiver's answer per IP, then the eager walk."""
        if not ips:
            return AuthCheck(None, "no sending IPs configured")
        evaluator = SpfEvaluator(lookup)
        sender = self._sender or f"postmaster@{domain}"
        helo = self._helo or domain
        problems: list[str] = []
        doubts: list[str] = []
        fragile: list[str] = []
        broad: list[str] = []
        notes: list[str] = []
        lookups = 0
        for ip, text in ips:
            if ip is None:
                doubts.append(f"{text} is not an IP address")
                continue
            outcome = await evaluator.check_host(ip, domain, sender, helo)
            match outcome.result:
                case SpfResult.PASS:
                    pass
                case SpfResult.TEMPERROR:  # a DNS doubt: the truth is unknown
                    doubts.append(outcome.reason)
                case SpfResult.PERMERROR:  # every receiver rejects the record
                    problems.append(f"permerror: {outcome.reason}")
                case SpfResult.NONE:
                    problems.append(outcome.reason)
                case _:
                    problems.append(f"{text} not authorized: {outcome.result} ({outcome.reason})")
            walk = await evaluator.walk_all(ip, domain, sender, helo)
            lookups = max(lookups, walk.lookups)
            broad += [b for b in walk.broad if b not in broad]
            notes += [n for n in walk.notes if n not in notes]
            if outcome.result is SpfResult.PASS and walk.result in _ERRORS:
                fragile.append(f"{walk.result} ({walk.reason})")
        problems = _unique(problems) + broad
        if problems:
            return AuthCheck(False, "; ".join(problems + notes))
        if doubts:
            return AuthCheck(None, "; ".join(_unique(doubts) + notes))
        authorized = f"authorizes {', '.join(t for _, t in ips)} ({lookups} DNS lookups)"
        warning = ""
        if fragile:
            # A receiver passes the region: never "fails", but worth a look.
            warning = "passes for this IP, fragile: other senders get " + "; ".join(
                _unique(fragile)
            )
        reason = "; ".join([authorized, *([warning] if warning else []), *notes])
        return AuthCheck(True, reason, warning)

    # DMARC and DKIM

    async def _dmarc(self, domain: str) -> DmarcCheck:
        own = await self._dmarc_record(domain)
        if not isinstance(own, _Absent):
            return own
        # RFC 7489 6.6.3: no record at the domain itself; its organizational domain's
        # record applies, with sp= for subdomains.
        organization = organizational_domain(domain)
        if organization == domain:
            return DmarcCheck(False, own.reason)
        found = await self._dmarc_record(organization, subdomain=True)
        if isinstance(found, _Absent):
            return DmarcCheck(False, f"{own.reason} nor at _dmarc.{organization}")
        if found.ok:
            return DmarcCheck(True, f"{found.reason} (from _dmarc.{organization})", found.policy)
        return found

    async def _dmarc_record(self, domain: str, *, subdomain: bool = False) -> DmarcCheck | _Absent:
        name = f"_dmarc.{domain}"
        texts, error = await self._txt(name)
        if error is not None and not error.absent:
            return DmarcCheck(None, f"{name} TXT: {error}")
        records = [t for t in texts if _DMARC_START.match(t)]
        if not records:
            return _Absent(f"no DMARC record at {name}")
        if len(records) > 1:
            return DmarcCheck(
                False, f"{len(records)} DMARC records at {name}: receivers ignore all"
            )
        tags = dmarc_tags(records[0])
        if isinstance(tags, str):
            return DmarcCheck(False, f"invalid DMARC record at {name}: {tags}")
        policy = tags["p"].lower()
        if subdomain and "sp" in tags:
            policy = tags["sp"].lower()
        details = [f"p={tags['p'].lower()}"]
        if "sp" in tags:
            details.append(f"sp={tags['sp'].lower()}")
        if tags.get("pct", "100") != "100":
            details.append(f"pct={tags['pct']}")
        return DmarcCheck(True, ", ".join(details), policy)

    async def _dkim(self, domain: str, selectors: Sequence[str]) -> AuthCheck:
        if not selectors:
            return AuthCheck(None, "no DKIM selectors configured")
        found = await asyncio.gather(*(self._dkim_key(s, domain) for s in selectors))
        return AuthCheck(*_combine(found, f"{len(found)} selector(s) publish a key"))

    async def _dkim_key(self, selector: str, domain: str) -> tuple[bool | None, str]:
        name = f"{selector}._domainkey.{domain}"
        texts, error = await self._txt(name)
        if error is not None and not error.absent:
            return None, f"{selector}: {error}"
        keys = [t for t in texts if "p" in _tags(t)]
        if not keys:
            return False, f"{selector}: no DKIM key at {name}"
        if len(keys) > 1:
            return False, f"{selector}: {len(keys)} key records at {name}, ambiguous"
        ok, reason = judge_dkim_key(keys[0])
        return ok, f"{selector}: {reason}"

    # PTR

    async def _ptr(self, text: str) -> PtrResult:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return PtrResult(text, None, "not an IP address")
        answer = await self._query(dns.reversename.from_address(str(ip)), "PTR")
        if answer.error is not None:
            if answer.error.absent:
                return PtrResult(text, False, "no PTR record")
            return PtrResult(text, None, f"PTR: {answer.error}")
        names = tuple(
            sorted(
                r.target.to_text(omit_final_dot=True).lower()
                for r in answer.records
                if isinstance(r, dns.rdtypes.nsbase.NSBase)
            )
        )
        rdtype = "A" if ip.version == 4 else "AAAA"
        findings: list[tuple[bool | None, str]] = []
        for name in names:
            forward = await self._query(name, rdtype)
            if forward.error is not None:
                ok = False if forward.error.absent else None
                findings.append((ok, f"{name} {rdtype}: {forward.error}"))
                continue
            back = [
                ipaddress.ip_address(r.address)
                for r in forward.records
                if isinstance(r, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
            ]
            if ip in back:
                return PtrResult(text, True, f"{name} resolves back to {ip}", names)
            listed = ", ".join(str(a) for a in back)
            findings.append((False, f"{name} resolves to {listed}, not {ip}"))
        doubtful = any(ok is None for ok, _ in findings)
        return PtrResult(
            text, None if doubtful else False, "; ".join(r for _, r in findings), names
        )


def _parse_ips(texts: Sequence[str]) -> list[tuple[IPAddress | None, str]]:
    parsed: list[tuple[IPAddress | None, str]] = []
    for text in texts:
        try:
            parsed.append((ipaddress.ip_address(text), text))
        except ValueError:
            parsed.append((None, text))
    return parsed


@dataclass(frozen=True, slots=True)
class _Absent:
    reason: str


_DMARC_TAGS = frozenset({"v", "p", "sp", "pct", "rua", "ruf", "adkim", "aspf", "fo", "ri", "rf"})
_MAILTO = re.compile(r"mailto:[^@\s,!]+@[^@\s,!]+\.[^@\s,!]+(?:![0-9]+[kmgt]?)?", re.IGNORECASE)
_FO = frozenset({"0", "1", "d", "s"})
_public_suffixes: PublicSuffixList | None = None


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the public suffix plus one label, from the Public Suffix List."""
    global _public_suffixes  # loaded once: parsing the list takes ~50 ms
    if _public_suffixes is None:
        _public_suffixes = PublicSuffixList()
    return _public_suffixes.privatesuffix(domain) or domain


def dmarc_tags(record: str) -> dict[str, str] | str:
    """The tags of a DMARC record (RFC 7489 6.3), or what makes it invalid."""
    tags: dict[str, str] = {}
    for position, part in enumerate(record.split(";")):
        if not part.strip():
            continue
        key, equals, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not equals:
            return f"{part.strip()!r} is not tag=value"
        if position == 0 and (key != "v" or value != "DMARC1"):
            return "v=DMARC1 must come first"
        if key in tags:
            return f"{key}= appears twice"
        tags[key] = value
    lowered = {k: v.lower() for k, v in tags.items()}
    problems = [
        f"p={tags.get('p', '')!r} is not none, quarantine or reject"
        if lowered.get("p") not in DMARC_POLICIES else "",
        f"sp={tags['sp']!r} is not none, quarantine or reject"
        if "sp" in tags and lowered["sp"] not in DMARC_POLICIES else "",
        f"pct={tags['pct']!r} is not 0 to 100"
        if "pct" in tags and not (tags["pct"].isdigit() and int(tags["pct"]) <= 100) else "",
        *(f"{tag}={tags[tag]!r} is not r or s"
          for tag in ("adkim", "aspf") if tag in tags and lowered[tag] not in ("r", "s")),
        *(f"{tag}= needs mailto: URIs ({tags[tag]!r})"
          for tag in ("rua", "ruf")
          if tag in tags and not all(_MAILTO.fullmatch(u.strip()) for u in tags[tag].split(","))),
        f"fo={tags['fo']!r} is not a :-list of 0, 1, d, s"
        if "fo" in tags and not set(lowered["fo"].replace(" ", "").split(":")) <= _FO else "",
        f"ri={tags['ri']!r} is not a number of seconds"
        if "ri" in tags and not (tags["ri"].isdigit() and int(tags["ri"]) < 2**32) else "",
        f"rf={tags['rf']!r} is not afrf"
        if "rf" in tags and not all(f.strip() == "afrf" for f in lowered["rf"].split(":")) else "",
    ]  # fmt: skip
    problems = [p for p in problems if p]
    if problems:
        return "; ".join(problems)
    return tags


def judge_dkim_key(record: str) -> tuple[bool, str]:
    """Could a verifier use this key record (RFC 6376 3.6.1, RFC 8463, RFC 8301)?"""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        if not part.strip():
            continue
        key, equals, value = part.partition("=")
        key = key.strip().lower()
        if not equals or key in tags:
            return False, f"key record is not a tag=value list ({part.strip()!r})"
        tags[key] = "".join(value.split())
    if tags.get("v", "DKIM1") != "DKIM1":
        return False, f"v={tags['v']}: only DKIM1 is a DKIM key"
    kind = tags.get("k", "rsa").lower()
    if kind not in ("rsa", "ed25519"):
        return False, f"k={kind}: not a DKIM key type (rsa or ed25519)"
    data = tags.get("p", "")
    if not data:
        return False, "key revoked (empty p=)"
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False, "p= is not base64"
    if kind == "ed25519":
        if len(raw) != 32:
            return False, f"k=ed25519 but p= holds {len(raw)} bytes, not 32"
        return True, "ed25519 key published"
    try:
        public = serialization.load_der_public_key(raw)
    except ValueError:
        try:  # dkimpy also takes a bare PKCS#1 RSAPublicKey
            public = serialization.load_pem_public_key(
                b"-----BEGIN RSA PUBLIC KEY-----\n"
                + base64.encodebytes(raw)
                + b"-----END RSA PUBLIC KEY-----\n"
            )
        except ValueError:
            return False, "p= is not a whole RSA key (cut by a TXT split?)"
    if not isinstance(public, rsa.RSAPublicKey):
        return False, "k=rsa but p= is not an RSA key"
    if public.key_size < 1024:
        return False, f"RSA key of {public.key_size} bits: verifiers reject under 1024 (RFC 8301)"
    return True, f"{public.key_size}-bit RSA key published"


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _ptr_verdict(results: list[PtrResult]) -> PtrCheck:
    if not results:
        return PtrCheck(None, "no sending IPs configured")
    ok, reason = _combine(
        [(r.ok, f"{r.ip}: {r.reason}") for r in results],
        f"{len(results)} IP(s) forward-confirmed",
    )
    return PtrCheck(ok, reason, tuple(results))


def _combine(findings: Sequence[tuple[bool | None, str]], all_ok: str) -> tuple[bool | None, str]:
    """False naming every failure; else None naming every doubt; else True."""
    for wanted in (False, None):
        hits = [reason for ok, reason in findings if ok is wanted]
        if hits:
            return wanted, "; ".join(hits)
    return True, all_ok


def _tags(text: str) -> dict[str, str]:
    """The `tag=value;` list of a DMARC or DKIM record (RFC 6376 §3.2); first one wins."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, equals, value = part.partition("=")
        if equals:
            tags.setdefault(key.strip().lower(), value.strip())
    return tags
