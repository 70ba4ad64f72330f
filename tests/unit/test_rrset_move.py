"""Properties of `moved_values`, the pure rule behind every DNS change of a failover.

Generated RRsets hold the source's values, the target's, foreign ones (a third
party's, a hijack), duplicates and the same value written differently (case, final
dot, address forms). The invariants are the module docstring's promises.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from noc.model import FailoverRecordType
from noc.rrset_move import moved_values, value_key

A, AAAA, MX = FailoverRecordType.A, FailoverRecordType.AAAA, FailoverRecordType.MX
BOUNDED = settings(deadline=None)


def keys(rtype: FailoverRecordType, values: list[str] | tuple[str, ...]) -> set[str]:
    return {value_key(rtype, v) for v in values}


# Addresses: each side has its own pool, so a value belongs to one side only.
def addresses(rtype: FailoverRecordType, pool: int) -> st.SearchStrategy[str]:
    if rtype is A:
        return st.integers(1, 9).map(lambda n: f"192.0.{pool}.{n}")
    return st.integers(1, 9).map(lambda n: f"2001:db8:{pool}::{n}")


def written_loosely(value: str) -> st.SearchStrategy[str]:
    """The same address as a zone file or an operator might write it."""
    forms = [value, value.upper(), f" {value} "]
    if ":" in value:
        forms.append(IPv6Address(value).exploded)
    return st.sampled_from(forms)


@st.composite
def address_case(draw: st.DrawFn) -> tuple[FailoverRecordType, list[str], list[str], list[str]]:
    rtype = draw(st.sampled_from([A, AAAA]))
    source = draw(st.lists(addresses(rtype, 1), min_size=1, max_size=3, unique=True))
    target = draw(st.lists(addresses(rtype, 2), min_size=1, max_size=3, unique=True))
    pool = source + target + draw(st.lists(addresses(rtype, 3), max_size=3))
    current = draw(st.lists(st.sampled_from(pool).flatmap(written_loosely), max_size=8))
    return rtype, current, source, target


SOURCE_MX, TARGET_MX = "mx.ro.example.test", "mx.bg.example.test"
HOSTS = [SOURCE_MX, TARGET_MX, "mx.backup.example.net", "mail.thirdparty.example"]


@st.composite
def exchange(draw: st.DrawFn) -> str:
    host = draw(st.sampled_from(HOSTS))
    host = draw(st.sampled_from([host, host.upper(), host + "."]))
    return f"{draw(st.integers(0, 40))} {host}"


def exchanges(values: tuple[str, ...] | list[str], host: str) -> set[int]:
    return {int(v.split()[0]) for v in values if v.split()[1].rstrip(".").lower() == host}


@BOUNDED
@given(address_case())
def test_addresses_move_from_the_source_to_the_target_and_nothing_else(
    case: tuple[FailoverRecordType, list[str], list[str], list[str]],
) -> None:
    rtype, current, source, target = case
    new = keys(rtype, moved_values(rtype, current, source, target))
    foreign = keys(rtype, current) - keys(rtype, source) - keys(rtype, target)
    assert foreign <= new  # always kept
    assert not new & keys(rtype, source)  # all gone
    assert keys(rtype, target) <= new  # all there
    assert new == foreign | keys(rtype, target)  # and nothing else
    # Moving again changes nothing: a repeated or resumed action is harmless.
    assert keys(rtype, moved_values(rtype, new, source, target)) == new


@BOUNDED
@given(address_case())
def test_failback_after_failover_gives_back_the_addresses(
    case: tuple[FailoverRecordType, list[str], list[str], list[str]],
) -> None:
    rtype, current, source, target = case
    there = keys(rtype, current)
    forth = moved_values(rtype, current, source, target)
    back = keys(rtype, moved_values(rtype, forth, target, source))
    # The guarantee: exact when the RRset held every source value and no target value.
    if keys(rtype, source) <= there and not there & keys(rtype, target):
        assert back == there
    # Always: the foreign values are still there, exactly.
    foreign = there - keys(rtype, source) - keys(rtype, target)
    assert back - keys(rtype, source) == foreign


@BOUNDED
@given(st.lists(exchange(), max_size=8))
def test_exchanges_move_and_every_other_exchange_keeps_its_preference(
    current: list[str],
) -> None:
    new = moved_values(MX, current, [SOURCE_MX], [TARGET_MX])
    before = keys(MX, current)
    foreign = {v for v in before if v.split()[1] not in (SOURCE_MX, TARGET_MX)}
    assert foreign == {v for v in new if v.split()[1] not in (SOURCE_MX, TARGET_MX)}
    source_prefs, target_prefs = exchanges(current, SOURCE_MX), exchanges(current, TARGET_MX)
    assert exchanges(new, TARGET_MX), "the target's exchange is always there"
    if target_prefs and (not source_prefs or min(target_prefs) < min(source_prefs)):
        assert keys(MX, new) == before  # moved already: left as it is
    elif source_prefs:
        # The target takes every preference of the source's; the source keeps only
        # the target's former backup preferences (the swap), none of its own.
        assert exchanges(new, TARGET_MX) == source_prefs
        assert exchanges(new, SOURCE_MX) == target_prefs - source_prefs
    else:
        best = min((int(v.split()[0]) for v in before), default=10)
        assert keys(MX, new) == before | {f"{best} {TARGET_MX}"}
    assert keys(MX, moved_values(MX, new, [SOURCE_MX], [TARGET_MX])) == keys(MX, new)


@BOUNDED
@given(st.lists(exchange(), max_size=8))
def test_failback_after_failover_gives_back_the_exchanges(current: list[str]) -> None:
    forth = moved_values(MX, current, [SOURCE_MX], [TARGET_MX])
    back = keys(MX, moved_values(MX, forth, [TARGET_MX], [SOURCE_MX]))
    source_prefs, target_prefs = exchanges(current, SOURCE_MX), exchanges(current, TARGET_MX)
    # The guarantee: exact when the source's exchange came first and the two shared
    # no preference (the backup-MX zone of the issue: 10 mx.ro, 20 mx.bg).
    source_first = not target_prefs or min(source_prefs, default=99) < min(target_prefs)
    if source_prefs and not source_prefs & target_prefs and source_first:
        assert back == keys(MX, current)
    foreign = {v for v in keys(MX, current) if v.split()[1] not in (SOURCE_MX, TARGET_MX)}
    assert foreign == {v for v in back if v.split()[1] not in (SOURCE_MX, TARGET_MX)}


def test_the_issues_zone_round_trips() -> None:
    zone = ["10 mx.ro.example.test", "20 mx.bg.example.test"]
    forth = moved_values(MX, zone, [SOURCE_MX], [TARGET_MX])
    assert forth == ("10 mx.bg.example.test", "20 mx.ro.example.test")
    assert moved_values(MX, forth, [TARGET_MX], [SOURCE_MX]) == tuple(zone)
