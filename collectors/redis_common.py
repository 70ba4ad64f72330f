"""How every collector talks to Redis: hard timeouts, no retries, short error text."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_ERROR_LIMIT = 120
# What the screen says when a store refuses noc's credentials: the store is up and
# answering, and the fix is the password in redis_url, not the network.
AUTH_FAILED = "authentication failed"


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


def auth_refused(exc: BaseException) -> bool:
    """Whether the store answered with a refusal of noc's credentials (a wrong or
    missing password): WRONGPASS, NOAUTH, or redis-py's AuthenticationError."""
    if isinstance(exc, AuthenticationError):
        return True
    if isinstance(exc, ResponseError):
        return str(exc).lstrip().upper().startswith(("WRONGPASS", "NOAUTH", "AUTHENTICATION"))
    return False


def stale_connection(exc: BaseException) -> bool:
    """A pooled connection the server closed while it sat idle (the server restarted,
    killed its clients, or a password change dropped them): not a finding about the
    store, which a fresh connection will judge."""
    return (
        isinstance(exc, RedisConnectionError)
        and not isinstance(exc, AuthenticationError | RedisTimeoutError)
        and "closed" in str(exc).lower()
    )


def redis_error_text(exc: BaseException) -> str:
    """One short line for the screen; redis-py's messages never carry the URL's password."""
    # redis-py's own TimeoutError ("Timeout reading from host:port") is not the builtin.
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    if auth_refused(exc):
        detail = " ".join(str(exc).split())
        return f"{AUTH_FAILED} ({detail})"[:_ERROR_LIMIT] if detail else AUTH_FAILED
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
