"""From three engines' snapshots to one verdict: each vantage's report as an agent
publishes it (JSON), read back and merged by quorum, then judged by `noc check`'s
verdict. The engines are the real one, fed the collectors' own sample types."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from support import HTTP_503, REFUSED, estate_config, feed_round

from noc.check import Status, report_json, report_text, verdict
from noc.clock import FakeClock
from noc.control import SharedReport, observation_fields, parse_report, report_of, shared_snapshot
from noc.engine import Engine
from noc.model import CheckSample, FlagSample, Health, ProbeError
from noc.model import ErrorKind as Kind

INTERVAL = 5.0


def _config(quorum: int) -> Any:
    return estate_config(
        {},
        health={"interval_seconds": 30, "failure_threshold": 2, "quorum": quorum},
        control={"redis_url": "redis://127.0.0.1:1/0", "report_interval_seconds": INTERVAL},
    )


def _vantage(
    name: str, config: Any, clock: FakeClock, errors: dict[str, ProbeError]
) -> SharedReport:
    """An engine that saw `errors` for two rounds, published and read back."""
    engine = Engine(config, FakeClock(clock.utcnow(), clock.monotonic()))
    engine_clock = engine.clock
    assert isinstance(engine_clock, FakeClock)
    for _ in range(2):
        feed_round(engine, engine_clock, errors)
    body = report_of(name, engine.snapshot(), INTERVAL, clock.utcnow())
    shared = parse_report(name, json.dumps(body))
    assert shared is not None
    return shared


def test_one_lost_path_is_a_warning_naming_the_split() -> None:
    config, clock = _config(quorum=2), FakeClock()
    reports = [
        _vantage("a", config, clock, {"ro": HTTP_503}),
        _vantage("b", config, clock, {}),
        _vantage("c", config, clock, {}),
    ]
    snapshot = shared_snapshot(config, reports, clock)
    result = verdict(snapshot)
    assert result.status is Status.WARNING
    assert "ro down from 1 of 3 vantages (quorum 2)" in result.problems
    ro = snapshot.region("ro")
    assert ro is not None and ro.health is Health.HEALTHY
    # The details shown are those of a vantage that sees what the merge decided.
    assert all(check.health is Health.HEALTHY for check in ro.checks)
    report = report_json(snapshot)
    ro_json = next(r for r in report["regions"] if r["id"] == "ro")
    assert (ro_json["down_votes"], ro_json["vantages_reporting"], ro_json["split"]) == (1, 3, True)
    assert [v["name"] for v in report["vantages"]] == ["a", "b", "c"]
    assert "(down from 1 of 3 vantages, quorum 2)" in report_text(snapshot)


def test_down_by_quorum_pages_with_the_down_vantages_details() -> None:
    config, clock = _config(quorum=2), FakeClock()
    reports = [
        _vantage("a", config, clock, {"ro": HTTP_503}),
        _vantage("b", config, clock, {"ro": HTTP_503}),
        _vantage("c", config, clock, {}),
    ]
    snapshot = shared_snapshot(config, reports, clock)
    assert verdict(snapshot).status is Status.CRITICAL
    ro = snapshot.region("ro")
    assert ro is not None and ro.health is Health.DOWN
    assert all(check.health is Health.DOWN for check in ro.checks)
    assert all(str(check.last.error) == "HTTP 503" for check in ro.checks if check.last)


def test_a_cut_off_vantage_does_not_vote_and_is_named() -> None:
    config, clock = _config(quorum=1), FakeClock()
    cut_off = _vantage("a", config, clock, {r: REFUSED for r in ("ro", "bg", "pa")})
    assert cut_off.vantage.cut_off
    snapshot = shared_snapshot(config, [cut_off, _vantage("b", config, clock, {})], clock)
    result = verdict(snapshot)
    assert result.status is Status.WARNING
    assert "vantages not voting (cut off or stale): a" in result.problems
    assert all(region.health is Health.HEALTHY for region in snapshot.regions)
    # Every vantage silent: noc cannot say, and says why.
    alone = shared_snapshot(config, [cut_off], clock)
    assert verdict(alone).status is Status.UNKNOWN
    assert verdict(alone).problems == ("no vantage can vote (a cut off)",)


def test_a_silent_vantage_goes_stale_on_the_readers_clock() -> None:
    config, clock = _config(quorum=1), FakeClock()
    reports = [_vantage("a", config, clock, {"ro": HTTP_503})]
    clock.advance(2 * INTERVAL + 1)
    snapshot = shared_snapshot(config, reports, clock)
    assert [v.stale for v in snapshot.vantages] == [True]
    assert verdict(snapshot).problems == ("no vantage can vote (a stale)",)


def test_an_unreadable_report_is_skipped() -> None:
    assert parse_report("a", "{not json") is None
    assert parse_report("a", json.dumps({"version": 99, "vantage": "a"})) is None
    body = {"version": 1, "vantage": "b", "regions": {}}
    assert parse_report("a", json.dumps(body)) is None  # filed under another name


def test_every_sample_kind_goes_to_the_stream_as_json() -> None:
    wall = datetime(2026, 3, 1, tzinfo=UTC)
    check = CheckSample("ro/0", "ro", 1.0, wall, False, error=ProbeError(Kind.TIMEOUT, "2 s"))
    fields = observation_fields("a", "check", check)
    assert (fields["vantage"], fields["check"], fields["region"], fields["ok"]) == (
        "a", "ro/0", "ro", "0",
    )  # fmt: skip
    data = json.loads(fields["data"])
    assert data["error"] == {"kind": "timeout", "detail": "2 s"}
    assert data["wall"] == "2026-03-01T00:00:00Z"
    flag_sample = FlagSample("ro", 1.0, wall, reachable=True)
    flag = observation_fields("a", "flag", flag_sample)
    assert json.loads(flag["data"])["store_region"] == "ro"
    # A poll loop's tuple of samples (DNS) is a JSON array.
    assert json.loads(observation_fields("a", "dns", ())["data"]) == []
    many = json.loads(observation_fields("a", "flag", (flag_sample, flag_sample))["data"])
    assert [each["reachable"] for each in many] == [True, True]
