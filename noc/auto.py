"""Automated failover (STOP pattern): when to act, and the operator's pause switch.

Off unless `[failover] auto = true`. A region in a maintenance window is left
alone: the automation neither fails over away from it while it is active (its
downtime is the planned work; the count starts when the window ends) nor onto it.
 When the active region has been DOWN for
`auto_after_seconds`, noc is not cut off, and a healthy standby exists, `due()`
names the target; the caller then plans as an operator would, with no override:
every safety rule must pass (cooldown included), or the automation holds and says
why. It acts once, then stays FIRED until an operator re-arms it with the pause
switch, and it never fails back: a failover never targets the primary.

The pause switch is an operator act, so it is journalled (append-only, fsynced)
and survives a restart.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noc.audit import JsonlLog, read_jsonl
from noc.clock import Clock
from noc.config import NocConfig
from noc.model import AutoMode, AutoStatus, EstateSnapshot, Health, MaintenanceWindow, Role

# A held automation asks the actuators again at most this often: each try is a
# DNS probe and a lock read, not something to repeat every second.
RETRY_SECONDS = 10.0


def auto_operator() -> dict[str, str]:
    return {"operator": f"noc-auto@{socket.gethostname()}", "automated": "true"}


class AutoFailover:
    def __init__(
        self,
        config: NocConfig,
        clock: Clock,
        journal_path: Path | None,
        *,
        read_only: bool = False,
    ) -> None:
        # A read-only screen (a wall, a browser) never acts, so it shows no automation
        # of its own either: the process that can act shows it.
        self.enabled = config.failover.auto and not read_only
        self.after = config.failover.auto_after_seconds
        self._clock = clock
        self._journal = JsonlLog(journal_path, clock) if journal_path is not None else None
        switch = _last_switch(journal_path) if journal_path is not None else {}
        self.paused = switch.get("event") == "paused"
        # Fired stays fired across a restart: only an operator's resume re-arms it.
        self.fired: str | None = switch.get("detail") if switch.get("event") == "fired" else None
        self.held: str | None = None
        self._held_rules: tuple[str, ...] = ()
        self.acting = False
        self._down_region: str | None = None
        self._down_since: float | None = None
        self._last_try: float | None = None
        # The active region's maintenance window: nothing is counted while it lasts.
        self.maintenance: MaintenanceWindow | None = None

    def observe(self, snapshot: EstateSnapshot) -> None:
        """Follow how long the active region has been down."""
        active = snapshot.region(snapshot.active_region) if snapshot.active_region else None
        now = self._clock.monotonic()
        self.maintenance = active.maintenance if active is not None else None
        if active is None or active.health is not Health.DOWN or self.maintenance is not None:
            self._down_region = self._down_since = None
            self.held = None
            self._held_rules = ()
        elif self._down_region != active.id:
            self._down_region, self._down_since = active.id, now

    def down_seconds(self) -> float | None:
        if self._down_since is None:
            return None
        return self._clock.monotonic() - self._down_since

    def due(self, snapshot: EstateSnapshot) -> str | None:
        """The region to fail over to now, or None; call after `observe()`."""
        down = self.down_seconds()
        if not self.enabled or self.paused or self.fired or self.acting or down is None:
            return None
        if down < self.after:
            return None
        now = self._clock.monotonic()
        if self._last_try is not None and now - self._last_try < RETRY_SECONDS:
            return None
        self._last_try = now
        if snapshot.cut_off:
            self.held = "noc is cut off: its own view cannot be trusted"
            return None
        target = next(
            (
                region.id
                for region in snapshot.regions
                if region.id != snapshot.active_region
                and region.role is not Role.PRIMARY
                and region.health is Health.HEALTHY
                and region.maintenance is None
            ),
            None,
        )
        if target is None:
            self.held = "no healthy standby (out of maintenance) to fail over to"
        return target

    def status(self) -> AutoStatus | None:
        if not self.enabled:
            return None
        if self.paused:
            return AutoStatus(AutoMode.PAUSED, "paused by an operator")
        if self.fired:
            return AutoStatus(AutoMode.FIRED, self.fired)
        if self.maintenance is not None:
            window = self.maintenance
            return AutoStatus(
                AutoMode.HELD,
                f"{window.region} in maintenance until {window.until:%H:%M} UTC: not acting",
            )
        down = self.down_seconds()
        if self.held and down is not None and down >= self.after:
            return AutoStatus(AutoMode.HELD, self.held)
        if down is not None:
            return AutoStatus(
                AutoMode.COUNTING,
                f"{self._down_region} down {down:.0f}/{self.after:g} s",
            )
        return AutoStatus(AutoMode.ARMED, f"acts {self.after:g} s after the active region is down")

    def hold(self, reason: str, rules: tuple[str, ...]) -> bool:
        """Held back by these rules; True when they differ from the last hold."""
        self.held = reason
        changed = rules != self._held_rules
        self._held_rules = rules
        return changed

    async def record_fired(self, detail: str, operator: Mapping[str, str]) -> None:
        self.fired = detail
        if self._journal is not None:
            await self._journal.aappend("fired", detail=detail, **operator)

    async def retract_fired(self, reason: str, operator: Mapping[str, str]) -> None:
        """It tried, but nothing was changed: not fired, held back with the reason."""
        self.fired = None
        self.hold(reason, ("aborted",))
        if self._journal is not None:
            await self._journal.aappend("retracted", detail=reason, **operator)

    async def set_paused(self, paused: bool, operator: Mapping[str, str]) -> None:
        """The pause switch; resuming also re-arms an automation that has fired."""
        self.paused = paused
        if not paused:
            self.fired = None
            self.held = None
            self._last_try = None
        if self._journal is not None:
            await self._journal.aappend("paused" if paused else "resumed", **operator)


def _last_switch(path: Path) -> dict[str, Any]:
    """The journal's last word on the switch: paused, resumed, fired or retracted."""
    records = read_jsonl(path).records
    return next(
        (
            r
            for r in reversed(records)
            if r.get("event") in ("paused", "resumed", "fired", "retracted")
        ),
        {},
    )
