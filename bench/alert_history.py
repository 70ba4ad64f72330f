"""How long do the history view and an alert's detail take to read their record?

The history file is filled through a running journal (one fsynced record per ended
episode, as noc writes them) until it has rotated and refilled: the most it ever
holds (two files near HISTORY_BYTES). Then, each the median of --trials:

- anchor: reading both files' lines and json.loads of every line (the floor of any
  reader of the whole record);
- read_history(): the last HISTORY_KEPT episodes, newest first (what `h` shows);
- episode_story(): one episode's moments (what Enter shows), for the oldest kept.

Both run off the event loop (asyncio.to_thread) in the dashboard; the figure says
how long the view waits, never how long the screen freezes.

    python bench/alert_history.py [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from noc.alert_journal import (
    HISTORY_BYTES,
    HISTORY_FILE,
    AlertJournal,
    episode_story,
    read_history,
    rotated,
)
from noc.alerts import AlertBook, Condition
from noc.clock import FakeClock
from noc.model import Severity

CONDITIONS = [
    Condition(f"region_down:{region}", "region_down", Severity.CRITICAL, region, f"{region} down")
    for region in ("ro", "bg", "pa", "fr", "de")
]


def fill(journal_path: Path) -> int:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    book = AlertBook(clock)
    journal = AlertJournal(journal_path, clock)
    journal.restore(book)
    history = journal_path.with_name(HISTORY_FILE)
    ended = 0

    async def run() -> None:
        nonlocal ended
        # Until the file has rotated once and the current one is full again.
        while not rotated(history).exists() or history.stat().st_size < 0.95 * HISTORY_BYTES:
            await journal.record(book.evaluate(CONDITIONS))
            for alert in book.firing_episodes():
                made = book.ack(alert.id, "op@noc1", "looking")
                assert made is not None
                await journal.record_ack(alert.id, made)
            clock.advance(60)
            await journal.record(book.evaluate([]))
            clock.advance(60)
            ended += len(CONDITIONS)

    asyncio.run(run())
    return ended


def median_seconds(trials: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(trials):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def anchor(journal_path: Path) -> None:
    history = journal_path.with_name(HISTORY_FILE)
    for path in (rotated(history), history, journal_path):
        for line in path.read_text().splitlines():
            json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noc-alert-history-") as work:
        journal_path = Path(work) / "alerts.jsonl"
        ended = fill(journal_path)
        history = journal_path.with_name(HISTORY_FILE)
        sizes = [p.stat().st_size for p in (rotated(history), history, journal_path)]
        past = read_history(journal_path)
        oldest = past[-1].id
        print(f"episodes ended: {ended}; history files {sizes[0]:,} + {sizes[1]:,} bytes, "
              f"journal {sizes[2]:,} bytes; the view lists {len(past)}")  # fmt: skip
        floor = median_seconds(args.trials, lambda: anchor(journal_path))
        listed = median_seconds(args.trials, lambda: read_history(journal_path))
        story = median_seconds(args.trials, lambda: episode_story(journal_path, oldest))
        print(f"anchor (read + json.loads of every line): {floor * 1000:8.1f} ms")
        print(f"read_history (the h view):                {listed * 1000:8.1f} ms "
              f"({listed / floor:.2f}x the anchor)")  # fmt: skip
        print(f"episode_story (Enter on the oldest):      {story * 1000:8.1f} ms "
              f"({story / floor:.2f}x the anchor)")  # fmt: skip


if __name__ == "__main__":
    main()
