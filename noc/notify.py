"""Notifications to Slack, Telegram, PagerDuty and plain webhooks, through a durable outbox.

Wiring (all from the engine's task; nothing here touches the UI):

    outbox = await asyncio.to_thread(Outbox.open, estate_paths(config).outbox, clock)
    notifier = Notifier(config.notify, outbox, clock, estate=config.estate.name)
    sender = asyncio.create_task(notifier.run())
    await notifier.notify(notice)           # each AlertNotice ("firing" / "resolved")
    await notifier.firing_now(alerts)       # each engine tick, with the current alerts
    notifier.status()                       # the notifications panel
    sender.cancel(); await notifier.aclose(); outbox.close()

Decisions, and why:

- Durable before returning: `notify()` and `firing_now()` return once the message is
  fsynced in the outbox, so a process killed right after loses nothing. Delivery is at
  least once: a kill between the API's answer and the "delivered" record resends after
  a restart (PagerDuty dedups on dedup_key; webhooks carry a stable delivery_id).
- Identity: everything here is per alert episode (`Alert.id`, one per firing of a rule
  instance, kept across restarts by the alert journal): a channel is told of an episode
  once, whatever restarts happen, and PagerDuty's dedup_key is the episode's, so a new
  episode is a new incident. Order is per rule instance (`Alert.key`): a resolve of one
  episode leaves before the trigger of the next.
- What each channel was told is kept in the outbox too (an "open" record per channel and
  episode). It decides three things: a resolve goes only where the firing went (so it still
  goes if the alert was silenced meanwhile, and no PagerDuty incident is left open);
  `firing_now()` announces a firing alert a channel never heard of (a silence ended, a
  transition was missed); and repeats are timed from the last announcement, across
  restarts.
- Repeats are timed here, per channel, by `firing_now()`: never for PagerDuty (the
  incident stays open until resolved), never for an acknowledged or muted alert, and
  never stacked: no repeat is queued while an earlier message about the alert waits.
- Order: messages about one alert leave each channel in order (a resolve never overtakes
  its trigger); different alerts go in parallel, up to `max_in_flight` per channel, one at
  a time while the channel is failing.
- Answers: 2xx is delivered. 429 waits as told (Retry-After, Telegram's retry_after).
  408, 5xx, redirects, timeouts and network errors retry with backoff (5 s doubling to
  10 min, +-20 % jitter; the whole channel waits, so a down API gets one probe per
  interval, not one per message). A 4xx about the message (400, 413, 422: a payload the
  API will never take) drops it, recorded and shown. A 4xx about the channel (401, 403,
  404, 410, Telegram "chat not found", PagerDuty "invalid routing key") keeps every
  message and retries with backoff: dropping would empty the outbox in seconds during an
  incident, while fixing the secret and restarting delivers them.
- Secrets (webhook URLs, bot token, routing key) are read from the environment at each
  send, never written to the outbox, and replaced by `****` in every error text, in our
  log lines and in httpx's own request log.
"""

from __future__ import annotations

import asyncio
import email.utils
import fcntl
import hashlib
import json
import logging
import os
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from noc.clock import Clock, iso_utc
from noc.config import NotifyConfig
from noc.grouping import GROUP_RULE, AlertGroup, group_alerts
from noc.model import Alert, AlertNotice, AlertState, ChannelStatus, Severity
from noc.next_steps import next_step

__all__ = [
    "ChannelStatus",
    "NoticeRecord",
    "Notifier",
    "Outbox",
    "OutboxLocked",
    "PendingMessage",
    "dedup_key",
    "message_text",
]

log = logging.getLogger(__name__)

# "escalated": the episode ended because a graver one took over (lag into link down,
# warning into critical). It closes like a resolve (PagerDuty's incident, the channel's
# bookkeeping) but never says "resolved": nothing got better.
Event = Literal["firing", "repeat", "resolved", "escalated"]
ENDED = frozenset({"resolved", "escalated"})
Record = dict[str, Any]
Member = tuple[str, str, str, str]  # a group member: id, rule, severity, summary

TELEGRAM_API = "https://api.telegram.org"
PAGERDUTY_API = "https://events.pagerduty.com/v2/enqueue"
USER_AGENT = "noc-notify"
# The outbox is rewritten (pending messages only) when it passes this size, or twice
# its size after the last rewrite, whichever is larger: bounded, never quadratic.
COMPACT_BYTES = 1 << 20
BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0
# A server may ask for a long pause, but not for one longer than an hour.
RETRY_AFTER_MAX = 3600.0
# PagerDuty answers 429 without saying how long to wait and asks for minutes.
RATE_LIMIT_FLOOR = 30.0
# An idle channel still wakes this often: to notice a secret that appeared, and so a
# clock that jumped cannot park a retry for long.
IDLE_RECHECK = 30.0
# A send this process may not make now (see Outbox.may_send) is asked again after this.
HELD_RECHECK = 1.0
# These APIs answer in a few hundred bytes; reading more only wastes memory.
BODY_LIMIT = 16 * 1024
DETAIL_LIMIT = 200
TEXT_LIMIT = 1000
PAGERDUTY_SUMMARY_LIMIT = 1024
MEMBER_LIMIT = 200  # one member's line in a group's message
# A group's message lists this many members at most: a page, not an inventory.
MEMBERS_KEPT = 20
DEDUP_KEY_LIMIT = 255
# 4xx answers that say the channel (credentials, address) is wrong, not the message.
CHANNEL_STATUSES = frozenset({401, 403, 404, 410})
CHANNEL_MARKERS = ("chat not found", "routing key", "migrate_to_chat_id")

_TAGS: dict[str, str] = {
    "firing": "FIRING",
    "repeat": "STILL FIRING",
    "resolved": "RESOLVED",
    "escalated": "ESCALATED",
}


# --- what a message says ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    """One message's content: the alert as it was when the message was queued."""

    event: Event
    at: datetime
    alert_id: str
    rule: str
    severity: Severity
    region: str | None
    summary: str
    since: datetime
    started_at: datetime | None = None
    value: float | None = None
    flapping: bool = False
    key: str = ""  # the rule instance; empty in a record from before episodes: alert_id
    escalated_from: str | None = None
    escalated_to: str | None = None
    # What to do, in a page's words (noc.next_steps); a group's is its lead member's.
    next_step: str = ""
    # A group's notice: its members when it was queued (id, rule, severity, summary).
    members: tuple[Member, ...] = ()

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.alert_id)

    @classmethod
    def of(
        cls, alert: Alert, event: Event, at: datetime, *, alert_id: str | None = None
    ) -> NoticeRecord:
        """`alert_id`: the id the channel was told (an announcement from before
        episodes had ids named the key), by default the episode's."""
        return cls(
            event=event,
            at=at,
            alert_id=alert_id or alert.id,
            key=alert.key,
            rule=alert.rule,
            severity=alert.severity,
            region=alert.region,
            summary=alert.summary,
            since=alert.since,
            started_at=alert.started_at,
            value=alert.value,
            flapping=alert.flapping,
            escalated_from=alert.escalated_from,
            escalated_to=alert.escalated_to,
            next_step=next_step(alert, None),
        )

    @classmethod
    def of_group(
        cls, group: AlertGroup, event: Event, at: datetime, *, alert_id: str
    ) -> NoticeRecord:
        """One notice for a whole group: the worst severity, every member."""
        return cls(
            event=event,
            at=at,
            alert_id=alert_id,
            key=group.key,
            rule=GROUP_RULE,
            severity=group.severity,
            region=group.region,
            summary=group.title(),
            since=group.since,
            started_at=group.since,
            next_step=group.next_step(None),
            members=tuple(
                (m.id, m.rule, m.severity.value, m.summary) for m in group.members[:MEMBERS_KEPT]
            ),
        )

    def to_json(self) -> Record:
        """The outbox's "notice" and the body of a webhook (with delivery_id, estate)."""
        return {
            "event": self.event,
            "at": _iso(self.at),
            "alert": {
                "id": self.alert_id,
                "key": self.key,
                "rule": self.rule,
                "severity": self.severity.value,
                # An escalated episode has ended: closed like a resolve, said otherwise.
                "state": "resolved" if self.event in ENDED else "firing",
                "region": self.region,
                "summary": self.summary,
                "since": _iso(self.since),
                "started_at": _iso(self.started_at) if self.started_at else None,
                "value": self.value,
                "flapping": self.flapping,
                "escalated_from": self.escalated_from,
                "escalated_to": self.escalated_to,
                "next_step": self.next_step or None,
                "members": [
                    {"id": i, "rule": r, "severity": sev, "summary": text}
                    for i, r, sev, text in self.members
                ],
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> NoticeRecord:
        alert = raw["alert"]
        event = raw["event"]
        if event not in get_args(Event):
            raise ValueError(f"unknown event {event!r}")
        value = alert.get("value")
        return cls(
            event=event,
            at=_parse(raw["at"]),
            alert_id=str(alert["id"]),
            rule=str(alert["rule"]),
            severity=Severity(alert["severity"]),
            region=alert.get("region"),
            summary=str(alert["summary"]),
            since=_parse(alert["since"]),
            started_at=_parse(alert["started_at"]) if alert.get("started_at") else None,
            value=float(value) if value is not None else None,
            flapping=bool(alert.get("flapping", False)),
            key=str(alert.get("key") or alert["id"]),
            escalated_from=alert.get("escalated_from"),
            escalated_to=alert.get("escalated_to"),
            next_step=str(alert.get("next_step") or ""),
            members=tuple(
                (str(m["id"]), str(m["rule"]), str(m["severity"]), str(m["summary"]))
                for m in alert.get("members") or ()
            ),
        )


def message_text(notice: NoticeRecord, estate: str = "") -> str:
    """`[FIRING] critical: replication lag ... — mail-prod, region ro, since ...`, then a
    group's members one a line, then the next step (a firing notice only)."""
    lines = [_one_line(f"[{_TAGS[notice.event]}] {_headline(notice, estate)}", TEXT_LIMIT)]
    if notice.event not in ENDED:
        lines += [
            _one_line(f"• {severity}: {summary}", MEMBER_LIMIT)
            for _, _, severity, summary in notice.members
        ]
        if notice.next_step:
            lines.append(_one_line(f"Next step: {notice.next_step}", TEXT_LIMIT))
    return "\n".join(lines)


def dedup_key(estate: str, alert_id: str) -> str:
    """PagerDuty's key for one alert episode: the same for its trigger and its resolve."""
    key = f"noc-{estate}-{alert_id}" if estate else f"noc-{alert_id}"
    if len(key) <= DEDUP_KEY_LIMIT:
        return key
    return "noc-" + hashlib.sha256(key.encode()).hexdigest()


def _headline(notice: NoticeRecord, estate: str) -> str:
    where = [estate] if estate else []
    if notice.region:
        where.append(f"region {notice.region}")
    when = {"resolved": "resolved", "escalated": "worsened"}.get(notice.event, "since")
    where.append(f"{when} {iso_utc(notice.since)}")
    if notice.escalated_to:
        where.append(f"now {notice.escalated_to.partition('@')[0]}")
    elif notice.escalated_from and notice.event == "firing":
        where.append(f"was {notice.escalated_from.partition('@')[0]}")
    return f"{notice.severity.value}: {notice.summary} — {', '.join(where)}"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions: a summary holding "<!channel>" must not
    # page a whole channel. These three are the only characters Slack asks to escape.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pagerduty_event(notice: NoticeRecord, routing_key: str, estate: str) -> Record:
    event: Record = {
        "routing_key": routing_key,
        "event_action": "resolve" if notice.event in ENDED else "trigger",
        "dedup_key": dedup_key(estate, notice.alert_id),
    }
    if notice.event in ENDED:
        return event
    details = {
        "estate": estate or None,
        "alert_id": notice.alert_id,
        "region": notice.region,
        "value": notice.value,
        "since": _iso(notice.since),
        "started_at": _iso(notice.started_at) if notice.started_at else None,
        "flapping": notice.flapping,
        "next_step": notice.next_step or None,
        "members": [f"{sev}: {text}" for _, _, sev, text in notice.members] or None,
    }
    payload: Record = {
        "summary": _one_line(_headline(notice, estate), PAGERDUTY_SUMMARY_LIMIT),
        "source": "noc",
        "severity": notice.severity.value,
        "timestamp": _iso(notice.at),
        "group": notice.rule,
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    if notice.region:
        payload["component"] = notice.region
    return {**event, "payload": payload, "client": "noc"}


# --- the outbox ---------------------------------------------------------------------


class OutboxLocked(RuntimeError):
    """Another process holds the outbox: it sends the notifications, this one must not."""


@dataclass(slots=True, eq=False)
class PendingMessage:
    """A message waiting for delivery to one channel."""

    id: str
    channel: str
    notice: NoticeRecord
    queued_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_status: int | None = None
    # Not persisted: when it may be tried, on the clock's monotonic seconds (a wall-clock
    # jump must not park a retry), and whether a send is under way.
    due: float = 0.0
    in_flight: bool = False


class Outbox:
    """Messages not yet delivered, kept in an append-only JSONL file.

    The in-memory state is always the fold of the file's records:
    `enqueue` (id, channel, notice, at), `attempt` (id, ok, error, status,
    next_attempt_at, attempts), `delivered` (id, at), `dropped` (id, reason, at), and
    `open` / `close` (channel, alert_id, at) for what each channel was told. Each
    `write()` is one write() plus fsync, off the event loop; a torn last line after a
    crash is skipped and reported in `damaged_lines`. The file is rewritten (pending and
    open only; temp file, fsync, rename, fsync of the directory) on open and whenever
    it outgrows its bound. An exclusive lock on `<path>.lock` keeps a second noc from
    sending the same notifications.
    """

    def __init__(self, path: Path, clock: Clock, lock_fd: int, compact_bytes: int) -> None:
        """Use `Outbox.open()`."""
        self.path = path
        self._clock = clock
        self._lock_fd = lock_fd
        self._compact_bytes = compact_bytes
        self._fd: int | None = None
        self._size = 0
        self._compacted_size = 0
        # After a failed write the file may end in a partial line: rewrite it whole next.
        self._dirty = False
        self._write_lock = asyncio.Lock()
        self._pending: dict[str, PendingMessage] = {}
        self._queued: Counter[tuple[str, str]] = Counter()
        self._open: dict[tuple[str, str], datetime] = {}
        self._open_key: dict[tuple[str, str], str] = {}  # the same entries' rule keys
        # A group's entries: what the channel was told of it (members, severity, title).
        self._open_group: dict[tuple[str, str], GroupTold] = {}
        self.damaged_lines: tuple[int, ...] = ()
        self.write_error: str | None = None

    @classmethod
    def open(cls, path: Path, clock: Clock, *, compact_bytes: int = COMPACT_BYTES) -> Outbox:
        """Lock, read and fold the file, then rewrite it compacted. Blocking: call it
        through asyncio.to_thread from the event loop. Raises OutboxLocked, OSError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        outbox = cls(path, clock, _lock(path.with_name(path.name + ".lock")), compact_bytes)
        try:
            outbox._load()
        except BaseException:
            outbox.close()
            raise
        return outbox

    @property
    def pending(self) -> Mapping[str, PendingMessage]:
        """Undelivered messages by id, oldest first."""
        return MappingProxyType(self._pending)

    @property
    def announced(self) -> Mapping[tuple[str, str], datetime]:
        """(channel, alert id) -> when that channel was last told the alert fires."""
        return MappingProxyType(self._open)

    def announced_of_key(self, channel: str, key: str) -> list[str]:
        """The episodes of rule instance `key` this channel was told fire."""
        return [
            alert_id
            for (told_channel, alert_id), told_key in self._open_key.items()
            if told_channel == channel and told_key == key
        ]

    def told_groups(self, channel: str) -> dict[str, tuple[str, GroupTold]]:
        """Group key -> (the group episode this channel was told fires, what it was told)."""
        return {
            self._open_key[entry]: (entry[1], told)
            for entry, told in self._open_group.items()
            if entry[0] == channel
        }

    def queued(self, channel: str, alert_id: str) -> int:
        """How many messages about this alert wait for this channel."""
        return self._queued[(channel, alert_id)]

    async def write(self, records: Sequence[Record]) -> None:
        """Apply records and make them durable. A failed write is reported in
        `write_error` and logged, never raised: the messages stay in memory and go out
        while the process lives."""
        if records:
            # Shielded: a cancelled caller must not leave memory and file disagreeing.
            await asyncio.shield(self._commit(records))

    async def may_send(self, message: PendingMessage) -> bool:
        """Whether this process may send `message` now. A file outbox is its process's
        alone (locked): always. The control plane's asks whether its term still runs."""
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    async def _commit(self, records: Sequence[Record]) -> None:
        async with self._write_lock:
            for record in records:
                self._apply(record)
            data = b"".join(_line(r) for r in records)
            limit = max(self._compact_bytes, 2 * self._compacted_size)
            try:
                if self._dirty or self._size + len(data) > limit:
                    await asyncio.to_thread(self._rewrite, self._snapshot())
                else:
                    await asyncio.to_thread(self._append, data)
            except OSError as exc:
                self._dirty = True
                self.write_error = f"outbox {self.path} not writable: {exc.strerror or exc}"
                log.error("%s; undelivered messages are kept in memory only", self.write_error)
            else:
                self._dirty = False
                self.write_error = None

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        damaged: list[int] = []
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                self._apply(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                damaged.append(number)
        self.damaged_lines = tuple(damaged)
        if damaged:
            log.warning(
                "outbox %s: skipped damaged line(s) %s (a write torn by a crash)",
                self.path,
                ", ".join(map(str, damaged)),
            )
        # Rewriting at once drops what was delivered, and removes a torn last line that
        # the next append would otherwise run on from.
        self._rewrite(self._snapshot())

    def _apply(self, record: Mapping[str, Any]) -> None:
        """Fold one record into memory. Parses everything before changing anything, so
        a malformed record (a damaged line) leaves no trace."""
        op = record["op"]
        if op == "enqueue":
            message = PendingMessage(
                id=str(record["id"]),
                channel=str(record["channel"]),
                notice=NoticeRecord.from_json(record["notice"]),
                queued_at=_parse(record["at"]),
                due=self._clock.monotonic(),
            )
            if message.id not in self._pending:
                self._pending[message.id] = message
                self._queued[(message.channel, message.notice.alert_id)] += 1
        elif op == "attempt":
            next_at = _parse(record["next_attempt_at"])
            attempts = int(record["attempts"])
            found = self._pending.get(record["id"])
            if found is not None:
                found.attempts = attempts
                found.next_attempt_at = next_at
                found.last_error = record.get("error")
                found.last_status = record.get("status")
                wait = (next_at - self._clock.utcnow()).total_seconds()
                found.due = self._clock.monotonic() + max(0.0, wait)
        elif op in ("delivered", "dropped"):
            gone = self._pending.pop(record["id"], None)
            if gone is not None:
                key = (gone.channel, gone.notice.alert_id)
                self._queued[key] -= 1
                if self._queued[key] <= 0:
                    del self._queued[key]
        elif op == "open":
            entry = (str(record["channel"]), str(record["alert_id"]))
            at = _parse(record["at"])
            group = record.get("group")
            told = None
            if group is not None:
                told = GroupTold(
                    tuple(str(m) for m in group["members"]),
                    Severity(group["severity"]),
                    str(group["title"]),
                )
            self._open[entry] = at
            self._open_key[entry] = str(record.get("key") or entry[1])
            if told is not None:
                self._open_group[entry] = told
        elif op == "close":
            entry = (str(record["channel"]), str(record["alert_id"]))
            self._open.pop(entry, None)
            self._open_key.pop(entry, None)
            self._open_group.pop(entry, None)
        else:
            raise ValueError(f"unknown op {op!r}")

    def _snapshot(self) -> bytes:
        records: list[Record] = []
        for m in self._pending.values():
            records.append(_enqueue_record(m.id, m.channel, m.notice, m.queued_at))
            if m.attempts and m.next_attempt_at is not None:
                records.append(
                    _attempt_record(
                        m.id, m.attempts, m.last_error or "", m.last_status, m.next_attempt_at
                    )
                )
        for (channel, alert_id), at in self._open.items():
            entry = (channel, alert_id)
            records.append(
                _open_record(
                    channel, alert_id, at, self._open_key[entry], self._open_group.get(entry)
                )
            )
        return b"".join(_line(r) for r in records)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError("outbox is closed")
        _write_all(self._fd, data)
        os.fsync(self._fd)
        self._size += len(data)

    def _rewrite(self, data: bytes) -> None:
        temp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(self.path)
        # The rename is durable only once the directory entry is.
        _fsync_dir(self.path.parent)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = self._compacted_size = len(data)


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise OutboxLocked(
            f"{path.with_suffix('')} is in use by another noc process{by}: "
            "that one sends the notifications"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _line(record: Record) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _enqueue_record(id_: str, channel: str, notice: NoticeRecord, at: datetime) -> Record:
    return {
        "op": "enqueue",
        "id": id_,
        "channel": channel,
        "notice": notice.to_json(),
        "at": _iso(at),
    }


def _attempt_record(
    id_: str, attempts: int, error: str, status: int | None, next_at: datetime
) -> Record:
    return {
        "op": "attempt",
        "id": id_,
        "ok": False,
        "error": error,
        "status": status,
        "next_attempt_at": _iso(next_at),
        "attempts": attempts,
    }


def _open_record(
    channel: str, alert_id: str, at: datetime, key: str, group: GroupTold | None = None
) -> Record:
    record: Record = {
        "op": "open", "channel": channel, "alert_id": alert_id, "key": key, "at": _iso(at),
    }  # fmt: skip
    if group is not None:
        record["group"] = {
            "members": list(group.members),
            "severity": group.severity.value,
            "title": group.title,
        }
    return record


@dataclass(frozen=True, slots=True)
class GroupTold:
    """What a channel was last told of a group: who was in it, how bad, its title."""

    members: tuple[str, ...]
    severity: Severity
    title: str


def _close_record(channel: str, alert_id: str, at: datetime) -> Record:
    return {"op": "close", "channel": channel, "alert_id": alert_id, "at": _iso(at)}


# --- the notifier -------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Channel:
    config: NotifyConfig
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    gate: float = 0.0  # monotonic: nothing is sent on this channel before it
    # Rounds of sends in a row where nothing got through: the channel's backoff step.
    # Counted per round, not per message, so one failed burst is one step.
    failed_rounds: int = 0
    consecutive_failures: int = 0
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    last_status: int | None = None
    dropped: int = 0
    secret_problem: str | None = None

    @property
    def name(self) -> str:
        return self.config.label


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    secret: SecretStr
    hidden: tuple[str, ...]  # substrings of the secret never to show


@dataclass(frozen=True, slots=True)
class _Outcome:
    # "refused": the channel, not the message, was turned away; kept and retried.
    # "held": not sent, nothing recorded: this process may no longer send (a deposed
    # leader, see noc.shared_outbox).
    verdict: Literal["delivered", "retry", "refused", "drop", "held"]
    error: str = ""
    status: int | None = None
    retry_after: float | None = None


class _Redactor(logging.Filter):
    """Masks our secrets in records of libraries that log request URLs (httpx logs
    every request's full URL at INFO: a Slack webhook or a Telegram token)."""

    def __init__(self, hidden: set[str]) -> None:
        super().__init__()
        self._hidden = hidden

    def filter(self, record: logging.LogRecord) -> bool:
        if self._hidden:
            message = record.getMessage()
            masked = _mask(message, self._hidden)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_REDACTED_LOGGERS = ("httpx", "httpcore")


class Notifier:
    """Decides what each channel is told and delivers it from the outbox. See the
    module docstring for the rules."""

    def __init__(
        self,
        channels: Sequence[NotifyConfig],
        outbox: Outbox,
        clock: Clock,
        *,
        estate: str = "",
        client: httpx.AsyncClient | None = None,
        max_in_flight: int = 4,
        adopt_by_key: bool = False,
        group_by: Sequence[str] = (),
        group_wait_seconds: float = 30.0,
        group_interval_seconds: float = 300.0,
    ) -> None:
        """`adopt_by_key`: an episode this channel was told of under another id, by
        rule instance, is this one (the outbox is shared by leaders in turn)."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        names = [c.label for c in channels]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            # The name keys a channel's messages in the outbox: two channels sharing one
            # would deliver each other's.
            raise ValueError(
                "[[notify]] channels need distinct names (set `name`); "
                f"used more than once: {', '.join(repeated)}"
            )
        self._channels = {c.label: _Channel(c) for c in channels}
        self._outbox = outbox
        self._clock = clock
        self._estate = estate
        self._client = client
        self._owns_client = client is None
        self._client_lock = asyncio.Lock()
        self._max_in_flight = max_in_flight
        self._adopt_by_key = adopt_by_key
        # One decision at a time: "was this alert announced?" and the enqueue that
        # follows must not interleave with another caller's.
        self._deciding = asyncio.Lock()
        self._removed_checked = False
        # Grouped pages ([alerts] group_by): one per group, decided each tick.
        self._group_by = tuple(group_by)
        self._group_wait = group_wait_seconds
        self._group_interval = group_interval_seconds
        self._hidden: set[str] = set()
        self._redactor = _Redactor(self._hidden)
        for name in _REDACTED_LOGGERS:
            logging.getLogger(name).addFilter(self._redactor)

    # --- what to send ---

    async def notify(self, notice: AlertNotice) -> None:
        """Queue an alert transition for every channel it concerns; returns once the
        messages are on disk. "firing": to channels whose min_severity it meets, unless
        muted or already announced there. "resolved": to channels that were told it
        fired (muted or not), if send_resolved. Repeats are this class's business
        (see `firing_now`), so event "repeat" is refused."""
        if notice.event not in ("firing", *ENDED):
            raise ValueError(
                f"notify() takes firing, resolved or escalated notices, not {notice.event!r}"
            )
        if self._group_by and notice.event == "firing":
            # Grouped, a page is about a group as it stands at a tick: `firing_now`
            # decides from the alerts of that tick. An end still closes what a channel
            # was told of this alert alone (before group_by was set, say), below.
            return
        async with self._deciding:
            records: list[Record] = []
            for channel in self._channels.values():
                told_id, told = self._told(channel, notice.alert)
                if notice.event == "firing":
                    if _untold(told, notice.alert) and self._concerns(channel, notice.alert):
                        records += self._announce(channel, notice.alert, "firing", notice.at)
                elif told is not None:
                    records += self._resolve(channel, notice, told_id, told)
            await self._outbox.write(records)
        self._wake(records)

    async def firing_now(self, alerts: Iterable[Alert]) -> None:
        """Call each engine tick with the current alerts (any state; only firing ones
        count). Announces a firing alert a channel has not been told of, and queues a
        repeat where `repeat_seconds` have passed since the last announcement."""
        if self._group_by:
            await self._groups_now(alerts)
            return
        now = self._clock.utcnow()
        async with self._deciding:
            records: list[Record] = []
            for alert in alerts:
                if alert.state is not AlertState.FIRING:
                    continue
                for channel in self._channels.values():
                    if not self._concerns(channel, alert):
                        continue
                    told_id, told = self._told(channel, alert)
                    if _untold(told, alert):
                        records += self._announce(channel, alert, "firing", now)
                    elif told is not None and self._repeat_due(channel, alert, told_id, told, now):
                        records += self._announce(channel, alert, "repeat", now, alert_id=told_id)
            await self._outbox.write(records)
        self._wake(records)

    async def _groups_now(self, alerts: Iterable[Alert]) -> None:
        """Grouped pages, per channel: a group that has fired for `group_wait` is paged
        once with its members; members that join are told at most once per
        `group_interval`; repeats go as for single alerts; a group with no member
        firing any more (resolved, or muted: a silence, a maintenance window) resolves."""
        now = self._clock.utcnow()
        firing = [a for a in alerts if a.state is AlertState.FIRING]
        async with self._deciding:
            records: list[Record] = []
            for channel in self._channels.values():
                concerned = [a for a in firing if self._concerns(channel, a)]
                groups = {g.key: g for g in group_alerts(concerned, self._group_by)}
                told = self._outbox.told_groups(channel.name)
                for key, group in groups.items():
                    records += self._group_page(channel, group, told.get(key), now)
                for key, (told_id, said) in told.items():
                    if key not in groups:
                        records += self._group_resolve(channel, key, told_id, said, now)
            await self._outbox.write(records)
        self._wake(records)

    def _group_page(
        self,
        channel: _Channel,
        group: AlertGroup,
        told: tuple[str, GroupTold] | None,
        now: datetime,
    ) -> list[Record]:
        if told is None:
            if (now - group.since).total_seconds() < self._group_wait:
                return []  # wait for the rest of the group to fire: one page, not six
            return self._group_announce(channel, group, "firing", f"{group.key}@{_iso(now)}", now)
        told_id, said = told
        told_at = self._outbox.announced[(channel.name, told_id)]
        since_told = (now - told_at).total_seconds()
        joined = {m.id for m in group.members} - set(said.members)
        if joined and since_told >= self._group_interval:
            return self._group_announce(channel, group, "firing", told_id, now)
        every = channel.config.repeat_seconds
        if (
            every > 0
            and channel.config.kind != "pagerduty"
            and any(m.ack is None for m in group.members)
            and since_told >= every
            and self._outbox.queued(channel.name, told_id) == 0
        ):
            return self._group_announce(channel, group, "repeat", told_id, now)
        return []

    def _group_announce(
        self, channel: _Channel, group: AlertGroup, event: Event, group_id: str, now: datetime
    ) -> list[Record]:
        notice = NoticeRecord.of_group(group, event, now, alert_id=group_id)
        said = GroupTold(tuple(m.id for m in group.members), group.severity, group.title())
        return [
            _enqueue_record(uuid.uuid4().hex, channel.name, notice, now),
            _open_record(channel.name, group_id, now, group.key, said),
        ]

    def _group_resolve(
        self, channel: _Channel, key: str, told_id: str, said: GroupTold, now: datetime
    ) -> list[Record]:
        records: list[Record] = []
        if channel.config.send_resolved:
            started = self._outbox.announced[(channel.name, told_id)]
            notice = NoticeRecord(
                event="resolved", at=now, alert_id=told_id, key=key, rule=GROUP_RULE,
                severity=said.severity, region=None, summary=said.title, since=now,
                started_at=started,
            )  # fmt: skip
            records.append(_enqueue_record(uuid.uuid4().hex, channel.name, notice, now))
        records.append(_close_record(channel.name, told_id, now))
        return records

    def _told(self, channel: _Channel, alert: Alert) -> tuple[str, datetime | None]:
        """(the id the channel was told, when) for this episode. An announcement written
        before episodes had ids is under the key: it counts for the episode firing."""
        told = self._outbox.announced.get((channel.name, alert.id))
        if told is not None or alert.key == alert.id:
            return alert.id, told
        if self._adopt_by_key:
            # A leader that took over: its engine named the episode anew, but the
            # channel was told of this rule instance by the leader before. The same
            # incident goes on under the id the channel knows, counted as told from
            # when this engine saw it fire at the latest (no page twice).
            for told_id in self._outbox.announced_of_key(channel.name, alert.key):
                at = self._outbox.announced[(channel.name, told_id)]
                return told_id, max(at, alert.since)
        return alert.key, self._outbox.announced.get((channel.name, alert.key))

    def _concerns(self, channel: _Channel, alert: Alert) -> bool:
        return not alert.muted and alert.severity.rank <= channel.config.min_severity.rank

    def _repeat_due(
        self, channel: _Channel, alert: Alert, told_id: str, told: datetime, now: datetime
    ) -> bool:
        every = channel.config.repeat_seconds
        return (
            every > 0
            and channel.config.kind != "pagerduty"
            and alert.ack is None
            and (now - told).total_seconds() >= every
            and self._outbox.queued(channel.name, told_id) == 0
        )

    def _announce(
        self,
        channel: _Channel,
        alert: Alert,
        event: Event,
        at: datetime,
        *,
        alert_id: str | None = None,
    ) -> list[Record]:
        now = self._clock.utcnow()
        told_id = alert_id or alert.id
        notice = NoticeRecord.of(alert, event, at, alert_id=told_id)
        # The message before the "open": if a crash tears this pair, the alert is at
        # worst announced twice, never marked announced without a message.
        records = [
            _enqueue_record(uuid.uuid4().hex, channel.name, notice, now),
            _open_record(channel.name, told_id, now, alert.key),
        ]
        # An earlier episode of this key still marked announced lost its resolve (a
        # crash between the journal and notify()): forgotten now, so what is kept per
        # channel stays one entry per rule instance.
        records += [
            _close_record(channel.name, stale, now)
            for stale in self._outbox.announced_of_key(channel.name, alert.key)
            if stale != told_id
        ]
        return records

    def _resolve(
        self, channel: _Channel, notice: AlertNotice, told_id: str, told: datetime
    ) -> list[Record]:
        now = self._clock.utcnow()
        records: list[Record] = []
        # An announcement older than this episode's start is a leftover (see _untold):
        # the channel never heard this episode fire, so it hears no resolve either.
        started = notice.alert.started_at
        event: Event = "escalated" if notice.event == "escalated" else "resolved"
        if channel.config.send_resolved and (started is None or told >= started):
            # Under the id the channel was told: PagerDuty closes that incident.
            resolved = NoticeRecord.of(notice.alert, event, notice.at, alert_id=told_id)
            records.append(_enqueue_record(uuid.uuid4().hex, channel.name, resolved, now))
        records.append(_close_record(channel.name, told_id, now))
        return records

    def _wake(self, records: Iterable[Record]) -> None:
        for record in records:
            if record["op"] == "enqueue":
                self._channels[record["channel"]].wake.set()

    # --- sending ---

    async def run(self) -> None:
        """Deliver until cancelled: one task per channel, so a slow or failing API
        never delays another."""
        await self._forget_removed_channels()
        async with asyncio.TaskGroup() as group:
            for channel in self._channels.values():
                group.create_task(self._run_channel(channel))

    async def send_due(self) -> int:
        """One pass over every channel: send what is due now, wait for the answers,
        repeat while anything became due. Returns how many sends were attempted.
        `run()` does this continuously; tests call it to step a fake clock."""
        await self._forget_removed_channels()
        counts = await asyncio.gather(*(self._drain(c) for c in self._channels.values()))
        return sum(counts)

    async def aclose(self) -> None:
        for name in _REDACTED_LOGGERS:
            logging.getLogger(name).removeFilter(self._redactor)
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _run_channel(self, channel: _Channel) -> None:
        while True:
            # Cleared before draining, so a notify() during the drain is not missed.
            channel.wake.clear()
            try:
                await self._drain(channel)
                delay = self._idle_delay(channel)
            except Exception:
                # A bug of ours must not stop this channel for good, nor the others.
                log.exception("notify %s: send loop failed; retrying", channel.name)
                delay = IDLE_RECHECK
            try:
                async with asyncio.timeout(delay):
                    await channel.wake.wait()
            except TimeoutError:
                pass

    def _idle_delay(self, channel: _Channel) -> float:
        now = self._clock.monotonic()
        dues = [
            m.due
            for m in self._outbox.pending.values()
            if m.channel == channel.name and not m.in_flight
        ]
        if not dues or channel.secret_problem is not None:
            return IDLE_RECHECK
        return min(IDLE_RECHECK, max(0.0, min(dues) - now, channel.gate - now))

    async def _forget_removed_channels(self) -> None:
        """Messages for a channel no longer configured cannot be sent: record them as
        dropped (logged) rather than carry them forever."""
        if self._removed_checked:
            return
        self._removed_checked = True
        now = self._clock.utcnow()
        records: list[Record] = []
        for m in self._outbox.pending.values():
            if m.channel not in self._channels:
                log.warning(
                    "notify: dropping %s of %s queued for channel %r, no longer configured",
                    m.notice.event,
                    m.notice.alert_id,
                    m.channel,
                )
                reason = f"channel {m.channel!r} is no longer configured"
                records.append({"op": "dropped", "id": m.id, "reason": reason, "at": _iso(now)})
        for channel_name, alert_id in self._outbox.announced:
            if channel_name not in self._channels:
                records.append(_close_record(channel_name, alert_id, now))
        await self._outbox.write(records)

    async def _drain(self, channel: _Channel) -> int:
        attempts = 0
        while (target := self._target(channel)) is not None and (batch := self._ready(channel)):
            for message in batch:
                message.in_flight = True
            try:
                outcomes = await asyncio.gather(*(self._attempt(channel, target, m) for m in batch))
            finally:
                for message in batch:
                    message.in_flight = False
            self._pause(channel, outcomes)
            attempts += len(batch)
        return attempts

    def _pause(self, channel: _Channel, outcomes: Sequence[_Outcome]) -> None:
        """After a round: if nothing got through, the whole channel waits (backoff, or
        the server's Retry-After), so a down API gets one probe per interval rather
        than one request per waiting message."""
        if any(o.verdict == "delivered" for o in outcomes):
            channel.failed_rounds = 0
            return
        if outcomes and all(o.verdict == "held" for o in outcomes):
            # Not this process's to send just now: look again in a while, not at once.
            channel.gate = max(channel.gate, self._clock.monotonic() + HELD_RECHECK)
            return
        waiting = [o for o in outcomes if o.verdict in ("retry", "refused")]
        if not waiting:
            return  # only drops: the messages were at fault, not the channel
        channel.failed_rounds += 1
        told = [o.retry_after for o in waiting if o.retry_after is not None]
        if told:
            pause = max(told)
        else:
            pause = _backoff(channel.failed_rounds)
            if any(o.status == 429 for o in waiting):
                pause = max(pause, RATE_LIMIT_FLOOR)
        channel.gate = max(channel.gate, self._clock.monotonic() + pause)

    def _ready(self, channel: _Channel) -> list[PendingMessage]:
        """The messages to send now: per rule instance only the oldest (in order: one
        episode's resolve before the next one's trigger), the longest waiting first, as
        many as the channel has room for."""
        now = self._clock.monotonic()
        if now < channel.gate:
            return []
        heads: list[PendingMessage] = []
        alerts_seen: set[str] = set()
        busy = 0
        for message in self._outbox.pending.values():
            if message.channel != channel.name:
                continue
            if message.in_flight:
                busy += 1
            if message.notice.key in alerts_seen:
                continue
            alerts_seen.add(message.notice.key)
            if not message.in_flight and message.due <= now:
                heads.append(message)
        # A failing channel gets one probe at a time, not a burst per retry.
        room = (self._max_in_flight if channel.consecutive_failures == 0 else 1) - busy
        heads.sort(key=lambda m: m.due)  # stable: equal dues keep queue order
        return heads[: max(room, 0)]

    def _target(self, channel: _Channel) -> _Target | None:
        """Where to send, from the secret read now; None (and a failure shown) when the
        secret is missing or unusable. The messages wait: nothing is lost."""
        config = channel.config
        secret = config.secret()
        value = secret.get_secret_value().strip() if secret is not None else ""
        problem = None
        if not value:
            problem = f"secret env {config.secret_env} is not set"
        elif config.kind in ("slack", "webhook") and not _is_http_url(value):
            problem = f"secret env {config.secret_env} does not hold an http(s) URL"
        if problem is not None:
            if channel.secret_problem != problem:
                channel.secret_problem = problem
                self._failed(channel, problem, None)
                log.error("notify %s: %s; messages are kept", channel.name, problem)
            return None
        if channel.secret_problem is not None:
            # The failure was the secret; it is fixed, and no send has failed since.
            channel.secret_problem = None
            channel.consecutive_failures = 0
        if config.kind == "telegram":
            api = (config.api_url or TELEGRAM_API).rstrip("/")
            target = _Target(f"{api}/bot{value}/sendMessage", SecretStr(value), (value,))
        elif config.kind == "pagerduty":
            target = _Target(config.api_url or PAGERDUTY_API, SecretStr(value), (value,))
        else:
            target = _Target(value, SecretStr(value), _url_secrets(value))
        self._hidden.update(target.hidden)
        return target

    async def _attempt(
        self, channel: _Channel, target: _Target, message: PendingMessage
    ) -> _Outcome:
        if not await self._outbox.may_send(message):
            return _Outcome("held")
        outcome = await self._post(channel, target, message)
        now = self._clock.utcnow()
        notice = message.notice
        if outcome.verdict == "delivered":
            channel.last_success = now
            channel.consecutive_failures = 0
            log.debug("notify %s: %s of %s delivered", channel.name, notice.event, notice.alert_id)
            await self._outbox.write([{"op": "delivered", "id": message.id, "at": _iso(now)}])
            return outcome
        if outcome.verdict == "drop":
            channel.dropped += 1
            text = f"dropped {notice.event} of {notice.alert_id}: {outcome.error}"
            self._failed(channel, text, outcome.status)
            log.error("notify %s: %s", channel.name, text)
            record = {"op": "dropped", "id": message.id, "reason": outcome.error, "at": _iso(now)}
            await self._outbox.write([record])
            return outcome
        self._failed(channel, outcome.error, outcome.status)
        attempts = message.attempts + 1
        if outcome.retry_after is not None:
            delay = outcome.retry_after
        else:
            delay = _backoff(attempts)
            if outcome.status == 429:
                delay = max(delay, RATE_LIMIT_FLOOR)
        log.warning(
            "notify %s: %s of %s failed (%s); retry in %.0f s",
            channel.name,
            notice.event,
            notice.alert_id,
            outcome.error,
            delay,
        )
        record = _attempt_record(
            message.id, attempts, outcome.error, outcome.status, now + timedelta(seconds=delay)
        )
        await self._outbox.write([record])
        return outcome

    def _failed(self, channel: _Channel, error: str, status: int | None) -> None:
        channel.consecutive_failures += 1
        channel.last_failure = self._clock.utcnow()
        channel.last_error = error
        channel.last_status = status

    async def _post(self, channel: _Channel, target: _Target, message: PendingMessage) -> _Outcome:
        seconds = channel.config.timeout_seconds
        body = self._body(channel.config, target, message)
        client = await self._http()
        try:
            # httpx's timeouts are per phase; the outer deadline bounds the whole exchange.
            async with asyncio.timeout(seconds):
                async with client.stream(
                    "POST", target.url, json=body, timeout=httpx.Timeout(seconds)
                ) as response:
                    answer = await _read_bounded(response)
        except (TimeoutError, httpx.TimeoutException):
            return _Outcome("retry", f"no answer within {seconds:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _Outcome("retry", _one_line(_mask(_reason(exc), target.hidden), DETAIL_LIMIT))
        outcome = _judge(response.status_code, response.headers, answer, self._clock.utcnow())
        error = _one_line(_mask(outcome.error, target.hidden), DETAIL_LIMIT)
        if outcome.verdict == "refused":
            also = " and chat_id" if channel.config.kind == "telegram" else ""
            error += f" (messages kept: check {channel.config.secret_env}{also})"
        return _Outcome(outcome.verdict, error, outcome.status, outcome.retry_after)

    def _body(self, config: NotifyConfig, target: _Target, message: PendingMessage) -> Record:
        notice = message.notice
        if config.kind == "slack":
            return {"text": _slack_escape(message_text(notice, self._estate))}
        if config.kind == "telegram":
            # Plain text (no parse_mode): nothing in a summary can become markup.
            return {
                "chat_id": config.chat_id,
                "text": message_text(notice, self._estate),
                "disable_web_page_preview": True,
            }
        if config.kind == "pagerduty":
            return _pagerduty_event(notice, target.secret.get_secret_value(), self._estate)
        return {"delivery_id": message.id, "estate": self._estate, **notice.to_json()}

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    # Building the TLS context takes tens of ms: off the event loop.
                    self._client = await asyncio.to_thread(self._new_client)
        return self._client

    def _new_client(self) -> httpx.AsyncClient:
        room = max(1, len(self._channels)) * self._max_in_flight
        return httpx.AsyncClient(
            # A webhook that redirects is misconfigured; following could leak the body.
            follow_redirects=False,
            limits=httpx.Limits(max_connections=room, max_keepalive_connections=room),
            headers={"User-Agent": USER_AGENT},
        )

    # --- what the screen shows ---

    def status(self) -> list[ChannelStatus]:
        now = self._clock.monotonic()
        waiting: dict[str, list[PendingMessage]] = {}
        for message in self._outbox.pending.values():
            waiting.setdefault(message.channel, []).append(message)
        statuses = []
        for channel in self._channels.values():
            messages = waiting.get(channel.name, [])
            retry_in = None
            if messages and channel.secret_problem is None:
                soonest = min(m.due for m in messages)
                retry_in = max(0.0, soonest - now, channel.gate - now)
            statuses.append(
                ChannelStatus(
                    name=channel.name,
                    kind=channel.config.kind,
                    pending=len(messages),
                    last_success=channel.last_success,
                    last_failure=channel.last_failure,
                    last_error=channel.last_error,
                    last_status=channel.last_status,
                    consecutive_failures=channel.consecutive_failures,
                    dropped=channel.dropped,
                    retry_in_seconds=retry_in,
                )
            )
        return statuses


def _untold(told: datetime | None, alert: Alert) -> bool:
    """Whether a channel has yet to hear of this firing episode. An announcement from
    before the episode started firing (`since`) is about an earlier one (under the key,
    from before episodes had ids, or after a lost journal): it must not swallow this
    one."""
    return told is None or told < alert.since


# --- judging an answer --------------------------------------------------------------


def _judge(status: int, headers: httpx.Headers, body: bytes, now: datetime) -> _Outcome:
    if 200 <= status < 300:
        return _Outcome("delivered", status=status)
    document = _json(body)
    detail = _detail(document, body)
    error = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if status == 429:
        return _Outcome("retry", error, status, _retry_after(document, headers, now))
    if 400 <= status < 500 and status != 408:
        lowered = (detail + " " + json.dumps(document.get("parameters", {}))).lower()
        if status in CHANNEL_STATUSES or any(m in lowered for m in CHANNEL_MARKERS):
            return _Outcome("refused", error, status)
        return _Outcome("drop", error, status)
    return _Outcome("retry", error, status)


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _detail(document: Mapping[str, Any], body: bytes) -> str:
    """The API's own words: Telegram's description, PagerDuty's message and errors,
    Slack's error string (its body is plain text), or a webhook's first line."""
    if not document:
        return body.decode("utf-8", errors="replace").strip()
    parts = [document.get(k) for k in ("description", "message", "error")]
    errors = document.get("errors")
    if isinstance(errors, list):
        parts += errors
    said = dict.fromkeys(str(p) for p in parts if p)  # ordered, without repeats
    return "; ".join(said) or json.dumps(document)


def _retry_after(
    document: Mapping[str, Any], headers: httpx.Headers, now: datetime
) -> float | None:
    """Seconds to wait: Telegram's parameters.retry_after, else the Retry-After header
    (seconds or an HTTP date); None when the server did not say."""
    parameters = document.get("parameters")
    hint: float | None = None
    if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
        hint = float(parameters["retry_after"])
    elif (header := headers.get("retry-after")) is not None:
        try:
            hint = float(header)
        except ValueError:
            try:
                hint = (email.utils.parsedate_to_datetime(header) - now).total_seconds()
            except (TypeError, ValueError):
                hint = None
    if hint is None:
        return None
    return min(RETRY_AFTER_MAX, max(1.0, hint))


def _backoff(failures: int) -> float:
    """5 s, 10 s, 20 s ... at most 10 min, each +-20 % so retries spread out."""
    raw = BACKOFF_BASE * 2.0 ** min(max(failures, 1) - 1, 16)
    return min(BACKOFF_MAX, raw * random.uniform(0.8, 1.2))


async def _read_bounded(response: httpx.Response) -> bytes:
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= BODY_LIMIT:
            break
    return bytes(received[:BODY_LIMIT])


def _reason(exc: BaseException) -> str:
    """The precise reason under httpx's generic errors: "connection refused", not
    "All connection attempts failed"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            # asyncio's strerror is "Connect call failed (host, port)"; the errno says why.
            why = os.strerror(current.errno) if current.errno else current.strerror
            if why:
                return why.lower()
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return str(exc) or type(exc).__name__


# --- small helpers ------------------------------------------------------------------


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a secret URL to mask: the whole, its path and query (where Slack
    and most webhooks keep the token), and a password."""
    parts = urlsplit(url)
    pieces = [url, parts.path, parts.query, parts.password or ""]
    return tuple(p for p in pieces if len(p) >= 4 and p != "/")


def _mask(text: str, hidden: Iterable[str]) -> str:
    for secret in sorted(hidden, key=len, reverse=True):
        text = text.replace(secret, "****")
    return text


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _iso(moment: datetime) -> str:
    # Full precision: a retry time rounded down would let a retry go early.
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
