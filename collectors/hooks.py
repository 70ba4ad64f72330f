"""Operator-supplied commands around a failover: run without a shell, bounded, timed out.

The plan reaches the command in NOC_* environment variables. Its output (stdout
and stderr together) is kept to the last few kilobytes, enough to show why a pre
hook refused; a command that outlives its timeout is killed, as is its process
group, so a hung script cannot hold a failover open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Collection, Mapping
from dataclasses import dataclass

_OUTPUT_LIMIT = 4096
_AFTER_EXIT_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class HookOutcome:
    command: str
    exit_code: int | None  # None: it could not start, or was killed on timeout
    output: str  # the tail of stdout and stderr
    error: str | None = None  # why there is no exit code

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        verdict = self.error if self.error is not None else f"exit {self.exit_code}"
        tail = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        return f"{verdict}: {tail[0]}" if tail else verdict


async def run_hook(
    command: str,
    env: Mapping[str, str],
    timeout_seconds: float,
    *,
    withheld: Collection[str] = (),
) -> HookOutcome:
    """Run `command` (split like a shell would, but with no shell) with `env` added and
    the `withheld` variables (noc's own secrets) taken out of what it inherits."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return HookOutcome(command, None, "", f"cannot parse the command: {exc}")
    if not argv:
        return HookOutcome(command, None, "", "empty command")
    # Output comes through a pipe noc owns: once the command has ended, noc stops
    # reading and closes it, so a child the command left running (a daemon it
    # started) can neither hold the failover open nor fill a disk.
    loop = asyncio.get_running_loop()
    output = _Tail()
    try:
        read_fd, write_fd = os.pipe()
    except OSError as exc:
        return HookOutcome(command, None, "", f"cannot start: {exc.strerror or exc}")
    reader = os.fdopen(read_fd, "rb", 0)
    process: asyncio.subprocess.Process | None = None
    transport: asyncio.ReadTransport | None = None
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=asyncio.subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if k not in withheld} | dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            return HookOutcome(command, None, "", f"cannot start: {exc.strerror or exc}")
        finally:
            os.close(write_fd)
        transport, _ = await loop.connect_read_pipe(lambda: output, reader)
        try:
            async with asyncio.timeout(timeout_seconds):
                await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return HookOutcome(
                command, None, output.text(), f"killed after {timeout_seconds:g} s (timeout)"
            )
        # What the command wrote just before it ended may still be in the pipe.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_AFTER_EXIT_SECONDS):
                await output.closed.wait()
        return HookOutcome(command, process.returncode, output.text())
    except BaseException:  # cancelled: nothing of the hook may outlive the failover
        if process is not None and process.returncode is None:
            _kill_group(process.pid)
        raise
    finally:
        # Whatever the command left running gets EPIPE from here on (see the README:
        # a hook starting a daemon redirects its output).
        if transport is not None:
            transport.close()
        else:
            reader.close()


class _Tail(asyncio.Protocol):
    """The last few kilobytes read from the pipe."""

    def __init__(self) -> None:
        self._kept = bytearray()
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self._kept.extend(data)
        del self._kept[:-_OUTPUT_LIMIT]

    def eof_received(self) -> bool | None:
        self.closed.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def text(self) -> str:
        return bytes(self._kept).decode("utf-8", "replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
