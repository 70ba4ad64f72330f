"""DNS addresses and answers as text: what configuration and the engine need of DNS.

Free of dnspython, so that reading a configuration or judging which region the
answers point at costs no DNS library import (`noc check` on an estate without
[dns] never loads it). noc_collectors.dns_records re-exports all of it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

__all__ = [
    "ResolverAddress",
    "answer_target",
    "map_answers_to_region",
    "parse_resolver",
    "split_host_port",
]


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
