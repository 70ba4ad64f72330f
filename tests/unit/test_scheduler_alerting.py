"""The whole alert path, live: a real endpoint fails, the scheduler's tasks probe it,
the rule fires, the journal records it and PagerDuty (a local fake answering as the
real Events API v2) gets a trigger, then a resolve with the same dedup_key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fake_apis import FakeApis

from noc.audit import read_jsonl
from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import Alert, AlertState
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint
from noc.simulator.health_endpoint import EndpointMode


@pytest.fixture
async def apis() -> AsyncIterator[FakeApis]:
    fake = FakeApis()
    await fake.start()
    yield fake
    await fake.stop()


# Generous: this waits for real polls and webhook deliveries (with their retries on a
# busy machine), it does not time them.
EVENTUALLY_SECONDS = 90.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + EVENTUALLY_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {EVENTUALLY_SECONDS:.0f} s: {what}")
        await asyncio.sleep(0.05)


async def test_region_down_pages_and_resolves(
    tmp_path: Path,
    apis: FakeApis,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    monkeypatch.setenv("NOC_TEST_PD_KEY", apis.routing_key)
    config = parse_config(
        {
            "health": {"interval_seconds": 0.2, "failure_threshold": 2, "timeout_seconds": 0.5},
            "regions": [
                {"id": "ro", "role": "primary", "checks": [{"url": ro.url}]},
                {"id": "bg", "checks": [{"url": bg.url}]},
            ],
            "notify": [
                {
                    "kind": "pagerduty",
                    "secret_env": "NOC_TEST_PD_KEY",
                    "api_url": apis.pagerduty_url,
                }
            ],
        }
    )
    scheduler = Scheduler(config, SystemClock(), state_dir=tmp_path)
    scheduler.start()
    try:
        await bg.set_mode(EndpointMode.UNAVAILABLE)
        await eventually(lambda: "triggered" in apis.incidents.values(), "a PagerDuty trigger")
        trigger = apis.requests[0].body
        assert trigger["event_action"] == "trigger"
        assert trigger["payload"]["severity"] == "critical"
        assert "bg down" in trigger["payload"]["summary"]
        await bg.set_mode(EndpointMode.HEALTHY)
        await eventually(lambda: "resolved" in apis.incidents.values(), "a PagerDuty resolve")
        resolve = next(r.body for r in apis.requests if r.body["event_action"] == "resolve")
        assert resolve["dedup_key"] == trigger["dedup_key"]
        assert apis.routing_key not in (tmp_path / "outbox.jsonl").read_text()
        # The API has the resolve before the outbox records its delivery: wait for that.
        await eventually(
            lambda: scheduler.snapshot().notifications[0].pending == 0, "the outbox emptied"
        )
    finally:
        await scheduler.stop()
    journal = [
        (r["transition"], r["alert"]["key"], r["alert"]["id"])
        for r in read_jsonl(tmp_path / "alerts.jsonl").records
    ]
    # One episode: it fired and resolved under one id, the rule instance beside it.
    assert [(t, k) for t, k, _ in journal] == [
        ("firing", "region_down:bg"),
        ("resolved", "region_down:bg"),
    ]
    assert journal[0][2] == journal[1][2] and journal[0][2].startswith("region_down:bg@")


async def test_a_restart_keeps_the_firing_episode_its_ack_and_its_single_page(
    tmp_path: Path,
    apis: FakeApis,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bg is down; noc pages, an operator acks, noc is stopped and started again on the
    same state dir while bg stays down: the same episode (id, ack) is still firing, the
    webhook got one firing and no resolve; then bg recovers and the one resolve names
    that episode."""
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    monkeypatch.setenv("NOC_TEST_HOOK", apis.webhook_url)
    config = parse_config(
        {
            "health": {"interval_seconds": 0.2, "failure_threshold": 2, "timeout_seconds": 0.5},
            "regions": [
                {"id": "ro", "role": "primary", "checks": [{"url": ro.url}]},
                {"id": "bg", "checks": [{"url": bg.url}]},
            ],
            "notify": [{"kind": "webhook", "secret_env": "NOC_TEST_HOOK"}],
        }
    )

    def pages(event: str) -> list[dict[str, Any]]:
        return [r.body["alert"] for r in apis.of("webhook") if r.body["event"] == event]

    def firing(scheduler: Scheduler) -> list[Alert]:
        return [a for a in scheduler.snapshot().alerts if a.state is AlertState.FIRING]

    await bg.set_mode(EndpointMode.UNAVAILABLE)
    first = Scheduler(config, SystemClock(), state_dir=tmp_path)
    first.start()
    try:
        await eventually(lambda: len(pages("firing")) == 1, "the page")
        (episode,) = firing(first)
        ack = first.engine.alerts.ack(episode.id, "op@noc1", "on it")
        assert ack is not None and first.journal is not None
        await first.journal.record_ack(episode.id, ack)
        await eventually(lambda: first.snapshot().notifications[0].pending == 0, "delivered")
    finally:
        await first.stop()

    second = Scheduler(config, SystemClock(), state_dir=tmp_path)
    second.start()
    try:
        # Enough polls for bg to be judged down again from fresh answers (two failures
        # at 0.2 s), and then some: a resolve or a second page would have left by now.
        await eventually(
            lambda: any(
                not c.last.ok
                for r in second.snapshot().regions
                if r.id == "bg"
                for c in r.checks
                if c.last is not None
            ),
            "fresh answers from bg",
        )
        await asyncio.sleep(1.5)
        (still,) = firing(second)
        assert still.id == episode.id and still.started_at == episode.started_at.replace(
            microsecond=0
        )
        assert still.ack is not None and still.ack.note == "on it"
        assert len(pages("firing")) == 1 and pages("resolved") == []
        await bg.set_mode(EndpointMode.HEALTHY)
        await eventually(lambda: len(pages("resolved")) == 1, "the resolve")
        await asyncio.sleep(0.5)
        assert [p["id"] for p in pages("firing")] == [p["id"] for p in pages("resolved")]
        assert pages("resolved")[0]["id"] == episode.id
        assert pages("resolved")[0]["key"] == "region_down:bg"
        assert len(pages("firing")) == 1 and len(pages("resolved")) == 1
    finally:
        await second.stop()
