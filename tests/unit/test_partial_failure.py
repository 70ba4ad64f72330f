"""Partial failure, live: the demo's `flap` fault (a real endpoint alternating 200 and
503) never reaches three failures in a row, yet fails half its probes. The scheduler's
own tasks probe it; the check is degraded and flapping, and region_degraded fires."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from test_scheduler_alerting import eventually

from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import AlertState, Health
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint
from noc.simulator.health_endpoint import EndpointMode


async def test_a_flapping_endpoint_is_degraded_flapping_and_alerts(
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    config = parse_config(
        {
            "health": {"interval_seconds": 0.1, "failure_threshold": 3, "timeout_seconds": 0.5},
            "regions": [
                {"id": "ro", "role": "primary", "checks": [{"url": ro.url}]},
                {"id": "bg", "checks": [{"url": bg.url}]},
            ],
        }
    )
    scheduler = Scheduler(config, SystemClock())
    scheduler.start()
    seen: set[Health] = set()

    def degraded_alert() -> bool:
        snapshot = scheduler.snapshot()
        region = snapshot.region("bg")
        assert region is not None
        seen.add(region.health)
        return any(
            a.rule == "region_degraded" and a.state is AlertState.FIRING for a in snapshot.alerts
        )

    try:
        await eventually(lambda: scheduler.snapshot().healthy_count == 2, "both healthy")
        await bg.set_mode(EndpointMode.FLAP)
        await eventually(degraded_alert, "region_degraded firing for the flapping bg")
        snapshot = scheduler.snapshot()
    finally:
        await scheduler.stop()
    region = snapshot.region("bg")
    assert region is not None and region.health is Health.DEGRADED
    (check,) = region.checks
    assert check.flapping and check.health is Health.DEGRADED
    assert Health.DOWN not in seen
    (alert,) = [a for a in snapshot.alerts if a.rule == "region_degraded"]
    assert "1/1 checks flapping" in alert.summary
    assert not any(a.rule == "region_down" for a in snapshot.alerts)
