"""The engine under a fake clock: no servers, no sleeping."""

from __future__ import annotations

from typing import Any

import pytest

from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.model import (
    CheckSample,
    ErrorKind,
    FailoverFlag,
    FlagSample,
    Health,
    ProbeError,
)

REFUSED = ProbeError(ErrorKind.REFUSED, "connection refused")
HTTP_503 = ProbeError(ErrorKind.HTTP_STATUS, "503")


def estate(**health: Any) -> NocConfig:
    regions = [
        {
            "id": rid,
            "role": "primary" if rid == "ro" else "secondary",
            "redis_url": f"redis://127.0.0.1:{port}/0",
            "checks": [{"url": f"http://{rid}.test/health"}, {"url": f"http://{rid}.test/smtp"}],
        }
        for rid, port in (("ro", 6379), ("bg", 6380), ("pa", 6381))
    ]
    return parse_config({"estate": {"name": "t"}, "health": health, "regions": regions})


class Driver:
    def __init__(self, config: NocConfig, **kwargs: Any) -> None:
        self.clock = FakeClock()
        self.engine = Engine(config, self.clock, **kwargs)

    def probe(self, check_id: str, error: ProbeError | None = None) -> None:
        region = check_id.split("/")[0]
        self.engine.ingest(
            CheckSample(
                check_id=check_id,
                region_id=region,
                at=self.clock.monotonic(),
                wall=self.clock.utcnow(),
                ok=error is None,
                status=None if error else 200,
                latency_ms=None if error else 12.0,
                error=error,
            )
        )

    def round(self, errors: dict[str, ProbeError] | None = None, seconds: float = 30) -> None:
        """One probe of every check, then time moves on by an interval."""
        errors = errors or {}
        for target in self.engine.targets:
            self.probe(target.check_id, errors.get(target.check_id))
        self.clock.advance(seconds)

    def health(self, region: str) -> Health:
        found = self.engine.snapshot().region(region)
        assert found is not None
        return found.health


def test_unknown_until_data_then_healthy() -> None:
    d = Driver(estate())
    assert d.health("ro") is Health.UNKNOWN
    d.round()
    assert {r.health for r in d.engine.snapshot().regions} == {Health.HEALTHY}


def test_down_only_after_threshold_consecutive_failures() -> None:
    d = Driver(estate())
    d.round()
    both_down = {"ro/0": HTTP_503, "ro/1": HTTP_503}
    d.round(both_down)
    d.round(both_down)
    assert d.health("ro") is Health.HEALTHY
    check = d.engine.snapshot().regions[0].checks[0]
    assert check.consecutive_failures == 2
    d.round(both_down)
    assert d.health("ro") is Health.DOWN
    assert d.health("bg") is Health.HEALTHY


def test_one_failing_check_makes_region_degraded() -> None:
    d = Driver(estate())
    for _ in range(3):
        d.round({"ro/1": HTTP_503})
    assert d.health("ro") is Health.DEGRADED


def test_recovery_needs_threshold_successes() -> None:
    d = Driver(estate(recovery_threshold=2))
    for _ in range(3):
        d.round({"ro/0": HTTP_503, "ro/1": HTTP_503})
    assert d.health("ro") is Health.DOWN
    d.round()
    assert d.health("ro") is Health.DOWN
    d.round()
    assert d.health("ro") is Health.HEALTHY


def test_flapping_endpoint_never_reaches_threshold_but_is_degraded_and_flapping() -> None:
    """A flapping endpoint never flips the region down (3 failures in a row never
    happen), but half its probes fail: that is a state, degraded and flapping, and the
    region_degraded alert says so (issue 12: partial failure is a state)."""
    d = Driver(estate())
    healths = []
    for i in range(10):
        d.round({"ro/0": HTTP_503, "ro/1": HTTP_503} if i % 2 else None)
        healths.append(d.health("ro"))
    assert Health.DOWN not in healths
    assert d.health("ro") is Health.DEGRADED
    check = d.engine.snapshot().regions[0].checks[0]
    assert check.flapping and (check.recent_failures, check.recent_probes) == (3, 6)
    d.engine.alerts.single_round = True
    d.engine.evaluate_alerts()
    (alert,) = [a for a in d.engine.snapshot().alerts if a.rule == "region_degraded"]
    assert "2/2 checks flapping (3 of the last 6 probes failed)" in alert.summary
    # Steady again: the window empties of failures and the check is healthy.
    for _ in range(6):
        d.round()
    assert d.health("ro") is Health.HEALTHY


def test_a_single_blip_is_not_degraded() -> None:
    d = Driver(estate())
    for i in range(8):
        d.round({"ro/0": HTTP_503} if i == 3 else None)
        assert d.health("ro") is Health.HEALTHY


def test_two_failures_in_six_are_not_degraded_three_are() -> None:
    d = Driver(estate())
    pattern = [True, False, True, True, False, True, False]
    for failed in pattern:
        d.round({"ro/0": HTTP_503} if failed else None)
    check = d.engine.snapshot().regions[0].checks[0]
    assert check.recent_failures == 3 and check.health is Health.DEGRADED
    d.round()
    d.round()
    check = d.engine.snapshot().regions[0].checks[0]
    assert check.recent_failures == 2 and check.health is Health.HEALTHY


def test_seconds_until_down_counts_remaining_checks() -> None:
    d = Driver(estate(retry_interval_seconds=30))  # no faster retries
    d.round()
    d.probe("ro/0", HTTP_503)
    d.clock.advance(5)
    status = d.engine.snapshot().regions[0].checks[0]
    assert status.consecutive_failures == 1
    # two more failures at 30 s each, measured from the failed probe 5 s ago
    assert status.seconds_until_down == pytest.approx(55)
    assert status.age_seconds == pytest.approx(5)


def test_seconds_until_down_counts_retries_while_retrying() -> None:
    d = Driver(estate())  # the default retry: min(30 s, 2 s)
    d.round()
    d.probe("ro/0", HTTP_503)  # it answered: the failure is the endpoint's
    d.clock.advance(1)
    assert d.engine.retrying("ro/0")
    status = d.engine.snapshot().regions[0].checks[0]
    # two more failures 2 s apart, measured from the failed probe 1 s ago
    assert status.seconds_until_down == pytest.approx(3)


def test_a_dark_check_is_retried_only_once_something_else_answers() -> None:
    d = Driver(estate())
    d.round()
    d.probe("ro/0", REFUSED)
    # Nothing has answered since: noc may be cut off, so no faster retries yet.
    assert d.engine.unsettled("ro/0") and not d.engine.corroborated("ro/0")
    assert not d.engine.retrying("ro/0")
    assert d.engine.corroborators("ro/0", 2) == ["bg/0", "bg/1"]  # other regions first
    d.clock.advance(0.1)
    d.probe("bg/0")
    assert d.engine.retrying("ro/0")


def test_total_loss_keeps_last_known_status() -> None:
    d = Driver(estate())
    d.round()
    everything = {t.check_id: REFUSED for t in d.engine.targets}
    for _ in range(5):
        d.round(everything)
    snap = d.engine.snapshot()
    assert snap.cut_off
    assert snap.cut_off_since is not None
    assert {r.health for r in snap.regions} == {Health.HEALTHY}
    # The last error is still visible on each check, but nothing was counted.
    assert snap.regions[0].checks[0].last is not None
    assert snap.regions[0].checks[0].consecutive_failures == 0


def test_cut_off_ends_when_anything_answers() -> None:
    d = Driver(estate())
    d.round()
    everything = {t.check_id: REFUSED for t in d.engine.targets}
    d.round(everything)
    assert d.engine.cut_off
    d.round({k: v for k, v in everything.items() if not k.startswith("bg")})
    assert not d.engine.cut_off
    # ro's probes in that round arrived before bg answered, while still cut off, so
    # they were not counted; from here ro counts from its last known state.
    assert d.health("ro") is Health.HEALTHY
    for _ in range(2):
        d.round({k: v for k, v in everything.items() if not k.startswith("bg")})
    assert d.health("ro") is Health.HEALTHY
    d.round({k: v for k, v in everything.items() if not k.startswith("bg")})
    assert d.health("ro") is Health.DOWN
    assert d.health("bg") is Health.HEALTHY


def test_region_already_down_before_cut_off_stays_down() -> None:
    d = Driver(estate())
    d.round()
    ro_refused = {"ro/0": REFUSED, "ro/1": REFUSED}
    for _ in range(4):
        d.round(ro_refused)
    assert d.health("ro") is Health.DOWN
    d.round({t.check_id: REFUSED for t in d.engine.targets})
    assert d.engine.cut_off
    assert d.health("ro") is Health.DOWN
    assert d.health("bg") is Health.HEALTHY


def test_answers_that_fail_are_not_a_cut_off() -> None:
    d = Driver(estate())
    d.round()
    for _ in range(3):
        d.round({t.check_id: HTTP_503 for t in d.engine.targets})
    snap = d.engine.snapshot()
    assert not snap.cut_off
    assert {r.health for r in snap.regions} == {Health.DOWN}


def test_single_round_applies_threshold_at_once() -> None:
    d = Driver(estate(), single_round=True)
    d.round({"ro/0": HTTP_503, "ro/1": HTTP_503, "bg/0": HTTP_503})
    assert d.health("ro") is Health.DOWN
    assert d.health("bg") is Health.DEGRADED
    assert d.health("pa") is Health.HEALTHY


def test_stale_when_no_sample_for_two_cycles() -> None:
    d = Driver(estate())
    d.round()
    assert not d.engine.snapshot().stale
    d.clock.advance(100)
    assert d.engine.snapshot().stale


def flag(d: Driver, store: str, active: str | None, reachable: bool = True) -> None:
    d.engine.ingest_flag(
        FlagSample(
            store_region=store,
            at=d.clock.monotonic(),
            wall=d.clock.utcnow(),
            reachable=reachable,
            flag=FailoverFlag(active, "ro", "op@host", "drill", "2026-11-23T03:00:00Z")
            if active
            else None,
            error=None if reachable else "refused",
        )
    )


def test_authority_defaults_to_primary_without_a_flag() -> None:
    d = Driver(estate())
    for store in ("ro", "bg", "pa"):
        flag(d, store, None)
    authority = d.engine.snapshot().authority
    assert authority.active_region == "ro"
    assert "configured primary" in authority.source


def test_authority_by_majority_and_split_brain_named() -> None:
    d = Driver(estate())
    flag(d, "ro", "ro")
    flag(d, "bg", "bg")
    flag(d, "pa", "bg")
    snap = d.engine.snapshot()
    assert snap.active_region == "bg"
    assert snap.authority.split
    assert snap.authority.disagreeing == (("ro", "ro"),)
    assert snap.region("bg") is not None and snap.region("bg").is_active  # type: ignore[union-attr]


def test_no_readable_store_means_unknown_authority() -> None:
    d = Driver(estate())
    for store in ("ro", "bg", "pa"):
        flag(d, store, None, reachable=False)
    snap = d.engine.snapshot()
    assert snap.active_region is None
    assert snap.authority.unreadable == ("ro", "bg", "pa")


def test_tightened_preset() -> None:
    config = estate(preset="tightened")
    assert {t.interval_seconds for t in config.check_targets()} == {10.0}
    assert {t.failure_threshold for t in config.check_targets()} == {3}


def store_answers(d: Driver, region: str = "ro") -> None:
    d.engine.ingest_flag(FlagSample(region, d.clock.monotonic(), d.clock.utcnow(), True))


def test_every_endpoint_refused_while_a_store_answers_is_an_estate_outage() -> None:
    """Cut off is a judgement over every source (issue 12): the health endpoints all
    refuse, but a flag store answers after they went dark, so noc is not cut off."""
    d = Driver(estate())
    d.round()
    everything = {t.check_id: REFUSED for t in d.engine.targets}
    d.round(everything)
    assert d.engine.cut_off  # nothing else has answered yet: it may be noc
    assert d.health("ro") is Health.HEALTHY
    store_answers(d)
    snapshot = d.engine.snapshot()
    assert not snapshot.cut_off and snapshot.estate_outage
    # The dark round's failures were real and still count: two more make three.
    d.round(everything)
    d.round(everything)
    assert {r.health for r in d.engine.snapshot().regions} == {Health.DOWN}
    d.engine.alerts.single_round = True
    d.engine.evaluate_alerts()
    rules = {a.rule for a in d.engine.snapshot().alerts}
    assert "estate_outage" in rules and "noc_cut_off" not in rules


def test_a_store_answer_from_before_the_dark_run_does_not_end_a_cut_off() -> None:
    d = Driver(estate())
    d.round()
    store_answers(d)  # before the checks went dark: says nothing about now
    d.clock.advance(1)
    everything = {t.check_id: REFUSED for t in d.engine.targets}
    for _ in range(4):
        d.round(everything)
    snapshot = d.engine.snapshot()
    assert snapshot.cut_off and not snapshot.estate_outage
    assert {r.health for r in snapshot.regions} == {Health.HEALTHY}


def test_when_an_endpoint_answers_the_dark_run_was_nocs_and_is_dropped() -> None:
    d = Driver(estate())
    d.round()
    everything = {t.check_id: REFUSED for t in d.engine.targets}
    for _ in range(5):
        d.round(everything)
    assert d.engine.cut_off
    d.round({k: v for k, v in everything.items() if not k.startswith("bg")})
    assert not d.engine.cut_off and not d.engine.snapshot().estate_outage
    check = d.engine.snapshot().regions[0].checks[0]
    assert check.consecutive_failures <= 1 and check.health is Health.HEALTHY


def test_a_fragile_spf_record_is_a_warning_alert_not_a_failure() -> None:
    from noc.check import report_json
    from noc.model import AuthCheck, DmarcCheck, EmailAuthSample, PtrCheck

    d = Driver(estate())
    d.round()
    fragile = AuthCheck(True, "pass", "passes for this IP, fragile: other senders get permerror")
    ok = AuthCheck(True, "pass")
    when = (d.clock.monotonic(), d.clock.utcnow())
    d.engine.ingest_email_auth(
        (
            EmailAuthSample(
                "ro",
                *when,
                fragile,
                ok,
                DmarcCheck(True, "p=reject", "reject"),
                PtrCheck(True, "ok"),
            ),
        )
    )
    d.engine.alerts.single_round = True
    d.engine.evaluate_alerts()
    alerts = {a.rule: a for a in d.engine.snapshot().alerts}
    assert "email_auth" not in alerts
    assert alerts["spf_fragile"].severity.value == "warning"
    assert "fragile" in alerts["spf_fragile"].summary
    report = report_json(d.engine.snapshot())
    assert report["email_auth"][0]["spf"]["warning"].startswith("passes for this IP")
    assert report["status"] == "WARNING"


async def test_a_flapping_region_keeps_its_episode_across_a_restart(tmp_path: Any) -> None:
    """Found by starting the dashboard twice on one state dir while a region flapped:
    after the restart the probe window was empty, so region_degraded resolved (and would
    page again) before the window could show the flapping it still did. A restored
    firing episode is held until a full window of probes has been seen."""
    from noc.alert_journal import AlertJournal

    flap = {"bg/0": HTTP_503, "bg/1": HTTP_503}
    first = Driver(estate())
    journal = AlertJournal(tmp_path / "alerts.jsonl", first.clock)
    for i in range(10):
        first.round(flap if i % 2 else None)
        await journal.record(first.engine.evaluate_alerts())
    (episode,) = [a.id for a in first.engine.snapshot().alerts if a.rule == "region_degraded"]

    second = Driver(estate())
    AlertJournal(tmp_path / "alerts.jsonl", second.clock).restore(second.engine.alerts)
    transitions = []
    for i in range(12):
        second.round(flap if i % 2 else None)
        transitions += [(n.event, n.alert.id) for n in second.engine.evaluate_alerts()]
    assert transitions == []  # no resolve, no second firing: the same episode throughout
    firing = [a.id for a in second.engine.snapshot().alerts if a.rule == "region_degraded"]
    assert firing == [episode]
