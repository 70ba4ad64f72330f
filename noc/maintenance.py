"""Maintenance windows: planned work on a region, during which it pages no one.

A window covers one region from its start (now, or scheduled ahead with `--at`) to
its end; it ends by itself then, or earlier when an operator ends it. While it
covers a region, that region's alerts carry `maintenance` (muted: no notification,
and the pages they would have sent go out once the window is over if they still
fire), automated failover leaves the region alone, and a failover plan says so.

Two parts, split so the engine stays free of I/O:

- `MaintenanceBook`: the windows in memory, a fold of records; pure, clock-free
  (every question takes `now`).
- `MaintenanceStore`: the book's file, `<state dir>/maintenance.jsonl`. Each record
  ("add", with the whole window; "end", with who and when) is one write() and an
  fsync under an exclusive lock before `add()` / `end()` return, so a `kill -9`
  loses at most the record being written, never one already reported; a torn last
  line is skipped on reading and moved aside before the next write. The CLI and the
  dashboard are separate processes writing the same file: `reload()` re-reads it
  when it changed (one stat per call), so a window added by `noc maintenance add`
  shows on a running dashboard at its next evaluation. The file is rewritten
  (temp file, fsync, rename, fsync of the directory) when it passes COMPACT_RECORDS
  (or twice its size after the last rewrite), keeping the windows the book keeps.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from noc.audit import RecordNotWritten, cut_torn_tail, fsync_directory, read_jsonl
from noc.clock import Clock
from noc.model import MaintenanceWindow

log = logging.getLogger(__name__)

# A window longer than a week is not maintenance but an outage plan: refused, so a
# typo ("2d" for "2h") cannot mute a region for a month.
MAX_WINDOW = timedelta(days=7)
# Scheduling further ahead than this is almost surely a wrong date.
MAX_AHEAD = timedelta(days=90)
# An --at a little in the past (the operator typed "now" as a time) starts now.
PAST_SLACK = timedelta(minutes=5)
# Finished windows kept in memory (and across a rewrite of the file) for `list`.
KEPT_FINISHED = 100
# The file is rewritten, keeping only what the book keeps, past this many records.
COMPACT_RECORDS = 1000
REASON_LIMIT = 500


class MaintenanceError(ValueError):
    """A window that cannot be: an unknown region, a bad duration or time, no reason."""


# --- the book ----------------------------------------------------------------------


def window_json(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "id": window.id,
        "region": window.region,
        "starts_at": _iso(window.starts_at),
        "ends_at": _iso(window.ends_at),
        "reason": window.reason,
        "by": window.by,
        "created_at": _iso(window.created_at),
        "ended_at": _iso(window.ended_at) if window.ended_at else None,
        "ended_by": window.ended_by,
    }


def window_from_json(raw: Mapping[str, Any]) -> MaintenanceWindow:
    ended = raw.get("ended_at")
    return MaintenanceWindow(
        id=str(raw["id"]),
        region=str(raw["region"]),
        starts_at=_parse(raw["starts_at"]),
        ends_at=_parse(raw["ends_at"]),
        reason=str(raw["reason"]),
        by=str(raw["by"]),
        created_at=_parse(raw["created_at"]),
        ended_at=_parse(ended) if ended else None,
        ended_by=raw.get("ended_by"),
    )


class MaintenanceBook:
    """Every window known, by id: a fold of "add" and "end" records."""

    def __init__(self) -> None:
        self._windows: dict[str, MaintenanceWindow] = {}
        # The last `active()` answer: every alert of a tick asks at the same moment,
        # so one scan of the windows serves them all. Dropped on every change.
        self._active_at: tuple[datetime, dict[str, MaintenanceWindow]] | None = None

    def apply(self, record: Mapping[str, Any]) -> None:
        """Fold one record. A malformed one raises before anything changes."""
        event = record.get("event")
        self._active_at = None
        if event == "add":
            window = window_from_json(record["window"])
            self._windows.setdefault(window.id, window)
        elif event == "end":
            found = self._windows.get(str(record["id"]))
            at, by = _parse(record["at"]), str(record["by"])
            if found is not None and found.ended_at is None:
                self._windows[found.id] = replace(found, ended_at=at, ended_by=by)
        else:
            raise ValueError(f"unknown maintenance record {event!r}")

    def replace_all(self, windows: Iterable[MaintenanceWindow]) -> None:
        self._windows = {w.id: w for w in windows}
        self._active_at = None

    def get(self, window_id: str) -> MaintenanceWindow | None:
        return self._windows.get(window_id)

    def all(self) -> tuple[MaintenanceWindow, ...]:
        return tuple(self._windows.values())

    def active(self, now: datetime) -> dict[str, MaintenanceWindow]:
        """Per region, the window covering it now (of overlapping ones, the one that
        lasts longest: the region is in maintenance until then). Shared: read only."""
        if self._active_at is not None and self._active_at[0] == now:
            return self._active_at[1]
        covering: dict[str, MaintenanceWindow] = {}
        for window in self._windows.values():
            if not window.covers(now):
                continue
            held = covering.get(window.region)
            if held is None or window.until > held.until:
                covering[window.region] = window
        self._active_at = (now, covering)
        return covering

    def of_region(self, region: str | None, now: datetime) -> MaintenanceWindow | None:
        if region is None:
            return None
        return self.active(now).get(region)

    def listing(self, now: datetime) -> list[MaintenanceWindow]:
        """Active and scheduled windows by start, then the finished ones, newest first."""
        live = sorted(
            (w for w in self._windows.values() if now < w.until),
            key=lambda w: (w.starts_at, w.id),
        )
        finished = sorted(
            (w for w in self._windows.values() if now >= w.until),
            key=lambda w: (w.until, w.id),
            reverse=True,
        )
        return [*live, *finished]

    def trim(self, now: datetime) -> None:
        """Keep every live window and the KEPT_FINISHED most recently finished: the
        book does not grow with every window of the estate's life."""
        finished = sorted(
            (w for w in self._windows.values() if now >= w.until), key=lambda w: w.until
        )
        for old in finished[: max(0, len(finished) - KEPT_FINISHED)]:
            del self._windows[old.id]
        self._active_at = None


# --- what an operator types ----------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`2h`, `90m`, `1h30m`, `1d`, `45s` (a bare number is minutes)."""
    spoken = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", spoken):
        return timedelta(minutes=float(spoken))
    parts = _DURATION_PART.findall(spoken)
    if not parts or "".join(n + u for n, u in parts) != spoken:
        raise MaintenanceError(f"not a duration: {text!r} (say 2h, 90m, 1h30m or 1d)")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def parse_start(text: str, now: datetime) -> datetime:
    """When a window starts: an ISO 8601 time (UTC unless it says otherwise), `HH:MM`
    (UTC, today, or tomorrow if that time has passed), or `+30m` from now."""
    spoken = text.strip()
    if spoken.startswith("+"):
        return now + parse_duration(spoken[1:])
    clock_time = re.fullmatch(r"(\d{1,2}):(\d{2})", spoken)
    if clock_time:
        hour, minute = int(clock_time[1]), int(clock_time[2])
        if hour > 23 or minute > 59:
            raise MaintenanceError(f"not a time of day: {text!r}")
        today = now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return today if today >= now - PAST_SLACK else today + timedelta(days=1)
    try:
        moment = datetime.fromisoformat(spoken.replace("Z", "+00:00"))
    except ValueError:
        raise MaintenanceError(
            f"not a time: {text!r} (say 2026-12-03T22:00Z, 22:00 (UTC) or +30m)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def new_window(
    region: str,
    regions: Iterable[str],
    duration: timedelta,
    reason: str,
    by: str,
    now: datetime,
    *,
    starts_at: datetime | None = None,
) -> MaintenanceWindow:
    """A window checked against what makes sense; MaintenanceError says what does not."""
    known = list(regions)
    if region not in known:
        raise MaintenanceError(f"no region {region!r} (regions: {', '.join(known) or 'none'})")
    if not reason.strip():
        raise MaintenanceError("a maintenance window needs a reason")
    if len(reason) > REASON_LIMIT:
        raise MaintenanceError(f"the reason is longer than {REASON_LIMIT} characters")
    if duration <= timedelta(0):
        raise MaintenanceError("a maintenance window must last more than zero")
    if duration > MAX_WINDOW:
        raise MaintenanceError(
            f"a maintenance window lasts at most {MAX_WINDOW.days} days; "
            "split a longer one, or drain the region"
        )
    start = now if starts_at is None else starts_at
    if start < now - PAST_SLACK:
        raise MaintenanceError(f"{_iso(start)} has passed; a window cannot start in the past")
    if start - now > MAX_AHEAD:
        raise MaintenanceError(f"{_iso(start)} is more than {MAX_AHEAD.days} days ahead")
    start = max(start, now)
    return MaintenanceWindow(
        id=uuid.uuid4().hex[:8],
        region=region,
        starts_at=start,
        ends_at=start + duration,
        reason=" ".join(reason.split()),
        by=by,
        created_at=now,
    )


def describe(window: MaintenanceWindow, now: datetime) -> str:
    """One line for `noc maintenance list` and the dashboard's messages."""
    state = window.state(now)
    when = {
        "scheduled": f"from {_hm(window.starts_at)} until {_hm(window.ends_at)}",
        "active": f"until {_hm(window.ends_at)}",
        "ended": f"ended {_hm(window.until)} by {window.ended_by}",
        "expired": f"ended {_hm(window.ends_at)}",
    }[state]
    return f"{window.id}  {window.region:<8} {state:<9} {when}  by {window.by}: {window.reason}"


# --- the store -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FileKey:
    """What tells that the file changed since it was read (another process wrote)."""

    inode: int
    size: int
    mtime_ns: int


class MaintenanceStore:
    """The book and its file. Blocking: the app calls it through asyncio.to_thread;
    `reload()` is one stat when nothing changed."""

    def __init__(self, path: Path, clock: Clock, book: MaintenanceBook | None = None) -> None:
        self.path = path
        self.book = book if book is not None else MaintenanceBook()
        self._clock = clock
        self._read_as: _FileKey | None = None
        self._records = 0
        # Records right after the last rewrite: the next comes at twice as many (or
        # COMPACT_RECORDS), so many live windows cannot make every write a rewrite.
        self._compacted = 0
        self.damaged_lines: tuple[int, ...] = ()

    def changed(self) -> bool:
        """Whether the file differs from what was last read: one stat."""
        return self._key() != self._read_as

    def reload(self) -> bool:
        """Re-read the file if it changed; True when it did (the windows may differ)."""
        key = self._key()
        if key == self._read_as:
            return False
        self._read(key)
        return True

    def add(self, window: MaintenanceWindow) -> MaintenanceWindow:
        """Record a new window; on disk when this returns, or RecordNotWritten."""
        self._write({"event": "add", "window": window_json(window)})
        self.reload()
        return window

    def end(self, window_id: str, by: str) -> MaintenanceWindow:
        """End a live window now; MaintenanceError when there is none by that id."""
        self.reload()
        now = self._clock.utcnow()
        window = self.book.get(window_id)
        if window is None:
            raise MaintenanceError(f"no maintenance window {window_id!r}")
        if now >= window.until:
            raise MaintenanceError(f"window {window_id} is already over ({window.state(now)})")
        self._write({"event": "end", "id": window_id, "at": _iso(now), "by": by})
        self.reload()
        ended = self.book.get(window_id)
        assert ended is not None
        return ended

    def _key(self) -> _FileKey | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return _FileKey(stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _read(self, key: _FileKey | None) -> None:
        read = read_jsonl(self.path)
        book = MaintenanceBook()
        damaged = list(read.damaged_lines)
        for number, record in enumerate(read.records, start=1):
            try:
                book.apply(record)
            except (ValueError, KeyError, TypeError):
                damaged.append(number)
        book.trim(self._clock.utcnow())
        # The same book object: the engine and the alert book hold it.
        self.book.replace_all(book.all())
        self._records = len(read.records)
        self._read_as = key
        if damaged and tuple(damaged) != self.damaged_lines:
            log.warning("maintenance %s: skipped damaged line(s) %s", self.path, damaged)
        self.damaged_lines = tuple(damaged)

    def _write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise RecordNotWritten(self.path, exc.strerror or str(exc), errno_=exc.errno) from exc
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise RecordNotWritten(self.path, reason, errno_=exc.errno) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # Another process may have rewritten the file while this one waited for
                # the lock: the descriptor then names the old, unlinked file. Write to
                # the file the path names now, or the record would be lost.
                if not _same_file(fd, self.path):
                    continue
                torn = cut_torn_tail(fd, self.path)
                if torn is not None:
                    log.warning("%s", torn.notice())
                _write_whole(fd, self.path, line)
                self._records += 1
                if self._records > max(COMPACT_RECORDS, 2 * self._compacted):
                    self._rewrite_locked()
                return
            finally:
                os.close(fd)

    def _rewrite_locked(self) -> None:
        """With the file's lock held: write what the book keeps, and swap it in."""
        read = read_jsonl(self.path)
        book = MaintenanceBook()
        for record in read.records:
            try:
                book.apply(record)
            except (ValueError, KeyError, TypeError):
                continue
        book.trim(self._clock.utcnow())
        data = b"".join(
            (json.dumps({"event": "add", "window": window_json(w)}) + "\n").encode()
            for w in book.all()
        )
        temp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_whole(fd, temp, data)
        finally:
            os.close(fd)
        temp.replace(self.path)
        fsync_directory(self.path.parent)
        self._records = self._compacted = len(book.all())


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _write_whole(fd: int, path: Path, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            if written == 0:
                raise RecordNotWritten(path, "short write (is the disk full?)", errno_=errno.ENOSPC)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        if isinstance(exc, RecordNotWritten):
            raise
        raise RecordNotWritten(path, exc.strerror or str(exc), errno_=exc.errno) from exc


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _hm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _parse(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
