"""The playbook's matching function: snapshot -> modes, against an oracle restating
each mode's signals from domain.md, on generated estates (Hypothesis); the shipped
playbook's links to noc actions; an estate's own playbook; the drill schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noc.actions import ACTIONS_BY_ID
from noc.drill_schedule import next_drill
from noc.model import (
    Authority,
    DnsConsensus,
    DnsRecordSample,
    DnsView,
    EstateSnapshot,
    FailoverRecordType,
    Health,
    LagBasis,
    LagPoint,
    LinkState,
    LinkStatus,
    RegionStatus,
    ReplicationKind,
    ReplicationSample,
    ReplicationSpec,
    Role,
    StoreStatus,
    Topology,
)
from noc.playbook import (
    Context,
    Match,
    PlaybookError,
    default_playbook,
    load_playbook,
    matching_modes,
    unmet,
)

REGIONS = ("ro", "bg", "pa")
WALL = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
THRESHOLD = 60.0
PLAYBOOK = default_playbook()


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    lags: tuple[float, ...]  # the history, oldest first; the last is the current lag
    down: bool


@dataclass(frozen=True)
class Estate:
    """What the generator decides; `snapshot()` builds noc's picture of it."""

    health: dict[str, Health]
    active: str
    split: bool
    listed: frozenset[str]
    links: tuple[Link, ...]
    unexpected: bool  # a resolver answers with a value of no region
    dns_region: str | None  # where the resolvers' consensus points
    declared: frozenset[str]

    def snapshot(self) -> EstateSnapshot:
        regions = tuple(
            RegionStatus(
                id=rid,
                name=rid,
                role=Role.PRIMARY if rid == "ro" else Role.SECONDARY,
                location=(0.0, 0.0),
                health=self.health[rid],
                checks=(),
                store=StoreStatus(rid, True, None, None, 1.0),
                is_active=rid == self.active,
                sending_listed=rid in self.listed,
            )
            for rid in REGIONS
        )
        other = next(r for r in REGIONS if r != self.active)
        authority = Authority(
            self.active, "flag", agreeing=(self.active,),
            disagreeing=((other, other),) if self.split else (),
        )  # fmt: skip
        sample = DnsRecordSample(
            "smtp.t", FailoverRecordType.A, "127.0.0.1", 0.0, WALL, answers=("192.0.2.1",)
        )
        views = (DnsView(sample, self.dns_region, ("203.0.113.9",) if self.unexpected else ()),)
        consensus = (DnsConsensus("smtp.t", FailoverRecordType.A, self.dns_region, 1, 1, 1),)
        return EstateSnapshot(
            estate="t", topology=Topology.ACTIVE_PASSIVE, generated_at=WALL, regions=regions,
            authority=authority, cut_off=False, cut_off_since=None, last_poll_age=1.0,
            stale=False, replication=tuple(_link(link) for link in self.links),
            dns=views, consensus=consensus,
        )  # fmt: skip


def _link(link: Link) -> LinkStatus:
    spec = ReplicationSpec(
        "suppression", link.source, link.target, ReplicationKind.REDIS, "redis://x",
        threshold_seconds=THRESHOLD,
    )  # fmt: skip
    state = LinkState.DOWN if link.down else LinkState.UP
    history = tuple(LagPoint(float(i), WALL, lag, state) for i, lag in enumerate(link.lags))
    last = ReplicationSample(
        spec, float(len(link.lags)), WALL, state, link.lags[-1], LagBasis.HEARTBEAT
    )
    return LinkStatus(f"suppression:{link.source}>{link.target}", spec, last, history, 1.0)


links = st.builds(
    Link,
    source=st.sampled_from(REGIONS),
    target=st.sampled_from(REGIONS),
    lags=st.lists(st.floats(0, 600), min_size=1, max_size=6).map(tuple),
    down=st.booleans(),
).filter(lambda link: link.source != link.target)

estates = st.builds(
    Estate,
    health=st.fixed_dictionaries({r: st.sampled_from(list(Health)) for r in REGIONS}),
    active=st.sampled_from(REGIONS),
    split=st.booleans(),
    listed=st.frozensets(st.sampled_from(REGIONS)),
    links=st.lists(links, max_size=3).map(tuple),
    unexpected=st.booleans(),
    dns_region=st.sampled_from([*REGIONS, None]),
    declared=st.frozensets(st.sampled_from([m.id for m in PLAYBOOK.modes])),
)


def expected(estate: Estate) -> set[Match]:
    """Each mode's signals, restated from domain.md without noc's predicates."""
    found = set()
    for rid in REGIONS:
        others_healthy = all(estate.health[o] is Health.HEALTHY for o in REGIONS if o != rid)
        if estate.health[rid] is Health.DOWN and others_healthy:
            found.add(Match("region_down", rid))
        stalled = any(
            rid in (link.source, link.target)
            and (link.lags[-1] > THRESHOLD or link.down)
            and len(link.lags) >= 2
            and link.lags[-1] > link.lags[0]
            for link in estate.links
        )
        if estate.health[rid] is Health.HEALTHY and others_healthy and stalled:
            found.add(Match("partition", rid))
        if rid in estate.listed:
            found.add(Match("dnsbl", rid))
        if rid == estate.active and estate.unexpected:
            found.add(Match("dns_hijack", rid))
        if "regulatory" in estate.declared:
            found.add(Match("regulatory", rid))
        moved = estate.dns_region is not None and estate.dns_region != estate.active
        if rid == estate.active and not estate.split and moved:
            found.add(Match("bgp", rid))
    return found


@given(estates)
def test_matching_modes_follow_each_modes_signals(estate: Estate) -> None:
    snapshot = estate.snapshot()
    matches = matching_modes(snapshot, PLAYBOOK, estate.declared)
    assert set(matches) == expected(estate)
    assert len(set(matches)) == len(matches)
    # Pure: the same picture gives the same answer, in playbook then region order.
    assert matching_modes(snapshot, PLAYBOOK, estate.declared) == matches
    order = [m.id for m in PLAYBOOK.modes]
    keys = [(order.index(m.mode), REGIONS.index(m.region)) for m in matches]
    assert keys == sorted(keys)


@given(estates)
def test_a_region_is_never_both_down_and_partitioned(estate: Estate) -> None:
    modes_by_region: dict[str, set[str]] = {}
    for match in matching_modes(estate.snapshot(), PLAYBOOK, estate.declared):
        modes_by_region.setdefault(match.region, set()).add(match.mode)
    assert all(not {"region_down", "partition"} <= modes for modes in modes_by_region.values())


def test_a_healthy_clean_estate_matches_nothing() -> None:
    healthy = Estate(
        {r: Health.HEALTHY for r in REGIONS}, "ro", False, frozenset(),
        (Link("ro", "bg", (1.0, 0.5), False),), False, "ro", frozenset(),
    )  # fmt: skip
    assert matching_modes(healthy.snapshot(), PLAYBOOK) == ()


def test_validation_after_a_failover_names_what_is_not_there_yet() -> None:
    failed_over = Estate(
        {"ro": Health.DOWN, "bg": Health.HEALTHY, "pa": Health.HEALTHY}, "bg", False,
        frozenset({"bg"}), (), False, "ro", frozenset(),
    )  # fmt: skip
    mode = PLAYBOOK.mode("region_down")
    ctx = Context("ro", "bg", mode=mode.id)
    assert unmet(failed_over.snapshot(), mode.validate, ctx) == [
        "dns_on_target",
        "target_not_listed",
    ]


def test_the_shipped_playbook_has_the_six_modes_linked_to_noc_actions() -> None:
    assert [m.id for m in PLAYBOOK.modes] == [
        "region_down", "partition", "dnsbl", "dns_hijack", "regulatory", "bgp",
    ]  # fmt: skip
    for mode in PLAYBOOK.modes:
        assert mode.detect and mode.validate and mode.steps and mode.rollback, mode.id
        for step in (*mode.steps, *mode.rollback):
            assert step.action is None or step.action in ACTIONS_BY_ID
    failover = PLAYBOOK.mode("region_down").step_with_action({"failover"})
    assert failover is not None and failover.key == "f"


def test_an_estate_playbook_replaces_the_shipped_one_and_is_checked(tmp_path: Path) -> None:
    own = tmp_path / "playbook.toml"
    own.write_text(
        '[[modes]]\nid = "region_down"\ntitle = "Ours"\ndetect = ["region_down"]\n'
        'validate = ["flag_on_target"]\n'
        'steps = [{ id = "go", text = "Fail over", action = "failover" }]\n'
    )
    assert [m.title for m in load_playbook(own).modes] == ["Ours"]
    own.write_text(
        '[[modes]]\nid = "x"\ndetect = ["moon_phase"]\nsteps = [{ id = "go", action = "launch" }]\n'
    )
    with pytest.raises(PlaybookError) as raised:
        load_playbook(own)
    assert "'moon_phase' is no predicate" in str(raised.value)
    assert "action 'launch' is no noc action" in str(raised.value)


def _history(*drills: tuple[str, str]) -> list[dict[str, str]]:
    return [{"mode": mode, "started_at": at} for mode, at in drills]


def test_the_schedule_rotates_through_every_mode_one_a_quarter() -> None:
    first = next_drill(
        PLAYBOOK, [], date(2026, 3, 1), onboarded=date(2026, 1, 1), interval_days=91,
        first_within_days=60,
    )  # fmt: skip
    assert (first.mode, first.due, first.overdue) == ("region_down", date(2026, 3, 2), False)
    history = _history(("region_down", "2026-03-01T10:00:00Z"))
    second = next_drill(
        PLAYBOOK, history, date(2026, 6, 1), onboarded=date(2026, 1, 1), interval_days=91,
        first_within_days=60,
    )  # fmt: skip
    assert (second.mode, second.due, second.overdue) == ("partition", date(2026, 5, 31), True)
    assert second.text() == "drill OVERDUE since 2026-05-31: partition"
    # Six drills later the rotation starts again with the one drilled longest ago.
    modes = [m.id for m in PLAYBOOK.modes]
    history = _history(*((m, f"2026-0{i + 1}-01T00:00:00Z") for i, m in enumerate(modes)))
    again = next_drill(
        PLAYBOOK, history, date(2026, 7, 1), onboarded=None, interval_days=91,
        first_within_days=60,
    )  # fmt: skip
    assert again.mode == "region_down" and again.due == date(2026, 8, 31)
