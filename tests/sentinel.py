"""Real Redis Sentinel processes (`redis-server <conf> --sentinel`) on loopback, for
the control plane's failover tests. Each writes its own config (Sentinel rewrites it
as it learns), in a temp dir removed at stop."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from named import free_port

from noc.simulator.redis_server import find_redis_server

SERVICE = "noc-control"
READY_SECONDS = 10.0


class SentinelProcess:
    def __init__(self, primary_port: int, *, down_after_ms: int = 1000) -> None:
        self.port = free_port()
        self._directory = Path(tempfile.mkdtemp(prefix="noc-sentinel-"))
        self._conf = self._directory / "sentinel.conf"
        self._conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self._directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self._directory / "sentinel.log").open("ab")
        self._process = subprocess.Popen(
            [find_redis_server(), str(self._conf), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + READY_SECONDS
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self._process.poll() is not None:
                        raise RuntimeError(f"sentinel did not start: {self.log()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def primary(self) -> tuple[str, int] | None:
        client = redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)
        try:
            answer: Any = client.sentinel_get_master_addr_by_name(SERVICE)
        finally:
            client.close()
        return (str(answer[0]), int(answer[1])) if answer else None

    def log(self) -> str:
        path = self._directory / "sentinel.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self._directory, ignore_errors=True)
