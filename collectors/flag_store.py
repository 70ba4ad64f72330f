"""The STOP-pattern failover flag in one region's Redis: a small hash.

The same store holds the cross-process failover lock (a string set with NX and an
expiry, whose value names the holder) and the cooldown ack (a field of the flag).

Reads return a FlagSample and writes return an error text or None: nothing here
raises for a store that is down, hung or answering garbage.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from noc.clock import Clock
from noc.model import FailoverFlag, FlagSample, LockHolder, mask_url
from noc_collectors.redis_common import (
    auth_refused,
    maybe_sent,
    open_redis,
    redis_error_text,
    stale_connection,
)

# Compare-and-set on the flag's action id: what the failover (or its rollback)
# expects to replace must still be there.
_REPLACE_IF = """
if (redis.call('HGET', KEYS[1], 'action_id') or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return 1
"""
# The same, fenced (noc.lease): KEYS[2] holds the highest leader's token this store
# was shown; a write with an older one (a deposed leader's) is refused with -1, and a
# newer one raises the mark. ARGV: token, expected action id, fields.
_FENCED_REPLACE_IF = """
local highest = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[1])
if token < highest then return -highest end
if token > highest then redis.call('SET', KEYS[2], token) end
if (redis.call('HGET', KEYS[1], 'action_id') or '') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
return 1
"""
# A new leader shows the store its token: from then on, older ones are refused.
_RAISE_FENCE = """
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > highest then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0
"""
# Delete the lock only if it is still ours: a lock that expired and was taken by
# someone else must survive our release.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Extend the lock only while it is still ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Ack the cooldown of one failover only: if the flag has moved on since the
# operator looked, the ack would clear a cooldown nobody saw.
_ACK = """
if redis.call('HGET', KEYS[1], 'action_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cooldown_ack', ARGV[2])
return 1
"""


_SAY_WHY_SECONDS = 0.5

log = logging.getLogger(__name__)


class ReplaceOutcome(NamedTuple):
    replaced: bool
    error: str | None
    # False only when the command cannot have reached the store (no connection).
    sent: bool


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
        # Set by the leading agent: the failover path's writes then carry its token.
        self.fencing_token: int | None = None
        self.fence_key = f"{key}:fence"

    async def read(self) -> FlagSample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    raw = await self._client.hgetall(self.key)
                except RedisError as exc:
                    if not stale_connection(exc):
                        raise
                    # A read is safe to repeat: the store is judged on a fresh
                    # connection, so a password change shows as itself at once,
                    # not as "connection closed" for a poll.
                    raw = await self._client.hgetall(self.key)
        except (RedisError, OSError, TimeoutError) as exc:
            return FlagSample(
                self.region_id,
                at,
                wall,
                reachable=False,
                error=redis_error_text(exc),
                store_answered=auth_refused(exc),
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

    async def replace_if(
        self, expected_action_id: str, flag: FailoverFlag | None
    ) -> ReplaceOutcome:
        """Replace the flag (None: remove it) only if it is still `expected_action_id`'s
        ("" for no flag). A flag someone else wrote meanwhile is never overwritten, by a
        failover or by its rollback."""
        fields = [item for pair in (flag.as_mapping().items() if flag else ()) for item in pair]
        try:
            # A little past the client's own socket timeouts, so that its error (which
            # says whether it was still connecting) comes first.
            async with asyncio.timeout(self._timeout + _SAY_WHY_SECONDS):
                token = self.fencing_token
                if token is None:
                    done = await self._client.eval(
                        _REPLACE_IF, 1, self.key, expected_action_id, *fields
                    )
                else:
                    done = await self._client.eval(
                        _FENCED_REPLACE_IF, 2, self.key, self.fence_key,
                        token, expected_action_id, *fields,
                    )  # fmt: skip
        except (RedisError, OSError, TimeoutError) as exc:
            return ReplaceOutcome(False, redis_error_text(exc), maybe_sent(exc))
        if int(done) < 0:
            why = (
                f"fenced: leader token {self.fencing_token} is older than {-int(done)}, "
                "the newest this store has seen (another agent leads now); not written"
            )
            log.error("flag store %s (%s): %s", self.region_id, self.display_url, why)
            return ReplaceOutcome(False, why, True)
        return ReplaceOutcome(bool(done), None, True)

    async def raise_fence(self, token: int) -> str | None:
        """Show this store a new leader's token: older ones are refused from now on."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.eval(_RAISE_FENCE, 1, self.fence_key, token)
        except (RedisError, OSError, TimeoutError) as exc:
            return redis_error_text(exc)
        return None

    async def try_lock(
        self, key: str, holder: LockHolder, ttl_seconds: float
    ) -> tuple[bool, LockHolder | None, str | None]:
        """(acquired, the other holder when not, error): SET NX with an expiry."""
        try:
            async with asyncio.timeout(self._timeout):
                taken = await self._client.set(
                    key, holder.as_text(), nx=True, px=max(1, int(ttl_seconds * 1000))
                )
                if taken:
                    return True, None, None
                current = await self._client.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            return False, None, redis_error_text(exc)
        # Expired between SET and GET: nobody holds it, but this attempt did not get it.
        return False, LockHolder.from_text(_text(current)) if current else None, None

    async def read_lock(self, key: str) -> tuple[LockHolder | None, str | None]:
        try:
            async with asyncio.timeout(self._timeout):
                current = await self._client.get(key)
        except (RedisError, OSError, TimeoutError) as exc:
            return None, redis_error_text(exc)
        return (LockHolder.from_text(_text(current)) if current else None), None

    async def unlock(self, key: str, holder: LockHolder) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.eval(_RELEASE, 1, key, holder.as_text())
        except (RedisError, OSError, TimeoutError) as exc:
            return redis_error_text(exc)
        return None

    async def extend_lock(self, key: str, holder: LockHolder, ttl_seconds: float) -> bool:
        """Whether the lock is still ours here, its expiry pushed back by `ttl_seconds`."""
        try:
            async with asyncio.timeout(self._timeout):
                kept = await self._client.eval(
                    _EXTEND, 1, key, holder.as_text(), max(1, int(ttl_seconds * 1000))
                )
        except (RedisError, OSError, TimeoutError):
            return False
        return bool(kept)

    async def ack_cooldown(self, action_id: str, ack: str) -> tuple[bool, str | None]:
        """(acked, error): False without error when the flag is no longer that action's."""
        try:
            async with asyncio.timeout(self._timeout):
                done = await self._client.eval(_ACK, 1, self.key, action_id, ack)
        except (RedisError, OSError, TimeoutError) as exc:
            return False, redis_error_text(exc)
        return bool(done), None

    async def aclose(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
