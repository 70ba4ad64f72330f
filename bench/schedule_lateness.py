"""Does noc hold 1,000 checks at a 1 s interval, and where does lateness come from?

A real aiohttp endpoint (its own process, so its CPU is not this one's) answers
`{"status": "healthy"}` on loopback. Each mode runs in a fresh Python process of its
own, for --seconds, and after a warm-up reports:

- lateness: how long after its slot each probe started (the check's loop called the
  collector), and how long after its slot the request went out (past the collector's
  in-flight bound), p50 / p95 / p99 / max;
- loop lag: a tiny task asking to wake every 10 ms, how late it woke (the event
  loop's own lag, whatever caused it);
- CPU: the process's CPU seconds per wall second (1.0 = one core).

Modes:
- anchor: a bare asyncio loop with 1,000 no-op timers at 1 s (phased as noc phases its
  checks): the floor this machine and its load set for any asyncio scheduler;
- headless: the real Scheduler as `noc check --watch`-like code runs it, no UI;
- headless-uvloop: the same on uvloop's event loop;
- headless-probe-thread: the Scheduler with its check loops in a thread on an event
  loop of their own (ProbeThread), samples handed back to the engine's loop;
- app-shared-loop: the dashboard (NocApp under Textual's headless run_test, 200x60)
  with its check loops on the UI's loop (as before the probe thread);
- app-shared-loop-uvloop: the same on uvloop;
- app: the dashboard as it runs now (1,000 checks: probing in its own thread).

    python bench/schedule_lateness.py [--checks 1000] [--seconds 20] [--modes anchor,headless]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXPECTED = "healthy"
WARM_UP_SECONDS = 4.0
LAG_TICK_SECONDS = 0.01
REGIONS = 20  # the checks are spread over this many regions (an app draws them all)
MODES = (
    "anchor",
    "headless",
    "headless-uvloop",
    "headless-probe-thread",
    "app-shared-loop",
    "app-shared-loop-uvloop",
    "app",
)

SERVER = """
import sys
from aiohttp import web

async def health(request):
    return web.json_response({"status": "healthy", "region": "ro"})

app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"nothing listens on {port}")


class Recorder:
    """Lateness samples taken after the warm-up only."""

    def __init__(self, seconds: float) -> None:
        self.begin = time.monotonic() + WARM_UP_SECONDS
        self.end = self.begin + seconds
        self.series: dict[str, list[float]] = {"start": [], "request": [], "loop_lag": []}
        self.cpu_begin = 0.0
        self.cpu_end = 0.0
        self.probes = 0

    def add(self, series: str, lateness: float) -> None:
        now = time.monotonic()
        if self.begin <= now < self.end:
            self.series[series].append(lateness)

    async def loop_lag(self) -> None:
        while True:
            asked = time.monotonic() + LAG_TICK_SECONDS
            await asyncio.sleep(LAG_TICK_SECONDS)
            self.add("loop_lag", time.monotonic() - asked)

    async def hold(self) -> None:
        """Run the measured window; CPU is read over the window alone."""
        await asyncio.sleep(max(0.0, self.begin - time.monotonic()))
        self.cpu_begin = time.process_time()
        await asyncio.sleep(max(0.0, self.end - time.monotonic()))
        self.cpu_end = time.process_time()

    def report(self, mode: str, checks: int) -> dict[str, Any]:
        seconds = self.end - self.begin
        return {
            "mode": mode,
            "checks": checks,
            "seconds": seconds,
            "cpu_per_second": (self.cpu_end - self.cpu_begin) / seconds,
            "series": {name: summary(values) for name, values in self.series.items()},
        }


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def q(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {"n": len(ordered), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": q(1.0)}


async def anchor(checks: int, seconds: float) -> dict[str, Any]:
    """1,000 no-op timers re-armed every second, each at its own phase."""
    recorder = Recorder(seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()

    def fire(due: float) -> None:
        recorder.add("start", loop.time() - due)
        loop.call_at(due + 1.0, fire, due + 1.0)

    for index in range(checks):
        due = start + 1.0 + index / checks
        loop.call_at(due, fire, due)
    lag = asyncio.create_task(recorder.loop_lag())
    await recorder.hold()
    lag.cancel()
    return recorder.report("anchor", checks)


def estate(url: str, checks: int) -> dict[str, Any]:
    per_region = max(1, checks // REGIONS)
    return {
        "estate": {"name": "lateness"},
        "health": {"interval_seconds": 1, "timeout_seconds": 2},
        "regions": [
            {
                "id": f"r{region:02d}",
                "role": "primary" if region == 0 else "secondary",
                "checks": [
                    {"name": f"c{index:03d}", "url": url, "body_contains": EXPECTED}
                    for index in range(per_region)
                ],
            }
            for region in range(checks // per_region)
        ],
    }


def instrument(scheduler: Any, recorder: Recorder) -> None:
    """Time each probe against its slot, as Scheduler._check_loop computes the slots:
    the second probe one interval plus the check's phase after the first, then one
    interval after the last slot, or at once when that has passed."""
    targets = scheduler.engine.targets
    phases = {t.check_id: t.interval_seconds * i / len(targets) for i, t in enumerate(targets)}
    due: dict[str, float] = {}
    probe = scheduler._probe
    exchange = scheduler.check_collector._exchange

    async def timed_probe(target: Any, collector: Any = None) -> Any:
        now = time.monotonic()
        slot = due.get(target.check_id)
        if slot is None:
            slot = now
            due[target.check_id] = now + target.interval_seconds + phases[target.check_id]
        else:
            recorder.add("start", now - slot)
        current_slot[target.check_id] = slot
        sample = await probe(target, collector)
        recorder.probes += 1
        finished = time.monotonic()
        if due[target.check_id] <= finished:
            due[target.check_id] = max(due[target.check_id] + target.interval_seconds, finished)
        return sample

    current_slot: dict[str, float] = {}

    async def timed_exchange(client: Any, target: Any, progress: Any) -> Any:
        # The first probes (all at once, at start) fall in the warm-up, not counted.
        recorder.add("request", time.monotonic() - current_slot[target.check_id])
        return await exchange(client, target, progress)

    scheduler._probe = timed_probe
    scheduler.check_collector._exchange = timed_exchange


async def headless(
    url: str, checks: int, seconds: float, mode: str, *, probe_thread: bool = False
) -> dict[str, Any]:
    from noc.clock import SystemClock
    from noc.config import parse_config
    from noc.scheduler import Scheduler

    recorder = Recorder(seconds)
    scheduler = Scheduler(
        parse_config(estate(url, checks)), SystemClock(), probe_thread=probe_thread
    )
    instrument(scheduler, recorder)
    lag = asyncio.create_task(recorder.loop_lag())
    scheduler.start()
    try:
        await recorder.hold()
    finally:
        lag.cancel()
        await scheduler.stop()
    return recorder.report(mode, checks)


async def app(
    url: str, checks: int, seconds: float, mode: str, *, shared_loop: bool = False
) -> dict[str, Any]:
    import noc.app
    from noc.app import NocApp
    from noc.config import parse_config

    recorder = Recorder(seconds)
    if shared_loop:
        noc.app.PROBE_THREAD_CHECKS = checks + 1  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as state:
        dashboard = NocApp(parse_config(estate(url, checks)), state_path=Path(state))
        instrument(dashboard.scheduler, recorder)
        async with dashboard.run_test(size=(200, 60)):
            lag = asyncio.create_task(recorder.loop_lag())
            try:
                await recorder.hold()
            finally:
                lag.cancel()
    return recorder.report(mode, checks)


def run_mode(mode: str, url: str, checks: int, seconds: float) -> dict[str, Any]:
    runners: dict[str, Callable[[], Any]] = {
        "anchor": lambda: anchor(checks, seconds),
        "headless": lambda: headless(url, checks, seconds, mode),
        "headless-uvloop": lambda: headless(url, checks, seconds, mode),
        "headless-probe-thread": lambda: headless(url, checks, seconds, mode, probe_thread=True),
        "app-shared-loop": lambda: app(url, checks, seconds, mode, shared_loop=True),
        "app-shared-loop-uvloop": lambda: app(url, checks, seconds, mode, shared_loop=True),
        "app": lambda: app(url, checks, seconds, mode),
    }
    if mode.endswith("-uvloop"):
        import uvloop

        return uvloop.run(runners[mode]())  # type: ignore[no-any-return]
    return asyncio.run(runners[mode]())  # type: ignore[no-any-return]


def line(name: str, figures: dict[str, float]) -> str:
    if not figures.get("n"):
        return f"    {name:9} no samples"
    return (
        f"    {name:9} p50 {figures['p50']:7.1f}  p95 {figures['p95']:7.1f}  "
        f"p99 {figures['p99']:7.1f}  max {figures['max']:7.1f} ms  (n={figures['n']:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval for each mode (how soon a thread waiting for the GIL gets it)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: run one mode
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        if args.switch_interval:
            sys.setswitchinterval(args.switch_interval)
        print(json.dumps(run_mode(args.one, args.url, args.checks, args.seconds)))
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_listening(port)
        url = f"http://127.0.0.1:{port}/health"
        print(
            f"{args.checks} checks at 1 s, {args.seconds:g} s measured after "
            f"{WARM_UP_SECONDS:g} s warm-up; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores"
        )
        for mode in args.modes.split(","):
            command = [sys.executable, __file__, "--one", mode, "--url", url,
                       "--checks", str(args.checks), "--seconds", str(args.seconds)]  # fmt: skip
            if args.switch_interval:
                command += ["--switch-interval", str(args.switch_interval)]
            child = subprocess.run(command, capture_output=True, text=True, check=False)
            if child.returncode != 0:
                print(f"  {mode}: failed\n{child.stderr[-2000:]}")
                continue
            result = json.loads(child.stdout.strip().splitlines()[-1])
            series = result["series"]
            print(
                f"  {mode}: {result['cpu_per_second']:.2f} CPU-s per s, "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            print(line("start", series["start"]))
            if series["request"].get("n"):
                print(line("request", series["request"]))
            print(line("loop lag", series["loop_lag"]))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
