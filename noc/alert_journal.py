"""The alert journal: transitions, acks and silences, durable in the state dir.

Every record is fsynced before it is reported done (noc.audit.JsonlLog), so a
restart or `kill -9` loses nothing an operator did. On start the journal is
folded back into an AlertBook: alerts that were firing stay firing (so the
same incident does not page twice), their acks come back, and silences that
have not ended apply again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from noc.alerts import RESOLVED_KEPT, AlertBook
from noc.audit import JsonlLog, read_jsonl
from noc.clock import Clock, iso_utc
from noc.model import Ack, Alert, AlertNotice, AlertState, Severity, Silence


def alert_record(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
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
    ack = raw.get("ack")
    return Alert(
        id=raw["id"],
        rule=raw["rule"],
        severity=Severity(raw["severity"]),
        state=AlertState(raw["state"]),
        region=raw.get("region"),
        summary=raw.get("summary", ""),
        since=_time(raw["since"]),
        started_at=_time(raw["started_at"]) if raw.get("started_at") else None,
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


class AlertJournal:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._log = JsonlLog(path, clock)

    async def record(self, notices: Iterable[AlertNotice]) -> None:
        for notice in notices:
            await self._log.aappend(
                "alert", transition=notice.event, alert=alert_record(notice.alert)
            )

    async def record_ack(self, alert_id: str, ack: Ack) -> None:
        await self._log.aappend("ack", alert_id=alert_id, **ack_record(ack))

    async def record_silence(self, silence: Silence) -> None:
        await self._log.aappend("silence", silence=silence_record(silence))

    def restore(self, book: AlertBook) -> list[int]:
        """Fold the journal into `book`; returns the numbers of damaged lines skipped."""
        read = read_jsonl(self.path)
        acks: dict[str, Ack] = {}
        silences: dict[str, Silence] = {}
        resolved: list[Alert] = []
        firing: dict[str, Alert] = {}
        for number, record in enumerate(read.records, start=1):
            try:
                kind = record["event"]
                if kind == "alert":
                    alert = _alert(record["alert"])
                    if record["transition"] == "firing":
                        firing[alert.id] = alert
                    elif record["transition"] == "resolved":
                        firing.pop(alert.id, None)
                        resolved.append(alert)
                        acks.pop(alert.id, None)
                elif kind == "ack":
                    acks[record["alert_id"]] = Ack(
                        record["by"], record["note"], _time(record["at"])
                    )
                elif kind == "silence":
                    silence = _silence(record["silence"])
                    silences[silence.id] = silence
            except (KeyError, ValueError, TypeError, AttributeError):
                # A well-formed line noc cannot use (an older or edited record):
                # skipped and reported, never a reason not to start.
                read.damaged_lines.append(number)
        for alert in firing.values():
            book.restore_firing(alert)
        for alert in resolved[-RESOLVED_KEPT:]:  # oldest first: each goes to the front
            book.restore_resolved(alert)
        for alert_id, ack in acks.items():
            book.restore_ack(alert_id, ack)
        for silence in silences.values():
            book.restore_silence(silence)
        return read.damaged_lines
