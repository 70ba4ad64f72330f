"""Durable append-only JSONL: the audit log (one line per step of every operator
action), and the alert journal (transitions, acks, silences); and where an
estate keeps them.

Each record is written with a single write() on an O_APPEND descriptor and
fsynced before the call returns, so a `kill -9` can lose at most the record
being written, never one already reported. A write that fails or comes up short
raises `RecordNotWritten`: nothing is reported done that is not on disk. A torn
last line (a kill or a full disk mid-write) is cut off and kept aside in
`<file>.torn` before the next record is appended, so it never swallows that record.

Every estate has its own state directory (`estate_paths`): two estates, or the
demo and an estate, never share an audit log, an alert journal or an outbox.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import getpass
import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from noc.clock import Clock, iso_utc

if TYPE_CHECKING:
    from noc.config import NocConfig

APP_NAME = "noc"
# The demo's directory under state_dir(). No estate name maps to it: a leading dot
# is always escaped by estate_dir_name().
DEMO_DIR_NAME = ".demo"
# The files of one estate, by name. The shared layout of noc before per-estate
# state kept exactly these directly in state_dir(): they are moved on first use.
AUDIT_FILE = "audit.jsonl"
ALERTS_FILE = "alerts.jsonl"
OUTBOX_FILE = "outbox.jsonl"
AUTOMATION_FILE = "automation.jsonl"
MAINTENANCE_FILE = "maintenance.jsonl"
LOG_FILE = "noc.log"
_LEGACY_FILES = (AUDIT_FILE, ALERTS_FILE, OUTBOX_FILE, AUTOMATION_FILE, LOG_FILE)
_LOG_BACKUPS = 3  # noc.log.1 .. noc.log.3, as the rotating handler keeps them
_NAME_LIMIT = 96  # bytes of an escaped estate name before it is shortened with a hash

log = logging.getLogger(__name__)


def state_dir() -> Path:
    """platformdirs' user state dir, which honours XDG_STATE_HOME on Linux."""
    return Path(platformdirs.user_state_dir(APP_NAME))


@dataclass(frozen=True)
class EstatePaths:
    """Where one estate (or the demo) keeps its record."""

    directory: Path

    @property
    def audit(self) -> Path:
        return self.directory / AUDIT_FILE

    @property
    def alerts(self) -> Path:
        return self.directory / ALERTS_FILE

    @property
    def outbox(self) -> Path:
        return self.directory / OUTBOX_FILE

    @property
    def automation(self) -> Path:
        return self.directory / AUTOMATION_FILE

    @property
    def log(self) -> Path:
        return self.directory / LOG_FILE

    @property
    def maintenance(self) -> Path:
        return self.directory / MAINTENANCE_FILE


def estate_dir_name(name: str) -> str:
    """An estate name as one safe directory name, different for different names.

    Letters, digits, `-`, `_` and `.` stay (a leading `.` does not: no hidden or
    `..` directory); every other character is %XX-escaped by its UTF-8 bytes, `%`
    included, so "mail prod" and "mail_prod" never share a record. A very long
    name keeps its start and gets a hash for the rest (`~` cannot come out of the
    escaping, so the shortened form cannot collide with a plain name)."""
    out: list[str] = []
    for index, char in enumerate(name):
        if (char.isascii() and char.isalnum()) or char in "-_" or (char == "." and index):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    escaped = "".join(out) or "%"  # "" escapes to nothing; a lone % is no escape of anything
    if len(escaped) > _NAME_LIMIT:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        escaped = f"{escaped[: _NAME_LIMIT - 17]}~{digest}"
    return escaped


def estate_paths(config: NocConfig) -> EstatePaths:
    """The one place an estate's state directory is decided: `[estate] state_dir`
    when set, else `<state dir>/noc/<estate name>/`."""
    configured = config.estate.state_dir
    if configured:
        return EstatePaths(Path(configured).expanduser())
    return EstatePaths(state_dir() / estate_dir_name(config.estate.name))


def demo_paths() -> EstatePaths:
    """The demo's own record, kept across runs so `noc audit --demo` can show it."""
    return EstatePaths(state_dir() / DEMO_DIR_NAME)


def default_audit_path(config: NocConfig) -> Path:
    return estate_paths(config).audit


def prepare_state(paths: EstatePaths, *, adopt_legacy: bool = True) -> list[str]:
    """Create the estate's directory (0700) and, once, move the files of the old
    shared layout into it. Returns one notice per file moved (or left in place).

    Moving is a hard link plus unlink where it can be (never overwriting a file the
    estate already has), so two noc processes starting at once cannot both take a
    file or lose one."""
    paths.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not adopt_legacy:
        return []
    shared = state_dir()
    if shared.resolve() == paths.directory.resolve():
        return []
    notices: list[str] = []
    names = [*_LEGACY_FILES, *(f"{LOG_FILE}.{n}" for n in range(1, _LOG_BACKUPS + 1))]
    for name in names:
        old, new = shared / name, paths.directory / name
        if not old.is_file():
            continue
        if new.exists():
            notices.append(
                f"{old} (from noc's old shared state layout) was left in place: "
                f"{new} already exists; merge or remove it by hand"
            )
            continue
        try:
            _move_no_clobber(old, new)
        except FileNotFoundError:
            continue  # another noc took it first
        except OSError as exc:
            notices.append(f"{old} could not be moved to {new}: {exc.strerror or exc}")
            continue
        notices.append(f"moved {old} to {new} (state is now kept per estate)")
    for notice in notices:
        log.warning("%s", notice)
    return notices


def _move_no_clobber(old: Path, new: Path) -> None:
    try:
        os.link(old, new)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # [estate] state_dir on another filesystem: copy, then remove the original.
        if new.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(new)) from exc
        shutil.copy2(old, new)
    old.unlink()


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


class RecordNotWritten(OSError):
    """A record that is not (wholly) on disk: the write failed or came up short.

    An OSError, so code that already treats an unusable state dir as such handles
    it; its message names the file and what to do."""

    def __init__(self, path: Path, reason: str, *, errno_: int | None = None) -> None:
        message = f"cannot write a record to {path}: {reason}"
        super().__init__(errno_ or errno.EIO, message)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True)
class TornTail:
    """A last line cut off mid-write, moved aside by `repair_torn_tail`."""

    path: Path
    kept_in: Path
    size: int

    def notice(self) -> str:
        return (
            f"{self.path}: its last line was torn ({self.size} bytes, a write cut short); "
            f"it was moved to {self.kept_in} so later records stay readable"
        )


class JsonlLog:
    """An append-only JSONL file whose every record is on disk when append() returns."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one record, whole, or raise RecordNotWritten."""
        record = {"ts": iso_utc(self._clock.utcnow()), "event": event, **fields}
        line = (json.dumps(record, sort_keys=False, default=str) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RecordNotWritten(self.path, _os_reason(exc), errno_=exc.errno) from exc
        try:
            # Writers of one file take turns, so a tail is judged torn only when
            # nobody is in the middle of writing it.
            fcntl.flock(fd, fcntl.LOCK_EX)
            torn = cut_torn_tail(fd, self.path)
            if torn is not None:
                log.warning("%s", torn.notice())
            try:
                written = os.write(fd, line)
            except OSError as exc:
                raise RecordNotWritten(self.path, _os_reason(exc), errno_=exc.errno) from exc
            if written != len(line):
                # The cut record stays as a torn tail: the next append moves it aside.
                raise RecordNotWritten(
                    self.path,
                    f"short write: {written} of {len(line)} bytes (is the disk full?)",
                    errno_=errno.ENOSPC,
                )
            try:
                os.fsync(fd)
            except OSError as exc:
                raise RecordNotWritten(self.path, _os_reason(exc), errno_=exc.errno) from exc
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


def repair_torn_tail(path: Path) -> TornTail | None:
    """Move a torn last line (no newline at the end) aside into `<path>.torn`, with
    the time it was found, and cut it from the file. None when the tail is whole."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return cut_torn_tail(fd, path)
    finally:
        os.close(fd)


_TAIL_CHUNK = 64 * 1024


def cut_torn_tail(fd: int, path: Path) -> TornTail | None:
    """With the file locked: cut an unterminated last line, keeping it aside first."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    # Find the end of the last whole line, reading backwards a chunk at a time.
    end = size
    start_of_tail = 0
    while end > 0:
        begin = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - begin, begin)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start_of_tail = begin + newline + 1
            break
        end = begin
    torn = os.pread(fd, size - start_of_tail, start_of_tail)
    kept_in = path.with_name(path.name + ".torn")
    found = datetime.now(UTC).isoformat(timespec="seconds")
    text = torn.decode("utf-8", "replace")
    aside = json.dumps({"found": found, "offset": start_of_tail, "bytes": text})
    side_fd = os.open(kept_in, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(side_fd, (aside + "\n").encode())
        os.fsync(side_fd)
    finally:
        os.close(side_fd)
    # Only once the torn bytes are safe elsewhere are they cut from the record.
    os.ftruncate(fd, start_of_tail)
    os.fsync(fd)
    return TornTail(path, kept_in, len(torn))


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    hints = {
        errno.ENOSPC: "; free some space on that filesystem",
        errno.EDQUOT: "; the disk quota is used up",
        errno.EACCES: "; check the directory's owner and permissions",
        errno.EROFS: "; the filesystem is read-only",
    }
    return reason + hints.get(exc.errno or 0, "")


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                yield line


def fsync_directory(path: Path) -> None:
    """Make a rename in `path` durable: the directory entry is on disk once this returns."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
