"""Detection below the schedule: the real Scheduler and collector against real
endpoints on loopback. A failing check is retried every retry_interval_seconds until
it is down or passes; a down one that passes is retried until it recovers; a
flapping endpoint is never declared down; and while noc may be the one cut off
(nothing answers), failures are counted no faster than the schedule.

Each test sets a long interval (30 s) and starts the failure with the operator's
refresh (poll_now), so every probe it sees within its few seconds is a retry: the
gaps asserted are far below the interval, never timed against a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from itertools import pairwise

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from test_scheduler_alerting import eventually

from noc.clock import FakeClock, SystemClock
from noc.config import parse_config
from noc.engine import Engine
from noc.model import CheckSample, ErrorKind, Health, ProbeError
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint
from noc.simulator.health_endpoint import EndpointMode

EndpointFactory = Callable[..., Awaitable[HealthEndpoint]]


@pytest.fixture(params=[False, True], ids=["on-the-ui-loop", "in-the-probe-thread"])
def probe_thread(request: pytest.FixtureRequest) -> bool:
    """Each cadence holds wherever the check loops run: on the loop the engine and the
    UI share, or on the probe thread's own loop (an estate of many checks)."""
    return bool(request.param)


INTERVAL = 30.0
RETRY = 0.1
REFUSED = ProbeError(ErrorKind.REFUSED, "connection refused")
HTTP_503 = ProbeError(ErrorKind.HTTP_STATUS, "503")


class Watched:
    """The real scheduler over two regions, ro (watched) and bg (the control), with
    every sample of ro/0 recorded as the engine ingests it."""

    def __init__(
        self, ro: HealthEndpoint, bg: HealthEndpoint, *, probe_thread: bool, **health: float
    ) -> None:
        config = parse_config(
            {
                "health": {
                    "interval_seconds": INTERVAL,
                    "retry_interval_seconds": RETRY,
                    "failure_threshold": 3,
                    "timeout_seconds": 1,
                    **health,
                },
                "regions": [
                    {"id": "ro", "role": "primary", "checks": [{"url": ro.url}]},
                    {"id": "bg", "checks": [{"url": bg.url}]},
                ],
            }
        )
        self.scheduler = Scheduler(config, SystemClock(), probe_thread=probe_thread)
        self.samples: list[CheckSample] = []
        self.health_seen: list[Health] = []
        ingest = self.scheduler.engine.ingest

        def recording(sample: CheckSample) -> None:
            ingest(sample)
            if sample.check_id == "ro/0":
                self.samples.append(sample)
                self.health_seen.append(self.ro_health())

        self.scheduler.engine.ingest = recording  # type: ignore[method-assign]

    def ro_health(self) -> Health:
        region = self.scheduler.engine.snapshot().region("ro")
        assert region is not None
        return region.health

    def gaps_from(self, first: int) -> list[float]:
        times = [s.at for s in self.samples[first:]]
        return [b - a for a, b in pairwise(times)]


async def test_a_refused_endpoint_is_down_after_threshold_retries_not_intervals(
    health_endpoint: EndpointFactory,
    probe_thread: bool,
) -> None:
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    estate = Watched(ro, bg, probe_thread=probe_thread)
    estate.scheduler.start()
    try:
        await eventually(lambda: estate.scheduler.snapshot().healthy_count == 2, "both healthy")
        first = len(estate.samples)
        await ro.set_mode(EndpointMode.DOWN)
        estate.scheduler.poll_now("ro/")  # the first failure now, not at the next slot
        await eventually(lambda: estate.ro_health() is Health.DOWN, "ro down")
    finally:
        await estate.scheduler.stop()
    failed = estate.samples[first:]
    assert [s.ok for s in failed] == [False, False, False]
    assert all(s.error is not None and s.error.unreachable for s in failed)
    # Refused is a connection error: the control region was asked to corroborate
    # (noc is not cut off), then the retries came at the retry interval.
    for gap in estate.gaps_from(first):
        assert RETRY * 0.9 <= gap < INTERVAL / 3


async def test_recovery_follows_the_same_retry_cadence(
    health_endpoint: EndpointFactory, probe_thread: bool
) -> None:
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    estate = Watched(ro, bg, probe_thread=probe_thread)
    estate.scheduler.start()
    try:
        await eventually(lambda: estate.scheduler.snapshot().healthy_count == 2, "both healthy")
        await ro.set_mode(EndpointMode.UNAVAILABLE)  # answers 503: no corroboration needed
        estate.scheduler.poll_now("ro/")
        await eventually(lambda: estate.ro_health() is Health.DOWN, "ro down")
        # Down and settled: back on the schedule, no more retries.
        await asyncio.sleep(RETRY * 5)
        settled = len(estate.samples)
        assert estate.gaps_from(settled - 1) == []
        await ro.set_mode(EndpointMode.HEALTHY)
        estate.scheduler.poll_now("ro/")
        await eventually(lambda: estate.ro_health() is Health.HEALTHY, "ro recovered")
    finally:
        await estate.scheduler.stop()
    recovering = estate.samples[settled:]
    assert [s.ok for s in recovering] == [True, True, True]
    assert estate.health_seen[settled:] == [Health.DOWN, Health.DOWN, Health.HEALTHY]
    for gap in estate.gaps_from(settled):
        assert RETRY * 0.9 <= gap < INTERVAL / 3


async def test_a_flapping_endpoint_is_never_down_with_retries(
    health_endpoint: EndpointFactory,
    probe_thread: bool,
) -> None:
    """EndpointMode.FLAP alternates 200 and 503 request by request: every failed probe
    is followed by a passing retry, so it never fails twice in a row; it still shows
    degraded and flapping (half its probes fail), exactly as without retries."""
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    estate = Watched(ro, bg, probe_thread=probe_thread)
    estate.scheduler.start()
    try:
        await eventually(lambda: estate.scheduler.snapshot().healthy_count == 2, "both healthy")
        first = len(estate.samples)
        await ro.set_mode(EndpointMode.FLAP)
        for _ in range(12):  # a slot probe (poll_now) and its retries, twelve times
            estate.scheduler.poll_now("ro/")
            await asyncio.sleep(RETRY * 3)
        region = estate.scheduler.snapshot().region("ro")
    finally:
        await estate.scheduler.stop()
    outcomes = [s.ok for s in estate.samples[first:]]
    assert outcomes.count(False) >= 6
    assert not any(a is b is False for a, b in pairwise(outcomes))
    assert Health.DOWN not in estate.health_seen
    assert region is not None and region.health is Health.DEGRADED
    (check,) = region.checks
    assert check.flapping and check.health is Health.DEGRADED


async def test_while_nothing_answers_failures_count_at_the_schedule(
    health_endpoint: EndpointFactory,
    probe_thread: bool,
) -> None:
    """Every endpoint refuses at once: noc may be cut off. The corroborating probe of
    the other region fails too, so no retry follows: one failure each, cut off shown,
    and no region declared down by failures noc may have caused itself."""
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    estate = Watched(ro, bg, probe_thread=probe_thread)
    estate.scheduler.start()
    try:
        await eventually(lambda: estate.scheduler.snapshot().healthy_count == 2, "both healthy")
        first = len(estate.samples)
        await ro.set_mode(EndpointMode.DOWN)
        await bg.set_mode(EndpointMode.DOWN)
        estate.scheduler.poll_now("ro/")
        await eventually(lambda: estate.scheduler.engine.cut_off, "cut off")
        # Long enough for a dozen retries, had any been made.
        await asyncio.sleep(RETRY * 12)
        snapshot = estate.scheduler.snapshot()
    finally:
        await estate.scheduler.stop()
    assert len(estate.samples) - first == 1
    assert Health.DOWN not in estate.health_seen
    assert snapshot.cut_off
    assert {r.health for r in snapshot.regions} == {Health.HEALTHY}


async def test_retry_interval_defaults_to_two_seconds_and_never_exceeds_the_interval() -> None:
    def target(health: dict[str, float], check: dict[str, float] | None = None) -> float:
        config = parse_config(
            {
                "health": health,
                "regions": [
                    {
                        "id": "ro",
                        "role": "primary",
                        "checks": [{"url": "http://x/", **(check or {})}],
                    }
                ],
            }
        )
        return config.check_targets()[0].retry_interval_seconds

    assert target({}) == 2.0  # standard preset: 30 s interval
    assert target({"interval_seconds": 1}) == 1.0
    assert target({"retry_interval_seconds": 5}) == 5.0
    assert target({"retry_interval_seconds": 60}) == 30.0
    assert target({"retry_interval_seconds": 5}, {"retry_interval_seconds": 0.5}) == 0.5


class RetryCadence(RuleBasedStateMachine):
    """Any history of probe outcomes of two checks (ro/0 watched, bg/0 the other) under
    the engine and a fake clock: the retry decisions the scheduler acts on hold their
    invariants at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        config = parse_config(
            {
                "health": {"interval_seconds": 30, "failure_threshold": 3},
                "regions": [
                    {"id": "ro", "role": "primary", "checks": [{"url": "http://ro.test/"}]},
                    {"id": "bg", "checks": [{"url": "http://bg.test/"}]},
                ],
            }
        )
        self.engine = Engine(config, self.clock)
        self.run = 0  # consecutive failures of ro/0
        self.longest_run = 0
        self.dark_since: float | None = None  # when ro/0's connection errors began
        self.answered_at: float | None = None  # bg/0's latest answer

    @rule(
        check=st.sampled_from(["ro/0", "bg/0"]),
        outcome=st.sampled_from(["ok", "503", "refused"]),
    )
    def probe(self, check: str, outcome: str) -> None:
        error = {"ok": None, "503": HTTP_503, "refused": REFUSED}[outcome]
        now = self.clock.monotonic()
        self.engine.ingest(
            CheckSample(check, check[:2], now, self.clock.utcnow(), ok=error is None, error=error)
        )
        if check == "bg/0":
            if outcome != "refused":
                self.answered_at = now
            return
        self.run = self.run + 1 if error else 0
        self.longest_run = max(self.longest_run, self.run)
        if outcome == "refused":
            self.dark_since = now if self.dark_since is None else self.dark_since
        else:
            self.dark_since = None

    @rule(seconds=st.sampled_from([0.5, 2.0, 30.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def retries_only_while_the_verdict_is_changing_and_the_failure_is_the_endpoints(
        self,
    ) -> None:
        if self.engine.retrying("ro/0"):
            assert self.engine.unsettled("ro/0") and self.engine.corroborated("ro/0")
        if self.dark_since is not None and (
            self.answered_at is None or self.answered_at <= self.dark_since
        ):
            # noc may be cut off: such failures count at the schedule, never faster.
            assert not self.engine.retrying("ro/0")

    @invariant()
    def never_down_without_threshold_failures_in_a_row(self) -> None:
        region = self.engine.snapshot().region("ro")
        assert region is not None
        if self.longest_run < 3:
            assert region.health is not Health.DOWN

    @invariant()
    def time_to_down_is_counted_at_the_pace_the_check_is_probed(self) -> None:
        region = self.engine.snapshot().region("ro")
        assert region is not None
        (check,) = region.checks
        if check.seconds_until_down is None or check.last is None or self.engine.cut_off:
            return
        pace = 2.0 if self.engine.retrying("ro/0") else 30.0
        remaining = 3 - check.consecutive_failures
        expected = max(0.0, check.last.at + remaining * pace - self.clock.monotonic())
        assert check.seconds_until_down == pytest.approx(expected)


TestRetryCadence = RetryCadence.TestCase
