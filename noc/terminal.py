"""Leave when the terminal does: a dropped SSH session or a killed tmux must not
leave noc running, spinning or holding anything.

A hung-up terminal usually sends SIGHUP, and the app exits on it. Not always: a
process outside the terminal's foreground group, or one started with SIGHUP
blocked or ignored, sees only the side effects. Every read of the terminal then
returns at once with nothing (Textual's input thread turns into a busy loop), and
every write fails (Textual's writer thread dies, and once its queue is full the
next write blocks the event loop for good).

TerminalWatch waits in a thread, without polling on a timer, for any of the
process's standard descriptors to report a hang-up or an error: poll(2) reports
those whatever events are asked for, and on nothing else. Then it:

1. points stdout and stderr at /dev/null, so nothing still writing can fail or block;
2. asks the app to exit by its normal path (scheduler and demo stopped; the audit
   log is fsynced record by record, so it is whole whatever happens next);
   the watch is armed from the app's mount to the process's end, so this holds
   in every state: running, shutting down, or writing a crash report;
3. if the process is still there after GRACE_SECONDS (an event loop wedged on a
   write that raced the hang-up), interrupts the main thread, which unwinds
   through the CLI's cleanup like Ctrl+C;
4. and if even that has not ended it INTERRUPTED_GRACE_SECONDS later, leaves with
   os._exit (status 129).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Sequence

GRACE_SECONDS = 2.0
# After the interrupt, the cleanup of a Ctrl+C (the demo's servers stopped) takes
# well under this; 2 + 1 s keeps the way out inside the 5 s an operator is promised.
INTERRUPTED_GRACE_SECONDS = 1.0
# 128 + SIGHUP, the status a shell reports for a process its terminal hung up on.
EXIT_HANGUP = 129
_TROUBLE = select.POLLHUP | select.POLLERR | select.POLLNVAL
_STANDARD_FDS = (0, 1, 2)


class TerminalWatch:
    """A daemon thread that calls `on_lost` (from that thread) when the terminal goes."""

    def __init__(self, on_lost: Callable[[], object], fds: Sequence[int] = _STANDARD_FDS) -> None:
        self._on_lost = on_lost
        # Only descriptors open now: a closed one would read as lost at once.
        self._fds = [fd for fd in fds if _is_open(fd)]
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="noc-terminal-watch", daemon=True)
        self.lost = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching. Once the terminal is lost, the way out stays armed regardless."""
        if not self.lost.is_set():
            with contextlib.suppress(OSError):
                os.write(self._wake_write, b"x")

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        for fd in self._fds:
            poller.register(fd, 0)
        while True:
            events = poller.poll()
            if any(fd == self._wake_read for fd, _ in events):
                return
            if any(mask & _TROUBLE for _, mask in events):
                break
        self.lost.set()
        _detach_output()
        # The app may be past its event loop already (a crash report being written to
        # the dead terminal): whatever asking it to exit raises, the way out stays armed.
        with contextlib.suppress(Exception):
            self._on_lost()
        time.sleep(GRACE_SECONDS)
        _thread.interrupt_main()
        time.sleep(INTERRUPTED_GRACE_SECONDS)
        os._exit(EXIT_HANGUP)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _detach_output() -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                os.dup2(null, fd)
    finally:
        os.close(null)
