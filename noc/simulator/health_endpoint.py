"""A region's /health endpoint on loopback, with switchable misbehaviour.

An aiohttp.web server (starts and stops in milliseconds). `DOWN` really closes
the listener and every open connection, so a checker sees "connection refused",
and the endpoint comes back on the same port, as a restarted service would.
"""

from __future__ import annotations

import asyncio
import ssl
from enum import StrEnum

from aiohttp import web

__all__ = ["GARBAGE_BODY", "EndpointMode", "HealthEndpoint"]

# Binary noise: not JSON, not UTF-8, and without the word "healthy".
GARBAGE_BODY = bytes(range(256)) * 4


class EndpointMode(StrEnum):
    HEALTHY = "healthy"
    UNAVAILABLE = "503"
    SLOW = "slow"
    FLAP = "flap"
    GARBAGE = "garbage"
    DOWN = "down"


class HealthEndpoint:
    """Serves GET /health for one region, answering according to `mode`.

    `slow_seconds` is how long SLOW waits before answering healthy (longer than
    any check's timeout by default). Counters: `requests_served` (requests
    received, slow ones included), `in_flight` and its peak `max_in_flight`.
    """

    def __init__(
        self,
        region_id: str,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        slow_seconds: float = 30.0,
    ) -> None:
        self.region_id = region_id
        self.slow_seconds = slow_seconds
        self.requests_served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._host = host
        self._ssl_context = ssl_context
        self._mode = EndpointMode.HEALTHY
        self._flap_count = 0
        self._port: int | None = None
        self._started = False
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    @property
    def mode(self) -> EndpointMode:
        return self._mode

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("health endpoint has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self.port}/health"

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after)."""
        async with self._lock:
            self._started = True
            await self._sync_listener()

    async def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        async with self._lock:
            self._started = False
            await self._sync_listener()

    async def set_mode(self, mode: EndpointMode) -> None:
        async with self._lock:
            self._mode = mode
            self._flap_count = 0
            await self._sync_listener()

    async def _sync_listener(self) -> None:
        wanted = self._started and self._mode is not EndpointMode.DOWN
        if wanted and self._runner is None:
            self._runner = await self._open()
        elif not wanted and self._runner is not None:
            runner, self._runner = self._runner, None
            # Closing only the listening socket would leave keep-alive connections
            # answering; cleanup() closes those too.
            await runner.cleanup()

    async def _open(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(
            app,
            access_log=None,
            # A checker that gave up hangs up; stop sleeping for it.
            handler_cancellation=True,
            # On DOWN or stop, in-flight requests get this long before being cut.
            shutdown_timeout=0.1,
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port or 0, ssl_context=self._ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if self._port is None:
            self._port = int(runner.addresses[0][1])
        return runner

    async def _health(self, request: web.Request) -> web.Response:
        self.requests_served += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer()
        finally:
            self.in_flight -= 1

    async def _answer(self) -> web.Response:
        healthy = {"status": "healthy", "region": self.region_id}
        match self._mode:
            case EndpointMode.HEALTHY:
                return web.json_response(healthy)
            case EndpointMode.SLOW:
                await asyncio.sleep(self.slow_seconds)
                return web.json_response(healthy)
            case EndpointMode.FLAP:
                self._flap_count += 1
                if self._flap_count % 2:
                    return web.json_response(healthy)
                return _unavailable()
            case EndpointMode.GARBAGE:
                return web.Response(body=GARBAGE_BODY, content_type="application/octet-stream")
            case EndpointMode.UNAVAILABLE | EndpointMode.DOWN:
                # DOWN is answered only by a request that raced the listener closing.
                return _unavailable()


def _unavailable() -> web.Response:
    return web.json_response({"status": "unavailable"}, status=503)
