"""The alert journal: transitions, acks and silences, durable in the state dir.

Every record is fsynced before it is reported done (noc.audit.JsonlLog), so a
restart or `kill -9` loses nothing an operator did. On start the journal is
folded back into an AlertBook: episodes that were firing stay firing, the same
episode (so the same incident does not page twice), their acks come back, and
silences that have not ended apply again.

The fold is keyed by episode id, so a record read twice (or a resolve that is
repeated) never makes a second row, and only legal transitions are taken: an
episode that resolved does not fire again.

Compaction: the journal would otherwise grow with every episode of the estate's
life, and a restart would read it all. Once the file outgrows its bound (on open,
or while recording) it is rewritten as what is live (firing episodes and their
acks, silences that have not ended) plus the recently resolved tail the alert
pane shows: temp file, fsync, rename, fsync of the directory, so a kill at any
moment leaves either the old file or the new one, whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from noc.alerts import RESOLVED_KEPT, AlertBook, episode_id, episode_start
from noc.audit import JsonlLog, read_jsonl
from noc.clock import Clock, iso_utc
from noc.model import Ack, Alert, AlertNotice, AlertState, Severity, Silence

log = logging.getLogger(__name__)
_TICK = timedelta(microseconds=1)

# The journal is rewritten once it is this big, or twice its last compacted size (so
# an estate with many live alerts is not rewritten at every record).
COMPACT_BYTES = 256 * 1024


def alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "key": alert.key,
        "rule": alert.rule,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "region": alert.region,
        "summary": alert.summary,
        "since": iso_utc(alert.since),
        "started_at": iso_utc(alert.started_at) if alert.started_at else None,
        "value": alert.value,
        "ack": ack_record(alert.ack) if alert.ack else None,
        "silenced_by": alert.silenced_by,
        "inhibited_by": alert.inhibited_by,
        "flapping": alert.flapping,
    }


def ack_record(ack: Ack) -> dict[str, str]:
    return {"by": ack.by, "note": ack.note, "at": iso_utc(ack.at)}


def silence_record(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": dict(silence.matchers),
        "starts_at": iso_utc(silence.starts_at),
        "ends_at": iso_utc(silence.ends_at),
        "author": silence.author,
        "comment": silence.comment,
        "expired_at": iso_utc(silence.expired_at) if silence.expired_at else None,
    }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _alert(raw: dict[str, Any]) -> Alert:
    """An episode from its record. A record written before episodes had ids has its
    key as `id`: the episode id is derived from the key and its start, as the book
    derives it."""
    ack = raw.get("ack")
    since = _time(raw["since"])
    started_at = _time(raw["started_at"]) if raw.get("started_at") else None
    key = raw.get("key")
    if key:
        alert_id = str(raw["id"])
    else:
        key = str(raw["id"])
        alert_id = episode_id(key, started_at or since)
    return Alert(
        id=alert_id,
        key=str(key),
        rule=raw["rule"],
        severity=Severity(raw["severity"]),
        state=AlertState(raw["state"]),
        region=raw.get("region"),
        summary=raw.get("summary", ""),
        since=since,
        started_at=started_at,
        value=raw.get("value"),
        ack=Ack(ack["by"], ack["note"], _time(ack["at"])) if ack else None,
    )


def _silence(raw: dict[str, Any]) -> Silence:
    return Silence(
        id=raw["id"],
        matchers=tuple(sorted(raw["matchers"].items())),
        starts_at=_time(raw["starts_at"]),
        ends_at=_time(raw["ends_at"]),
        author=raw["author"],
        comment=raw["comment"],
        expired_at=_time(raw["expired_at"]) if raw.get("expired_at") else None,
    )


class _Fold:
    """The journal's records folded into what a book needs, by episode id."""

    def __init__(self) -> None:
        self.firing: dict[str, Alert] = {}  # episode id -> the firing episode
        self.firing_by_key: dict[str, str] = {}  # key -> its firing episode's id
        self.acks: dict[str, Ack] = {}  # episode id -> its ack
        self.resolved: deque[Alert] = deque(maxlen=RESOLVED_KEPT)  # oldest first
        # Every episode seen resolved, so a stray later "firing" of one is refused.
        # Lives only while the file is read.
        self.resolved_ids: set[str] = set()
        self.silences: dict[str, Silence] = {}
        self.last_starts: dict[str, datetime] = {}

    def alert(self, transition: str, alert: Alert) -> None:
        started = episode_start(alert.id) or alert.started_at or alert.since
        if started > self.last_starts.get(alert.key, started - _TICK):
            self.last_starts[alert.key] = started
        if alert.id in self.resolved_ids:
            return  # resolved once: no transition leaves that state
        if transition == "firing":
            earlier = self.firing_by_key.get(alert.key)
            if earlier is not None and earlier != alert.id:
                # Two firing episodes of one key: the resolve of the earlier one was not
                # written (a failed write). It ended when the later one started.
                ended = alert.started_at or alert.since
                self._resolve(replace(self.firing[earlier], state=AlertState.RESOLVED, since=ended))
            self.firing[alert.id] = alert
            self.firing_by_key[alert.key] = alert.id
        elif transition == "resolved":
            self._resolve(alert)
        else:
            raise ValueError(f"unknown transition {transition!r}")

    def _resolve(self, alert: Alert) -> None:
        self.firing.pop(alert.id, None)
        if self.firing_by_key.get(alert.key) == alert.id:
            del self.firing_by_key[alert.key]
        self.acks.pop(alert.id, None)
        self.resolved.append(replace(alert, ack=None))
        self.resolved_ids.add(alert.id)

    def ack(self, alert_id: str, ack: Ack) -> None:
        # An ack record written before episodes had ids names the key: it belongs to
        # the episode of that key firing when it was written.
        episode = alert_id if alert_id in self.firing else self.firing_by_key.get(alert_id)
        if episode is not None:
            self.acks[episode] = ack

    def into(self, book: AlertBook) -> None:
        for alert in self.firing.values():
            book.restore_firing(replace(alert, ack=self.acks.get(alert.id, alert.ack)))
        for alert in self.resolved:
            book.restore_resolved(alert)
        for silence in self.silences.values():
            book.restore_silence(silence)
        for key, started in self.last_starts.items():
            book.restore_last_start(key, started)


class AlertJournal:
    def __init__(self, path: Path, clock: Clock, *, compact_bytes: int = COMPACT_BYTES) -> None:
        self.path = path
        self._clock = clock
        self._log = JsonlLog(path, clock)
        self._compact_bytes = compact_bytes
        self._compacted_size = 0
        self._book: AlertBook | None = None
        # A compaction renames the file: no append may run while it does.
        self._writing = asyncio.Lock()

    async def record(self, notices: Iterable[AlertNotice]) -> None:
        async with self._writing:
            for notice in notices:
                await self._log.aappend(
                    "alert", transition=notice.event, alert=alert_record(notice.alert)
                )
        await self._maybe_compact()

    async def record_ack(self, alert_id: str, ack: Ack) -> None:
        """`alert_id`: the episode's id."""
        async with self._writing:
            await self._log.aappend("ack", alert_id=alert_id, **ack_record(ack))
        await self._maybe_compact()

    async def record_silence(self, silence: Silence) -> None:
        async with self._writing:
            await self._log.aappend("silence", silence=silence_record(silence))
        await self._maybe_compact()

    def restore(self, book: AlertBook) -> list[int]:
        """Fold the journal into `book` (and remember the book: later compactions
        write what it holds); compacts the file if it outgrew its bound. Returns the
        numbers of damaged lines skipped."""
        read = read_jsonl(self.path)
        fold = _Fold()
        for number, record in enumerate(read.records, start=1):
            try:
                kind = record["event"]
                if kind == "alert":
                    fold.alert(record["transition"], _alert(record["alert"]))
                elif kind == "ack":
                    fold.ack(
                        str(record["alert_id"]),
                        Ack(record["by"], record["note"], _time(record["at"])),
                    )
                elif kind == "silence":
                    silence = _silence(record["silence"])
                    fold.silences[silence.id] = silence
                elif kind == "episode_starts":
                    for key, text in record["starts"].items():
                        fold.last_starts[str(key)] = _time(text)
            except (KeyError, ValueError, TypeError, AttributeError):
                # A well-formed line noc cannot use (an older or edited record):
                # skipped and reported, never a reason not to start.
                read.damaged_lines.append(number)
        fold.into(book)
        self._book = book
        if read.damaged_lines or self._size() > self._compact_bytes:
            # Damaged lines are dropped by the rewrite too: a torn last line must not
            # swallow the next record appended after it.
            try:
                self._compact(book)
            except OSError:
                # The records are read; a journal that cannot be rewritten now is
                # rewritten by a later record, or read whole again next start.
                log.exception("alert journal %s: cannot compact", self.path)
        return read.damaged_lines

    async def _maybe_compact(self) -> None:
        if self._size() > max(self._compact_bytes, 2 * self._compacted_size):
            await self.compact()

    async def compact(self) -> None:
        """Rewrite the journal as what the restored book holds now (see the module
        docstring). Nothing to do before `restore()`."""
        if self._book is None:
            return
        async with self._writing:
            # Built on the event loop, where the book changes, so it is one moment's.
            data = compacted(self._book, self._clock)
            try:
                await asyncio.to_thread(self._rewrite, data)
            except OSError:
                # Every record is in the file already: only its size is at stake.
                log.exception("alert journal %s: cannot compact", self.path)

    def _compact(self, book: AlertBook) -> None:
        self._rewrite(compacted(book, self._clock))

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _rewrite(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".compacting")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(self.path)
        # The rename is durable only once the directory entry is.
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._compacted_size = len(data)


def compacted(book: AlertBook, clock: Clock) -> bytes:
    """The journal that folds into what `book` holds: resolved tail (oldest first),
    firing episodes with their acks, silences that have not ended."""
    ts = iso_utc(clock.utcnow())
    wall = clock.utcnow()
    records: list[dict[str, Any]] = []
    for alert in book.resolved_episodes():
        records.append(
            {"ts": ts, "event": "alert", "transition": "resolved", "alert": alert_record(alert)}
        )
    for alert in book.firing_episodes():
        records.append(
            {"ts": ts, "event": "alert", "transition": "firing", "alert": alert_record(alert)}
        )
        if alert.ack is not None:
            records.append(
                {"ts": ts, "event": "ack", "alert_id": alert.id, **ack_record(alert.ack)}
            )
    for silence in book.all_silences():
        if silence.expired_at is None and silence.ends_at > wall:
            records.append({"ts": ts, "event": "silence", "silence": silence_record(silence)})
    # When each key's latest episode started, to the microsecond, even one no longer in
    # the tail: a later episode's id can then never be an earlier one's.
    starts = {key: at.isoformat() for key, at in book.last_starts().items()}
    if starts:
        records.append({"ts": ts, "event": "episode_starts", "starts": starts})
    return b"".join((json.dumps(r, default=str) + "\n").encode() for r in records)
