"""What matching the playbook costs, beside the snapshot it reads, in the same run.

A drill reads the estate every `[drills] poll_seconds` and asks which modes match;
the dashboard could ask on every snapshot. Measured on an engine fed one round of
health checks for `--regions` regions with `--links` replication links each:

- `matching_modes(snapshot, playbook)`: all six modes, every region (median of
  `--repeat` calls);
- the anchor: `engine.snapshot()`, the picture every view is drawn from, built for
  each repaint anyway.

    python bench/playbook.py [--regions 3] [--links 2] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from noc.clock import FakeClock
from noc.config import parse_config
from noc.engine import Engine
from noc.model import CheckSample
from noc.playbook import default_playbook, matching_modes


def engine_for(regions: int, links: int) -> Engine:
    ids = [f"r{index}" for index in range(regions)]
    config = parse_config(
        {
            "estate": {"name": "bench"},
            "regions": [
                {
                    "id": rid,
                    "role": "primary" if rid == "r0" else "secondary",
                    "location": [0, 0],
                    "redis_url": f"redis://127.0.0.1:1/{index}",
                    "checks": [{"url": f"http://127.0.0.1:1/{rid}/health"}],
                }
                for index, rid in enumerate(ids)
            ],
            "replication": [
                {
                    "data_class": f"class{n}",
                    "source": rid,
                    "target": ids[(i + 1) % regions],
                    "url": f"redis://127.0.0.1:1/{n}",
                }
                for i, rid in enumerate(ids)
                for n in range(links)
            ],
        }
    )
    clock = FakeClock()
    engine = Engine(config, clock)
    for target in engine.targets:
        engine.ingest(
            CheckSample(target.check_id, target.region_id, clock.monotonic(), clock.utcnow(),
                        ok=True, status=200, latency_ms=20.0, error=None)
        )  # fmt: skip
    return engine


def median_seconds(call: object, repeat: int) -> float:
    assert callable(call)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--links", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    engine = engine_for(args.regions, args.links)
    playbook = default_playbook()
    snapshot = engine.snapshot()
    matching = median_seconds(lambda: matching_modes(snapshot, playbook), args.repeat)
    anchor = median_seconds(engine.snapshot, args.repeat)
    print(f"{args.regions} regions, {args.links * args.regions} links, {len(playbook.modes)} modes")
    print(f"matching_modes:             {matching * 1e6:8.1f} µs (median of {args.repeat})")
    print(f"anchor: engine.snapshot():  {anchor * 1e6:8.1f} µs")
    print(f"ratio: {matching / anchor:.2f} x the snapshot")


if __name__ == "__main__":
    main()
