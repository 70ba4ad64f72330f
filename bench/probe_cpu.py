"""What does one HTTP health check cost noc in CPU, beside blackbox_exporter?

A real aiohttp endpoint (its own process, so its CPU is not counted) answers
`{"status": "healthy", ...}` on loopback. Each contender runs --checks GETs, 16 in
flight over keep-alive connections, and checks that the body holds "healthy"; the
figure is the contender's process CPU (user + system) per 1,000 checks, after a
warm-up. Contenders, all in the same run against the same endpoint:

- noc's collector (HttpHealthCollector.probe) over each transport httpx can use:
  httpcore (httpx's default) and aiohttp (httpx-aiohttp's AiohttpTransport);
- the bare clients underneath: httpx on httpcore, httpx on aiohttp, aiohttp alone;
- blackbox_exporter (the anchor, if installed: `apt-get install
  prometheus-blackbox-exporter`), probing the same endpoint with a body regexp,
  driven through its /probe URL as Prometheus would; its CPU is read from /proc.

Then the schedule: --schedule-checks checks at a 1 s interval, probed by the real
Scheduler (with the collector's default transport) against the endpoint for
--schedule-seconds; lateness is how long after its due time each probe started.

    python bench/probe_cpu.py [--checks 4000] [--schedule-checks 1000] [--schedule-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from noc.clock import SystemClock
from noc.model import CheckTarget
from noc_collectors.http import HttpHealthCollector

IN_FLIGHT = 16
EXPECTED = "healthy"

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


async def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return
    raise RuntimeError(f"nothing listens on {port}")


async def run_checks(check: Callable[[], Awaitable[bool]], count: int) -> None:
    """`count` checks, IN_FLIGHT at a time; every one must pass."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if not await check():
                raise RuntimeError("a check failed: the bench measures passing checks")

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def cpu_ms_per_1000(check: Callable[[], Awaitable[bool]], count: int) -> float:
    await run_checks(check, max(200, count // 10))  # warm-up: connections, caches
    started = time.process_time()
    await run_checks(check, count)
    return (time.process_time() - started) * 1000 * 1000 / count


async def httpx_client(
    url: str, transport: httpx.AsyncBaseTransport | None
) -> tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[None]]]:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    client = httpx.AsyncClient(limits=limits, transport=transport)

    async def check() -> bool:
        response = await client.get(url)
        return response.status_code == 200 and EXPECTED in response.text

    return check, client.aclose


async def aiohttp_client(
    url: str,
) -> tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT))

    async def check() -> bool:
        async with session.get(url) as response:
            return response.status == 200 and EXPECTED in await response.text()

    return check, session.close


async def collector(
    url: str, transport: str
) -> tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[None]]]:
    probe = HttpHealthCollector(SystemClock(), max_in_flight=IN_FLIGHT, transport=transport)  # type: ignore[arg-type]
    target = CheckTarget("ro/0", "ro", "health", url, body_contains=EXPECTED, timeout_seconds=5)

    async def check() -> bool:
        return (await probe.probe(target)).ok

    return check, probe.aclose


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); index 11 and 12 after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def blackbox(url: str, count: int, workdir: Path) -> float | None:
    binary = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if binary is None:
        return None
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n"
        "  http_body:\n"
        "    prober: http\n"
        "    timeout: 5s\n"
        "    http:\n"
        "      valid_status_codes: [200]\n"
        f"      fail_if_body_not_matches_regexp: ['{EXPECTED}']\n"
    )
    port = free_port()
    exporter = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_listening(port)
        probe_url = f"http://127.0.0.1:{port}/probe"
        params = {"module": "http_body", "target": url}
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT))

        async def check() -> bool:
            async with session.get(probe_url, params=params) as response:
                return "probe_success 1" in await response.text()

        try:
            await run_checks(check, max(200, count // 10))
            started = process_cpu_seconds(exporter.pid)
            await run_checks(check, count)
            return (process_cpu_seconds(exporter.pid) - started) * 1000 * 1000 / count
        finally:
            await session.close()
    finally:
        exporter.terminate()
        await exporter.wait()


async def schedule(url: str, checks: int, seconds: float) -> tuple[list[float], int]:
    """The real Scheduler probing `checks` checks every second: lateness of each probe
    start past its due time (seconds), and the probes done."""
    from noc.config import parse_config
    from noc.scheduler import Scheduler

    config = parse_config(
        {
            "health": {"interval_seconds": 1, "timeout_seconds": 2, "max_in_flight": 16},
            "regions": [
                {
                    "id": f"r{index}",
                    "role": "primary" if index == 0 else "secondary",
                    "checks": [{"url": url, "body_contains": EXPECTED}],
                }
                for index in range(checks)
            ],
        }
    )
    scheduler = Scheduler(config, SystemClock())
    lateness: list[float] = []
    due: dict[str, float] = {}
    probe = scheduler.collector.probe

    targets = scheduler.engine.targets
    # Each check's phase within the interval, as Scheduler.start() spreads them.
    phases = {t.check_id: i / len(targets) for i, t in enumerate(targets)}
    started = time.monotonic()

    async def timed_probe(target: CheckTarget) -> object:
        now = time.monotonic()
        expected = due.get(target.check_id)
        if expected is not None:
            lateness.append(max(0.0, now - expected))
        sample = await probe(target)
        # As the scheduler anchors it: the first probe at start, the second one
        # interval plus the check's phase later, then one interval after the last was
        # due, or at once when that has passed (missed rounds are skipped).
        anchor = expected if expected is not None else started + phases[target.check_id]
        due[target.check_id] = max(anchor + 1.0, time.monotonic())
        return sample

    scheduler.collector.probe = timed_probe  # type: ignore[method-assign,assignment]
    started = time.monotonic()
    scheduler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await scheduler.stop()
    return lateness, len(lateness) + len(due)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--schedule-checks", type=int, default=1000)
    parser.add_argument("--schedule-seconds", type=float, default=20)
    args = parser.parse_args()
    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, str(port))
    try:
        await wait_listening(port)
        url = f"http://127.0.0.1:{port}/health"
        contenders: dict[
            str,
            Callable[
                [], Awaitable[tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[None]]]]
            ],
        ] = {
            "noc collector, httpx on httpcore": lambda: collector(url, "httpcore"),
            "noc collector, httpx on aiohttp": lambda: collector(url, "aiohttp"),
            "httpx on httpcore (bare client)": lambda: httpx_client(url, None),
            "httpx on aiohttp (bare client)": lambda: httpx_client(
                url,
                AiohttpTransport(
                    limits=httpx.Limits(
                        max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT
                    )
                ),
            ),
            "aiohttp alone (bare client)": lambda: aiohttp_client(url),
        }
        figures: dict[str, list[float]] = {name: [] for name in [*contenders, "blackbox_exporter"]}
        with tempfile.TemporaryDirectory() as workdir:
            for _ in range(args.rounds):  # interleaved, so drift in load hits all alike
                for name, make in contenders.items():
                    check, close = await make()
                    try:
                        figures[name].append(await cpu_ms_per_1000(check, args.checks))
                    finally:
                        await close()
                anchor = await blackbox(url, args.checks, Path(workdir))
                if anchor is not None:
                    figures["blackbox_exporter"].append(anchor)
        print(
            f"CPU-ms per 1,000 checks (GET + body match, {IN_FLIGHT} in flight, keep-alive, "
            f"{args.checks} checks x {args.rounds} rounds; median [min-max]):"
        )
        anchor_median = (
            statistics.median(figures["blackbox_exporter"])
            if figures["blackbox_exporter"]
            else None
        )
        for name, values in figures.items():
            if not values:
                print(f"  {name:36} not installed")
                continue
            median = statistics.median(values)
            ratio = f"  {median / anchor_median:.2f}x blackbox" if anchor_median else ""
            print(f"  {name:36} {median:7.0f} [{min(values):.0f}-{max(values):.0f}]{ratio}")
        if args.schedule_checks:
            lateness, probes = await schedule(url, args.schedule_checks, args.schedule_seconds)
            ideal = args.schedule_checks * args.schedule_seconds
            print(
                f"\nschedule: {args.schedule_checks} checks at 1 s for "
                f"{args.schedule_seconds:g} s: {probes} probes ({probes / ideal:.0%} of "
                f"{ideal:.0f} due); lateness p50 {quantile(lateness, 0.5) * 1000:.1f} ms, "
                f"p99 {quantile(lateness, 0.99) * 1000:.1f} ms, "
                f"max {max(lateness) * 1000:.1f} ms"
            )
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
