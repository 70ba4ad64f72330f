"""The STOP-pattern failover flag in one region's Redis: a small hash.

Reads return a FlagSample and writes return an error text or None: nothing here
raises for a store that is down, hung or answering garbage.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from noc.clock import Clock
from noc.model import FailoverFlag, FlagSample, mask_url


class FlagStore:
    def __init__(
        self, region_id: str, url: str, key: str, timeout_seconds: float, clock: Clock
    ) -> None:
        self.region_id = region_id
        self.key = key
        self.display_url = mask_url(url)
        self._timeout = timeout_seconds
        self._clock = clock
        # No retries: a dead store must cost one timeout, not several; the caller
        # polls again on its own schedule.
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    async def read(self) -> FlagSample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._client.hgetall(self.key)
        except (RedisError, OSError, TimeoutError) as exc:
            return FlagSample(self.region_id, at, wall, reachable=False, error=_describe(exc))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return FlagSample(
            self.region_id, at, wall, reachable=True, flag=FailoverFlag.from_mapping(fields)
        )

    async def write(self, flag: FailoverFlag) -> str | None:
        """Replace the flag in one round trip; returns why it failed, or None."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.delete(self.key)
                    mapping: dict[FieldT, EncodableT] = {k: v for k, v in flag.as_mapping().items()}
                    pipe.hset(self.key, mapping=mapping)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            return _describe(exc)
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text[:120]
