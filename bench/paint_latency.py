"""From a health endpoint answering 503 to "✗ down" on the operator's terminal.

The real dashboard (`noc --config ...`) runs on a 200x60 pseudo-terminal watching
--regions regions, each with one check on a real aiohttp endpoint on loopback
(1 s interval, down at the first failure). Each trial waits a random fraction of
a second (so the flip lands anywhere in the clock tick's second), switches one
region's endpoint to 503, and times, from the moment the endpoint first answered
noc's probe with 503, until the bench reads "✗ down" from the terminal.

The anchor, measured in the same run on the same endpoints: a Scheduler in this
process (the same collector and engine noc runs, without a UI) polls its own
copy of the estate, timed from the 503 it was given until its snapshot shows the
region down. What is above the anchor is noc's UI: the snapshot, the widgets,
the layout, the write.

    python bench/paint_latency.py [--regions 12] [--trials 20] [--size 200x60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loopback_estate import Endpoints, estate, write_toml
from ptyproc import PtyProcess

from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import Health
from noc.scheduler import Scheduler

DOWN = "✗ down".encode()
# noc's status bar says LIVE once every source has answered.
LIVE = b"LIVE"
# A region put back answers 200 at its next probe (recovery threshold 1): a second,
# plus a margin so that every widget shows it healthy again before the next flip.
RECOVERY_SECONDS = 2.0


class Terminal:
    """The pty's output, read as it arrives on the event loop, with when each byte came."""

    def __init__(self, process: PtyProcess) -> None:
        self.process = process
        self.arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(process.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.process.fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self.process.fd)
            return
        self.process.output += data
        self.arrived.set()

    async def until(self, needle: bytes, start: int, within: float) -> float:
        """time.monotonic() of the read that brought `needle` (searched from `start`)."""
        deadline = time.monotonic() + within
        while needle not in self.process.output[start:]:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        return time.monotonic()

    def close(self) -> None:
        self._loop.remove_reader(self.process.fd)


class Anchor:
    """The same estate watched by a bare Scheduler: when does the engine know?"""

    def __init__(self, endpoints: Endpoints) -> None:
        config = parse_config(estate(endpoints, "anchor"))
        self.scheduler = Scheduler(config, SystemClock(), on_change=self._changed)
        self.down: dict[str, float] = {}

    def _changed(self) -> None:
        now = time.monotonic()
        for region in self.scheduler.engine.snapshot().regions:
            if region.health is Health.DOWN:
                self.down.setdefault(region.id, now)

    async def seen(self, region: str, within: float) -> float:
        deadline = time.monotonic() + within
        while region not in self.down:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the anchor scheduler never saw {region} down")
            await asyncio.sleep(0.005)
        return self.down[region]


def summary(label: str, values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{label:<44} median {statistics.median(ordered):6.1f} ms   "
        f"p95 {p95:6.1f} ms   max {ordered[-1]:6.1f} ms"
    )


async def run(regions: int, trials: int, size: tuple[int, int]) -> None:
    endpoints = Endpoints(regions)
    await endpoints.start()
    anchor = Anchor(endpoints)
    anchor.scheduler.start()
    workdir = Path(tempfile.mkdtemp(prefix="noc-paint-"))
    config = write_toml(estate(endpoints, "noc"), workdir / "noc.toml")
    env = dict(os.environ, XDG_STATE_HOME=str(workdir / "state"), TERM="xterm-256color")
    process = PtyProcess.spawn(
        [sys.executable, "-m", "noc", "--config", str(config)], size=size, env=env
    )
    terminal = Terminal(process)
    paints: list[float] = []
    engine: list[float] = []
    try:
        await terminal.until(LIVE, 0, within=30)
        await asyncio.sleep(RECOVERY_SECONDS)
        # Never the primary: a failing primary is another story (alerts, failover advice).
        candidates = endpoints.region_ids[1:]
        for number in range(trials):
            region = candidates[number % len(candidates)]
            await asyncio.sleep(random.random())
            anchor.down.pop(region, None)
            start = len(process.output)
            endpoints.fail(region)
            painted = await terminal.until(DOWN, start, within=10)
            seen = await anchor.seen(region, within=10)
            paint_ms = (painted - endpoints.first_503[(region, "noc")]) * 1000
            engine_ms = (seen - endpoints.first_503[(region, "anchor")]) * 1000
            paints.append(paint_ms)
            engine.append(engine_ms)
            print(
                f"trial {number + 1:2} {region}: painted {paint_ms:6.1f} ms after the 503 "
                f"(anchor: engine knew in {engine_ms:5.1f} ms)",
                flush=True,
            )
            endpoints.heal(region)
            await asyncio.sleep(RECOVERY_SECONDS)
    finally:
        terminal.close()
        process.stop()
        await anchor.scheduler.stop()
        await endpoints.stop()
    print(f"\n{regions} regions, {size[0]}x{size[1]} pty, {trials} trials")
    print(summary("anchor: 503 -> engine sees the region down", engine))
    print(summary("noc: 503 -> '✗ down' read from the terminal", paints))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=12)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--size", default="200x60", help="columns x rows")
    args = parser.parse_args()
    columns, rows = (int(part) for part in args.size.split("x"))
    asyncio.run(run(args.regions, args.trials, (columns, rows)))


if __name__ == "__main__":
    main()
