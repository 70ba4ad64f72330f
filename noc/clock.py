"""Time, injected: every component that needs "now" receives a Clock.

The real clock pairs the monotonic clock (for intervals and detection timing)
with UTC wall time (for display and logs only). Tests use FakeClock and never
sleep.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def utcnow(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to; wall and monotonic time move together."""

    def __init__(self, start: datetime | None = None, monotonic_start: float = 1000.0) -> None:
        self._wall = start or datetime(2026, 11, 23, 3, 0, 0, tzinfo=UTC)
        self._mono = monotonic_start

    def monotonic(self) -> float:
        return self._mono

    def utcnow(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)


def iso_utc(moment: datetime) -> str:
    """UTC ISO-8601 with a Z, to the second: how noc writes times in JSON and logs."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
