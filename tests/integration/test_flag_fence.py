"""The fence in a region's flag store (collectors/flag_store.py), on a real
redis-server: a new leader shows the store its token; a write carrying an older one
(a deposed leader's, delayed) is refused and leaves the flag as it was; a write with
the newest goes through; a process that leads nothing writes as before."""

from __future__ import annotations

from noc.clock import SystemClock
from noc.model import FailoverFlag
from noc.simulator import RedisServer
from noc_collectors.flag_store import FlagStore

FLAG = FailoverFlag("ro", None, "test", "writable", "2026-01-01T00:00:00Z", "A1")


async def test_a_deposed_leaders_flag_write_is_refused(redis_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/1"
    deposed = FlagStore("ro", url, "noc:failover", 2.0, SystemClock())
    leader = FlagStore("ro", url, "noc:failover", 2.0, SystemClock())
    try:
        deposed.fencing_token = 1
        assert (await deposed.replace_if("", FLAG)).replaced
        # Term 2 begins: the new leader shows the store its token.
        leader.fencing_token = 2
        assert await leader.raise_fence(2) is None

        moved = FailoverFlag("bg", "ro", "noc-auto", "failover", "2026-01-01T00:01:00Z", "B1")
        refused = await deposed.replace_if("A1", moved)
        assert not refused.replaced
        assert refused.error is not None and "fenced: leader token 1 is older than 2" in (
            refused.error
        )
        sample = await leader.read()
        assert sample.flag == FLAG  # untouched

        assert (await leader.replace_if("A1", moved)).replaced
        assert (await leader.read()).flag == moved
        # A raise to an older token changes nothing.
        assert await deposed.raise_fence(1) is None
        assert not (await deposed.replace_if("B1", FLAG)).replaced

        # Unfenced (no agent leads this process: the dashboard, the CLI): as before.
        plain = FlagStore("ro", url, "noc:failover", 2.0, SystemClock())
        try:
            assert (await plain.replace_if("B1", FLAG)).replaced
        finally:
            await plain.aclose()
    finally:
        await deposed.aclose()
        await leader.aclose()
