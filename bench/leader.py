"""One leader among agents: how fast a standby takes over, and how fast an operator's
act from a screen is applied and published, beside anchors of the same run.

A real redis-server is the control plane; `--agents` `noc agent` processes probe two
loopback endpoints each and contend for the lease (`--lease` seconds). Measured:

- takeover: the leader is killed with SIGKILL (at a random moment of its term); from
  the kill to the moment the lease key names another agent. Anchor: the lease's time
  left (PTTL) at the kill, the floor (nobody may take it before it lapses), and the
  configured lease (the bound);
- operator act: an ack event appended to the operator events stream (as an attached
  screen does) until the leader's published alert book says it applied it. Anchor: one
  Redis PING round trip. A screen then shows it at its next read (every 0.5 s).

    python bench/leader.py [--agents 3] [--lease 2] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loopback_estate import Endpoints, estate, write_toml

from noc.config import load_config
from noc.control import ControlKeys, connect
from noc.lease import Holder
from noc.simulator import RedisServer


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:8.1f} ms  max {max(values) * 1000:8.1f} ms"


async def run(agents: int, lease: float, runs: int) -> None:
    endpoints = Endpoints(2)
    await endpoints.start()
    server = RedisServer()
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="noc-leader-"))
    env = dict(os.environ, XDG_STATE_HOME=str(workdir / "state"))
    path = write_toml(estate(endpoints, "bench"), workdir / "noc.toml")
    path.write_text(
        path.read_text() + f'\n[control]\nredis_url = "redis://127.0.0.1:{server.port}/0"\n'
        f"report_interval_seconds = 1\nlease_seconds = {lease}\n"
    )
    config = load_config(path).config
    assert config.control is not None
    keys = ControlKeys.of(config, config.control)
    client = connect(config.control)
    processes: dict[str, asyncio.subprocess.Process] = {}

    async def start(name: str) -> None:
        processes[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "noc", "agent", "--config", str(path), "--vantage", name,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip

    async def holder() -> Holder | None:
        text = await client.get(keys.leader)
        return Holder.from_text(str(text)) if text else None

    async def until_holder(wanted: Callable[[Holder | None], bool], pause: float) -> None:
        """Poll the lease key (a reader polling is what is measured)."""
        for _ in range(int(60 / pause)):
            if wanted(await holder()):
                return
            await asyncio.sleep(pause)
        raise TimeoutError("the lease never changed hands")

    try:
        for number in range(agents):
            await start(f"a{number}")
        await until_holder(lambda h: h is not None, 0.01)

        takeovers, floors = [], []
        for _ in range(runs):
            # Killed at some moment of its renewal cycle, not right after taking office.
            await asyncio.sleep(random.uniform(0, lease))
            leader = await holder()
            assert leader is not None
            left_ms = await client.pttl(keys.leader)
            processes[leader.vantage].kill()
            killed = time.monotonic()
            gone = leader.vantage
            await until_holder(lambda h, gone=gone: h is not None and h.vantage != gone, 0.002)
            takeovers.append(time.monotonic() - killed)
            floors.append(max(0, left_ms) / 1000)
            await processes[leader.vantage].wait()
            await start(leader.vantage)

        pings, acts = [], []
        for _ in range(50):
            started = time.perf_counter()
            await client.ping()  # type: ignore[misc]
            pings.append(time.perf_counter() - started)
        for _ in range(20):
            started = time.perf_counter()
            event_id = await client.xadd(
                keys.operator_events,
                {"kind": "ack", "alert_id": "none", "note": "bench",
                 "operator": json.dumps({"operator": "bench@here"})},
            )  # fmt: skip
            while True:
                book = json.loads(await client.get(keys.alert_book) or "{}")
                if book.get("applied_through") == event_id:
                    break
                await asyncio.sleep(0.001)
            acts.append(time.perf_counter() - started)

        print(f"{agents} agents, lease {lease:g} s, {runs} SIGKILLs of the leader")
        print(f"anchor: lease time left at the kill     {ms(floors)}")
        print(f"anchor: the lease (the bound)           {lease * 1000:8.1f} ms")
        print(f"takeover (kill -> another holds it)     {ms(takeovers)}")
        print(f"anchor: Redis PING round trip           {ms(pings)}")
        print(f"operator act -> leader's book published {ms(acts)}")
    finally:
        await client.aclose()
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            await process.wait()
        server.stop()
        await endpoints.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.agents, args.lease, args.runs))


if __name__ == "__main__":
    main()
