"""Kill safety of the dashboard: SIGKILL `noc` at random moments of acks and silences.

The real dashboard (`python -m noc --config X`) on a pseudo-terminal, against a small
real estate on loopback: three HTTP health endpoints and three redis-servers, with pa
answering 503 so `region_down:pa` fires. Each round the operator's keys ack the
firing alert (`a`, a note, Enter) or silence it (`s`, a comment, Enter; the dialog's
rule, region and "2h" are kept), and the process is SIGKILLed at a random moment: while
the note is typed, up to 200 ms after Enter, just after the alert journal grew (the
record is written: between it and the audit record), or as the audit grew. On a
quarter of the rounds the journal is first filled to just under its compaction bound
with past episodes, so the act's record sets off a compaction (temp file, fsync,
rename) and the kill lands in or around it.

After each kill:
- every line of alerts.jsonl and audit.jsonl parses (a torn last line is counted, and
  must be gone once the next start, or the next append, has run);
- "completed" means the act's record is in the alert journal after the kill (what an
  operator is told happened is a stricter test: the ack's note or the "Silenced"
  notification drawn before the kill; each one drawn must be in the journal too);
- the journal as it is (a copy, so the bench repairs nothing itself) restored with
  AlertJournal.restore into an AlertBook holds, on the same episode, the last
  completed ack and every completed silence; the next start of the real dashboard
  draws that ack on the alert again;
- no failover lock is left in a store, and `noc failover --dry-run` is not refused
  for one.

    python bench/kill_dashboard.py [--kills 100] [--seed 1] [--minutes 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptyproc import PtyProcess

from noc.alert_journal import COMPACT_BYTES, AlertJournal, alert_record
from noc.alerts import AlertBook, episode_id
from noc.audit import ALERTS_FILE, AUDIT_FILE, operator_identity
from noc.clock import SystemClock, iso_utc
from noc.model import Alert, AlertState, Severity
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

T = TypeVar("T")

REGIONS = (("ro", "primary"), ("bg", "secondary"), ("pa", "secondary"))
DOWN = "pa"  # answers 503: region_down:pa fires and stays firing (one episode)
FIRING_KEY = f"region_down:{DOWN}"
SUMMARY = f"{DOWN} down".encode()
LOCK_KEY = "noc:failover:lock"
SIZE = (220, 40)  # wide enough that the alert row shows its summary and ack note whole
START_TIMEOUT = 60.0
# When the kill lands, with its share of the rounds.
KILL_MODES = (
    ("while typing (never submitted)", 0.10),
    ("0-200 ms after Enter", 0.35),
    ("just after the alert journal grew", 0.35),
    ("as the audit grew", 0.20),
)
COMPACTION_SHARE = 0.25


class Estate:
    """Three regions on loopback; the health endpoints serve from their own thread,
    as real regions do not share the dashboard's (or this script's) loop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state = directory / "state"
        self.config = directory / "noc.toml"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.endpoints = {rid: HealthEndpoint(rid) for rid, _ in REGIONS}
        self.stores = {rid: RedisServer() for rid, _ in REGIONS}

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def start(self) -> None:
        self._thread.start()
        for endpoint in self.endpoints.values():
            self._call(endpoint.start())
        self._call(self.endpoints[DOWN].set_mode(EndpointMode.UNAVAILABLE))
        for store in self.stores.values():
            store.start()
        lines = [
            f'[estate]\nname = "kill-dash"\nstate_dir = "{self.state}"\n',
            "[health]\ninterval_seconds = 1\nfailure_threshold = 1\ntimeout_seconds = 1\n",
            "[failover]\nstore_timeout_seconds = 1\n",
        ]
        for rid, role in REGIONS:
            lines.append(
                f'[[regions]]\nid = "{rid}"\nrole = "{role}"\n'
                f'redis_url = "{self.stores[rid].url}"\n[[regions.checks]]\n'
                f'url = "{self.endpoints[rid].url}"\nbody_contains = "healthy"\n'
            )
        self.config.write_text("\n".join(lines))

    def stop(self) -> None:
        for endpoint in self.endpoints.values():
            # A stop that fails must not keep the stores running.
            with contextlib.suppress(Exception):
                self._call(endpoint.stop())
        for store in self.stores.values():
            store.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def journal(self) -> Path:
        return self.state / ALERTS_FILE

    @property
    def audit(self) -> Path:
        return self.state / AUDIT_FILE

    def locks(self) -> int:
        held = 0
        for store in self.stores.values():
            client = redis.Redis.from_url(store.url)
            try:
                held += bool(client.get(LOCK_KEY))
            finally:
                client.close()
        return held


@dataclass
class Lines:
    whole: int = 0
    torn_tail: bool = False
    damaged_inside: int = 0  # a bad line with another after it: a swallowed record
    records: list[dict[str, Any]] = field(default_factory=list)


def read_lines(path: Path) -> Lines:
    found = Lines()
    if not path.exists():
        return found
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends in a newline
    if tail:
        found.torn_tail = True
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            found.whole += 1
            found.records.append(record)
        elif index == len(lines) - 1 and not tail:
            found.torn_tail = True  # a whole-looking last line that does not parse
        else:
            found.damaged_inside += 1
    return found


def size_and_inode(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_size, stat.st_ino)


def pad_journal(path: Path, rng: random.Random) -> int:
    """Append past, resolved episodes of bg (what a journal fills with over months)
    until the file is just under its compaction bound: the act's own record then sets
    off the compaction. Returns the bytes added."""
    size = size_and_inode(path)[0]
    # Less than any ack or silence record (190 bytes and more): the next one crosses.
    target = COMPACT_BYTES - 60
    # A year ago, a second apart: none of them can be mistaken for a live episode.
    when = SystemClock().utcnow() - timedelta(days=365, microseconds=rng.randrange(10**6))
    out = bytearray()
    serial = 0
    while size + len(out) < target:
        serial += 1
        line = _past_episode(when + timedelta(seconds=serial), "")
        gap = target - size - len(out)
        if gap < 2 * len(line):
            # The last one is stretched (its summary) to end exactly at the target.
            line = _past_episode(when + timedelta(seconds=serial), "x" * (gap - len(line)))
        out += line
    with path.open("ab") as file:
        # Taking turns with the dashboard's appends, as its own writers do.
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        file.write(out)
        file.flush()
        os.fsync(file.fileno())
    return len(out)


def _past_episode(started: datetime, filler: str) -> bytes:
    alert = Alert(
        id=episode_id("region_down:bg", started),
        key="region_down:bg",
        rule="region_down",
        severity=Severity.CRITICAL,
        state=AlertState.RESOLVED,
        region="bg",
        summary="bg down: every check failing" + filler,
        since=started,
        started_at=started,
    )
    record = {"ts": iso_utc(started), "event": "alert", "transition": "resolved",
              "alert": alert_record(alert)}  # fmt: skip
    return (json.dumps(record) + "\n").encode()


def restored(journal: Path, scratch: Path) -> AlertBook:
    """The book a start would fold from the journal as the kill left it (a copy: the
    restore may repair and compact, and that is the next start's job, not the bench's)."""
    copy = scratch / ALERTS_FILE
    copy.unlink(missing_ok=True)
    if journal.exists():
        shutil.copyfile(journal, copy)
    book = AlertBook(SystemClock())
    AlertJournal(copy, SystemClock()).restore(book)
    return book


class Bench:
    def __init__(
        self,
        estate: Estate,
        rng: random.Random,
        counts: collections.Counter[str],
        *,
        verbose: bool = False,
    ) -> None:
        self.verbose = verbose
        self.estate = estate
        self.rng = rng
        self.counts = counts
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
        self.env["TERM"] = "xterm-256color"
        self.operator = operator_identity()["operator"]
        self.dashboard: PtyProcess | None = None
        # What the operator completed, by the journal: the last ack (its note) per
        # episode, and every silence (id -> comment).
        self.acks: dict[str, str] = {}
        self.silences: dict[str, str] = {}
        self.lost_acks: set[str] = set()  # notes
        self.lost_silences: set[str] = set()
        self.episodes: set[str] = set()
        self.compaction_temp = (0, 0)  # (size, inode) of a compaction's temp file
        self.scratch = estate.directory / "scratch"
        self.scratch.mkdir()

    def start(self) -> bool:
        """Start the dashboard on the estate's state dir; True once it draws the alert."""
        argv = [sys.executable, "-m", "noc", "--config", str(self.estate.config)]
        journal_torn = read_lines(self.estate.journal).torn_tail
        self.dashboard = PtyProcess.spawn(argv, size=SIZE, env=self.env)
        started = time.monotonic()
        drawn = self.dashboard.read_until(b"LIVE", START_TIMEOUT) and self.dashboard.read_until(
            SUMMARY, START_TIMEOUT
        )
        if not drawn:
            self.counts["STARTS THAT FAILED (want 0)"] += 1
            print(bytes(self.dashboard.output[-3000:]).decode(errors="replace"), file=sys.stderr)
            return False
        self.counts["start to the alert drawn, total ms"] += round(
            (time.monotonic() - started) * 1000
        )
        self.counts["starts"] += 1
        if journal_torn:
            # The start folded the journal and compacted it: the torn tail is gone.
            if read_lines(self.estate.journal).torn_tail:
                self.counts["torn journal tails NOT repaired by the next start (want 0)"] += 1
            else:
                self.counts["torn journal tails repaired by the next start"] += 1
        # The ack the operator completed last is drawn on the alert again.
        for note in self.acks.values():
            mark = f"ACK {self.operator}: {note}".encode()
            if not self.dashboard.read_until_text(mark, 30):
                self.counts["completed acks NOT drawn after the restart (want 0)"] += 1
        if self.silences and not self.dashboard.read_until_text(b"SILENCED", 30):
            self.counts["silenced alert NOT drawn SILENCED after the restart (want 0)"] += 1
        # The highlighted row (the firing alert) is what `a` acts on; let it settle.
        self.dashboard.read_for(0.3)
        return True

    def round(self, number: int) -> None:
        assert self.dashboard is not None
        dashboard, estate, rng = self.dashboard, self.estate, self.rng
        kind = rng.choice(("ack", "silence"))
        text = f"k{number:03d}-{rng.randrange(16**6):06x}"
        mode = rng.choices([m for m, _ in KILL_MODES], [w for _, w in KILL_MODES])[0]
        compaction = (
            mode != KILL_MODES[0][0]
            and rng.random() < COMPACTION_SHARE
            and not read_lines(estate.journal).torn_tail
        )
        if compaction:
            # Filled while the dashboard runs: it appends nothing in a steady state, and
            # the fill is whole lines, fsynced, as a second writer's would be.
            pad_journal(estate.journal, rng)
            self.counts["rounds whose act set off a compaction"] += 1
        self.counts[f"kills {mode}"] += 1
        if self.verbose:
            print(f"round {number}: {mode}{', compaction' if compaction else ''}", flush=True)
        dashboard.poll()
        os.write(dashboard.fd, b"a" if kind == "ack" else b"s")
        title = b"Acknowledge alert" if kind == "ack" else b"Silence alerts"
        if not dashboard.read_until(title, 10):
            self.counts[f"{kind} dialog did not open (want 0)"] += 1
        os.write(dashboard.fd, text.encode())
        dashboard.read_until(text.encode(), 5)
        journal_before, audit_before = size_and_inode(estate.journal), size_and_inode(estate.audit)
        submitted_at = len(dashboard.output)
        if mode == KILL_MODES[0][0]:
            time.sleep(rng.uniform(0, 0.05))
        else:
            os.write(dashboard.fd, b"\r")
            self.wait_to_kill(mode, journal_before, audit_before, compaction)
        dashboard.sigkill()
        self.counts["kills"] += 1
        drawn_after = bytes(dashboard.output[submitted_at:])
        if kind == "ack":
            confirmed = f"ACK {self.operator}: {text}".encode() in drawn_after
        else:
            confirmed = b"Silenced " in drawn_after
        self.check_after_kill(kind, text, confirmed, journal_before)

    def wait_to_kill(
        self,
        mode: str,
        journal_before: tuple[int, int],
        audit_before: tuple[int, int],
        compaction: bool,
    ) -> None:
        assert self.dashboard is not None
        if mode == KILL_MODES[1][0]:
            self.dashboard.read_for(self.rng.uniform(0, 0.2))
            return
        watched, before = (
            (self.estate.journal, journal_before)
            if mode == KILL_MODES[2][0]
            else (self.estate.audit, audit_before)
        )
        deadline = time.monotonic() + 5
        # A tight poll: nothing tells this process when another one writes a file. The
        # terminal is drained meanwhile, or the dashboard would stall on a full pty.
        while size_and_inode(watched) == before:
            if time.monotonic() > deadline:
                self.counts["kills whose aimed-at write never came (at 5 s)"] += 1
                return
            self.dashboard.poll(0.0005)
        if mode == KILL_MODES[2][0]:
            # A compaction runs after the record: temp file, fsync, rename, fsync.
            time.sleep(self.rng.uniform(0, 0.03 if compaction else 0.003))

    def check_after_kill(
        self, kind: str, text: str, confirmed: bool, journal_before: tuple[int, int]
    ) -> None:
        estate, counts = self.estate, self.counts
        journal, audit = read_lines(estate.journal), read_lines(estate.audit)
        for name, lines in (("journal", journal), ("audit", audit)):
            counts[f"{name} lines read whole after the kills"] += lines.whole
            counts[f"torn {name} tails (a record cut mid-write)"] += lines.torn_tail
            counts[f"damaged {name} lines before the last (want 0)"] += lines.damaged_inside
        replaced = size_and_inode(estate.journal)[1] != journal_before[1]
        counts["journal replaced by a compaction before the kill"] += replaced
        # A compaction killed before its rename leaves its temp file (the journal is
        # whole: the rename never came); the next compaction truncates and reuses it.
        temp = size_and_inode(estate.journal.with_name(ALERTS_FILE + ".compacting"))
        if temp != (0, 0) and temp != self.compaction_temp:
            counts["kills inside a compaction, before its rename"] += 1
        self.compaction_temp = temp
        # Completed: the act's record is in the alert journal.
        if kind == "ack":
            records = [
                r for r in journal.records if r.get("event") == "ack" and r.get("note") == text
            ]
            in_audit = any(r.get("event") == "ack" and r.get("note") == text for r in audit.records)
        else:
            records = [
                r
                for r in journal.records
                if r.get("event") == "silence" and r["silence"].get("comment") == text
            ]
            in_audit = any(
                r.get("event") == "silence" and r.get("comment") == text for r in audit.records
            )
        completed = bool(records)
        counts[f"{kind}s submitted"] += 1
        counts[f"{kind}s completed (in the journal)"] += completed
        counts[f"{kind}s drawn as done before the kill"] += confirmed
        if confirmed and not completed:
            counts[f"{kind}s drawn as done but NOT in the journal (want 0)"] += 1
        if in_audit and not completed:
            counts[f"{kind}s in the audit but NOT in the journal (want 0)"] += 1
        if completed and not in_audit:
            counts[f"{kind}s in the journal, killed before their audit record"] += 1
        if completed and kind == "ack":
            self.acks[str(records[-1]["alert_id"])] = text
        elif completed:
            self.silences[str(records[-1]["silence"]["id"])] = text
        if self.verbose:
            print(f"{kind} {text}: completed {completed}, drawn {confirmed}, "
                  f"audited {in_audit}, journal replaced {replaced}, "
                  f"{journal.whole} journal lines", flush=True)  # fmt: skip
        # What a start folds from the journal as the kill left it.
        book = restored(estate.journal, self.scratch)
        firing = {a.id: a for a in book.firing_episodes() if a.key == FIRING_KEY}
        self.episodes.update(firing)
        for episode, note in self.acks.items():
            alert = firing.get(episode)
            shown = alert is not None and alert.ack is not None and alert.ack.note == note
            if not shown and note not in self.lost_acks:
                counts["completed acks lost (want 0)"] += 1
                self.lost_acks.add(note)
        active = {s.id for s in book.all_silences() if s.expired_at is None}
        for silence_id in set(self.silences) - active - self.lost_silences:
            counts["completed silences lost (want 0)"] += 1
            self.lost_silences.add(silence_id)
        # Locks: none in the stores, and the next action is not refused for one.
        held = estate.locks()
        counts["failover locks left in a store"] += held
        dry_run = subprocess.run(
            [sys.executable, "-m", "noc", "failover", "--config", str(estate.config),
             "--to", "bg", "--reason", "kill bench: next action", "--dry-run"],
            env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if "[FAIL] failover lock" in dry_run.stdout:
            counts["next failover refused for a lock (want 0)"] += 1
        counts[f"next failover --dry-run exit {dry_run.returncode}"] += 1

    def stop(self) -> None:
        if self.dashboard is not None and self.dashboard.exit is None:
            self.dashboard.stop()
            assert self.dashboard.exit is not None
            self.counts[f"last dashboard, hung up: exit {self.dashboard.exit.code}"] += 1


def run(
    kills: int, seed: int, minutes: float, directory: Path, *, verbose: bool = False
) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    estate = Estate(directory)
    estate.start()
    bench = Bench(estate, random.Random(seed), counts, verbose=verbose)
    deadline = time.monotonic() + minutes * 60
    try:
        if not bench.start():
            return counts
        for number in range(1, kills + 1):
            if time.monotonic() > deadline:
                counts["rounds left out (time)"] = kills - number + 1
                break
            bench.round(number)
            if not bench.start():
                break
        bench.stop()
        counts["firing episodes of region_down:pa seen (want 1)"] = len(bench.episodes)
        log = estate.state / "noc.log"
        counts["tracebacks in noc.log (want 0)"] = (
            log.read_text(errors="replace").count("Traceback") if log.exists() else 0
        )
        torn_kept = [p.name for p in estate.state.glob("*.torn")]
        counts["torn tails kept aside (*.torn files)"] = len(torn_kept)
    finally:
        if bench.dashboard is not None and bench.dashboard.exit is None:
            bench.dashboard.sigkill()
        estate.stop()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--verbose", action="store_true", help="one line per round")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="noc-bench-killdash-") as directory:
        counts = run(args.kills, args.seed, args.minutes, Path(directory), verbose=args.verbose)
    elapsed = time.monotonic() - started
    starts = counts.pop("start to the alert drawn, total ms", 0)
    print(f"{counts['kills']} SIGKILLs of the dashboard during acks and silences "
          f"(seed {args.seed}, {elapsed:.0f} s)")  # fmt: skip
    if counts["starts"]:
        print(f"  anchor: a start, to the firing alert drawn: {starts / counts['starts']:.0f} ms")
    for name, value in sorted(counts.items()):
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
