"""Replication lag of one Redis replica, read where the data lands.

`INFO replication` on the replica says whether the link is up, how long ago the
replica last heard from its source and which offset it has applied. None of that
is lag in seconds: an idle source pings only every 10 s, so `last_io` sawtooths
with no fault, and a hung source keeps the link "up" for `repl-timeout` (60 s).
So, pt-heartbeat style, each poll writes noc's own UTC time to a key on the
SOURCE and reads it back on the replica: lag = now - the replica's heartbeat.
Writer and reader share noc's clock, so clock skew between regions plays no part.
The figure overstates the lag by at most the time between heartbeat writes (the
poll interval); a poll waits briefly (`settle_seconds`) for the heartbeat it has
just written, so a healthy cross-region link reads its real delay, not the interval.

Without a heartbeat (read-only deployments: noc writes nothing) the lag is
`master_last_io_seconds_ago`, marked `LagBasis.LAST_IO`. When the link is down the
lag is a floor that grows: the larger of the heartbeat's age and
`master_link_down_since_seconds`, never a frozen last value.

`open_redis()` and `redis_error_text()` are the Redis conventions every store
collector shares (suppression and deliverability import them from here).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from noc_collectors.redis_common import open_redis, redis_error_text
from redis.exceptions import RedisError

from noc.clock import Clock, SystemClock
from noc.model import LagBasis, LinkState, ReplicationKind, ReplicationSample, ReplicationSpec

__all__ = ["HEARTBEAT_KEY", "RedisReplicationCollector", "open_redis", "redis_error_text"]

HEARTBEAT_KEY = "noc:heartbeat"
# How often a poll re-reads the replica while waiting for the heartbeat it wrote.
_SETTLE_STEP = 0.01


@dataclass(frozen=True, slots=True)
class _Source:
    """What the source said this poll: the heartbeat it took, and its offset."""

    written: float | None
    offset: int | None
    replid: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class _Replica:
    role: str
    link: LinkState
    offset: int | None
    replid: str | None
    last_io: float | None
    down_for: float | None
    heartbeat: float | None  # UTC epoch seconds, as the heartbeat writer wrote it
    heartbeat_error: str | None


class RedisReplicationCollector:
    """Polls one replica (spec.url); optionally its source too (offsets, heartbeat).

    source_url: the source region's store. Without it, no offset lag and no
    heartbeat. heartbeat_key=None: read-only, nothing is ever written; with a key,
    each poll SETs it on the source (the write interval is the poll interval).
    """

    def __init__(
        self,
        spec: ReplicationSpec,
        *,
        source_url: str | None = None,
        heartbeat_key: str | None = HEARTBEAT_KEY,
        timeout_seconds: float = 2.0,
        settle_seconds: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        if spec.kind is not ReplicationKind.REDIS:
            raise ValueError(f"{spec.data_class}: kind {spec.kind.value!r} is not redis")
        if timeout_seconds <= 0 or settle_seconds < 0:
            raise ValueError("timeout_seconds must be positive and settle_seconds not negative")
        self.spec = spec
        self._timeout = timeout_seconds
        self._settle = settle_seconds
        self._clock = clock or SystemClock()
        self._heartbeat_key = heartbeat_key if source_url is not None else None
        self._replica = open_redis(spec.url, timeout_seconds)
        self._source = open_redis(source_url, timeout_seconds) if source_url else None

    @property
    def writes_heartbeat(self) -> bool:
        return self._heartbeat_key is not None

    async def poll(self) -> ReplicationSample:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        # A hung source must not starve the replica read: it gets half the budget.
        source = await self._touch_source(loop.time() + self._timeout / 2)
        try:
            async with asyncio.timeout_at(deadline):
                replica = await self._read_replica()
        except (RedisError, OSError, TimeoutError) as exc:
            errors = [f"replica: {redis_error_text(exc)}", source.error]
            return self._failed("; ".join(e for e in errors if e))
        if source.written is not None and replica.link is LinkState.UP:
            replica = await self._settle_on(source.written, replica, deadline)
        return self._judge(source, replica)

    async def aclose(self) -> None:
        await self._replica.aclose()
        if self._source is not None:
            await self._source.aclose()

    async def _touch_source(self, deadline: float) -> _Source:
        if self._source is None:
            return _Source(None, None, None, None)
        written = self._clock.utcnow().timestamp() if self._heartbeat_key else None
        try:
            async with asyncio.timeout_at(deadline):
                async with self._source.pipeline(transaction=False) as pipe:
                    if self._heartbeat_key is not None:
                        pipe.set(self._heartbeat_key, f"{written:.6f}")
                    pipe.info("replication")
                    # One failed command (READONLY: the "source" is itself a replica)
                    # must not hide the other's answer.
                    results: list[Any] = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            return _Source(None, None, None, f"source: {redis_error_text(exc)}")
        errors: list[str] = []
        info = results[-1]
        if isinstance(info, Exception):
            errors.append(f"source INFO: {redis_error_text(info)}")
            info = {}
        if self._heartbeat_key is not None and isinstance(results[0], Exception):
            errors.append(f"heartbeat write: {redis_error_text(results[0])}")
            written = None
        return _Source(
            written,
            _int(info.get("master_repl_offset")),
            _str(info.get("master_replid")),
            "; ".join(errors) or None,
        )

    async def _read_replica(self) -> _Replica:
        async with self._replica.pipeline(transaction=False) as pipe:
            pipe.info("replication")
            if self._heartbeat_key is not None:
                pipe.get(self._heartbeat_key)
            results: list[Any] = await pipe.execute()
        info: dict[str, Any] = results[0]
        heartbeat, heartbeat_error = None, None
        if len(results) > 1 and results[1] is not None:
            try:
                heartbeat = float(results[1])
            except ValueError:
                heartbeat = math.nan
            # "inf" parses too, and would read as no lag at all.
            if not math.isfinite(heartbeat):
                heartbeat, heartbeat_error = None, f"heartbeat {self._heartbeat_key} is not a time"
        up = info.get("master_link_status") == "up"
        down_for = _int(info.get("master_link_down_since_seconds"))
        last_io = _int(info.get("master_last_io_seconds_ago"))
        return _Replica(
            role=str(info.get("role", "")),
            link=LinkState.UP if up else LinkState.DOWN,
            offset=_int(info.get("slave_repl_offset")),
            replid=_str(info.get("master_replid")),
            # Redis reports -1 for "not applicable" (link down; never connected).
            last_io=float(last_io) if last_io is not None and last_io >= 0 else None,
            down_for=float(down_for) if down_for is not None and down_for >= 0 else None,
            heartbeat=heartbeat,
            heartbeat_error=heartbeat_error,
        )

    async def _settle_on(self, written: float, replica: _Replica, deadline: float) -> _Replica:
        """Re-read the replica until it holds the heartbeat just written, or time is up.

        Across regions the replica receives the write one network hop after the
        source acknowledged it: without this wait a healthy link would read the
        previous heartbeat's age (the poll interval).
        """
        loop = asyncio.get_running_loop()
        until = min(loop.time() + self._settle, deadline)
        try:
            async with asyncio.timeout_at(until):
                # The clock bounds the loop as well as the timeout: on Python 3.11 a
                # wait_for inside redis-py can swallow the cancellation that ends the
                # timeout, and a partitioned link would then keep this loop alive.
                while (
                    replica.heartbeat is None or replica.heartbeat < written
                ) and loop.time() < until:
                    await asyncio.sleep(_SETTLE_STEP)
                    replica = await self._read_replica()
        except (RedisError, OSError, TimeoutError):
            pass  # the last complete read stands: its heartbeat age is an honest figure
        return replica

    def _judge(self, source: _Source, replica: _Replica) -> ReplicationSample:
        errors = [e for e in (source.error, replica.heartbeat_error) if e]
        if replica.role != "slave":
            # After a failover the former replica is a master: the link is gone.
            errors.insert(0, f"not a replica (role {replica.role or 'unknown'})")
            return self._failed("; ".join(errors))
        now = self._clock.utcnow().timestamp()
        heartbeat_age = None if replica.heartbeat is None else max(0.0, now - replica.heartbeat)
        offset_lag = None
        if source.offset is not None and replica.offset is not None:
            if source.replid is not None and source.replid != replica.replid:
                errors.append("replica follows another replication stream than the source")
            else:
                # The source was read first, so a replica that caught up meanwhile
                # can show a higher offset: that is no lag.
                offset_lag = max(0, source.offset - replica.offset)
        lag, basis, floor = None, LagBasis.NONE, False
        if replica.link is LinkState.DOWN:
            known = [x for x in (heartbeat_age, replica.down_for) if x is not None]
            if known:
                lag, basis, floor = max(known), LagBasis.LINK_DOWN, True
        elif heartbeat_age is not None:
            lag, basis = heartbeat_age, LagBasis.HEARTBEAT
        elif replica.last_io is not None:
            # No heartbeat (read-only, or none has reached the replica yet).
            lag, basis = replica.last_io, LagBasis.LAST_IO
        return ReplicationSample(
            spec=self.spec,
            at=self._clock.monotonic(),
            wall=self._clock.utcnow(),
            link=replica.link,
            lag_seconds=lag,
            lag_basis=basis,
            lag_is_floor=floor,
            offset_lag_bytes=offset_lag,
            last_io_seconds=replica.last_io,
            link_down_seconds=replica.down_for,
            error="; ".join(errors) or None,
        )

    def _failed(self, error: str) -> ReplicationSample:
        return ReplicationSample(
            spec=self.spec, at=self._clock.monotonic(), wall=self._clock.utcnow(), error=error
        )


def _int(value: object) -> int | None:
    # redis-py parses INFO numbers already; anything else is a field we cannot use.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    # A replication id is hex: redis-py turns an all-digit one into an int.
    return None if value is None else str(value)
