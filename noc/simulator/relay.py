"""A loopback TCP relay standing in for the network path between two regions.

A demo replica replicates its source through one of these, so "break
replication" can partition the path the way a WAN outage does: `partition()`
stops moving bytes (nothing is closed: both ends just stop hearing from each
other, and new connections hang like unanswered SYNs), `heal()` lets them flow
again. The replica therefore shows what a real partition shows: the link stays
"up" while lag grows, until the replica's `repl-timeout` drops it; after a heal
it reconnects and resynchronises on its own. Neither Redis process is touched,
so both keep their roles, data and replication ids.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["TcpRelay"]

HOST = "127.0.0.1"
_CHUNK = 64 * 1024


class TcpRelay:
    """Relays connections made to `port` on to `upstream_port`, both on loopback."""

    def __init__(self, upstream_port: int, *, host: str = HOST) -> None:
        self._host = host
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # Connections accepted during a partition, still waiting to reach upstream.
        self._held: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("relay is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def partitioned(self) -> bool:
        return not self._flowing.is_set()

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self._host, 0)

    async def stop(self) -> None:
        """Close the listener and every relayed connection; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        connections, self._connections = self._connections, set()
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def partition(self) -> None:
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A replica makes one connection attempt at a time and only retries once it
        # has given up on the last one: an attempt still held by a partition is
        # abandoned, so drop it rather than let a long partition pile them up.
        for held in self._held:
            held.cancel()
        # A task of our own rather than a coroutine callback: Python 3.11's
        # start_server logs a traceback for every callback task that is cancelled,
        # and stop() cancels them all.
        task = asyncio.create_task(self._relay(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            await self._held_while_partitioned()
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._host, self._upstream_port
            )
            # Either side hanging up ends the pair, as it would end one TCP connection.
            directions = {
                asyncio.create_task(self._pipe(reader, upstream_writer)),
                asyncio.create_task(self._pipe(upstream_reader, writer)),
            }
            try:
                await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for direction in directions:
                    direction.cancel()
                await asyncio.gather(*directions, return_exceptions=True)
        except OSError:
            pass  # upstream refused or reset: closing the client's side says as much
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    end.close()
                    with contextlib.suppress(OSError):
                        await end.wait_closed()

    async def _held_while_partitioned(self) -> None:
        if self._flowing.is_set():
            return
        task = asyncio.current_task()
        assert task is not None  # called from a relay task
        self._held.add(task)
        try:
            await self._flowing.wait()
        finally:
            self._held.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while True:
                # Not reading while partitioned leaves bytes in the kernel's buffers, and
                # a hang-up at either end goes unnoticed, as it would across a WAN.
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    return
                # A read already waiting when the partition began must not deliver.
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
