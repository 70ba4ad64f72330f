"""The quorum merge (noc.quorum) over arbitrary sets of vantage reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from noc.model import Health
from noc.quorum import STALE_INTERVALS, VantageReport, merge

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REGIONS = ("ro", "bg", "pa")
INTERVAL = 5.0

healths = st.sampled_from(list(Health))
reports = st.builds(
    VantageReport,
    name=st.sampled_from(["a", "b", "c", "d", "e"]),
    # From fresh to several intervals old (stale beyond STALE_INTERVALS).
    last_seen=st.floats(0, 4 * STALE_INTERVALS * INTERVAL).map(
        lambda s: NOW - timedelta(seconds=s)
    ),
    interval_seconds=st.just(INTERVAL),
    cut_off=st.booleans(),
    regions=st.tuples(*(st.tuples(st.just(r), healths) for r in REGIONS)),
)
# The control plane keeps one report per vantage name.
report_sets = st.lists(reports, max_size=5, unique_by=lambda r: r.name)
quorums = st.integers(1, 4)


def _stale(report: VantageReport) -> bool:
    return (NOW - report.last_seen).total_seconds() > STALE_INTERVALS * INTERVAL


@given(report_sets, quorums)
def test_never_down_with_fewer_votes_than_the_quorum(
    given_reports: list[VantageReport], quorum: int
) -> None:
    view = merge(given_reports, REGIONS, quorum, NOW)
    for region, health, votes in view.regions:
        assert (health is Health.DOWN) == (votes.down_votes >= quorum), region
        # A vote counted is a vote cast: never more down votes than reporting vantages.
        assert votes.down_votes <= votes.vantages_reporting <= len(view.voting)
        assert votes.split == (0 < votes.down_votes < quorum)


@given(report_sets, quorums, st.data())
def test_cut_off_and_stale_vantages_never_vote(
    given_reports: list[VantageReport], quorum: int, data: st.DataObject
) -> None:
    """Whatever a cut-off or stale vantage says, the merged verdict is the same: its
    verdicts are replaced by arbitrary others and nothing moves."""
    view = merge(given_reports, REGIONS, quorum, NOW)
    silent = {v.name for v in view.vantages if not v.votes}
    changed = [
        replace(r, regions=tuple((region, data.draw(healths)) for region, _ in r.regions))
        if r.name in silent and (r.cut_off or _stale(r))
        else r
        for r in given_reports
    ]
    again = merge(changed, REGIONS, quorum, NOW)
    assert [(r, h, v.down_votes) for r, h, v in again.regions] == [
        (r, h, v.down_votes) for r, h, v in view.regions
    ]
    for _, _, votes in view.regions:
        assert not {name for name, _ in votes.by_vantage} & silent


@given(report_sets, quorums)
def test_order_of_reports_does_not_matter(given_reports: list[VantageReport], quorum: int) -> None:
    backwards = list(reversed(given_reports))
    assert merge(given_reports, REGIONS, quorum, NOW) == merge(backwards, REGIONS, quorum, NOW)


@given(st.tuples(*(st.tuples(st.just(r), healths) for r in REGIONS)))
def test_one_vantage_at_quorum_one_is_a_lone_noc(regions: tuple[tuple[str, Health], ...]) -> None:
    """The default (quorum 1, one vantage) judges as noc always has."""
    report = VantageReport("solo", NOW, INTERVAL, False, regions)
    view = merge([report], REGIONS, 1, NOW)
    assert [(r, h) for r, h, _ in view.regions] == list(regions)


def test_one_vantage_losing_its_path_is_a_split_not_a_down() -> None:
    a = VantageReport("a", NOW, INTERVAL, False, (("ro", Health.DOWN), ("bg", Health.HEALTHY)))
    b = VantageReport("b", NOW, INTERVAL, False, (("ro", Health.HEALTHY), ("bg", Health.HEALTHY)))
    c = replace(b, name="c")
    view = merge([a, b, c], ("ro", "bg"), 2, NOW)
    health, votes = view.region("ro") or (None, None)
    assert health is Health.HEALTHY
    assert votes is not None and (votes.down_votes, votes.vantages_reporting) == (1, 3)
    assert votes.split
    everyone_down = [replace(r, regions=(("ro", Health.DOWN),)) for r in (a, b, c)]
    assert merge(everyone_down, ("ro",), 2, NOW).regions[0][1] is Health.DOWN


def test_a_silent_vantage_goes_stale_after_two_intervals() -> None:
    report = VantageReport("a", NOW, INTERVAL, False, (("ro", Health.DOWN),))
    just_in_time = NOW + timedelta(seconds=STALE_INTERVALS * INTERVAL)
    assert merge([report], ("ro",), 1, just_in_time).vantages[0].stale is False
    late = just_in_time + timedelta(seconds=0.1)
    view = merge([report], ("ro",), 1, late)
    assert view.vantages[0].stale
    assert view.regions[0][1] is Health.UNKNOWN
