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
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import IO

_OUTPUT_LIMIT = 4096


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
    # Output goes to an unlinked file, not a pipe: a child the command leaves running
    # (a daemon it started) may keep writing, but cannot hold the failover open.
    with tempfile.TemporaryFile() as output:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if k not in withheld} | dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            return HookOutcome(command, None, "", f"cannot start: {exc.strerror or exc}")
        try:
            async with asyncio.timeout(timeout_seconds):
                await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return HookOutcome(
                command, None, _tail(output), f"killed after {timeout_seconds:g} s (timeout)"
            )
        except asyncio.CancelledError:
            _kill_group(process.pid)
            raise
        return HookOutcome(command, process.returncode, _tail(output))


def _tail(output: IO[bytes]) -> str:
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - _OUTPUT_LIMIT))
    return output.read().decode("utf-8", "replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
