"""What maintenance windows and alert groups add to each alert tick.

Every tick (scheduler.evaluate_alerts) now asks the window store whether its file
changed (one stat), marks each alert with the window covering its region, and, with
`[alerts] group_by`, groups the alerts for the notifier. Measured beside the anchor
the tick already pays, in the same run:

- anchor: Engine.evaluate_alerts() + snapshot() on the three-region test estate
  with one region down (what the alert tick does without these features);
- MaintenanceStore.changed() on an unchanged file (the per-tick check);
- the same evaluate + snapshot with --windows live windows in the book;
- group_alerts() over --alerts alerts in --regions regions.

Each figure is the median of --trials runs of --rounds calls, in microseconds per call.

    python bench/maintenance_groups.py [--windows 50] [--alerts 1000] [--rounds 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import REFUSED, estate_config, feed_flags, feed_round

from noc.clock import FakeClock
from noc.engine import Engine
from noc.grouping import group_alerts
from noc.maintenance import MaintenanceStore, new_window, window_json
from noc.model import Alert, AlertState, Severity


def per_call(work: Callable[[], object], rounds: int, trials: int) -> float:
    timings = []
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(rounds):
            work()
        timings.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(timings)


def down_engine(clock: FakeClock) -> Engine:
    engine = Engine(estate_config(), clock)
    feed_flags(engine, clock, "ro")
    for _ in range(4):
        feed_round(engine, clock, {"bg": REFUSED})
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=50)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()

    clock = FakeClock()
    plain = down_engine(clock)

    def tick(engine: Engine) -> Callable[[], object]:
        return lambda: (engine.evaluate_alerts(), engine.snapshot())

    anchor = per_call(tick(plain), args.rounds, args.trials)

    with tempfile.TemporaryDirectory() as directory:
        store = MaintenanceStore(Path(directory) / "maintenance.jsonl", clock)
        regions = ("ro", "bg", "pa")
        for number in range(args.windows):
            store.add(
                new_window(
                    regions[number % 3],
                    regions,
                    timedelta(hours=2),
                    "bench",
                    "op",
                    clock.utcnow(),
                    starts_at=clock.utcnow() + timedelta(hours=number % 4),
                )
            )
        stat = per_call(store.changed, args.rounds, args.trials)
        windowed = down_engine(clock)
        for window in store.book.all():
            windowed.maintenance.apply({"event": "add", "window": window_json(window)})
        with_windows = per_call(tick(windowed), args.rounds, args.trials)

    now = clock.utcnow()
    alerts = [
        Alert(
            id=f"rule{n % 7}:r{n % args.regions}:{n}@x",
            key=f"rule{n % 7}:r{n % args.regions}:{n}",
            rule=f"rule{n % 7}",
            severity=(Severity.CRITICAL, Severity.WARNING)[n % 2],
            state=AlertState.FIRING,
            region=f"r{n % args.regions}",
            summary=f"alert {n}",
            since=now - timedelta(seconds=n),
        )
        for n in range(args.alerts)
    ]
    sort_anchor = per_call(
        lambda: sorted(alerts, key=lambda a: (a.severity.rank, a.since)), 200, args.trials
    )
    grouping = per_call(lambda: group_alerts(alerts, ("region",)), 200, args.trials)

    print(f"alert tick (evaluate + snapshot), anchor   {anchor:9.1f} µs")
    print(f"  + store.changed() (one stat)             {stat:9.1f} µs")
    print(f"  with {args.windows} windows in the book            {with_windows:9.1f} µs")
    print(f"sorting {args.alerts} alerts, anchor              {sort_anchor:9.1f} µs")
    print(f"group_alerts over {args.alerts} alerts ({args.regions} regions) {grouping:9.1f} µs")


if __name__ == "__main__":
    main()
