"""Agents on one machine: what the shared path costs, beside anchors of the same run.

A real redis-server is the control plane; `--vantages` `noc agent` processes each
probe `--regions` loopback endpoints (one check each, down at one failure) and
publish. Measured:

- probe result to shared verdict: a region is switched to 503; from the moment the
  quorum-th vantage got its first 503 (the probe result that completes the quorum)
  to the moment a reader's one HGETALL + merge says "down". Anchor: one Redis PING
  round trip (the floor of any read of the control plane);
- one shared read (HGETALL of every vantage's report + quorum merge + snapshot), the
  work an attached `noc check` or screen does per look, beside the PING;
- each agent's CPU (utime + stime from /proc) over `--seconds`, per probe made;
- the observation stream's growth (entries a second) against the probes made;
- `noc check` attached vs `noc check --standalone` wall time, beside `python -c pass`.

    python bench/agents.py [--regions 10] [--vantages 3] [--quorum 2] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loopback_estate import Endpoints, estate, write_toml

from noc.clock import SystemClock
from noc.config import load_config
from noc.control import ControlKeys, connect, read_reports, shared_snapshot
from noc.model import Health
from noc.simulator import RedisServer

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def with_control(path: Path, redis_port: int, quorum: int) -> None:
    text = path.read_text().replace("[health]\n", f"[health]\nquorum = {quorum}\n", 1)
    text += (
        f'\n[control]\nredis_url = "redis://127.0.0.1:{redis_port}/0"\n'
        "report_interval_seconds = 1\n"
    )
    path.write_text(text)


async def wall(argv: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall seconds of one run of `argv`; its CPU seconds appended to `cpu` (the machine
    may be shared: CPU is the steadier figure)."""
    started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    child = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    await child.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return time.monotonic() - started


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:8.2f} ms  min {min(values) * 1000:8.2f} ms"


async def run(regions: int, vantages: int, quorum: int, seconds: float) -> None:
    endpoints = Endpoints(regions)
    await endpoints.start()
    server = RedisServer()
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="noc-agents-"))
    env = dict(os.environ, XDG_STATE_HOME=str(workdir / "state"))
    names = [f"v{number}" for number in range(1, vantages + 1)]
    configs = {}
    for name in names:
        configs[name] = write_toml(estate(endpoints, name), workdir / f"{name}.toml")
        with_control(configs[name], server.port, quorum)
    agents = {
        name: await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "noc",
            "agent",
            "--config",
            str(path),
            "--vantage",
            name,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        for name, path in configs.items()
    }
    config = load_config(configs[names[0]]).config
    assert config.control is not None
    keys = ControlKeys.of(config, config.control)
    client = connect(config.control)
    clock = SystemClock()

    async def shared_health(region: str) -> Health | None:
        snapshot = shared_snapshot(config, await read_reports(client, keys), clock)
        status = snapshot.region(region)
        return None if status is None else status.health

    async def until(region: str, health: Health, pause: float) -> None:
        """Read the shared state every `pause` until `region` is `health`: a reader
        polling is what is measured (the control plane has no push to screens yet)."""
        while True:
            if await shared_health(region) is health:
                return
            await asyncio.sleep(pause)

    try:
        target = endpoints.region_ids[0]
        await until(target, Health.HEALTHY, 0.05)

        pings, reads = [], []
        for _ in range(200):
            started = time.perf_counter()
            await client.ping()  # type: ignore[misc]
            pings.append(time.perf_counter() - started)
            started = time.perf_counter()
            await shared_health(target)
            reads.append(time.perf_counter() - started)

        cpu_before = {name: cpu_seconds(process.pid) for name, process in agents.items()}
        stream_before = await client.xlen(keys.observations)
        await asyncio.sleep(seconds)
        cpu = {name: cpu_seconds(p.pid) - cpu_before[name] for name, p in agents.items()}
        added = await client.xlen(keys.observations) - stream_before
        probes_per_agent = regions * seconds / config.health.interval_seconds  # type: ignore[operator]

        latencies = []
        for _ in range(3):
            endpoints.fail(target)
            await until(target, Health.DOWN, 0.005)
            seen = time.monotonic()
            firsts = sorted(t for (r, _), t in endpoints.first_503.items() if r == target)
            latencies.append(seen - firsts[quorum - 1])
            endpoints.heal(target)
            await until(target, Health.HEALTHY, 0.05)

        anchor, attached, standalone = [], [], []
        anchor_cpu: list[float] = []
        attached_cpu: list[float] = []
        standalone_cpu: list[float] = []
        check = [sys.executable, "-m", "noc", "check", "--config", str(configs[names[0]])]
        for _ in range(5):
            anchor.append(await wall([sys.executable, "-c", "pass"], env, anchor_cpu))
            attached.append(await wall(check, env, attached_cpu))
            standalone.append(await wall([*check, "--standalone"], env, standalone_cpu))

        print(f"{regions} regions x 1 check, {vantages} vantages, quorum {quorum}")
        print(f"anchor: Redis PING round trip          {ms(pings)}")
        print(f"shared read + merge (one HGETALL)      {ms(reads)}")
        print(f"probe result -> shared verdict (3 runs) {ms(latencies)}")
        for name, used in cpu.items():
            print(
                f"agent {name} CPU: {used / seconds * 100:5.1f} % of a core, "
                f"{used / probes_per_agent * 1000:.2f} CPU-ms per probe"
            )
        made = probes_per_agent * vantages / seconds
        print(f"stream: {added / seconds:.0f} entries/s for {made:.0f} probes/s made")
        print(f"anchor: python -c pass                 {ms(anchor)}  CPU {ms(anchor_cpu)}")
        print(f"noc check (attached)                   {ms(attached)}  CPU {ms(attached_cpu)}")
        print(f"noc check --standalone                 {ms(standalone)}  CPU {ms(standalone_cpu)}")
    finally:
        await client.aclose()
        for process in agents.values():
            process.send_signal(signal.SIGTERM)
        for process in agents.values():
            await process.wait()
        server.stop()
        await endpoints.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--vantages", type=int, default=3)
    parser.add_argument("--quorum", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(run(args.regions, args.vantages, args.quorum, args.seconds))


if __name__ == "__main__":
    main()
