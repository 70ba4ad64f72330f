"""`noc agent`: the scheduler and collectors with no screen, publishing to the control plane.

One agent per vantage point. It judges the estate with the same scheduler and engine
a dashboard runs (one path), and publishes:

- every sample its loops ingest, to the observation stream (XADD MAXLEN ~);
- every `report_interval_seconds`, its engine's verdicts and its cut-off state into
  its own field of the vantages hash, with `last_seen` (its heartbeat).

The control plane being away is not fatal: the agent keeps probing, holds at most
`buffer_max_entries` observations (the oldest go first, counted and logged) and
publishes again when Redis answers. Notifications and automated failover are not run
by agents yet (one leader must run them; see the README's "Agents").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections import deque
from dataclasses import dataclass

from redis.exceptions import RedisError

from noc.clock import Clock
from noc.config import ControlConfig, NocConfig
from noc.control import ControlKeys, connect, observation_fields, report_of
from noc.model import EstateSnapshot
from noc.scheduler import Scheduler, end_tasks

log = logging.getLogger(__name__)

# Observations sent to Redis in one pipeline: a round trip per this many.
BATCH_ENTRIES = 500
# After a failed write to the control plane, the next try waits this long (doubling).
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
# A changed sample is looked at for a changed verdict at most this often: the engine's
# snapshot is not free, and samples of a large estate arrive every millisecond.
CHANGE_CHECK_SECONDS = 0.1
# A shutdown's last report and flush get this long; a dead Redis must not hold SIGTERM.
FINAL_FLUSH_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Pending:
    seq: int
    fields: dict[str, str]


class ObservationBuffer:
    """Observations waiting for the control plane: bounded, oldest dropped first.

    Entries carry a sequence number, so a batch that was sent is removed by number
    even if, meanwhile, overflow pushed some of it out."""

    def __init__(self, max_entries: int) -> None:
        self._entries: deque[_Pending] = deque(maxlen=max_entries)
        self._seq = 0
        self.dropped = 0
        self.ready = asyncio.Event()

    def offer(self, fields: dict[str, str]) -> None:
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._seq += 1
        self._entries.append(_Pending(self._seq, fields))
        self.ready.set()

    def batch(self, size: int) -> list[_Pending]:
        return [entry for _, entry in zip(range(size), self._entries, strict=False)]

    def sent(self, through_seq: int) -> None:
        while self._entries and self._entries[0].seq <= through_seq:
            self._entries.popleft()
        if not self._entries:
            self.ready.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Agent:
    def __init__(self, config: NocConfig, control: ControlConfig, vantage: str, clock: Clock):
        self._changed = asyncio.Event()
        self.config = config
        self.control = control
        self.vantage = vantage
        self.clock = clock
        self.keys = ControlKeys.of(config, control)
        self.buffer = ObservationBuffer(control.buffer_max_entries)
        self.redis = connect(control)
        self.scheduler = Scheduler(
            config, clock, observer=self.observe, on_change=self._changed.set
        )
        self._reported_drops = 0
        # The verdicts last published (region healths, cut off): a change of them is
        # published at once, not at the next interval.
        self._published: tuple[object, ...] = ()

    def observe(self, kind: str, sample: object) -> None:
        """The scheduler's observer: every sample ingested, queued for the stream."""
        try:
            self.buffer.offer(observation_fields(self.vantage, kind, sample))
        except (TypeError, ValueError):  # a sample JSON cannot carry: a bug, not a stop
            log.exception("observation of kind %s cannot be published", kind)

    async def report(self) -> None:
        """This vantage's verdicts and heartbeat, into its field of the vantages hash."""
        snapshot = self.scheduler.engine.snapshot()
        body = report_of(
            self.vantage, snapshot, self.control.report_interval_seconds, self.clock.utcnow()
        )
        await self.redis.hset(self.keys.vantages, self.vantage, json.dumps(body))
        self._published = _verdicts(snapshot)

    def _verdicts_changed(self) -> bool:
        return _verdicts(self.scheduler.engine.snapshot()) != self._published

    async def flush(self) -> None:
        """Send what is buffered, a pipeline of XADDs per batch."""
        while len(self.buffer):
            batch = self.buffer.batch(BATCH_ENTRIES)
            pipe = self.redis.pipeline(transaction=False)
            for entry in batch:
                pipe.xadd(
                    self.keys.observations,
                    entry.fields,  # type: ignore[arg-type]
                    maxlen=self.control.stream_max_entries,
                    approximate=True,
                )
            await pipe.execute()
            self.buffer.sent(batch[-1].seq)
        if self.buffer.dropped != self._reported_drops:
            log.warning(
                "control plane: %d observations dropped so far (buffer of %d full)",
                self.buffer.dropped, self.control.buffer_max_entries,
            )  # fmt: skip
            self._reported_drops = self.buffer.dropped

    async def _publish_loop(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            await self.buffer.ready.wait()
            try:
                await self.flush()
                delay = FIRST_RETRY_SECONDS
            except (RedisError, OSError) as exc:
                log.warning("control plane: cannot publish observations: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _report_loop(self) -> None:
        """A report every interval (the heartbeat), and one as soon as a verdict
        changes: a sample changes the engine, and at most every CHANGE_CHECK_SECONDS
        the verdicts are compared with those last published."""
        interval = self.control.report_interval_seconds
        while True:
            try:
                await self.report()
            except (RedisError, OSError) as exc:
                log.warning("control plane: cannot publish this vantage's report: %s", exc)
            due = self.clock.monotonic() + interval
            while (left := due - self.clock.monotonic()) > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._changed.wait()
                        await asyncio.sleep(min(CHANGE_CHECK_SECONDS, left))
                if self._verdicts_changed():
                    break

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "agent %s: %d checks, reporting every %g s to %s",
            self.vantage, len(self.scheduler.engine.targets),
            self.control.report_interval_seconds, self.keys.vantages,
        )  # fmt: skip
        self.scheduler.start()
        tasks = [
            asyncio.create_task(self._publish_loop(), name="noc:agent-publish"),
            asyncio.create_task(self._report_loop(), name="noc:agent-report"),
        ]
        try:
            await stop.wait()
            log.info("agent %s: stopping", self.vantage)
        finally:
            await end_tasks(tasks)
            await self.scheduler.stop()
            # The last word: what was seen up to now. Best effort, and bounded.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(FINAL_FLUSH_SECONDS):
                    await self.flush()
                    await self.report()
            await self.redis.aclose()


def _verdicts(snapshot: EstateSnapshot) -> tuple[object, ...]:
    return (snapshot.cut_off, tuple(region.health for region in snapshot.regions))


async def run_agent(config: NocConfig, control: ControlConfig, vantage: str, clock: Clock) -> int:
    """Run until SIGTERM or SIGINT; 0 when stopped so."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    try:
        await Agent(config, control, vantage, clock).run(stop)
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
    return 0
