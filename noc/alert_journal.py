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

History: compaction keeps only the last resolved episodes (what the alert pane
shows), without their acks or the moment they fired. Every episode that ends is
therefore also appended, whole (start, firing, acks, how it ended), to its own file,
`alerts-history.jsonl`, beside the journal. It is kept apart because the two files
answer different questions: the journal is what a restart must read before the
first alert evaluation, so it stays small and is rewritten; the history is read
only when an operator opens it, off the event loop, and only ever appended. It is
bounded by rotation (past HISTORY_BYTES the file becomes `.1`, replacing the one
before), so it holds between one and two files' worth of episodes, always more than
the HISTORY_KEPT the history view shows; losing it costs the view, never alerting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from noc.alerts import RESOLVED_KEPT, AlertBook, episode_id, episode_start
from noc.audit import JsonlLog, read_jsonl
from noc.clock import Clock, iso_utc
from noc.model import Ack, Alert, AlertNotice, AlertState, Severity, Silence

log = logging.getLogger(__name__)

# The journal is rewritten once it is this big, or twice its last compacted size (so
# an estate with many live alerts is not rewritten at every record).
COMPACT_BYTES = 256 * 1024
HISTORY_FILE = "alerts-history.jsonl"
# An ended episode's record is about 700 bytes: a file holds about 700 of them, so
# the current file and the rotated one always hold more than HISTORY_KEPT.
HISTORY_BYTES = 512 * 1024
HISTORY_KEPT = 500  # past episodes the history view shows, newest first
# Firing episodes whose firing moment and acks are kept in memory for their history
# record (one entry each, dropped when the episode ends): a bound for a pathological
# estate, far above any real number of alerts firing at once.
TRAILS_KEPT = 2048
ACKS_KEPT = 10  # per episode: re-acks beyond this keep the latest


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
        "escalated_from": alert.escalated_from,
        "escalated_to": alert.escalated_to,
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
        escalated_from=raw.get("escalated_from"),
        escalated_to=raw.get("escalated_to"),
    )


def shown_alert_record(alert: Alert) -> dict[str, Any]:
    """An alert as a screen shows it: its record, with what mutes it (the control
    plane's alert book, noc.control)."""
    return {**alert_record(alert), "muted_by": [alert.silenced_by, alert.inhibited_by]}


def shown_alert(raw: dict[str, Any]) -> Alert:
    silenced_by, inhibited_by = raw.get("muted_by") or (None, None)
    return replace(
        _alert(raw),
        silenced_by=silenced_by,
        inhibited_by=inhibited_by,
        flapping=bool(raw.get("flapping")),
    )


def silence_of(raw: dict[str, Any]) -> Silence:
    return _silence(raw)


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


@dataclass(slots=True)
class _Episode:
    """An episode as the fold met it: its record is parsed only if it is kept (a long
    history is mostly episodes that resolved long ago)."""

    id: str
    key: str
    raw: dict[str, Any]
    line: int


def _identity(raw: dict[str, Any]) -> tuple[str, str]:
    """(episode id, key) of an alert record; see `_alert` for records from before."""
    key = raw.get("key")
    if key:
        return str(raw["id"]), str(key)
    key = str(raw["id"])
    return episode_id(key, _time(raw.get("started_at") or raw["since"])), key


class _Fold:
    """The journal's records folded into what a book needs, by episode id."""

    def __init__(self) -> None:
        self.firing: dict[str, _Episode] = {}  # episode id -> the firing episode
        self.firing_by_key: dict[str, str] = {}  # key -> its firing episode's id
        self.acks: dict[str, Ack] = {}  # episode id -> its ack
        self.resolved: deque[_Episode] = deque(maxlen=RESOLVED_KEPT)  # oldest first
        # Every episode seen resolved, so a stray later "firing" of one is refused.
        # Lives only while the file is read.
        self.resolved_ids: set[str] = set()
        self.silences: dict[str, Silence] = {}
        # Per key, its latest episode's start as in the id (fixed width: text order is
        # time order).
        self.last_starts: dict[str, str] = {}
        self.damaged: list[int] = []

    def alert(self, transition: str, raw: dict[str, Any], line: int) -> None:
        alert_id, key = _identity(raw)
        episode = _Episode(alert_id, key, raw, line)
        self.started(key, alert_id.rpartition("@")[2])
        if alert_id in self.resolved_ids:
            return  # resolved once: no transition leaves that state
        if transition == "firing":
            earlier = self.firing_by_key.get(key)
            if earlier is not None and earlier != alert_id:
                # Two firing episodes of one key: the resolve of the earlier one was not
                # written (a failed write). It ended when the later one started.
                ended = raw.get("started_at") or raw["since"]
                gone = self.firing[earlier]
                self._resolve(replace(gone, raw={**gone.raw, "state": "resolved", "since": ended}))
            self.firing[alert_id] = episode
            self.firing_by_key[key] = alert_id
        elif transition in ("resolved", "escalated"):  # escalated: ended by a graver one
            self._resolve(episode)
        else:
            raise ValueError(f"unknown transition {transition!r}")

    def started(self, key: str, text: str) -> None:
        if text > self.last_starts.get(key, ""):
            self.last_starts[key] = text

    def _resolve(self, episode: _Episode) -> None:
        self.firing.pop(episode.id, None)
        if self.firing_by_key.get(episode.key) == episode.id:
            del self.firing_by_key[episode.key]
        self.acks.pop(episode.id, None)
        self.resolved.append(episode)
        self.resolved_ids.add(episode.id)

    def ack(self, alert_id: str, ack: Ack) -> None:
        # An ack record written before episodes had ids names the key: it belongs to
        # the episode of that key firing when it was written.
        episode = alert_id if alert_id in self.firing else self.firing_by_key.get(alert_id)
        if episode is not None:
            self.acks[episode] = ack

    def _parsed(self, episode: _Episode) -> Alert | None:
        try:
            return replace(_alert(episode.raw), id=episode.id, key=episode.key)
        except (KeyError, ValueError, TypeError, AttributeError):
            self.damaged.append(episode.line)
            return None

    def into(self, book: AlertBook) -> None:
        for episode in self.firing.values():
            alert = self._parsed(episode)
            if alert is not None:
                book.restore_firing(replace(alert, ack=self.acks.get(alert.id, alert.ack)))
        for episode in self.resolved:
            alert = self._parsed(episode)
            if alert is not None:
                book.restore_resolved(replace(alert, state=AlertState.RESOLVED, ack=None))
        for silence in self.silences.values():
            book.restore_silence(silence)
        for key, text in self.last_starts.items():
            started = episode_start(f"@{text}")
            if started is not None:
                book.restore_last_start(key, started)


@dataclass(slots=True)
class _Trail:
    """A firing episode's moments that its history record keeps."""

    fired_at: datetime | None = None
    acks: list[Ack] = field(default_factory=list)

    def add_ack(self, ack: Ack) -> None:
        self.acks = [*self.acks, ack][-ACKS_KEPT:]


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
        self.history_path = path.with_name(HISTORY_FILE)
        # What the history record of a firing episode needs and its resolved record
        # lacks (the book drops the ack on resolve): by episode id, insertion ordered.
        self._trails: dict[str, _Trail] = {}
        # Records appended so far by this process: a reader of the file that saw the
        # book change before the record landed knows to read again when this moves.
        self.written = 0

    async def record(self, notices: Iterable[AlertNotice]) -> None:
        notices = list(notices)
        async with self._writing:
            for notice in notices:
                await self._log.aappend(
                    "alert", transition=notice.event, alert=alert_record(notice.alert)
                )
                self.written += 1
        ended = [self._observe(notice) for notice in notices]
        await self._append_history([record for record in ended if record is not None])
        await self._maybe_compact()

    async def record_ack(self, alert_id: str, ack: Ack) -> None:
        """`alert_id`: the episode's id."""
        async with self._writing:
            await self._log.aappend("ack", alert_id=alert_id, **ack_record(ack))
            self.written += 1
        self._trail(alert_id).add_ack(ack)
        await self._maybe_compact()

    def _trail(self, alert_id: str) -> _Trail:
        trail = self._trails.get(alert_id)
        if trail is None:
            if len(self._trails) >= TRAILS_KEPT:
                del self._trails[next(iter(self._trails))]
            trail = self._trails[alert_id] = _Trail()
        return trail

    def _observe(self, notice: AlertNotice) -> dict[str, Any] | None:
        """Note a firing; for an episode that ended, its history record."""
        alert = notice.alert
        if notice.event == "firing":
            self._trail(alert.id).fired_at = alert.since
            return None
        if notice.event not in ("resolved", "escalated"):
            return None
        trail = self._trails.pop(alert.id, None) or _Trail()
        last_ack = trail.acks[-1] if trail.acks else alert.ack
        return {
            "ended": notice.event,
            "alert": alert_record(replace(alert, ack=last_ack)),
            "fired_at": iso_utc(trail.fired_at) if trail.fired_at else None,
            "acks": [ack_record(ack) for ack in trail.acks],
        }

    async def _append_history(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        try:
            await asyncio.to_thread(self._write_history, records)
        except OSError:
            # The journal has the transitions; only the history view loses them.
            log.exception("alert history %s: cannot write", self.history_path)

    def _write_history(self, records: list[dict[str, Any]]) -> None:
        try:
            if self.history_path.stat().st_size >= HISTORY_BYTES:
                self.history_path.replace(rotated(self.history_path))
        except FileNotFoundError:
            pass
        history = JsonlLog(self.history_path, self._clock)
        for record in records:
            history.append("episode", **record)

    async def record_silence(self, silence: Silence) -> None:
        async with self._writing:
            await self._log.aappend("silence", silence=silence_record(silence))
            self.written += 1
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
                    fold.alert(str(record["transition"]), record["alert"], number)
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
                        fold.started(str(key), str(text))
            except (KeyError, ValueError, TypeError, AttributeError):
                # A well-formed line noc cannot use (an older or edited record):
                # skipped and reported, never a reason not to start.
                read.damaged_lines.append(number)
        fold.into(book)
        for alert in book.firing_episodes():
            trail = self._trail(alert.id)
            trail.fired_at = alert.since
            if alert.ack is not None:
                trail.add_ack(alert.ack)
        read.damaged_lines.extend(fold.damaged)
        read.damaged_lines.sort()
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
    starts = {key: episode_id("", at)[1:] for key, at in book.last_starts().items()}
    if starts:
        records.append({"ts": ts, "event": "episode_starts", "starts": starts})
    return b"".join((json.dumps(r, default=str) + "\n").encode() for r in records)


# --- the past: the history view and an episode's story ------------------------


def rotated(path: Path) -> Path:
    """Where a history file goes when it outgrows HISTORY_BYTES."""
    return path.with_name(path.name + ".1")


def _history_records(journal_path: Path) -> Iterable[dict[str, Any]]:
    """Every history record, oldest first (the rotated file, then the current one)."""
    history = journal_path.with_name(HISTORY_FILE)
    for path in (rotated(history), history):
        for record in read_jsonl(path).records:
            if record.get("event") == "episode" and isinstance(record.get("alert"), dict):
                yield record


def _ended(raw: dict[str, Any]) -> Alert | None:
    """A past episode from its record, or None for a record noc cannot read."""
    try:
        return replace(_alert(raw), state=AlertState.RESOLVED)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def read_history(journal_path: Path, limit: int = HISTORY_KEPT) -> list[Alert]:
    """The last `limit` episodes that ended, newest end first, each with its last ack.

    Blocking file reads: call it off the event loop. The history file has every
    episode that ended since it existed; the journal adds those it still holds that
    ended before (or whose history record could not be written)."""
    past: dict[str, Alert] = {}
    for record in _history_records(journal_path):
        alert = _ended(record["alert"])
        if alert is not None:
            past[alert.id] = alert
            if len(past) > 2 * limit:  # oldest first: the oldest go
                for alert_id in list(past)[: len(past) - limit]:
                    del past[alert_id]
    acks: dict[str, Ack] = {}
    for record in read_jsonl(journal_path).records:
        try:
            if record.get("event") == "ack":
                acks[str(record["alert_id"])] = Ack(
                    record["by"], record["note"], _time(record["at"])
                )
            elif record.get("event") == "alert" and record.get("transition") in (
                "resolved",
                "escalated",
            ):
                alert = _ended(record["alert"])
                if alert is not None and alert.id not in past:
                    past[alert.id] = alert
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    newest = sorted(past.values(), key=lambda a: a.since, reverse=True)[:limit]
    return [a if a.ack or a.id not in acks else replace(a, ack=acks[a.id]) for a in newest]


@dataclass(frozen=True, slots=True)
class EpisodeStory:
    """What the record says of one episode: its moments, oldest first, and the episode
    as history keeps it once it has ended (None while it has not, or is unrecorded)."""

    steps: tuple[tuple[datetime, str], ...]
    past: Alert | None


def _ack_words(ack: Ack) -> str:
    return f"acked by {ack.by}: {ack.note}" if ack.note else f"acked by {ack.by}"


def episode_story(journal_path: Path, alert_id: str) -> EpisodeStory:
    """Every recorded moment of the episode `alert_id`, from the journal and the
    history file: when its condition became true, fired, was acked, silenced, and
    how it ended. Blocking file reads: call it off the event loop."""
    steps: dict[tuple[datetime, str], None] = {}  # ordered, no repeats
    past: Alert | None = None
    rule, region = "", None
    for record in _history_records(journal_path):
        if record["alert"].get("id") != alert_id:
            continue
        alert = _ended(record["alert"])
        if alert is None:
            continue
        past, rule, region = alert, alert.rule, alert.region
        if alert.started_at is not None:
            steps[alert.started_at, "condition became true (pending)"] = None
        try:
            if record.get("fired_at"):
                steps[_time(record["fired_at"]), _fired_words(alert)] = None
            for raw in record.get("acks") or ():
                steps[
                    _time(raw["at"]), _ack_words(Ack(raw["by"], raw["note"], _time(raw["at"])))
                ] = None
        except (KeyError, ValueError, TypeError, AttributeError):
            pass
        steps[alert.since, _end_words(str(record.get("ended")), alert)] = None
    silences: list[Silence] = []
    for record in read_jsonl(journal_path).records:
        try:
            event = record.get("event")
            if event == "alert" and record["alert"].get("id") == alert_id:
                alert = _ended(record["alert"])
                if alert is None:
                    continue
                rule, region = alert.rule, alert.region
                if alert.started_at is not None:
                    steps[alert.started_at, "condition became true (pending)"] = None
                transition = str(record.get("transition"))
                if transition == "firing":
                    steps[alert.since, _fired_words(alert)] = None
                else:
                    steps[alert.since, _end_words(transition, alert)] = None
            elif event == "ack" and record.get("alert_id") == alert_id:
                ack = Ack(record["by"], record["note"], _time(record["at"]))
                steps[ack.at, _ack_words(ack)] = None
            elif event == "silence":
                silences.append(_silence(record["silence"]))
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    if rule:
        times = [at for at, _ in steps]
        first, last = min(times), max(times)
        for silence in silences:
            if (
                silence.matches(rule, region)
                and silence.starts_at <= last
                and silence.ends_at >= first
            ):
                until = silence.expired_at or silence.ends_at
                words = (
                    f"silenced ({silence.describe()}) by {silence.author} until "
                    f"{until:%Y-%m-%d %H:%M} UTC: {silence.comment}"
                )
                steps[silence.starts_at, words] = None
    # An episode that fired on its own and was then handed the lesser one's place in
    # the same evaluation is recorded firing twice at one moment: said once, fully.
    took_over = {at for at, words in steps if words.startswith("firing (")}
    ordered = sorted(
        (step for step in steps if not (step[1] == "firing" and step[0] in took_over)),
        key=lambda step: step[0],
    )
    return EpisodeStory(tuple(ordered), past)


def _fired_words(alert: Alert) -> str:
    # The other episode by its key: the step's time is when the hand-over happened.
    if alert.escalated_from:
        return f"firing (took over from {alert.escalated_from.rpartition('@')[0]})"
    return "firing"


def _end_words(how: str, alert: Alert) -> str:
    if how == "escalated":
        graver = alert.escalated_to
        return f"escalated to {graver.rpartition('@')[0]}" if graver else "escalated"
    return "resolved"
