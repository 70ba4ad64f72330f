"""A poll loop that dies is reported (log, loop_failures) and started again.

A real scheduler polls a real health endpoint on loopback; the engine is made to
raise once (fault injection), which kills that check's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import CheckSample
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint


@pytest.mark.parametrize(
    "probe_thread", [False, True], ids=["on-the-ui-loop", "in-the-probe-thread"]
)
async def test_a_dead_loop_is_reported_and_restarted(
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    caplog: pytest.LogCaptureFixture,
    probe_thread: bool,
) -> None:
    endpoint = await health_endpoint("ro")
    config = parse_config(
        {
            "estate": {"name": "t"},
            "health": {"interval_seconds": 0.2, "failure_threshold": 3},
            "regions": [{"id": "ro", "role": "primary", "checks": [{"url": endpoint.url}]}],
        }
    )
    changes: list[None] = []
    progress = asyncio.Event()

    def changed() -> None:
        changes.append(None)
        progress.set()

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            progress.clear()
            await progress.wait()

    scheduler = Scheduler(config, SystemClock(), on_change=changed, probe_thread=probe_thread)
    ingest = scheduler.engine.ingest
    ingested: list[CheckSample] = []

    def ingest_with_one_bug(sample: CheckSample) -> None:
        if not ingested:
            ingested.append(sample)
            raise KeyError("a bug in the engine")
        ingested.append(sample)
        ingest(sample)

    scheduler.engine.ingest = ingest_with_one_bug  # type: ignore[method-assign]
    check_id = scheduler.engine.targets[0].check_id
    try:
        with caplog.at_level(logging.INFO, logger="noc"):
            scheduler.start()
            async with asyncio.timeout(10):
                await until(lambda: check_id in scheduler.loop_failures)
                failure = scheduler.loop_failures[check_id]
                assert failure.error == "KeyError: 'a bug in the engine'"
                assert failure.deaths == 1
                assert "restarting in 1 s" in failure.describe()
                # Restarted after its backoff: it probes and feeds the engine again.
                await until(lambda: len(ingested) >= 3)
        died = [r for r in caplog.records if "died" in r.getMessage()]
        assert len(died) == 1 and died[0].exc_info is not None
        assert any("restarted" in r.getMessage() for r in caplog.records)
        assert changes, "the app is told, so the banner can say so"
        assert scheduler.engine.snapshot().regions[0].checks[0].last is not None
    finally:
        await scheduler.stop()
    # Stopping is not dying: no restart is pending and nothing more is logged.
    assert not scheduler._restarts
