"""Mail queues and rejections from postfix_exporter reading a real Postfix queue.

The exporter (Debian's prometheus-postfix-exporter) reads this test's own Postfix
through `--postfix.showq_path` (its queue is not the system's) and its log through
`--postfix.logfile_path`; Postfix defers every remote message (its relayhost is a
closed loopback port) and rejects relaying with 554.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paths import TESTS
from postfix import PostfixExporter, PostfixServer
from support import estate_config, feed_flags, feed_round, stored_flag

from noc.audit import JsonlLog, read_jsonl
from noc.check import report_json
from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.failover import plan_action
from noc.model import ActionKind, ActionPlan, AlertState, MtaSample
from noc.operations import EXIT_DONE, ActionRequest, Confirmation, Operations, OperatorIO
from noc.safety import mail_queue_drained
from noc.scheduler import Scheduler
from noc.simulator import RedisServer
from noc_collectors.mta import MtaCollector, MtaMetrics, RejectionRate, read_mta

DATA = TESTS / "data"
OPERATOR = {"user": "op", "host": "noc1"}


def test_the_exporters_real_page_gives_depths_age_and_counters() -> None:
    # Saved from prometheus-postfix-exporter 0.3.0 reading a Postfix queue with one
    # deferred and one held message, after three relaying attempts refused with 554.
    page = (DATA / "postfix_exporter_0.3.0.prom").read_text()
    reading = read_mta(page, MtaMetrics())
    assert (reading.queue_active, reading.queue_deferred, reading.queue_hold) == (0, 1, 1)
    # One deferred message: the histogram's mean is its exact age.
    assert reading.oldest_deferred_seconds == pytest.approx(20.41, abs=0.01)
    assert reading.oldest_is_lower_bound is False
    assert reading.rejected_totals == {"554": 3.0}
    assert reading.missing == ()


def _age_page(buckets: dict[str, int], total: float, count: int) -> str:
    name = "postfix_showq_message_age_seconds"
    lines = [f"# TYPE {name} histogram"]
    for bound, cumulative in buckets.items():
        lines.append(f'{name}_bucket{{queue="deferred",le="{bound}"}} {cumulative}')
    lines.append(f'postfix_showq_message_age_seconds_sum{{queue="deferred"}} {total}')
    lines.append(f'postfix_showq_message_age_seconds_count{{queue="deferred"}} {count}')
    return "\n".join(lines) + "\n"


def test_from_a_histogram_the_oldest_age_is_a_floor_never_an_overstatement() -> None:
    # Three messages, two of 15 s and one between 1000 and 10000 s: the oldest is
    # at least 1000 s (the bucket's lower bound), whatever its exact age.
    page = _age_page({"10": 0, "100": 2, "1000": 2, "10000": 3, "+Inf": 3}, 1530.0, 3)
    reading = read_mta(page, MtaMetrics())
    assert reading.oldest_deferred_seconds == 1000.0
    assert reading.oldest_is_lower_bound is True
    assert "queue=" in " ".join(reading.missing)  # the depth series are not on this page


def test_a_configured_gauge_replaces_the_histogram() -> None:
    page = 'mta_oldest_deferred_seconds{instance="mx1"} 7200\n'
    metrics = MtaMetrics(oldest_gauge='mta_oldest_deferred_seconds{instance="mx1"}')
    reading = read_mta(page, metrics)
    assert reading.oldest_deferred_seconds == 7200.0
    assert reading.oldest_is_lower_bound is False


# A history of reads: between two reads each code's counter grows by some amount,
# or the exporter restarts (every counter starts again from zero) and then grows.
_step = st.tuples(
    st.dictionaries(st.sampled_from(["421", "450", "454", "550", "554"]), st.integers(0, 500)),
    st.booleans(),  # the exporter restarted before this growth
    st.floats(min_value=1, max_value=600),  # seconds since the previous read
)


@given(st.lists(_step, min_size=1, max_size=30))
def test_rejection_rates_count_every_rejection_since_the_last_read(
    history: list[tuple[dict[str, int], bool, float]],
) -> None:
    rate = RejectionRate()
    totals: dict[str, float] = {}
    at = 0.0
    assert rate.update(totals, at) is None  # nothing to compare the first read with
    for grown, restarted, seconds in history:
        if restarted:
            totals = {}
        for code, count in grown.items():
            totals[code] = totals.get(code, 0.0) + count
        at += seconds
        per_minute = rate.update(dict(totals), at)
        assert per_minute is not None
        minutes = seconds / 60
        for cls in ("4xx", "5xx"):
            expected = sum(n for code, n in grown.items() if code.startswith(cls[0]))
            got = per_minute[cls] * minutes
            if restarted:
                # A counter lower than before was reset: all of its value is new. One
                # that restarted and already grew past its old value cannot be told
                # from growth (as with Prometheus' rate()): counted short, never over.
                assert -0.01 <= got <= expected + 0.01
            else:
                assert got == pytest.approx(expected, abs=0.01)


# --- a real Postfix, a real exporter ---------------------------------------------------


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    with PostfixServer() as server:
        yield server


@pytest.fixture
def exporter(postfix: PostfixServer) -> Iterator[PostfixExporter]:
    with PostfixExporter(postfix) as running:
        yield running


def _wait(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _rejected(exporter: PostfixExporter) -> float:
    for line in exporter.page().splitlines():
        if line.startswith('postfix_smtpd_messages_rejected_total{code="554"}'):
            return float(line.split()[-1])
    return 0.0


def mta_config(url: str, **limits: Any) -> NocConfig:
    regions = []
    for rid, role in (("ro", "primary"), ("bg", "secondary")):
        region: dict[str, Any] = {
            "id": rid,
            "role": role,
            "checks": [{"url": f"https://{rid}.mail.example.com/health"}],
        }
        region["mta"] = {"metrics_url": url, **limits}
        regions.append(region)
    return parse_config({"regions": regions})


async def test_queues_rejections_and_their_alerts_from_a_real_postfix(
    postfix: PostfixServer, exporter: PostfixExporter
) -> None:
    postfix.submit("one@far.example")
    postfix.submit("two@far.example")
    _wait(
        lambda: sum(e["queue_name"] == "deferred" for e in postfix.queue_entries()) >= 2,
        "two deferred messages",
    )
    postfix.hold(str(postfix.queue_entries()[-1]["queue_id"]))
    clock = FakeClock()
    collector = MtaCollector("ro", exporter.url, clock=clock, timeout_seconds=5)
    try:
        first = await collector.poll()
        assert first.error is None
        assert (first.queue_deferred, first.queue_hold) == (1, 1)
        assert first.rejections_per_minute is None  # one read: no rate yet
        assert first.oldest_deferred_seconds is not None

        before = _rejected(exporter)
        postfix.reject(6)
        _wait(lambda: _rejected(exporter) >= before + 6, "the exporter to count 6 rejections")
        clock.advance(60)
        second = await collector.poll()
        assert second.rejections_per_minute == {"4xx": 0.0, "5xx": 6.0}

        # The exporter restarts: its counters start again from zero, and the two
        # rejections since are counted, not a negative rate.
        exporter.stop()
        exporter.start()
        postfix.reject(2)
        _wait(lambda: _rejected(exporter) >= 2, "the restarted exporter to count 2")
        clock.advance(60)
        third = await collector.poll()
        assert third.rejections_per_minute == {"4xx": 0.0, "5xx": 2.0}
    finally:
        await collector.aclose()

    config = mta_config(
        exporter.url,
        queue_depth_threshold=1,
        backlog_sustain_seconds=0,
        rejections_per_minute_threshold=1,
        failback_deferred_threshold=0,
    )
    engine = Engine(config, clock)
    feed_round(engine, clock)
    engine.ingest_mta(third)
    engine.evaluate_alerts()
    snapshot = engine.snapshot()
    firing = {a.rule: a for a in snapshot.alerts if a.state is AlertState.FIRING}
    assert "queue_backlog" in firing and "2 queued" in firing["queue_backlog"].summary
    assert "2 5xx/min" in firing["rejections"].summary

    report = report_json(snapshot)
    ro = next(r for r in report["regions"] if r["id"] == "ro")
    assert ro["mta"]["queue_deferred"] == 1
    assert ro["mta"]["queue_hold"] == 1
    assert ro["mta"]["rejections_per_minute"] == {"4xx": 0.0, "5xx": 2.0}
    assert set(ro["mta"]) >= {
        "queue_active", "queue_deferred", "queue_hold", "oldest_deferred_seconds",
        "rejections_per_minute", "error",
    }  # fmt: skip
    bg = next(r for r in report["regions"] if r["id"] == "bg")
    assert bg["mta"] is None  # configured, but not read in this test

    # The failover's blast radius names the mail that stays behind in the source.
    feed_flags(engine, clock, "ro")
    plan = plan_action(engine.snapshot(), config, ActionKind.FAILOVER, "bg", OPERATOR)
    assert plan.blast.source_queue is not None
    assert plan.blast.queue_left_behind is not None
    assert "1 deferred" in plan.blast.queue_left_behind
    assert plan.blast.as_json()["source_queue"]["queue_hold"] == 1

    # A failback to ro waits while its deferred queue is over the threshold.
    drained, detail = mail_queue_drained(engine.snapshot(), config, "ro")
    assert not drained and "1 deferred (> 0)" in detail
    feed_flags(engine, clock, "bg")
    back = plan_action(engine.snapshot(), config, ActionKind.FAILBACK, "ro", OPERATOR)
    gate = next(c for c in back.checks if c.name == "target mail queue drained")
    # Shown in the plan, never a refusal: the failback waits for it instead.
    assert not gate.ok and not gate.blocking
    assert "waits for it to drain to 0" in gate.detail


def test_without_regions_mta_the_json_field_is_null() -> None:
    config = parse_config(
        {"regions": [{"id": "ro", "role": "primary", "checks": [{"url": "https://a/h"}]}]}
    )
    engine = Engine(config, FakeClock())
    report = report_json(engine.snapshot())
    assert report["regions"][0]["mta"] is None


def test_an_unreachable_exporter_is_the_samples_error() -> None:
    sample = MtaSample("ro", 0.0, FakeClock().utcnow(), error="connection refused")
    assert sample.as_json()["queue_deferred"] is None
    assert sample.as_json()["error"] == "connection refused"


class RecordedDrain:
    """The operator's view of the wait (the dashboard's DrainWait, the CLI's lines):
    every detail shown, in order."""

    cancelled = False

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.closed = False

    def show(self, detail: str) -> None:
        self.shown.append(detail)

    def close(self) -> None:
        self.closed = True


async def test_a_failback_waits_for_the_targets_deferred_queue_then_acts(
    region_stores: dict[str, RedisServer], tmp_path: Path
) -> None:
    """Failed over to bg; ro, the primary, still holds the mail it deferred. The
    failback to ro waits, reading ro's exporter, until its deferred queue is down to
    the threshold (0): nothing is written while it waits, and the flag moves once the
    queue drained (the operator deletes it here, as a flush to a fixed relay would)."""
    with PostfixServer() as postfix, PostfixExporter(postfix) as exporter:
        for recipient in ("one@far.example", "two@far.example"):
            postfix.submit(recipient)
        await asyncio.to_thread(
            _wait,
            lambda: sum(e["queue_name"] == "deferred" for e in postfix.queue_entries()) == 2,
            "two deferred messages",
        )
        data = estate_config({rid: s.url for rid, s in region_stores.items()}).model_dump(
            mode="json"
        )
        data["regions"][0]["mta"] = {
            "metrics_url": exporter.url,
            "failback_deferred_threshold": 0,
        }
        data["failover"] = {
            "actuators": ["flag"],
            "cooldown_seconds": 0,
            "store_timeout_seconds": 1,
            # The fake clock never reaches it: the queue, not a timeout, ends the wait.
            "drain_timeout_seconds": 60,
        }
        config = parse_config(data)
        clock = FakeClock()
        scheduler = Scheduler(config, clock, single_round=True)
        audit = JsonlLog(tmp_path / "audit.jsonl", clock)
        ops = Operations(config, scheduler, audit, clock, refresh=scheduler.read_flags)
        feed_round(scheduler.engine, clock)
        drain = RecordedDrain()

        async def yes(plan: ActionPlan) -> Confirmation:
            return Confirmation("drill", False, "--yes")

        async def watch(plan: ActionPlan) -> RecordedDrain:
            return drain

        io = OperatorIO(confirm=yes, open_drain=watch)
        try:
            over = await ops.run_action(
                ActionRequest(ActionKind.FAILOVER, "bg", OPERATOR, reason="drill"), io
            )
            assert over.exit_code == EXIT_DONE, over.message
            assert not drain.shown  # a failover does not wait for the queue

            back = asyncio.create_task(
                ops.run_action(
                    ActionRequest(ActionKind.FAILBACK, "ro", OPERATOR, reason="drill"), io
                )
            )
            async with asyncio.timeout(60):
                while not any("ro has 2 deferred (> 0)" in d for d in drain.shown):
                    assert not back.done(), back.result().message
                    await asyncio.sleep(0.1)
            # Waiting: the flag still names bg on every store.
            assert {stored_flag(s)["active"] for s in region_stores.values()} == {"bg"}

            await asyncio.to_thread(postfix.delete, "ALL")
            async with asyncio.timeout(60):
                outcome = await back
        finally:
            await scheduler.stop()
    assert outcome.exit_code == EXIT_DONE, outcome.message
    assert {stored_flag(s)["active"] for s in region_stores.values()} == {"ro"}
    assert drain.closed
    assert drain.shown[-1] == "ro has 0 deferred (≤ 0)"
    assert all("deferred" in detail for detail in drain.shown)
    records = read_jsonl(audit.path).records
    back_id = outcome.plan.action_id if outcome.plan else None
    failback = [r["event"] for r in records if r.get("action_id") == back_id]
    # Confirmed, then the wait, then the flag written: one step, after the wait.
    assert failback.index("confirmed") < failback.index("step_result")
    assert [
        r.get("actuator")
        for r in records
        if r.get("action_id") == back_id and r["event"] == "step_result"
    ] == ["flag"]
