"""Durable append-only JSONL: the audit log (one line per step of every operator
action), and the alert journal (transitions, acks, silences).

Each record is written with a single write() on an O_APPEND descriptor and
fsynced before the call returns, so a `kill -9` can lose at most the record
being written, never one already reported, and never tears an earlier line.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from noc.clock import Clock, iso_utc

APP_NAME = "noc"


def state_dir() -> Path:
    """platformdirs' user state dir, which honours XDG_STATE_HOME on Linux."""
    return Path(platformdirs.user_state_dir(APP_NAME))


def default_audit_path() -> Path:
    return state_dir() / "audit.jsonl"


def operator_identity() -> dict[str, str]:
    """Who is acting: user@host, and the SSH client address when there is one."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    identity = {"operator": f"{user}@{socket.gethostname()}"}
    ssh = os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_CLIENT")
    if ssh:
        identity["ssh_client"] = ssh.split()[0]
    return identity


class JsonlLog:
    """An append-only JSONL file whose every record is on disk when append() returns."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"ts": iso_utc(self._clock.utcnow()), "event": event, **fields}
        line = (json.dumps(record, sort_keys=False, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    async def aappend(self, event: str, **fields: Any) -> dict[str, Any]:
        """append() off the event loop: an fsync can take tens of milliseconds."""
        return await asyncio.to_thread(self.append, event, **fields)


@dataclass(frozen=True)
class JsonlRead:
    records: list[dict[str, Any]]
    damaged_lines: list[int]


def read_jsonl(path: Path) -> JsonlRead:
    """Every well-formed record; the numbers of lines that are not (a torn last line
    after a crash mid-write), so the reader can say so instead of failing."""
    records: list[dict[str, Any]] = []
    damaged: list[int] = []
    if not path.exists():
        return JsonlRead(records, damaged)
    for number, line in enumerate(_lines(path), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            damaged.append(number)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            damaged.append(number)
    return JsonlRead(records, damaged)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                yield line
