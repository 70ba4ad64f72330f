"""Quorum over vantages: many agents' verdicts on a region merged into one. Pure.

Each agent (`noc agent --vantage NAME`) judges the estate with its own engine, from
where it runs, and publishes one verdict per region. One vantage cannot tell "ro is
down" from "the path from here to ro is down"; several can. The rules:

- a vantage that saw nothing at all (its engine is cut off) does not vote: its
  "down" would be about itself;
- a vantage that has not reported for two of its intervals is stale and does not
  vote: its verdict is about the past;
- a region is down when at least `quorum` voting vantages see it down;
- fewer down votes than the quorum, but some, is a split: shown and warned about,
  never a page. The region's health is then what the other voters see.

No I/O and no clock of its own: the caller passes `now`, so every screen merging the
same reports at the same moment shows the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from noc.model import Health, RegionVotes, VantageStatus

# A vantage silent for this many of its own report intervals is stale.
STALE_INTERVALS = 2.0


@dataclass(frozen=True, slots=True)
class VantageReport:
    """What one agent published last: when, how often it reports, whether it is cut
    off, and its engine's health verdict per region."""

    name: str
    last_seen: datetime  # UTC, the agent's clock when it published
    interval_seconds: float
    cut_off: bool
    regions: tuple[tuple[str, Health], ...]

    def health_of(self, region_id: str) -> Health:
        return next((h for r, h in self.regions if r == region_id), Health.UNKNOWN)


@dataclass(frozen=True, slots=True)
class QuorumView:
    """Every vantage's standing, and each region's merged health with its votes."""

    vantages: tuple[VantageStatus, ...]
    regions: tuple[tuple[str, Health, RegionVotes], ...]

    def region(self, region_id: str) -> tuple[Health, RegionVotes] | None:
        return next(((h, v) for r, h, v in self.regions if r == region_id), None)

    @property
    def voting(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.vantages if v.votes)


def vantage_status(report: VantageReport, now: datetime) -> VantageStatus:
    age = max(0.0, (now - report.last_seen).total_seconds())
    return VantageStatus(
        name=report.name,
        last_seen=report.last_seen,
        age_seconds=age,
        cut_off=report.cut_off,
        stale=age > STALE_INTERVALS * report.interval_seconds,
    )


def latest_by_name(reports: Iterable[VantageReport]) -> list[VantageReport]:
    """One report per vantage (its newest), in name order: the merge must not depend
    on the order the control plane returned them in."""
    newest: dict[str, VantageReport] = {}
    for report in reports:
        kept = newest.get(report.name)
        if kept is None or report.last_seen > kept.last_seen:
            newest[report.name] = report
    return [newest[name] for name in sorted(newest)]


def merge_region(
    region_id: str, reports: Sequence[VantageReport], voting: frozenset[str], quorum: int
) -> tuple[Health, RegionVotes]:
    """One region's merged health; `voting` names the vantages that may vote."""
    verdicts = [
        (r.name, r.health_of(region_id))
        for r in reports
        if r.name in voting and r.health_of(region_id) is not Health.UNKNOWN
    ]
    down_votes = sum(1 for _, health in verdicts if health is Health.DOWN)
    votes = RegionVotes(
        quorum=quorum,
        down_votes=down_votes,
        vantages_reporting=len(verdicts),
        by_vantage=tuple(verdicts),
    )
    if down_votes >= quorum:
        return Health.DOWN, votes
    others = [health for _, health in verdicts if health is not Health.DOWN]
    if not others:
        # No vantage can vote, or those that see it down are too few: not known.
        return Health.UNKNOWN, votes
    if any(health is Health.DEGRADED for health in others):
        return Health.DEGRADED, votes
    return Health.HEALTHY, votes


def merge(
    reports: Iterable[VantageReport], region_ids: Sequence[str], quorum: int, now: datetime
) -> QuorumView:
    """Every region's merged health at `now`, from the vantages' latest reports."""
    latest = latest_by_name(reports)
    vantages = tuple(vantage_status(report, now) for report in latest)
    voting = frozenset(v.name for v in vantages if v.votes)
    regions = tuple(
        (region_id, *merge_region(region_id, latest, voting, quorum)) for region_id in region_ids
    )
    return QuorumView(vantages, regions)
