"""The STOP-pattern failover flag in one region's Redis: a small hash.

Reads return a FlagSample and writes return an error text or None: nothing here
raises for a store that is down, hung or answering garbage.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from collectors.redis_common import open_redis, redis_error_text
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
        self._client = open_redis(url, timeout_seconds)

    async def read(self) -> FlagSample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._client.hgetall(self.key)
        except (RedisError, OSError, TimeoutError) as exc:
            return FlagSample(
                self.region_id, at, wall, reachable=False, error=redis_error_text(exc)
            )
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
            return redis_error_text(exc)
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
