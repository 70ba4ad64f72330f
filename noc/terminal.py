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
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

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


# What ends the app cleanly, under every driver: a `kill` or a supervisor's stop
# (SIGTERM, also noc serve's when a session's noc does not quit) and a dropped SSH
# session or closed terminal (SIGHUP).
EXIT_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


class ExitSignals:
    """SIGTERM and SIGHUP ask the app to exit by its normal path (scheduler and demo
    stopped, rather than orphaned), as often as they come.

    Plain handlers rather than the event loop's, which the loop's close takes away
    (the default disposition would then kill noc in the middle of stopping the demo's
    servers), and so that what was there before can be put back (`restore`) when the
    app was a guest in someone else's process (under `run_test`). In noc's own process
    they stay until it ends: a hang-up that comes while a crash report is written, or
    while the demo is being stopped, then changes nothing, and TerminalWatch's way out
    or a supervisor's SIGKILL ends a process whose exit hangs.
    """

    def __init__(self, ask_exit: Callable[[], object]) -> None:
        self._ask_exit = ask_exit
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """False where signals cannot be caught (any thread but the main one)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in EXIT_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return True

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            # None: a handler set outside Python; the default is the nearest we can give.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes, perhaps inside the event loop:
        # it only asks (the exit runs on the loop), and never raises into that code.
        with contextlib.suppress(RuntimeError):  # the loop has closed: already leaving
            self._ask_exit()
