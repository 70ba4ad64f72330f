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

The retries (--retries): a failing check is probed again every retry interval, so
detection no longer waits threshold x interval. Here the endpoint is killed at a
random moment of the interval (as an outage strikes), the default retry interval
applies (min(interval, 2 s), or --retry), and the time to down is reported beside
the threshold x interval floor of the schedule alone. --scale N runs the standard
preset's 30 s x 3 (retry 2 s) N times faster (interval 30/N s, retry 2/N s) and
reports the figures scaled back. Then a flapping endpoint (EndpointMode.FLAP,
200 and 503 request by request) is probed for --flap-slots intervals with the same
settings, and every transition to down is counted: each one is a false down.

    python bench/detection.py [--trials 20] [--interval 1] [--threshold 3] [--fault down|slow]
    python bench/detection.py --retries [--scale 10] [--trials 20] [--flap-slots 30]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from noc.clock import SystemClock
from noc.config import DEFAULT_RETRY_SECONDS, parse_config
from noc.model import CheckSample, Health
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
                # The schedule alone: no faster retries (see --retries for those).
                "retry_interval_seconds": interval,
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


def retry_config(
    watched: HealthEndpoint,
    control: HealthEndpoint,
    interval: float,
    retry: float,
    threshold: int,
    changed: asyncio.Event | None = None,
) -> Scheduler:
    config = parse_config(
        {
            "health": {
                "interval_seconds": interval,
                "retry_interval_seconds": retry,
                "failure_threshold": threshold,
                "timeout_seconds": min(2.0, retry),
            },
            "regions": [
                {"id": "ro", "role": "primary", "checks": [{"url": watched.url}]},
                {"id": "bg", "checks": [{"url": control.url}]},
            ],
        }
    )
    return Scheduler(config, SystemClock(), on_change=changed.set if changed else None)


async def retry_trial(interval: float, retry: float, threshold: int) -> float:
    """Kill the endpoint at a random moment of its interval; seconds until down."""
    watched, control = HealthEndpoint("ro"), HealthEndpoint("bg")
    await watched.start()
    await control.start()
    changed = asyncio.Event()
    scheduler = retry_config(watched, control, interval, retry, threshold, changed)

    async def until(health: Health) -> None:
        while scheduler.engine.snapshot().regions[0].health is not health:
            changed.clear()
            await changed.wait()

    scheduler.start()
    try:
        await until(Health.HEALTHY)
        await asyncio.sleep(random.uniform(0, interval))
        await watched.set_mode(EndpointMode.DOWN)
        killed = time.monotonic()
        await until(Health.DOWN)
        return time.monotonic() - killed
    finally:
        await scheduler.stop()
        await watched.stop()
        await control.stop()


async def flap_downs(interval: float, retry: float, threshold: int, slots: int) -> tuple[int, int]:
    """Transitions to down of a check on a flapping endpoint over `slots` intervals,
    and the probes it took."""
    watched, control = HealthEndpoint("ro"), HealthEndpoint("bg")
    await watched.start()
    await control.start()
    scheduler = retry_config(watched, control, interval, retry, threshold)
    downs = probes = 0
    ingest = scheduler.engine.ingest

    def counting(sample: CheckSample) -> None:
        nonlocal downs, probes
        before = scheduler.engine.snapshot().regions[0].health
        ingest(sample)
        if sample.check_id == "ro/0":
            probes += 1
            after = scheduler.engine.snapshot().regions[0].health
            downs += before is not Health.DOWN and after is Health.DOWN

    scheduler.engine.ingest = counting  # type: ignore[method-assign]
    await watched.set_mode(EndpointMode.FLAP)
    scheduler.start()
    try:
        await asyncio.sleep(slots * interval)
    finally:
        await scheduler.stop()
        await watched.stop()
        await control.stop()
    return downs, probes


async def retries(args: argparse.Namespace) -> None:
    interval = 30.0 / args.scale if args.scale else args.interval
    retry = (
        2.0 / args.scale
        if args.scale
        else (args.retry or min(args.interval, DEFAULT_RETRY_SECONDS))
    )
    unit = args.scale or 1.0
    scaled = f" (x{args.scale:g}: the standard preset 30 s x 3, retry 2 s)" if args.scale else ""
    print(f"interval {interval:g} s, retry {retry:g} s, threshold {args.threshold}{scaled}")
    detections = []
    for number in range(1, args.trials + 1):
        detection = await retry_trial(interval, retry, args.threshold)
        detections.append(detection * unit)
        print(f"trial {number:2}: down in {detection * unit:.2f} s", flush=True)
    floor = args.threshold * interval * unit
    window = f"{(args.threshold - 1) * interval * unit:.0f}-{floor:.0f}"
    print(
        f"\ntime to down, endpoint killed at a random moment, {args.trials} trials: "
        f"median {statistics.median(detections):.2f} s, min {min(detections):.2f} s, "
        f"max {max(detections):.2f} s\n"
        f"  beside the schedule alone: floor threshold x interval = {floor:.0f} s "
        f"(at a random moment: {window} s, median {floor - interval * unit / 2:.0f} s)\n"
        f"  worst case with retries: interval + (threshold - 1) x retry = "
        f"{(interval + (args.threshold - 1) * retry) * unit:.0f} s"
    )
    downs, probes = await flap_downs(interval, retry, args.threshold, args.flap_slots)
    print(
        f"flapping endpoint (200/503 alternating), {args.flap_slots} intervals: "
        f"{downs} false downs in {probes} probes"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--threshold", type=int, default=3)
    parser.add_argument("--fault", choices=["down", "slow"], default="down")
    parser.add_argument("--retries", action="store_true", help="time to down with retries")
    parser.add_argument("--retry", type=float, help="retry interval (default min(interval, 2))")
    parser.add_argument("--scale", type=float, help="run 30 s x 3 (retry 2 s) this much faster")
    parser.add_argument("--flap-slots", type=int, default=30)
    args = parser.parse_args()
    if args.retries:
        await retries(args)
        return
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
