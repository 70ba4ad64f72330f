"""One leader among the agents: a lease in the control plane with a fencing token.

Exactly one agent at a time runs automated failover and sends notifications. The
lease is a key in the control plane that expires by itself (SET NX PX): whoever sets
it leads until it expires, and renews it well before (every third of the lease, so
two renewals can fail before it is lost). Each acquisition takes the next value of a
counter (INCR): the fencing token. A leader can be deposed without knowing it (a
pause longer than its lease: a stopped process, a VM migration, a long GC); its
clock then says it still leads while another agent already does. So belief is not
enough: every write of the failover path carries the token, and the place written
refuses a token older than the newest it has seen (Kleppmann's fencing). The control
plane's own writes (the shared outbox) are refused unless the token is the newest
issued; a region's flag store keeps the highest token it was shown.

`LeaseModel` is the pure rule book (no I/O, the caller passes `now`): the Lua scripts
below do the same on Redis, and a Hypothesis state machine checks the model's
promises (tests/unit/test_lease.py). `LeaderLease` is the Redis side.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

# A leader renews when this share of its lease has passed: before half, so one
# failed renewal still leaves time for another.
RENEW_FRACTION = 1 / 3
# A standby asks again at the latest this share of the lease after it last asked, and
# otherwise the moment the holder's lease will have lapsed (as the server said).
STANDBY_FRACTION = 1 / 3
# ... plus this much, so that it asks after the key is gone, not just before.
STANDBY_MARGIN_SECONDS = 0.01
# A leader stops believing in its lease this share of the lease before the lease
# would expire on the server: its own clock and Redis's may drift apart a little.
SAFETY_FRACTION = 0.1


# --- the rule book, pure ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the lease: the agent, its token, and since when (UTC) it leads."""

    vantage: str
    token: int
    since: str
    # The lease's value exactly as the control plane holds it: a renewal compares it
    # byte for byte (Lua's JSON and Python's need not spell the same object alike).
    text: str = field(default="", compare=False)

    @classmethod
    def from_text(cls, text: str) -> Holder | None:
        try:
            raw = json.loads(text)
            return cls(str(raw["vantage"]), int(raw["token"]), str(raw["since"]), text)
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(slots=True)
class LeaseModel:
    """What the control plane holds: the lease (holder and expiry) and the newest token
    issued. Times are seconds on one clock (the server's)."""

    holder: Holder | None = None
    expires_at: float = 0.0
    newest_token: int = 0

    def current(self, now: float) -> Holder | None:
        if self.holder is not None and now >= self.expires_at:
            self.holder = None  # PX: the key is gone once its time is up
        return self.holder

    def acquire(self, vantage: str, since: str, now: float, lease: float) -> Holder | None:
        """SET NX PX + INCR in one step: the new holder, or None while one holds it."""
        if self.current(now) is not None:
            return None
        self.newest_token += 1
        self.holder = Holder(vantage, self.newest_token, since)
        self.expires_at = now + lease
        return self.holder

    def renew(self, holder: Holder, now: float, lease: float) -> bool:
        """Push the expiry back, only while `holder` still holds it."""
        if self.current(now) != holder:
            return False
        self.expires_at = now + lease
        return True

    def release(self, holder: Holder, now: float) -> bool:
        if self.current(now) != holder:
            return False
        self.holder = None
        return True

    def fenced_write_allowed(self, token: int) -> bool:
        """A write of the failover path into the control plane: only the newest token."""
        return token == self.newest_token


def fence_allows(highest_seen: int, token: int) -> bool:
    """A region store's rule: a token older than the highest it was shown is refused."""
    return token >= highest_seen


@dataclass(frozen=True, slots=True)
class Belief:
    """What a leader may assume from its own (monotonic) clock: when it got or last
    renewed the lease, it may act until `valid_until` and should renew at `renew_at`."""

    holder: Holder
    renewed_at: float
    lease: float

    @property
    def renew_at(self) -> float:
        return self.renewed_at + self.lease * RENEW_FRACTION

    @property
    def valid_until(self) -> float:
        return self.renewed_at + self.lease * (1 - SAFETY_FRACTION)

    def valid(self, now: float) -> bool:
        return now < self.valid_until


# --- on Redis -------------------------------------------------------------------------

# KEYS: lease, token counter. ARGV: vantage, since, lease ms.
_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then return {0, held, redis.call('PTTL', KEYS[1])} end
local token = redis.call('INCR', KEYS[2])
local body = cjson.encode({vantage = ARGV[1], token = token, since = ARGV[2]})
redis.call('SET', KEYS[1], body, 'PX', ARGV[3])
return {token, body, tonumber(ARGV[3])}
"""
# KEYS: lease. ARGV: the holder's text, lease ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLease:
    """The lease on the control plane. `try_acquire`, `renew`, `release` return what
    happened; Redis errors are the caller's (it retries on its own schedule)."""

    def __init__(self, client: aioredis.Redis, lease_key: str, token_key: str) -> None:
        self._client = client
        self.lease_key = lease_key
        self.token_key = token_key

    async def try_acquire(
        self, vantage: str, since: datetime, lease_seconds: float
    ) -> tuple[bool, Holder, float]:
        """(acquired, the holder now, seconds its lease has left): this agent's new
        term when it got the lease, else whoever holds it and until when, so a
        standby can ask again the moment it lapses."""
        token, body, left_ms = await self._client.eval(
            _ACQUIRE, 2, self.lease_key, self.token_key,
            vantage, since.isoformat(), _ms(lease_seconds),
        )  # fmt: skip
        holder = Holder.from_text(str(body))
        if holder is None:
            raise ValueError(f"lease {self.lease_key} holds something else: {body!r}")
        return bool(int(token)), holder, max(0, int(left_ms)) / 1000

    async def renew(self, holder: Holder, lease_seconds: float) -> bool:
        kept = await self._client.eval(_RENEW, 1, self.lease_key, holder.text, _ms(lease_seconds))
        return bool(kept)

    async def release(self, holder: Holder) -> bool:
        gone = await self._client.eval(_RELEASE, 1, self.lease_key, holder.text)
        return bool(gone)

    async def holder(self) -> Holder | None:
        text = await self._client.get(self.lease_key)
        return Holder.from_text(str(text)) if text else None


async def read_leader(client: aioredis.Redis, lease_key: str) -> Holder | None:
    text = await client.get(lease_key)
    return Holder.from_text(str(text)) if text else None


def leader_json(holder: Holder | None) -> dict[str, Any] | None:
    """`noc check --json`'s "leader"."""
    return None if holder is None else {"vantage": holder.vantage, "since": holder.since}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
