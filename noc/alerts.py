"""The alert engine: conditions in, alert lifecycle out. Pure and clock-injected.

Rules (noc.rules) turn state into `Condition`s: the things that are true now.
`AlertBook.evaluate()` folds them over time:

- a condition becomes a **pending** alert, and **fires** once it has been true
  for its `for_seconds` (the sustain window: a spike does not page);
- a firing alert **resolves** when its condition has been false for
  `keep_firing_seconds` (so a recovery that flaps straight back does not page
  twice); a pending one that stops being true is dropped without a word;
- an alert that changes between firing and resolved `flap_transitions` times
  within `flap_window_seconds` is marked **flapping**;
- an **ack** (who, note) says someone is on it; a **silence** (matchers on rule
  and region, a time window, an author and a mandatory comment) mutes matching
  alerts; **inhibition**: a region that is down mutes its own lag, sync and
  source alerts, which are consequences, not news.

Identity: a `Condition`'s id is the rule instance (its **key**, "region_down:ro");
each time that condition becomes true again starts a new **episode**, with its own
id: the key and the moment it started ("region_down:ro@2026-11-23T03:00:00.000000Z").
An ack belongs to an episode, the alert pane has one row per episode, and a
notifier pages once per episode. The id is made once, when the episode starts, and
kept in the journal, so it is the same after a restart.

Transitions come back as `AlertNotice`s for the journal and the notifiers.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from noc.clock import Clock
from noc.model import Ack, Alert, AlertNotice, AlertState, MaintenanceWindow, Severity, Silence

# Rules whose alerts are consequences of their region being down.
INHIBITED_BY_REGION_DOWN = frozenset(
    {"replication_lag", "replication_link_down", "suppression_unsynced", "source_unreachable"}
)
REGION_DOWN_RULE = "region_down"
# A condition that worsens into another rule: the same subject (the key after the
# rule's name), a graver state. The worse alert takes over at once, without its own
# sustain window (the lesser one already sustained), and the lesser one ends as
# "escalated", never "resolved": nothing got better.
ESCALATES_TO = {
    "replication_lag": "replication_link_down",
    "region_degraded": "region_down",
    "data_stale": "noc_cut_off",
}
RESOLVED_KEPT = 50  # recently resolved alerts kept for the alert pane
_TICK = timedelta(microseconds=1)


_EPISODE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def episode_id(key: str, started_at: datetime) -> str:
    """The id of the episode of `key` that started at `started_at`."""
    return f"{key}@{started_at.astimezone(UTC).strftime(_EPISODE_TIME)}"


def episode_start(alert_id: str) -> datetime | None:
    """When the episode `alert_id` started, to the microsecond (None for an id that
    is not an episode id)."""
    text = alert_id.rpartition("@")[2]
    if len(text) != len("2026-11-23T03:00:00.000000Z") or not text.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(text)  # strptime is ten times slower
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One rule instance that is true right now."""

    id: str  # the key, stable across evaluations: "replication_lag:suppression:ro>bg"
    rule: str
    severity: Severity
    region: str | None
    summary: str
    value: float | None = None
    for_seconds: float = 0.0
    hint: str | None = None  # the estate's own next step ([[alerts.rules]] hint)


def _escalation_key(condition: Condition) -> str | None:
    """The key of the graver rule on the same subject, if this rule has one."""
    graver = ESCALATES_TO.get(condition.rule)
    if graver is None or not condition.id.startswith(condition.rule):
        return None
    return graver + condition.id[len(condition.rule) :]


def _graver(now: Condition, before: Condition) -> bool:
    """The same rule instance, now at a graver severity (a lower rank is graver)."""
    return now.severity.rank < before.severity.rank


@dataclass(slots=True)
class _Track:
    """The current episode of one key (pending or firing)."""

    condition: Condition
    episode: str
    state: AlertState
    since: datetime
    started_at: datetime
    true_since: float
    false_since: float | None = None
    ack: Ack | None = None
    escalated_from: str | None = None
    # Restored, and not resolved until the engine can judge it again: `restore_firing`.
    held: bool = False


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    keep_firing_seconds: float = 0.0
    flap_window_seconds: float = 600.0
    flap_transitions: int = 4


@dataclass
class AlertBook:
    clock: Clock
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    # `noc check`: one round decides, so a sustain window does not apply.
    single_round: bool = False
    # Restored firing episodes wait for `release_restored` before they may resolve: set
    # by an owner that can tell when it has seen enough since the start (the engine).
    hold_restored: bool = False
    # The maintenance window covering a region at a moment (noc.maintenance's book):
    # its alerts are marked and muted, so they page no one while it lasts.
    maintenance_of: Callable[[str | None, datetime], MaintenanceWindow | None] | None = None
    _tracks: dict[str, _Track] = field(default_factory=dict)  # by key: one episode each
    _resolved: deque[Alert] = field(default_factory=lambda: deque(maxlen=RESOLVED_KEPT))
    _resolved_ids: set[str] = field(default_factory=set)  # the ids in _resolved
    # Per key, the start of its latest episode: a new one starts strictly later, so
    # its id is new even when the clock stood still or stepped back (one per key).
    _last_start: dict[str, datetime] = field(default_factory=dict)
    _flips: dict[str, deque[float]] = field(default_factory=dict)
    _silences: dict[str, Silence] = field(default_factory=dict)

    def evaluate(self, conditions: Iterable[Condition]) -> list[AlertNotice]:
        now, wall = self.clock.monotonic(), self.clock.utcnow()
        notices: list[AlertNotice] = []
        true_now = {c.id: c for c in conditions}
        for cid, condition in true_now.items():
            track = self._tracks.get(cid)
            if track is None:
                track = self._start(condition, wall, now)
                self._tracks[cid] = track
            elif track.state is AlertState.FIRING and _graver(condition, track.condition):
                # Warning into critical: a new episode takes over at once.
                notices += self._hand_over(track, self._start(condition, wall, now), wall, now)
                continue
            track.condition = condition
            track.false_since = None
            sustained = now - track.true_since >= condition.for_seconds
            if track.state is AlertState.PENDING and (sustained or self.single_round):
                track.state, track.since = AlertState.FIRING, wall
                self._flip(cid, now)
                notices.append(AlertNotice(self._alert(track, wall), "firing", wall))
        for cid in [c for c in self._tracks if c not in true_now]:
            track = self._tracks[cid]
            if track.state is AlertState.PENDING:
                del self._tracks[cid]
                continue
            if track.held:
                continue  # restored, and the evidence that it ended is not in yet
            graver_key = _escalation_key(track.condition)
            successor = self._tracks.get(graver_key) if graver_key else None
            if successor is not None and successor.condition.id in true_now:
                notices += self._hand_over(track, successor, wall, now)
                continue
            if track.false_since is None:
                track.false_since = now
            if now - track.false_since >= self.policy.keep_firing_seconds:
                del self._tracks[cid]
                track.state, track.since, track.ack = AlertState.RESOLVED, wall, None
                self._flip(cid, now)
                resolved = self._alert(track, wall)
                self._remember_resolved(resolved)
                notices.append(AlertNotice(resolved, "resolved", wall))
        return notices

    def _hand_over(
        self, lesser: _Track, graver: _Track, wall: datetime, now: float
    ) -> list[AlertNotice]:
        """The graver episode fires now (if it is not already firing) and the lesser one
        ends as escalated: the graver notice first, so no moment has nothing firing."""
        notices = []
        graver.escalated_from = lesser.episode
        self._tracks[graver.condition.id] = graver
        if graver.state is AlertState.PENDING:
            graver.state, graver.since = AlertState.FIRING, wall
            self._flip(graver.condition.id, now)
            notices.append(AlertNotice(self._alert(graver, wall), "firing", wall))
        if self._tracks.get(lesser.condition.id) is lesser:
            del self._tracks[lesser.condition.id]
        lesser.state, lesser.since, lesser.ack = AlertState.RESOLVED, wall, None
        ended = replace(self._alert(lesser, wall), escalated_to=graver.episode)
        self._remember_resolved(ended)
        notices.append(AlertNotice(ended, "escalated", wall))
        return notices

    def _start(self, condition: Condition, wall: datetime, now: float) -> _Track:
        """A new episode. Its id must be new: with a clock that did not move (or moved
        back) since the key's last episode started, the start is nudged past it."""
        started = wall
        last = self._last_start.get(condition.id)
        if last is not None and started <= last:
            started = last + _TICK
        while episode_id(condition.id, started) in self._resolved_ids:
            started += _TICK
        self._last_start[condition.id] = started
        return _Track(
            condition, episode_id(condition.id, started), AlertState.PENDING, wall, started, now
        )

    def _remember_resolved(self, alert: Alert) -> None:
        if alert.id in self._resolved_ids:  # an episode resolves once (a repeated record)
            return
        if len(self._resolved) == self._resolved.maxlen:
            self._resolved_ids.discard(self._resolved[-1].id)
        self._resolved.appendleft(alert)
        self._resolved_ids.add(alert.id)

    def _flip(self, cid: str, now: float) -> None:
        # Flip times of keys that are gone and last flipped before the flap window are
        # of no more use: forgotten here, so the dict holds the live keys and the recent
        # flippers, not every key the process ever saw (a listing per IP, say).
        window = self.policy.flap_window_seconds
        for gone in [key for key in self._flips if key not in self._tracks]:
            if now - self._flips[gone][-1] > window:
                del self._flips[gone]
        flips = self._flips.setdefault(cid, deque(maxlen=self.policy.flap_transitions * 2))
        flips.append(now)

    def _flapping(self, cid: str) -> bool:
        now = self.clock.monotonic()
        recent = [t for t in self._flips.get(cid, ()) if now - t <= self.policy.flap_window_seconds]
        return len(recent) >= self.policy.flap_transitions

    def _alert(self, track: _Track, wall: datetime) -> Alert:
        c = track.condition
        silence = next(
            (s for s in self._silences.values() if s.active(wall) and s.matches(c.rule, c.region)),
            None,
        )
        window = self.maintenance_of(c.region, wall) if self.maintenance_of else None
        return Alert(
            id=track.episode,
            key=c.id,
            rule=c.rule,
            severity=c.severity,
            state=track.state,
            region=c.region,
            summary=c.summary,
            since=track.since,
            started_at=track.started_at,
            value=c.value,
            ack=track.ack,
            silenced_by=silence.id if silence else None,
            inhibited_by=self._inhibitor(c),
            flapping=self._flapping(c.id),
            escalated_from=track.escalated_from,
            maintenance=window.id if window is not None else None,
            hint=c.hint,
        )

    def _inhibitor(self, condition: Condition) -> str | None:
        if condition.rule not in INHIBITED_BY_REGION_DOWN or condition.region is None:
            return None
        down = f"{REGION_DOWN_RULE}:{condition.region}"
        track = self._tracks.get(down)
        return down if track is not None and track.state is AlertState.FIRING else None

    def alerts(self) -> tuple[Alert, ...]:
        """Firing by severity, then pending, then recently resolved (newest first)."""
        wall = self.clock.utcnow()
        active = [self._alert(t, wall) for t in self._tracks.values()]
        firing = sorted(
            (a for a in active if a.state is AlertState.FIRING),
            key=lambda a: (a.muted, a.severity.rank, a.since),
        )
        pending = sorted(
            (a for a in active if a.state is AlertState.PENDING), key=lambda a: a.since
        )
        return (*firing, *pending, *self._resolved)

    def _episode(self, alert_id: str) -> _Track | None:
        """The current episode named by its id, or by its key (then whichever episode
        is current: an ack by key means "the one firing now")."""
        track = self._tracks.get(alert_id)
        if track is not None:
            return track
        key = alert_id.rpartition("@")[0]
        track = self._tracks.get(key) if key else None
        return track if track is not None and track.episode == alert_id else None

    def ack(self, alert_id: str, by: str, note: str) -> Ack | None:
        """Ack the firing episode `alert_id` (an episode id; a key acks the current
        episode). None when it is not firing: an ack never lands on a later episode."""
        track = self._episode(alert_id)
        if track is None or track.state is not AlertState.FIRING:
            return None
        track.ack = Ack(by=by, note=note, at=self.clock.utcnow())
        return track.ack

    def silence(
        self,
        matchers: Mapping[str, str],
        duration_seconds: float,
        author: str,
        comment: str,
    ) -> Silence:
        if not comment.strip():
            raise ValueError("a silence needs a comment")
        if not author.strip():
            raise ValueError("a silence needs an author")
        unknown = set(matchers) - {"rule", "region"}
        if unknown:
            raise ValueError(
                f"silence matchers are rule and region, not {', '.join(sorted(unknown))}"
            )
        starts = self.clock.utcnow()
        silence = Silence(
            id=uuid.uuid4().hex[:10],
            matchers=tuple(sorted(matchers.items())),
            starts_at=starts,
            ends_at=starts + timedelta(seconds=duration_seconds),
            author=author,
            comment=comment.strip(),
        )
        # Ended and expired silences are of no more use: dropped here so the book
        # does not grow with every silence of the process's life.
        self._silences = {
            k: s for k, s in self._silences.items() if s.active(starts) or s.starts_at > starts
        }
        self._silences[silence.id] = silence
        return silence

    def expire(self, silence_id: str) -> Silence | None:
        silence = self._silences.get(silence_id)
        if silence is None or silence.expired_at is not None:
            return None
        expired = replace(silence, expired_at=self.clock.utcnow())
        self._silences[silence_id] = expired
        return expired

    def silences(self) -> tuple[Silence, ...]:
        """Active and upcoming silences; expired and ended ones drop off."""
        wall = self.clock.utcnow()
        return tuple(
            s for s in self._silences.values() if s.expired_at is None and s.ends_at > wall
        )

    # --- restoring from the journal -----------------------------------------

    def restore_firing(self, alert: Alert) -> None:
        """A firing episode from before a restart: the same episode (id, start, ack)
        stays firing (no second page) until its condition is seen false, and not before
        `release_restored`: right after a start, a condition built on a window of probes
        (a flapping check) reads false only for lack of probes."""
        condition = Condition(
            alert.key, alert.rule, alert.severity, alert.region, alert.summary, alert.value
        )
        self._tracks[alert.key] = _Track(
            condition,
            alert.id,
            AlertState.FIRING,
            alert.since,
            alert.started_at or alert.since,
            self.clock.monotonic(),
            ack=alert.ack,
            escalated_from=alert.escalated_from,
            held=self.hold_restored,
        )
        self._restored_start(alert)

    def release_restored(self) -> None:
        """The engine has seen enough since the start to judge every condition: the
        restored episodes resolve like any other from now on."""
        for track in self._tracks.values():
            track.held = False

    def restore_resolved(self, alert: Alert) -> None:
        """Oldest first: each goes to the front of the recently resolved list."""
        self._remember_resolved(alert)
        self._restored_start(alert)

    def _restored_start(self, alert: Alert) -> None:
        started = episode_start(alert.id) or alert.started_at or alert.since
        self.restore_last_start(alert.key, started)

    def restore_last_start(self, key: str, started: datetime) -> None:
        last = self._last_start.get(key)
        if last is None or started > last:
            self._last_start[key] = started

    def last_starts(self) -> dict[str, datetime]:
        """Per key, when its latest episode started (kept by the journal)."""
        return dict(self._last_start)

    def restore_ack(self, alert_id: str, ack: Ack) -> None:
        track = self._episode(alert_id)
        if track is not None and track.state is AlertState.FIRING:
            track.ack = ack

    def firing_episodes(self) -> tuple[Alert, ...]:
        """What the journal must keep of the present: the firing episodes."""
        wall = self.clock.utcnow()
        return tuple(
            self._alert(t, wall) for t in self._tracks.values() if t.state is AlertState.FIRING
        )

    def resolved_episodes(self) -> tuple[Alert, ...]:
        """The recently resolved episodes, oldest first."""
        return tuple(reversed(self._resolved))

    def all_silences(self) -> tuple[Silence, ...]:
        """Every silence the book knows, ended and expired ones included."""
        return tuple(self._silences.values())

    def restore_silence(self, silence: Silence) -> None:
        self._silences[silence.id] = silence
