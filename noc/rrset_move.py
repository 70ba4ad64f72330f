"""What a failover does to one RRset: the source region's values out, the target's in.

Pure functions over answer texts ("192.0.2.10", "10 mx.ro.example.com"), so the plan,
its preview and the property tests all compute the same thing.

An RRset is shared: beside the active region's values it may hold a backup MX, a
third party's address, another region's values. A failover replaces only the
source's values and keeps every other record as it is:

- A and AAAA: the source's addresses are removed and the target's added (an address
  of both stays). Round trip: failing back after a failover gives back the RRset
  exactly when it held every address of the source and none of the target.
- MX: the target's exchange takes every preference the source's held, and when the
  target was already a backup (`10 mx.ro`, `20 mx.bg`), the source's exchange takes
  the target's old preference: the two swap places (`10 mx.bg`, `20 mx.ro`). When
  the target's exchange already comes first, the RRset has moved already and stays
  as it is (so a repeated action never swaps it back).
  Why a swap rather than deleting the target's old backup entry: nothing would
  remember it, so the failback could not put it back (the zone would lose its
  backup exchange for good, as it did before); and a backup entry for the failed
  region is harmless (senders try it only when the new primary does not answer,
  and queue when it is down too), while it is ready again the moment the region
  returns. Swapping twice is the identity, so failover then failback gives back
  the RRset exactly whenever the source's exchange came first and the two shared
  no preference. When they shared one (`10 mx.ro`, `10 mx.bg`) the target keeps it
  alone.
- When the RRset holds nothing of the source, nothing is taken out: the target's
  values are added if they are not there yet (an absent RRset is created), so a
  repeated or resumed action changes nothing the second time.

Values are compared as DNS compares them (names case-insensitive, with or without
the final dot; addresses by value); duplicates count once. A value noc cannot parse
belongs to no region and is kept verbatim.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import ip_address

from noc.model import FailoverRecordType

__all__ = [
    "DEFAULT_MX_PREFERENCE",
    "belongs",
    "host_key",
    "moved_values",
    "order_values",
    "value_key",
]

# The preference of an exchange added to an MX RRset that has none to take over.
DEFAULT_MX_PREFERENCE = 10


def moved_values(
    rtype: FailoverRecordType,
    current: Iterable[str],
    source: Iterable[str],
    target: Iterable[str],
) -> tuple[str, ...]:
    """The RRset after moving it from `source` to `target`, in noc's order.

    `source` and `target` are the regions' values for this type: addresses for A and
    AAAA, exchange host names (no preference) for MX.
    """
    if rtype is FailoverRecordType.MX:
        return _moved_exchanges(current, source, target)
    return _moved_addresses(rtype, current, source, target)


def _moved_addresses(
    rtype: FailoverRecordType, current: Iterable[str], source: Iterable[str], target: Iterable[str]
) -> tuple[str, ...]:
    leaving = {value_key(rtype, v) for v in source}
    kept = _unique(rtype, (v for v in current if value_key(rtype, v) not in leaving))
    have = {value_key(rtype, v) for v in kept}
    added = [v for v in _unique(rtype, target) if value_key(rtype, v) not in have]
    return order_values(rtype, [*kept, *added])


def _moved_exchanges(
    current: Iterable[str], source: Iterable[str], target: Iterable[str]
) -> tuple[str, ...]:
    rtype = FailoverRecordType.MX
    source_hosts = {host_key(h) for h in source}
    target_hosts = sorted({host_key(h) for h in target})
    entries = _unique(rtype, current)
    source_prefs: set[int] = set()
    target_prefs: set[int] = set()
    others: list[str] = []
    for value in entries:
        parsed = _exchange(value)
        if parsed is not None and parsed[1] in source_hosts:
            source_prefs.add(parsed[0])
        elif parsed is not None and parsed[1] in target_hosts:
            target_prefs.add(parsed[0])
        else:
            others.append(value)
    if not source_prefs or (target_prefs and min(target_prefs) < min(source_prefs)):
        # Nothing of the source's, or the target already comes first: moved already.
        # (Swapping again would send the mail back to the source.)
        if target_prefs or not target_hosts:
            return order_values(rtype, entries)
        best = min(
            (p[0] for p in map(_exchange, entries) if p is not None),
            default=DEFAULT_MX_PREFERENCE,
        )
        return order_values(rtype, [*entries, *(f"{best} {h}" for h in target_hosts)])
    moved = [f"{p} {h}" for p in source_prefs for h in target_hosts]
    # The swap: the source's exchange takes the target's former backup preferences.
    swapped = [f"{p} {h}" for p in target_prefs - source_prefs for h in sorted(source_hosts)]
    return order_values(rtype, [*others, *moved, *swapped])


def value_key(rtype: FailoverRecordType, value: str) -> str:
    """The form two values are compared in: equal keys are the same record."""
    text = value.strip()
    if rtype is FailoverRecordType.MX:
        parsed = _exchange(text)
        return f"{parsed[0]} {parsed[1]}" if parsed is not None else text
    if rtype in (FailoverRecordType.A, FailoverRecordType.AAAA):
        try:
            return str(ip_address(text))
        except ValueError:
            return text
    return host_key(text)


def host_key(host: str) -> str:
    """A host name as DNS compares it: case-insensitive, without the final dot."""
    return host.strip().rstrip(".").lower()


def order_values(rtype: FailoverRecordType, values: Iterable[str]) -> tuple[str, ...]:
    """Unique values in noc's order: by preference, then address or name."""
    return tuple(sorted(_unique(rtype, values), key=_sort_key))


def _unique(rtype: FailoverRecordType, values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value_key(rtype, value) for value in values))


def _exchange(value: str) -> tuple[int, str] | None:
    preference, _, host = value.strip().partition(" ")
    if not preference.isdigit() or not host.strip() or len(host.split()) != 1:
        return None
    return int(preference), host_key(host)


def _sort_key(value: str) -> tuple[int, int, str]:
    parsed = _exchange(value)
    if parsed is not None:
        return parsed[0], 0, parsed[1]
    try:
        address = ip_address(value)
    except ValueError:
        return 0, 1, value
    return 0, 0, f"{address.version}:{int(address):040d}"


def belongs(rtype: FailoverRecordType, value: str, region_values: Sequence[str]) -> bool:
    """Whether `value` is one of a region's values (an MX by its exchange alone)."""
    if rtype is FailoverRecordType.MX:
        parsed = _exchange(value)
        return parsed is not None and parsed[1] in {host_key(h) for h in region_values}
    return value_key(rtype, value) in {value_key(rtype, v) for v in region_values}
