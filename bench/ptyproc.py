"""A program on a pseudo-terminal of a given size, as an SSH session or tmux would run it.

Shared by the terminal benchmarks and tests/terminal/test_terminal.py: spawn, read what the
program draws (counting bytes), hang the terminal up, and time the way out.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Select Graphic Rendition: colours and weights, the only escapes between a row's words.
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")


@dataclass(frozen=True)
class Exit:
    code: int  # as os.waitstatus_to_exitcode: negative for a signal
    seconds: float  # from the hang-up to the exit
    cpu_seconds: float  # CPU the process used between the hang-up and its exit


class PtyProcess:
    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.output = bytearray()
        self._hung_up_at: float | None = None
        self._cpu_at_hangup = 0.0
        self.exit: Exit | None = None

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        size: tuple[int, int] = (80, 24),
        env: Mapping[str, str] | None = None,
        block_sighup: bool = False,
    ) -> PtyProcess:
        """Start `argv` as the session leader of a new terminal of `size` (columns, rows).

        `block_sighup` starts it with SIGHUP blocked: its terminal can then vanish
        without the signal ever arriving, as for a process outside the foreground group.
        """
        environment = dict(os.environ if env is None else env)
        # The terminal's size is the pty's: COLUMNS and LINES in the environment (set by
        # pytest-xdist's workers, for one) would override it in the program (Textual
        # reads them first), and a 220-column screen would be drawn at 80.
        for name in ("COLUMNS", "LINES"):
            environment.pop(name, None)
        winsize = struct.pack("HHHH", size[1], size[0], 0, 0)
        pid, fd = pty.fork()
        if pid == 0:  # the child: no imports and nothing slow between fork and exec
            try:
                if block_sighup:
                    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
                fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
                os.execvpe(argv[0], list(argv), environment)
            finally:
                os._exit(127)
        return cls(pid, fd)

    def read_for(self, seconds: float) -> int:
        """Read everything drawn during `seconds`; return how many bytes that was."""
        before = len(self.output)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._read(left)
        return len(self.output) - before

    def read_until(self, needle: bytes, timeout: float) -> bool:
        """Read until `needle` has been drawn (True) or `timeout` has passed (False)."""
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                return needle in self.output
        return True

    def read_until_text(self, text: bytes, timeout: float) -> bool:
        """As read_until, for words drawn in several styles: the colour and weight
        changes between them (SGR sequences) are not part of what is matched. A row
        updated in place is written as its changed span only, so "ACK op: note" can
        arrive as "ACK" in one style and the note in another."""
        deadline = time.monotonic() + timeout
        while text not in _SGR.sub(b"", bytes(self.output)):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                return text in _SGR.sub(b"", bytes(self.output))
        return True

    def poll(self, timeout: float = 0.0) -> bool:
        """Read whatever is there within `timeout` (a program that cannot write its
        screen stalls: a caller busy elsewhere drains it with this); False once the
        terminal is gone."""
        return self._read(timeout)

    def _read(self, timeout: float) -> bool:
        """One read of whatever is there within `timeout`; False once the terminal is gone."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed its side
            return False
        self.output += data
        return bool(data)

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # Fields 14 and 15 (utime, stime), counted after the parenthesised name.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def children(self) -> list[int]:
        """The process's direct children (the demo's redis-servers, say)."""
        tasks = Path(f"/proc/{self.pid}/task").iterdir()
        return [int(pid) for task in tasks for pid in (task / "children").read_text().split()]

    def hang_up(self) -> None:
        """Close the terminal's master side, as sshd does when a connection drops."""
        self._cpu_at_hangup = self.cpu_seconds()
        self._hung_up_at = time.monotonic()
        os.close(self.fd)

    def wait(self, timeout: float) -> Exit | None:
        """The exit after the hang-up, or None if the process outlived `timeout`
        (counted from the hang-up)."""
        assert self._hung_up_at is not None, "hang_up() first"
        deadline = self._hung_up_at + timeout
        while self.exit is None and time.monotonic() < deadline:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.exit = Exit(
                    code=os.waitstatus_to_exitcode(status),
                    seconds=time.monotonic() - self._hung_up_at,
                    cpu_seconds=usage.ru_utime + usage.ru_stime - self._cpu_at_hangup,
                )
            else:
                time.sleep(0.01)
        return self.exit

    def stop(self) -> None:
        """Hang up and let the program go its own way (the demo stops its servers);
        kill it only if it will not."""
        if self._hung_up_at is None:
            self.hang_up()
        if self.wait(timeout=10) is None:
            self.kill()

    def sigkill(self) -> None:
        """SIGKILL first, at this very moment (no hang-up ahead of it that the program
        could start to act on), reap, and keep what it had drawn before it died."""
        if self.exit is not None:
            return
        os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        # What it wrote before the kill is still in the terminal: read it to the end.
        while select.select([self.fd], [], [], 0)[0]:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: nothing more
                break
            if not data:
                break
            self.output += data
        os.close(self.fd)
        self._hung_up_at = time.monotonic()
        self.exit = Exit(code=os.waitstatus_to_exitcode(status), seconds=0.0, cpu_seconds=0.0)

    def kill(self) -> None:
        """SIGKILL and reap, for a process that would not go by itself."""
        if self.exit is not None:
            return
        if self._hung_up_at is None:
            os.close(self.fd)
            self._hung_up_at = time.monotonic()
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
