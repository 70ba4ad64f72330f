"""Run the demo estate on its own event loop in a background thread.

The simulated servers then never share the dashboard's event loop (as real
regions would not), and the estate's config exists before the app is built.
Fault injection crosses threads with run_coroutine_threadsafe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, TypeVar

from noc.config import NocConfig
from noc.model import Fault
from noc.simulator.estate import DemoEstate

T = TypeVar("T")

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class ThreadedDemo:
    """A DemoEstate behind a thread; implements noc.model.FaultInjector."""

    def __init__(self, estate: DemoEstate | None = None) -> None:
        self.estate = estate or DemoEstate()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="noc-demo", daemon=True)

    def start(self) -> NocConfig:
        self._thread.start()
        try:
            return self._call(self.estate.start(), START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self.estate.stop(), STOP_TIMEOUT_SECONDS)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_SECONDS)
            # A loop still running (the join timed out) cannot be closed; the daemon
            # thread dies with the process instead.
            if not self._thread.is_alive():
                self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def region_ids(self) -> Sequence[str]:
        return self.estate.region_ids()

    def current_fault(self, region_id: str) -> Fault | None:
        return self.estate.current_fault(region_id)

    def active_faults(self, region_id: str) -> Sequence[Fault]:
        return self.estate.active_faults(region_id)

    def inject(self, region_id: str, fault: Fault) -> Awaitable[None]:
        future = asyncio.run_coroutine_threadsafe(self.estate.inject(region_id, fault), self._loop)
        return asyncio.wrap_future(future)
