"""The notification outbox in the control plane, written only by the leader's token.

The file outbox (noc.notify.Outbox) is one process's; with agents, the leader sends
the pages and a standby must carry on where it stopped. So the outbox's records go to
a Redis list in the control plane instead of a file: the same records, the same fold
(the in-memory state is the fold of the list), so a new leader reads the list and
resumes what was pending, and what each channel was told.

Every write is fenced: a Lua script appends only if the caller's token is still the
newest one issued (noc.lease). A deposed leader's write (a "delivered" after a pause
past its lease) is refused and logged, and this outbox then stops: it forgets what it
held in memory, so its notifier has nothing left to send. Before each send the
notifier asks `may_send()`, one GET of the token, so a deposed leader that knows
nothing yet of its fall still sends nothing new. A send already on the wire when the
leader paused can still arrive after the new leader resent it: the message id (the
webhook's `delivery_id`, PagerDuty's dedup_key per episode) is the same in both, the
idempotency key by which a receiver tells a repeat.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from noc.clock import Clock
from noc.notify import COMPACT_BYTES, Outbox, PendingMessage

log = logging.getLogger(__name__)

Record = Mapping[str, Any]

# KEYS: the outbox list, the token counter. ARGV: token, then records.
_APPEND = """
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
return 1
"""
# The same, replacing the whole list with a compacted one (pending and told only).
_REWRITE = """
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 1 then redis.call('RPUSH', KEYS[1], unpack(ARGV, 2)) end
return 1
"""
_CURRENT = "return tonumber(redis.call('GET', KEYS[1]) or '0') == tonumber(ARGV[1]) and 1 or 0"


class Fenced(RuntimeError):
    """The control plane refused a write: another agent leads now."""


class SharedOutbox(Outbox):
    """An Outbox whose records live in a Redis list, appended under a fencing token."""

    def __init__(
        self,
        client: aioredis.Redis,
        key: str,
        token_key: str,
        token: int,
        clock: Clock,
        *,
        compact_bytes: int = COMPACT_BYTES,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(Path(key), clock, -1, compact_bytes)
        self._redis = client
        self.key = key
        self._token_key = token_key
        self.token = token
        self._on_fenced = on_fenced or (lambda _why: None)
        self.fenced: str | None = None
        self.stopped: str | None = None

    @classmethod
    async def take_over(
        cls,
        client: aioredis.Redis,
        key: str,
        token_key: str,
        token: int,
        clock: Clock,
        *,
        on_fenced: Callable[[str], None] | None = None,
    ) -> SharedOutbox:
        """Read and fold the list as the leader of term `token`, then write it back
        compacted (fenced: raises Fenced when that term is already over)."""
        outbox = cls(client, key, token_key, token, clock, on_fenced=on_fenced)
        raw = await client.lrange(key, 0, -1)
        damaged = 0
        for text in raw:
            try:
                outbox._apply(json.loads(text))
            except (ValueError, KeyError, TypeError, AttributeError):
                damaged += 1
        if damaged:
            log.warning("shared outbox %s: skipped %d unreadable records", key, damaged)
        await outbox._fenced_eval(_REWRITE, outbox._snapshot_records())
        if outbox.fenced is not None:
            raise Fenced(outbox.fenced)
        log.info(
            "shared outbox %s: term %d resumes %d pending message(s)",
            key, token, len(outbox.pending),
        )  # fmt: skip
        return outbox

    def stop_sending(self, why: str) -> None:
        """This term is over by the leader's own reckoning: nothing more is sent."""
        if self.stopped is None:
            self.stopped = why

    def in_flight(self) -> bool:
        return any(message.in_flight for message in self._pending.values())

    async def may_send(self, message: PendingMessage) -> bool:
        """Whether this leader's term is still the newest: asked before each send."""
        if self.fenced is not None or self.stopped is not None:
            return False
        try:
            current = await self._redis.eval(_CURRENT, 1, self._token_key, self.token)
        except (RedisError, OSError) as exc:
            # Unknown: the control plane is away. Sending would risk a page twice if a
            # standby took over meanwhile; waiting risks it late. Late it is: the
            # message stays pending, and the leader's lease lapses on its own if the
            # control plane stays away.
            log.warning("shared outbox: cannot confirm the term before sending: %s", exc)
            return False
        if not current:
            self._fence(f"term {self.token} is over: not sending {message.id}")
            return False
        return True

    def close(self) -> None:
        return None  # the Redis client is the agent's

    async def _commit(self, records: Sequence[Record]) -> None:
        async with self._write_lock:
            if self.fenced is not None:
                log.error(
                    "shared outbox: fenced write refused (term %d is over): %s",
                    self.token, ", ".join(str(r.get("op")) for r in records),
                )  # fmt: skip
                return
            for record in records:
                self._apply(record)
            lines = [_text(r) for r in records]
            size = sum(len(line) for line in lines)
            limit = max(self._compact_bytes, 2 * self._compacted_size)
            if self._dirty or self._size + size > limit:
                await self._fenced_eval(_REWRITE, self._snapshot_records())
            else:
                await self._fenced_eval(_APPEND, lines, grow=size)

    def _snapshot_records(self) -> list[str]:
        return [line for line in self._snapshot().decode().split("\n") if line]

    async def _fenced_eval(self, script: str, lines: list[str], *, grow: int = -1) -> None:
        try:
            async with asyncio.timeout(5.0):
                done = await self._redis.eval(
                    script, 2, self.key, self._token_key, self.token, *lines
                )
        except (RedisError, OSError, TimeoutError) as exc:
            # As the file outbox does: kept in memory, written whole at the next write.
            self._dirty = True
            self.write_error = f"shared outbox {self.key} not writable: {exc}"
            log.error("%s; undelivered messages are kept in memory only", self.write_error)
            return
        if not done:
            self._fence(
                f"the control plane refused a write of term {self.token}: another agent leads now"
            )
            return
        self._dirty = False
        self.write_error = None
        if grow < 0:
            self._size = self._compacted_size = sum(len(line) for line in lines)
        else:
            self._size += grow

    def _fence(self, why: str) -> None:
        if self.fenced is None:
            self.fenced = why
            log.error("FENCED: %s; this agent sends nothing more", why)
            # Nothing left to send: the new leader has the list.
            self._pending.clear()
            self._queued.clear()
            self._on_fenced(why)


def _text(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
