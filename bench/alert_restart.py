"""How long does a restart take to restore the alert book from a long history?

A journal with --episodes past episodes (each a "firing" and a "resolved" record,
every tenth acked) plus a few that still fire, an ack and a silence, in the format
noc writes. Three timings, each the median of --trials on a fresh copy:

- anchor: reading the file's lines and nothing else (the floor of any restore that
  reads the whole file), and reading plus json.loads of every line;
- first restart: AlertJournal.restore() of the whole history. It folds the file and,
  since it is over the bound, rewrites it compacted (temp, fsync, rename, fsync);
- later restarts: restore() of the compacted journal: what is live plus the
  resolved tail, whatever the history's length.

Then --live episodes go through the running journal (one fsynced record per
transition, as noc writes them) to show that compaction keeps the file bounded
while noc runs, so a restart never meets the long file in the first place.

    python bench/alert_restart.py [--episodes 100000] [--trials 3] [--live 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from noc.alert_journal import AlertJournal, ack_record, alert_record, silence_record
from noc.alerts import AlertBook, Condition, episode_id
from noc.clock import FakeClock, iso_utc
from noc.model import Ack, Alert, AlertNotice, AlertState, Severity, Silence

REGIONS = ("ro", "bg", "pa", "fr", "de")
RULES = ("region_down", "source_unreachable", "replication_lag")


def history(path: Path, episodes: int, start: datetime) -> None:
    """Write `episodes` past episodes, then 3 firing ones with an ack, and a silence."""
    with path.open("w") as out:
        moment = start
        for number in range(episodes):
            rule, region = RULES[number % len(RULES)], REGIONS[number % len(REGIONS)]
            key = f"{rule}:{region}"
            began, ended = moment, moment + timedelta(seconds=90)
            alert = Alert(
                id=episode_id(key, began),
                key=key,
                rule=rule,
                severity=Severity.CRITICAL,
                state=AlertState.FIRING,
                region=region,
                summary=f"{region} {rule.replace('_', ' ')}",
                since=began,
                started_at=began,
            )
            out.write(_line("alert", transition="firing", alert=alert_record(alert)))
            if number % 10 == 0:
                ack = Ack("op@noc1", "looking", began + timedelta(seconds=30))
                out.write(_line("ack", alert_id=alert.id, **ack_record(ack)))
            resolved = Alert(**{**_fields(alert), "state": AlertState.RESOLVED, "since": ended})
            out.write(_line("alert", transition="resolved", alert=alert_record(resolved)))
            moment += timedelta(seconds=120)
        for region in REGIONS[:3]:
            key = f"region_down:{region}"
            alert = Alert(
                id=episode_id(key, moment),
                key=key,
                rule="region_down",
                severity=Severity.CRITICAL,
                state=AlertState.FIRING,
                region=region,
                summary=f"{region} down",
                since=moment,
                started_at=moment,
            )
            out.write(_line("alert", transition="firing", alert=alert_record(alert)))
        ack = Ack("op@noc1", "on it", moment)
        out.write(_line("ack", alert_id=episode_id("region_down:ro", moment), **ack_record(ack)))
        silence = Silence(
            "s1", (("region", "pa"),), moment, moment + timedelta(days=365), "op@noc1", "works"
        )
        out.write(_line("silence", silence=silence_record(silence)))


def _fields(alert: Alert) -> dict[str, object]:
    return {name: getattr(alert, name) for name in Alert.__slots__}


def _line(event: str, **fields: object) -> str:
    return json.dumps({"ts": iso_utc(datetime.now(UTC)), "event": event, **fields}) + "\n"


def median_seconds(trials: int, prepare: Callable[[], None], run: Callable[[], object]) -> float:
    times = []
    for _ in range(trials):
        prepare()
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--live", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="noc-alert-restart-"))
    try:
        clock = FakeClock(datetime(2027, 1, 1, tzinfo=UTC))
        master, path = work / "history.jsonl", work / "alerts.jsonl"
        history(master, args.episodes, datetime(2026, 1, 1, tzinfo=UTC))
        size = master.stat().st_size

        def fresh() -> None:
            shutil.copyfile(master, path)

        def read_lines() -> int:
            with path.open(encoding="utf-8") as handle:
                return sum(1 for _ in handle)

        def read_and_parse() -> int:
            with path.open(encoding="utf-8") as handle:
                return len([json.loads(line) for line in handle])

        def restore() -> AlertBook:
            book = AlertBook(clock)
            AlertJournal(path, clock).restore(book)
            return book

        lines = read_lines() if fresh() is None else 0
        anchor = median_seconds(args.trials, fresh, read_lines)
        parsed = median_seconds(args.trials, fresh, read_and_parse)
        first = median_seconds(args.trials, fresh, restore)
        compacted_size = path.stat().st_size
        later = median_seconds(args.trials, lambda: None, restore)
        book = restore()
        firing = [a for a in book.alerts() if a.state is AlertState.FIRING]
        resolved = [a for a in book.alerts() if a.state is AlertState.RESOLVED]
        print(f"history: {args.episodes} past episodes, {lines} lines, {size / 1e6:.1f} MB")
        print(f"  anchor: read the lines            {anchor * 1000:8.1f} ms")
        print(f"  anchor: read + json.loads         {parsed * 1000:8.1f} ms")
        print(f"  first restart (fold + compact)    {first * 1000:8.1f} ms")
        print(f"  later restarts (compacted, {compacted_size / 1e3:.0f} KB) {later * 1000:6.1f} ms")
        acked = [a.key for a in firing if a.ack]
        print(
            f"  restored: {len(firing)} firing ({len(acked)} acked), {len(resolved)} resolved"
            f" shown, {len(book.silences())} silence"
        )
        print(f"live: {args.live} episodes recorded through the running journal ...")
        print(f"  journal size after: {asyncio.run(live(work / 'live.jsonl', args.live))} bytes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def live(path: Path, episodes: int) -> int:
    clock = FakeClock()
    book = AlertBook(clock)
    journal = AlertJournal(path, clock)
    journal.restore(book)
    down = Condition("region_down:bg", "region_down", Severity.CRITICAL, "bg", "bg down")
    largest = 0
    for _ in range(episodes):
        notices: list[AlertNotice] = book.evaluate([down])
        clock.advance(30)
        notices += book.evaluate([])
        clock.advance(30)
        await journal.record(notices)
        largest = max(largest, (await asyncio.to_thread(path.stat)).st_size)
    print(f"  largest the file got: {largest} bytes")
    return (await asyncio.to_thread(path.stat)).st_size


if __name__ == "__main__":
    main()
