"""Supervised polling: one asyncio task per source, feeding the engine.

Each check has its own loop, so a hanging endpoint delays nothing else, and
never more than one probe of a check is in flight (the loop awaits its probe
before scheduling the next). Flag stores back off while unreachable. Nothing
here blocks: everything is awaited on the event loop it runs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from collectors.flag_store import FlagStore
from collectors.http import HttpHealthCollector
from noc.alert_journal import AlertJournal
from noc.clock import Clock
from noc.config import NocConfig
from noc.engine import Engine
from noc.model import AlertNotice, CheckSample, CheckTarget, ErrorKind, FlagSample, ProbeError

log = logging.getLogger(__name__)

MAX_STORE_BACKOFF_SECONDS = 60.0
ALERT_TICK_SECONDS = 1.0


class Scheduler:
    def __init__(
        self,
        config: NocConfig,
        clock: Clock,
        *,
        single_round: bool = False,
        on_change: Callable[[], None] | None = None,
        on_alerts: Callable[[list[AlertNotice]], None] | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.engine = Engine(config, clock, single_round=single_round)
        self.collector = HttpHealthCollector(clock, max_in_flight=config.health.max_in_flight)
        self.stores = {
            r.id: FlagStore(
                r.id,
                r.redis_url,
                config.failover.flag_key,
                config.failover.store_timeout_seconds,
                clock,
            )
            for r in config.regions
            if r.redis_url
        }
        self._on_change = on_change or (lambda: None)
        self._on_alerts = on_alerts or (lambda _: None)
        # No journal for one-shot rounds (`noc check`): a probe leaves no state behind.
        self.journal = AlertJournal(state_dir / "alerts.jsonl", clock) if state_dir else None
        if self.journal is not None:
            damaged = self.journal.restore(self.engine.alerts)
            if damaged:
                log.warning(
                    "alert journal %s: skipped %d damaged lines", self.journal.path, len(damaged)
                )
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: dict[str, asyncio.Event] = {}

    async def collect_once(self) -> None:
        """One probe of every check and one read of every store, all at once."""
        samples = await asyncio.gather(*(self._probe(t) for t in self.engine.targets))
        for sample in samples:
            self.engine.ingest(sample)
        await self.read_flags()
        await self.evaluate_alerts()

    async def evaluate_alerts(self) -> None:
        notices = self.engine.evaluate_alerts()
        if not notices:
            return
        if self.journal is not None:
            await self.journal.record(notices)
        self._on_alerts(notices)
        self._on_change()

    async def read_flags(self) -> None:
        for sample in await asyncio.gather(*(s.read() for s in self.stores.values())):
            self.engine.ingest_flag(sample)
        self._on_change()

    def start(self) -> None:
        for target in self.engine.targets:
            self._spawn(target.check_id, self._check_loop(target))
        for region_id, store in self.stores.items():
            self._spawn(f"store:{region_id}", self._store_loop(store))
        self._spawn("alerts", self._alert_loop())

    def poll_now(self) -> None:
        """Wake every loop for an immediate round (the operator pressed refresh)."""
        for event in self._wake.values():
            event.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.collector.aclose()
        for store in self.stores.values():
            await store.aclose()

    def _spawn(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        self._wake[name] = asyncio.Event()
        self._tasks.append(asyncio.create_task(loop, name=f"noc:{name}"))

    async def _alert_loop(self) -> None:
        while True:
            try:
                await self.evaluate_alerts()
            except Exception:  # a failed journal write must not stop alerting
                log.exception("alert evaluation failed")
            await asyncio.sleep(ALERT_TICK_SECONDS)

    async def _check_loop(self, target: CheckTarget) -> None:
        next_due = self.clock.monotonic()
        while True:
            self.engine.ingest(await self._probe(target))
            self._on_change()
            next_due += target.interval_seconds
            # Anchored to the schedule, so detection time stays threshold x interval;
            # after a stall we skip missed rounds rather than burst.
            next_due = max(next_due, self.clock.monotonic())
            await self._sleep(target.check_id, next_due - self.clock.monotonic())
            if self._woken(target.check_id):
                next_due = self.clock.monotonic()

    async def _store_loop(self, store: FlagStore) -> None:
        name = f"store:{store.region_id}"
        interval = self.config.failover.flag_interval_seconds
        delay = interval
        while True:
            sample = await self._read(store)
            self.engine.ingest_flag(sample)
            self._on_change()
            delay = interval if sample.reachable else min(delay * 2, MAX_STORE_BACKOFF_SECONDS)
            await self._sleep(name, delay)
            if self._woken(name):
                delay = interval

    async def _sleep(self, name: str, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake[name].wait(), timeout=max(0.0, seconds))

    def _woken(self, name: str) -> bool:
        event = self._wake[name]
        woken = event.is_set()
        event.clear()
        return woken

    async def _probe(self, target: CheckTarget) -> CheckSample:
        try:
            # The collector has its own deadline; this one only guards against a bug.
            async with asyncio.timeout(target.timeout_seconds + 5):
                return await self.collector.probe(target)
        except Exception as exc:  # a broken probe must not kill its loop
            log.exception("probe of %s failed unexpectedly", target.display_url)
            return CheckSample(
                check_id=target.check_id,
                region_id=target.region_id,
                at=self.clock.monotonic(),
                wall=self.clock.utcnow(),
                ok=False,
                # As the collector does for its own internal errors: noc could not
                # probe, which says nothing about the endpoint.
                error=ProbeError(ErrorKind.NETWORK, f"internal error: {type(exc).__name__}"),
            )

    async def _read(self, store: FlagStore) -> FlagSample:
        try:
            return await store.read()
        except Exception as exc:  # a broken read must not kill its loop
            log.exception("flag read from %s failed unexpectedly", store.display_url)
            return FlagSample(
                store.region_id,
                self.clock.monotonic(),
                self.clock.utcnow(),
                reachable=False,
                error=f"internal error: {type(exc).__name__}",
            )
