"""How long after an endpoint dies does noc declare its region down?

A real aiohttp endpoint on loopback is polled by the real scheduler and collector
at --interval seconds with --threshold. Each trial kills the endpoint right after
a successful probe, so the floor is threshold x interval: the first failed probe
comes one interval later and the region is down at the threshold-th failure.
The overhead is measured detection minus that floor. A second, healthy region
keeps the estate from looking like "noc cut off" (which would, by design, keep
the last known status).

With --fault slow the endpoint hangs instead of refusing, so each failed probe
also waits out the timeout: the floor becomes threshold x interval + timeout.

    python bench/detection.py [--trials 20] [--interval 1] [--threshold 3] [--fault down|slow]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import Health
from noc.scheduler import Scheduler
from noc.simulator.health_endpoint import EndpointMode, HealthEndpoint


async def trial(
    interval: float, threshold: int, probe_timeout: float, fault: EndpointMode
) -> float:
    watched, control = HealthEndpoint("ro"), HealthEndpoint("bg")
    await watched.start()
    await control.start()
    config = parse_config(
        {
            "health": {
                "interval_seconds": interval,
                "failure_threshold": threshold,
                "timeout_seconds": probe_timeout,
            },
            "regions": [
                {"id": "ro", "role": "primary", "checks": [{"url": watched.url}]},
                {"id": "bg", "checks": [{"url": control.url}]},
            ],
        }
    )
    changed = asyncio.Event()
    scheduler = Scheduler(config, SystemClock(), on_change=changed.set)

    def ro_health() -> tuple[Health, int]:
        region = scheduler.engine.snapshot().regions[0]
        return region.health, region.checks[0].consecutive_successes

    async def wait_for(condition: object) -> None:
        while not condition():  # type: ignore[operator]
            changed.clear()
            await changed.wait()

    scheduler.start()
    try:
        await wait_for(lambda: ro_health() == (Health.HEALTHY, 2))
        await watched.set_mode(fault)
        killed = time.monotonic()
        await wait_for(lambda: ro_health()[0] is Health.DOWN)
        return time.monotonic() - killed
    finally:
        await scheduler.stop()
        await watched.stop()
        await control.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--threshold", type=int, default=3)
    parser.add_argument("--fault", choices=["down", "slow"], default="down")
    args = parser.parse_args()
    timeout = min(1.0, args.interval / 2)
    fault = EndpointMode.DOWN if args.fault == "down" else EndpointMode.SLOW
    floor = args.threshold * args.interval + (timeout if fault is EndpointMode.SLOW else 0)
    detections = []
    for number in range(1, args.trials + 1):
        detection = await trial(args.interval, args.threshold, timeout, fault)
        detections.append(detection)
        print(f"trial {number:2}: detected in {detection:.3f} s", flush=True)
    overheads_ms = [(d - floor) * 1000 for d in detections]
    print(
        f"\nfault {args.fault}: detection floor {floor:.2f} s (threshold {args.threshold} x "
        f"interval {args.interval:g} s{' + timeout' if args.fault == 'slow' else ''}), "
        f"{args.trials} trials:\n"
        f"  median detection {statistics.median(detections):.3f} s, "
        f"overhead median {statistics.median(overheads_ms):.1f} ms, "
        f"max {max(overheads_ms):.1f} ms, min {min(overheads_ms):.1f} ms\n"
        "  (the kill lands just after the last good probe began and the schedule is anchored "
        "to probe starts, so an overhead can be a few ms below zero)"
    )


if __name__ == "__main__":
    asyncio.run(main())
