"""`noc agent`: the scheduler and collectors with no screen, publishing to the control plane.

One agent per vantage point. It judges the estate with the same scheduler and engine
a dashboard runs (one path), and publishes:

- every sample its loops ingest, to the observation stream (XADD MAXLEN ~);
- every `report_interval_seconds`, its engine's verdicts and its cut-off state into
  its own field of the vantages hash, with `last_seen` (its heartbeat).

The control plane being away is not fatal: the agent keeps probing, holds at most
`buffer_max_entries` observations (the oldest go first, counted and logged) and
publishes again when Redis answers.

One agent at a time leads (noc.lease): it holds the lease in the control plane,
renews it every third of `[control] lease_seconds`, and while it leads it sends the
notifications from the shared outbox (noc.shared_outbox) and its flag-store writes
carry its fencing token. The others stand by and ask for the lease as often; the
first to ask after the leader's lease lapsed leads, with the next token, and resumes
the outbox where the last leader left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from noc.audit import JsonlLog, default_audit_path
from noc.auto import AutoFailover, auto_operator
from noc.auto_run import run_automated_failover
from noc.clock import Clock
from noc.config import ControlConfig, NocConfig
from noc.control import (
    ControlKeys,
    alert_book_text,
    connect,
    observation_fields,
    parse_alert_book,
    quorum_overlay,
    read_shared,
    report_of,
    shared_snapshot,
    stamped,
)
from noc.lease import (
    STANDBY_FRACTION,
    STANDBY_MARGIN_SECONDS,
    Belief,
    Holder,
    LeaderLease,
)
from noc.model import ActionPlan, AlertState, EstateSnapshot
from noc.notify import Notifier
from noc.operations import Confirmation, Operations, OperatorIO
from noc.scheduler import Scheduler, end_tasks
from noc.shared_outbox import Fenced, SharedOutbox

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
# A leader stepping down lets a send already on the wire end this long at most (a
# channel's own timeout bounds it too), so the send's record is not lost unseen.
IN_FLIGHT_GRACE_SECONDS = 10.0
IN_FLIGHT_LOOK_SECONDS = 0.05
# After a failed lease call, the next waits at least this share of the lease.
LEASE_RETRY_FRACTION = 0.05
# The leader looks at the shared verdict for automation this often.
AUTO_TICK_SECONDS = 1.0
# The leader waits for operator events this long per read (then publishes its book if
# it changed): screens see a changed alert within about this.
OPERATOR_BLOCK_SECONDS = 0.25
# The shared audit stream's bound (XADD MAXLEN ~).
AUDIT_KEPT = 100_000
# KEYS: the stream, the token counter. ARGV: token, max length, then fields.
_FENCED_XADD = """
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
"""
# KEYS: the key, the token counter. ARGV: token, value. Set only by the newest term.
_FENCED_SET = """
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


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
        self.lease = LeaderLease(self.redis, self.keys.leader, self.keys.token)
        # What this agent may assume of its own term (None: it does not lead), and who
        # leads as last read.
        self.belief: Belief | None = None
        self.leader: Holder | None = None
        self._fenced = asyncio.Event()
        self._notifier_task: asyncio.Task[None] | None = None
        self._outbox: SharedOutbox | None = None
        # Automated failover, run by the leader only, on the vantages' shared verdict
        # (merged by quorum), never on this vantage's own view. Its fired/paused state
        # is the control plane's (see _automation_state), so a new leader does not
        # fire a second time.
        self.auto = AutoFailover(config, clock, None)
        self._audit = JsonlLog(default_audit_path(config), clock)
        self._shared: EstateSnapshot | None = None
        self._auto_task: asyncio.Task[None] | None = None
        self._acts_task: asyncio.Task[None] | None = None
        self._book_published = ""
        # How long a standby waits before asking for the lease again.
        self._standby_wait = control.lease_seconds * STANDBY_FRACTION

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

    # --- leading ---------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.belief is not None and self.belief.valid(self.clock.monotonic())

    async def _lead_loop(self) -> None:
        """Ask for the lease while standing by; renew it while leading; step down the
        moment the term cannot be confirmed in time or the control plane refused a
        write of it."""
        lease = self.control.lease_seconds
        said = ""
        while True:
            failed = False
            try:
                await self._lead_step(lease)
                said = ""
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                failed = True
                if str(exc) != said:  # once per kind of failure, not at every retry
                    said = str(exc)
                    log.warning("control plane: lease of %s: %s", self.keys.leader, exc)
            if self.belief is not None and not self.belief.valid(self.clock.monotonic()):
                await self._step_down("its lease could not be renewed in time")
            now = self.clock.monotonic()
            wait = self._standby_wait
            if self.belief is not None:
                wait = max(0.0, self.belief.renew_at - now)
            if failed:
                # An overdue renewal is retried at once, but not in a tight circle.
                wait = max(wait, lease * LEASE_RETRY_FRACTION)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._fenced.wait()
            if self._fenced.is_set():
                self._fenced.clear()
                await self._step_down("the control plane refused a write of its term")

    async def _lead_step(self, lease: float) -> None:
        asked = self.clock.monotonic()
        if self.belief is None:
            acquired, holder, left = await self.lease.try_acquire(
                self.vantage, self.clock.utcnow(), lease
            )
            self.leader = holder
            self._standby_wait = min(lease * STANDBY_FRACTION, left + STANDBY_MARGIN_SECONDS)
            if acquired:
                self.belief = Belief(holder, asked, lease)
                await self._take_office(holder)
        elif await self.lease.renew(self.belief.holder, lease):
            self.belief = Belief(self.belief.holder, asked, lease)
        else:
            self.leader = await self.lease.holder()
            await self._step_down("another agent holds the lease")

    async def _take_office(self, holder: Holder) -> None:
        log.warning("agent %s leads (term %d)", self.vantage, holder.token)
        for store in self.scheduler.stores.values():
            # Kept after stepping down: a deposed agent's writes then carry a token the
            # stores refuse, never none.
            store.fencing_token = holder.token
            problem = await store.raise_fence(holder.token)
            if problem is not None:
                # That store refuses older tokens once it is shown this one, at this
                # leader's first write there.
                log.warning("flag store %s: fence not raised yet: %s", store.region_id, problem)
        # Its alerts are judged on the vantages' verdict from now on (see _auto_loop),
        # read once before: a term must not begin on this vantage's view alone.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            reports, leader = await read_shared(self.redis, self.keys)
            self._shared = shared_snapshot(self.config, reports, self.clock, leader)
        self.scheduler.engine.verdict_overlay = lambda own: quorum_overlay(own, self._shared)
        if self.auto.enabled:
            await self._restore_automation()
        self._auto_task = asyncio.create_task(self._auto_loop(), name="noc:agent-lead-work")
        self._acts_task = asyncio.create_task(
            self._operator_loop(holder.token), name="noc:agent-operator-events"
        )
        if self.config.notify:
            try:
                outbox = await SharedOutbox.take_over(
                    self.redis, self.keys.outbox, self.keys.token, holder.token, self.clock,
                    on_fenced=lambda _why: self._fenced.set(),
                )  # fmt: skip
            except Fenced as exc:
                await self._step_down(str(exc))
                return
            notifier = Notifier(
                self.config.notify, outbox, self.clock,
                estate=self.config.estate.name, adopt_by_key=True,
            )  # fmt: skip
            self.scheduler.notifier = notifier
            self._outbox = outbox
            self._notifier_task = asyncio.create_task(notifier.run(), name="noc:agent-notify")

    async def _step_down(self, why: str) -> None:
        if self.belief is None:
            return
        log.warning(
            "agent %s steps down (term %d): %s", self.vantage, self.belief.holder.token, why
        )
        self.belief = None
        self.scheduler.engine.verdict_overlay = None
        if self._auto_task is not None:
            await end_tasks([self._auto_task])
            self._auto_task = None
        if self._acts_task is not None:
            await end_tasks([self._acts_task])
            self._acts_task = None
        notifier, self.scheduler.notifier = self.scheduler.notifier, None
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            # Nothing new leaves from here on; a send already on the wire is let end,
            # and its record meets the fence (a deposed term's is refused and logged)
            # rather than vanish with a cancelled task.
            outbox.stop_sending(why)
            for _ in range(int(IN_FLIGHT_GRACE_SECONDS / IN_FLIGHT_LOOK_SECONDS)):
                if not outbox.in_flight():
                    break
                await asyncio.sleep(IN_FLIGHT_LOOK_SECONDS)
        if self._notifier_task is not None:
            await end_tasks([self._notifier_task])
            self._notifier_task = None
        if notifier is not None:
            await notifier.aclose()

    async def _auto_loop(self) -> None:
        """The leader's view of the vantages together, read every AUTO_TICK_SECONDS:
        what its alert rules judge (the engine's verdict overlay) and, when automated
        failover is on, what it acts on."""
        while True:
            try:
                await self._auto_tick()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("leader: cannot read the shared state: %s", exc)
            await asyncio.sleep(AUTO_TICK_SECONDS)

    async def _auto_tick(self) -> None:
        reports, leader = await read_shared(self.redis, self.keys)
        if not reports:
            return
        shared = shared_snapshot(self.config, reports, self.clock, leader)
        self._shared = shared
        if not self.auto.enabled:
            return
        self.auto.observe(shared)
        target = self.auto.due(shared)
        # Its state is an alert too (fired, held): it pages through [[notify]].
        self.scheduler.engine.automation = self.auto.status()
        if target is None or not self.leading:
            return
        assert self.belief is not None
        term = self.belief.holder.token
        self.auto.acting = True
        operations = Operations(
            self.config, self.scheduler, self._audit, self.clock,
            snapshot=lambda: self._shared or shared,
        )  # fmt: skip
        operator = {**auto_operator(), "vantage": self.vantage, "term": str(term)}

        def announce(source: str, target: str, reason: str) -> None:
            log.warning("AUTOMATED FAILOVER %s → %s (term %d): %s", source, target, term, reason)

        outcome = await run_automated_failover(
            self.auto, operations, target, self._audit, self.clock, operator,
            OperatorIO(confirm=_never, say=log.info),
            may_act=lambda: self.leading, announce=announce,
            fired=lambda: self._save_automation(term),
        )  # fmt: skip
        if outcome is not None:
            log.warning("automation (term %d): %s", term, outcome.message)
        await self._save_automation(term)

    # --- operators' acts from every screen ------------------------------------------

    async def _operator_loop(self, term: int) -> None:
        """The leader's side of acks and silences made on any attached screen: it takes
        the last leader's book (silences, acks), then applies each operator event in
        order, to its engine's alert book and the audit, and publishes the book (with
        the id of the last event applied, in the same fenced write) at once: every
        screen reads it within its next read."""
        applied = await self._take_book(term)
        block_ms = max(1, int(min(OPERATOR_BLOCK_SECONDS, self.control.timeout_seconds / 2) * 1000))
        while True:
            try:
                answer: list[tuple[str, list[tuple[str, dict[str, str]]]]] = (
                    await self.redis.xread(
                        {self.keys.operator_events: applied}, count=100, block=block_ms
                    )  # type: ignore[assignment]
                    or []
                )
                for _stream, entries in answer:
                    for event_id, fields in entries:
                        await self._apply_act(term, event_id, fields)
                        applied = event_id
                await self._publish_book(term, applied)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("operator events: %s", exc)
                await asyncio.sleep(FIRST_RETRY_SECONDS)

    async def _take_book(self, term: int) -> str:
        """Silences and acks as the last leader's book holds them, into this engine's
        book; the id of the last operator event already applied."""
        while True:
            try:
                text = await self.redis.get(self.keys.alert_book)
                book = parse_alert_book(None if text is None else str(text))
                break
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("alert book unreadable, retrying: %s", exc)
                await asyncio.sleep(FIRST_RETRY_SECONDS)
        if book is None:
            return "0-0"
        alerts = self.scheduler.engine.alerts
        for silence in book.silences:
            alerts.restore_silence(silence)
        firing = {a.key: a for a in alerts.alerts() if a.state is AlertState.FIRING}
        for shown in book.alerts:
            if shown.ack is not None and shown.key in firing:
                # By rule instance: this engine named the episode itself.
                alerts.restore_ack(shown.key, shown.ack)
        log.info(
            "term %d takes the alert book of term %d: %d silence(s), applied through %s",
            term, book.term, len(book.silences), book.applied_through,
        )  # fmt: skip
        return book.applied_through

    async def _apply_act(self, term: int, event_id: str, fields: Mapping[str, str]) -> None:
        operations = Operations(self.config, self.scheduler, self._audit, self.clock)
        try:
            kind = fields["kind"]
            operator = {
                **json.loads(fields["operator"]),
                "via": "attached",
                "operator_event": event_id,
            }
            if kind == "ack":
                outcome = await operations.ack_alert(fields["alert_id"], operator, fields["note"])
                if outcome.exit_code != 0 and fields.get("key"):
                    # Acked on the last leader's episode id: the same rule instance here.
                    outcome = await operations.ack_alert(fields["key"], operator, fields["note"])
            elif kind == "silence":
                outcome = await operations.silence(
                    json.loads(fields["matchers"]), float(fields["duration_seconds"]),
                    fields["comment"], operator,
                )  # fmt: skip
            elif kind == "expire_silence":
                outcome = await operations.expire_silence(fields["silence_id"], operator)
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("operator event %s ignored (unreadable): %s", event_id, exc)
            return
        log.info("operator event %s (%s by %s): %s", event_id, kind,
                 operator.get("operator"), outcome.message)  # fmt: skip
        entry = {
            **{k: str(v) for k, v in operator.items()},
            "event": kind, "term": str(term), "outcome": outcome.message,
        }  # fmt: skip
        done = await self.redis.eval(
            _FENCED_XADD, 2, self.keys.audit, self.keys.token, term, AUDIT_KEPT,
            *[item for pair in entry.items() for item in pair],
        )  # fmt: skip
        if not done:
            log.error(
                "FENCED: audit of operator event %s refused (term %d is over)", event_id, term
            )
            self._fenced.set()

    async def _publish_book(self, term: int, applied: str) -> None:
        alerts = self.scheduler.engine.alerts
        text = alert_book_text(alerts.alerts(), alerts.silences(), applied, term)
        if text == self._book_published:
            return
        done = await self.redis.eval(
            _FENCED_SET, 2, self.keys.alert_book, self.keys.token, term,
            stamped(text, self.clock.utcnow()),
        )  # fmt: skip
        if not done:
            log.error("FENCED: alert book of term %d refused: another agent leads", term)
            self._fenced.set()
            return
        self._book_published = text

    async def _restore_automation(self) -> None:
        """A new leader takes the automation's state from the control plane: fired
        stays fired (only an operator re-arms it), paused stays paused."""
        try:
            text = await self.redis.get(self.keys.automation)
        except (RedisError, OSError) as exc:
            log.warning("automation: its state is unreadable, holding: %s", exc)
            self.auto.paused = True
            return
        state = json.loads(text) if text else {}
        self.auto.fired = state.get("fired")
        self.auto.paused = bool(state.get("paused"))

    async def _save_automation(self, term: int) -> None:
        state = json.dumps({"fired": self.auto.fired, "paused": self.auto.paused})
        try:
            done = await self.redis.eval(
                _FENCED_SET, 2, self.keys.automation, self.keys.token, term, state
            )
        except (RedisError, OSError) as exc:
            log.error("automation: its state could not be saved: %s", exc)
            return
        if not done:
            log.error("FENCED: automation state of term %d refused: another agent leads", term)

    async def _resign(self) -> None:
        """On a clean stop: the lease goes at once, so a standby need not wait it out."""
        if self.belief is None:
            return
        holder = self.belief.holder
        await self._step_down("stopping")
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(FINAL_FLUSH_SECONDS):
                await self.lease.release(holder)

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
            asyncio.create_task(self._lead_loop(), name="noc:agent-lead"),
        ]
        try:
            await stop.wait()
            log.info("agent %s: stopping", self.vantage)
        finally:
            await end_tasks(tasks)
            await self._resign()
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


async def _never(_plan: ActionPlan) -> Confirmation | None:
    """No human confirms an agent's act: run_automated_failover confirms it itself."""
    return None
