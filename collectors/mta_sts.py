"""MTA-STS (RFC 8461) and DANE TLSA (RFC 7672) as a sender sees them.

- The policy: the `_mta-sts.<domain>` TXT record (`v=STSv1; id=...`) says one exists,
  and `https://mta-sts.<domain>/.well-known/mta-sts.txt` holds it (`version`, `mode`,
  `mx` patterns, `max_age`). The fetch follows no redirects (RFC 8461 3.3) and is
  bounded in size.
- The live MX set: the domain's MX records, which the policy must cover.
- DANE: each MX host's `_25._tcp.<host>` TLSA records, compared with the certificate
  the host presents after STARTTLS (read with aiosmtplib). DNSSEC validation is the
  sending resolver's job; noc reads the records as published, to see whether the
  target's certificate would match them after a failover.

`tlsa_matches` takes the certificate chain as DER: the SMTP probe's reading can feed
it as well as `presented_chain` here.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiosmtplib
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.TLSA
import dns.rdtypes.IN.A
import dns.rdtypes.txtbase
import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from noc.clock import Clock
from noc.model import MtaStsSample, TlsaCheck, mx_matches
from noc_collectors.dns_records import ResolverAddress, query

__all__ = [
    "POLICY_BODY_LIMIT",
    "MtaStsCollector",
    "MtaStsPolicy",
    "mx_matches",
    "parse_policy",
    "parse_sts_txt",
    "presented_chain",
    "tlsa_matches",
]

# RFC 8461 3.3: senders may limit a policy's size; 64 KiB is the common cap.
POLICY_BODY_LIMIT = 64 * 1024
_DETAIL_LIMIT = 160


@dataclass(frozen=True, slots=True)
class MtaStsPolicy:
    version: str
    mode: str
    mx: tuple[str, ...]
    max_age: int | None


def parse_sts_txt(texts: Sequence[str]) -> str | None:
    """The policy id of the one `v=STSv1` TXT record; ValueError when it is malformed
    or there are several (RFC 8461 3.1: then the domain has no usable policy)."""
    records = [t for t in texts if t.strip().startswith("v=STSv1")]
    if not records:
        return None
    if len(records) > 1:
        raise ValueError(f"{len(records)} v=STSv1 TXT records: senders ignore them all")
    fields = dict(
        part.strip().partition("=")[::2] for part in records[0].split(";") if part.strip()
    )
    policy_id = fields.get("id", "").strip()
    if not policy_id or not policy_id.isalnum() or len(policy_id) > 32:
        raise ValueError(f"TXT {records[0]!r}: id must be 1-32 letters and digits")
    return policy_id


def parse_policy(text: str) -> MtaStsPolicy:
    """The policy file's fields; ValueError names what is missing or wrong."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip().lower(), []).append(value.strip())
    version = (fields.get("version") or [""])[0]
    if version != "STSv1":
        raise ValueError(f"version {version or 'missing'}, not STSv1")
    mode = (fields.get("mode") or [""])[0].lower()
    if mode not in ("enforce", "testing", "none"):
        raise ValueError(f"mode {mode or 'missing'}: expected enforce, testing or none")
    max_age_text = (fields.get("max_age") or [""])[0]
    max_age = int(max_age_text) if max_age_text.isdigit() else None
    mx = tuple(p.lower().rstrip(".") for p in fields.get("mx", []) if p)
    if mode != "none" and not mx:
        raise ValueError(f"mode {mode} with no mx: line")
    return MtaStsPolicy(version, mode, mx, max_age)


def tlsa_matches(records: Sequence[str], chain_der: Sequence[bytes]) -> tuple[bool | None, str]:
    """Whether any TLSA record (as text: "3 1 1 <hex>") matches the presented chain:
    None when it cannot be known here.

    DANE-EE (3) is held to the leaf, DANE-TA (2) to any certificate of the chain;
    PKIX usages (0, 1) to any too (their path validation is the SMTP probe's). A chain
    of the leaf alone (Python before 3.13 gives no more of a verified-or-not session)
    cannot refute a record that names a certificate above the leaf: unknown, not a
    mismatch that would refuse a good failover."""
    if not chain_der:
        return False, "no certificate presented"
    above_leaf_unseen = len(chain_der) == 1
    unknowable = False
    seen: list[str] = []
    for record in records:
        parts = record.split()
        if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
            seen.append(f"{record!r} unreadable")
            continue
        usage, selector, matching = (int(p) for p in parts[:3])
        want = "".join(parts[3:]).lower()
        candidates = chain_der[:1] if usage == 3 else chain_der
        for der in candidates:
            if _association(der, selector, matching) == want:
                return True, f"TLSA {usage} {selector} {matching} matches the certificate"
        seen.append(f"{usage} {selector} {matching} {want[:16]}…")
        unknowable = unknowable or (usage in (0, 2) and above_leaf_unseen)
    if unknowable:
        return None, (
            "a TLSA record names a CA certificate, and only the leaf was readable: "
            "not judged (" + "; ".join(seen) + ")"
        )
    return False, "no TLSA record matches the certificate presented: " + "; ".join(seen)


def _association(der: bytes, selector: int, matching: int) -> str | None:
    if selector == 0:
        data = der
    elif selector == 1:
        cert = x509.load_der_x509_certificate(der)
        data = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:
        return None
    if matching == 0:
        return data.hex()
    if matching == 1:
        return hashlib.sha256(data).hexdigest()
    if matching == 2:
        return hashlib.sha512(data).hexdigest()
    return None


async def presented_chain(
    address: str, port: int, server_name: str, timeout_seconds: float
) -> tuple[bytes, ...]:
    """The certificate chain (DER, leaf first) an SMTP server presents after STARTTLS.

    Nothing is validated here: DANE judges the certificate by its TLSA records, not by
    a CA, and a chain that fails PKIX may still be exactly what DANE expects."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = aiosmtplib.SMTP(
        hostname=address,
        port=port,
        timeout=timeout_seconds,
        start_tls=False,
        use_tls=False,
        tls_context=context,
    )
    async with asyncio.timeout(timeout_seconds):
        await client.connect()
        try:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise ConnectionError("STARTTLS not offered")
            await client.starttls(tls_context=context, server_hostname=server_name)
            transport = client.transport
            tls = transport.get_extra_info("ssl_object") if transport is not None else None
            if tls is None:
                raise ConnectionError("no TLS session after STARTTLS")
            chain = _chain(tls)
        finally:
            client.close()
    return chain


def _chain(tls: ssl.SSLObject) -> tuple[bytes, ...]:
    # Python 3.13 gives the whole chain; earlier, the leaf is what the API offers.
    getter = getattr(tls, "get_unverified_chain", None)
    if getter is not None:
        chain = getter() or []
        return tuple(c if isinstance(c, bytes) else c.public_bytes() for c in chain)
    leaf = tls.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


class MtaStsCollector:
    """Reads one domain's MTA-STS policy, MX set and TLSA records; never raises."""

    def __init__(
        self,
        resolver: ResolverAddress,
        clock: Clock,
        *,
        policy_url: str | None = None,
        ca_file: str | None = None,
        timeout_seconds: float = 2.0,
    ) -> None:
        self._resolver = resolver
        self._clock = clock
        self._policy_url = policy_url
        self._ca_file = ca_file
        self._timeout = timeout_seconds

    async def check(self, domain: str, mx_hosts: Mapping[str, int]) -> MtaStsSample:
        """The policy of `domain`, its live MX set, and DANE for each of `mx_hosts`
        (the regions' MX hosts, with the port each takes SMTP on)."""
        domain = domain.lower().rstrip(".")
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        policy, policy_id, error = None, None, None
        live, tlsa = await asyncio.gather(
            self._live_mx(domain),
            asyncio.gather(*(self._tlsa(host, port) for host, port in mx_hosts.items())),
        )
        try:
            policy_id = parse_sts_txt(await self._texts(f"_mta-sts.{domain}"))
            if policy_id is not None:
                policy = parse_policy(await self._fetch_policy(domain))
        except (ValueError, OSError, httpx.HTTPError, httpx.InvalidURL) as exc:
            error = _tidy(f"MTA-STS policy of {domain}: {exc or type(exc).__name__}")
        return MtaStsSample(
            domain=domain,
            at=at,
            wall=wall,
            policy_id=policy_id,
            mode=policy.mode if policy else None,
            mx_patterns=policy.mx if policy else (),
            live_mx=live,
            tlsa=tuple(tlsa),
            error=error,
        )

    async def _texts(self, name: str) -> list[str]:
        answer = await query(self._resolver, name, "TXT", self._timeout)
        if answer.error is not None:
            if answer.error.absent:
                return []
            raise ValueError(f"TXT {name}: {answer.error}")
        return [
            b"".join(r.strings).decode("utf-8", "replace")
            for r in answer.records
            if isinstance(r, dns.rdtypes.txtbase.TXTBase)
        ]

    async def _fetch_policy(self, domain: str) -> str:
        url = self._policy_url or f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
        verify: ssl.SSLContext | bool = True
        if self._ca_file:
            # Loading a CA file is blocking file I/O: off the loop.
            verify = await asyncio.to_thread(ssl.create_default_context, cafile=self._ca_file)
        async with (
            httpx.AsyncClient(
                verify=verify, timeout=self._timeout, follow_redirects=False
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"{url}: HTTP {response.status_code} (redirects are not followed)")
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > POLICY_BODY_LIMIT:
                    raise ValueError(f"{url}: policy over {POLICY_BODY_LIMIT // 1024} KiB")
        return received.decode("utf-8", "replace")

    async def _live_mx(self, domain: str) -> tuple[str, ...]:
        answer = await query(self._resolver, domain, "MX", self._timeout)
        hosts = {
            r.exchange.to_text(omit_final_dot=True).lower()
            for r in answer.records
            if isinstance(r, dns.rdtypes.ANY.MX.MX)
        }
        return tuple(sorted(hosts))

    async def _tlsa(self, host: str, port: int) -> TlsaCheck:
        key = host.lower().rstrip(".")
        answer = await query(self._resolver, f"_25._tcp.{key}", "TLSA", self._timeout)
        if answer.error is not None and not answer.error.absent:
            return TlsaCheck(key, (), None, f"TLSA unknown: {answer.error}")
        records = tuple(
            r.to_text() for r in answer.records if isinstance(r, dns.rdtypes.ANY.TLSA.TLSA)
        )
        if not records:
            return TlsaCheck(key, (), None, "no TLSA records: DANE does not apply")
        addresses = await query(self._resolver, key, "A", self._timeout)
        ips = [r.address for r in addresses.records if isinstance(r, dns.rdtypes.IN.A.A)]
        if not ips:
            return TlsaCheck(key, records, None, f"{key} has no address to read its certificate")
        try:
            chain = await presented_chain(ips[0], port, key, self._timeout)
        except (OSError, TimeoutError, aiosmtplib.SMTPException, ssl.SSLError) as exc:
            why = _tidy(str(exc) or type(exc).__name__)
            return TlsaCheck(key, records, None, f"certificate of {key} unreadable: {why}")
        matches, reason = tlsa_matches(records, chain)
        return TlsaCheck(key, records, matches, reason)


def _tidy(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_LIMIT else line[: _DETAIL_LIMIT - 1] + "…"
