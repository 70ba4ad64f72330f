"""Which view a wall screen shows, and when it moves on: pure, clock-driven.

The views rotate every `period` seconds. Any key pauses the rotation, so whoever
walks up to the screen can read and move around undisturbed; it resumes by itself
PAUSE_SECONDS after the last key, so a wall screen is never left stuck on one
view because someone brushed the keyboard.
"""

from __future__ import annotations

from collections.abc import Sequence

PAUSE_SECONDS = 120.0


class Rotation:
    def __init__(self, views: Sequence[str], period: float, now: float) -> None:
        if not views:
            raise ValueError("a rotation needs at least one view")
        self.views = tuple(views)
        self.period = period
        self._index = 0
        self._shown_at = now
        self._paused_until: float | None = None

    @property
    def current(self) -> str:
        return self.views[self._index]

    def show(self, view: str, now: float) -> None:
        """Show `view` now (the `v` key); its full period starts over."""
        self._index = self.views.index(view)
        self._shown_at = now

    def following(self) -> str:
        return self.views[(self._index + 1) % len(self.views)]

    def key_pressed(self, now: float) -> None:
        self._paused_until = now + PAUSE_SECONDS

    def paused(self, now: float) -> bool:
        return self._paused_until is not None and now < self._paused_until

    def tick(self, now: float) -> bool:
        """Move on if the current view's time is up; True when the view changed."""
        if self.paused(now) or len(self.views) == 1:
            return False
        if self._paused_until is not None:
            # Resuming: the view on screen gets a full period before moving on.
            self._paused_until = None
            self._shown_at = now
            return False
        if now - self._shown_at < self.period:
            return False
        self.show(self.following(), now)
        return True

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.period - (now - self._shown_at))
