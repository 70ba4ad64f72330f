"""A store whose password changes: a real redis-server, its password changed with
CONFIG SET requirepass while noc's scheduler polls it.

Redis keeps connections that were already authenticated, so the change bites when
they are dropped (a restart, a failover of the store, CLIENT KILL): the test drops
them with CLIENT KILL, as a restart would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis

from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import StoreStatus
from noc.scheduler import Scheduler
from noc.simulator import RedisServer
from noc_collectors.flag_store import FlagStore
from noc_collectors.redis_common import AUTH_FAILED

INTERVAL = 0.3


def with_password(url: str, password: str) -> str:
    return url.replace("redis://", f"redis://:{password}@", 1)


def change_password(server: RedisServer, old: str | None, new: str) -> None:
    admin = redis.Redis.from_url(with_password(server.url, old) if old else server.url)
    try:
        admin.config_set("requirepass", new)
        # Drop every other client, as a restart of the store would.
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        admin.close()


async def until(condition: Callable[[], bool], within: float) -> float:
    """Seconds until `condition` held; fails after `within` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_refused_password_reads_as_authentication_failed(
    redis_server: RedisServer,
) -> None:
    change_password(redis_server, None, "old")
    store = FlagStore(
        "ro", with_password(redis_server.url, "old"), "noc:failover", 1, SystemClock()
    )
    try:
        assert (await store.read()).reachable
        change_password(redis_server, "old", "new")
        # The pooled connection was closed by the server: the very first read says
        # what is wrong, not "connection closed".
        sample = await store.read()
        assert not sample.reachable and sample.store_answered
        assert sample.error is not None and sample.error.startswith(AUTH_FAILED), sample.error
        assert "new" not in sample.error and "old" not in sample.error
    finally:
        await store.aclose()
    no_password = FlagStore("ro", redis_server.url, "noc:failover", 1, SystemClock())
    try:
        sample = await no_password.read()  # NOAUTH: a store that wants a password
        assert sample.error is not None and sample.error.startswith(AUTH_FAILED), sample.error
    finally:
        await no_password.aclose()


async def test_a_fixed_password_clears_at_the_next_poll(redis_server: RedisServer) -> None:
    change_password(redis_server, None, "old")
    config = parse_config(
        {
            "failover": {"flag_interval_seconds": INTERVAL, "store_timeout_seconds": 1},
            "regions": [
                {"id": "ro", "role": "primary", "redis_url": with_password(redis_server.url, "old")}
            ],
        }
    )
    scheduler = Scheduler(config, SystemClock())

    def store() -> StoreStatus:
        return scheduler.engine.snapshot().regions[0].store

    scheduler.start()
    try:
        await until(lambda: store().reachable is True, 5)
        change_password(redis_server, "old", "new")
        await until(lambda: store().reachable is False, 5)
        assert (store().error or "").startswith(AUTH_FAILED), store().error
        # Long enough for a dead store's backoff to have grown to 4 intervals.
        await asyncio.sleep(4 * INTERVAL)
        assert (store().error or "").startswith(AUTH_FAILED)
        change_password(redis_server, "new", "old")  # the operator puts it right
        cleared = await until(lambda: store().reachable is True, 5)
        # At the next poll: within one interval (plus scheduling slack), not two or more.
        assert cleared < INTERVAL + 0.2, f"cleared after {cleared:.2f} s"
    finally:
        await scheduler.stop()
