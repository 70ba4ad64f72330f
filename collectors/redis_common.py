"""How every collector talks to Redis: hard timeouts, no retries, short error text."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError

_ERROR_LIMIT = 120


def open_redis(url: str, timeout_seconds: float, *, decode: bool = True) -> aioredis.Redis:
    """A pool for one store with hard socket timeouts and no retries.

    No retries: a dead store must cost one timeout, not several; the caller polls
    again on its own schedule.
    """
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        decode_responses=decode,
    )


def redis_error_text(exc: BaseException) -> str:
    """One short line for the screen; redis-py's messages never carry the URL's password."""
    # redis-py's own TimeoutError ("Timeout reading from host:port") is not the builtin.
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    # redis-py words a refused connect as "Error 111 connecting to ...": the cause
    # chain holds the plain fact.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return (" ".join(str(exc).split()) or type(exc).__name__)[:_ERROR_LIMIT]


def maybe_sent(exc: BaseException) -> bool:
    """Whether a failed command may still have reached the server: not when the
    connection itself could not be made (refused, or timed out connecting)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or "connecting" in str(cause):
            return False
        cause = cause.__cause__ or cause.__context__
    return True
