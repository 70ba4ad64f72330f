"""Processes a test started, read from /proc (psutil is not installed): who descends
from whom, who is still alive, and a check that a test leaves none of its own behind.

An orphan (a child whose parent was killed) is re-parented to init and drops out of
any tree, so `leaves_no_process` makes this process a child subreaper for the test:
orphans of its descendants are re-parented here, stay visible, and are reaped here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(name, state, parent pid), or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    state, parent = text[text.rindex(")") + 2 :].split()[:2]
    return name, state, int(parent)


def name(pid: int) -> str:
    stat = _stat(pid)
    return "" if stat is None else stat[0]


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie has ended, it only waits to be reaped."""
    stat = _stat(pid)
    return stat is not None and stat[1] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def wait_gone(pids: Iterable[int], seconds: float) -> tuple[list[int], float]:
    """Wait up to `seconds` for every one of `pids` to end: those still alive, and how
    long the wait took."""
    started = time.monotonic()
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() - started < seconds:
        time.sleep(0.05)
        left = [pid for pid in left if alive(pid)]
    return left, time.monotonic() - started


def _set_subreaper(on: bool) -> bool:
    """Set this process's child-subreaper flag; returns what it was."""
    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_CHILD_SUBREAPER)")
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    return bool(was.value)


def adopt_orphans() -> None:
    """From now on, orphans of this process's descendants are re-parented here (and
    stay visible to `left_running`) instead of to init."""
    _set_subreaper(True)


def left_running(grace_seconds: float) -> list[str]:
    """Every descendant of this process still alive after `grace_seconds`, killed and
    reaped, as "pid name" (the end-of-run check: a test run leaves no process)."""
    left, _ = wait_gone(descendants(os.getpid()), grace_seconds)
    described = [f"{pid} {name(pid)}" for pid in left]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(left, grace_seconds)
    _reap_adopted()
    return described


def _reap_adopted() -> None:
    """Reap the zombies among this process's children (the test's Popen objects have
    all been waited by now; what is left are adopted orphans)."""
    for child in children(os.getpid()):
        stat = _stat(child)
        if stat is not None and stat[1] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, os.WNOHANG)


@contextlib.contextmanager
def leaves_no_process(grace_seconds: float = 10.0) -> Iterator[None]:
    """Fail (after killing them) if processes started inside are still alive
    `grace_seconds` after the block ends."""
    was_subreaper = _set_subreaper(True)
    before = set(descendants(os.getpid()))
    try:
        yield
    finally:
        try:
            started = set(descendants(os.getpid())) - before
            left, _ = wait_gone(started, grace_seconds)
            described = [f"{pid} {name(pid)}" for pid in left]
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_gone(left, grace_seconds)
            _reap_adopted()
        finally:
            # The run-wide check (tests/conftest.py) keeps adopting after this block.
            _set_subreaper(was_subreaper)
    assert not described, f"the test left processes running: {described}"


def stop_tree(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM `process` (SIGKILL after `grace_seconds`), then SIGKILL whatever it had
    started that is still alive: a daemon's workers must not outlive the test."""
    spawned = descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace_seconds)
    left, _ = wait_gone(spawned, grace_seconds)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(left, grace_seconds)
