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

Transitions come back as `AlertNotice`s for the journal and the notifiers.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from noc.clock import Clock
from noc.model import Ack, Alert, AlertNotice, AlertState, Severity, Silence

# Rules whose alerts are consequences of their region being down.
INHIBITED_BY_REGION_DOWN = frozenset(
    {"replication_lag", "replication_link_down", "suppression_unsynced", "source_unreachable"}
)
REGION_DOWN_RULE = "region_down"
RESOLVED_KEPT = 50  # recently resolved alerts kept for the alert pane


@dataclass(frozen=True, slots=True)
class Condition:
    """One rule instance that is true right now."""

    id: str  # stable across evaluations: "replication_lag:suppression:ro>bg"
    rule: str
    severity: Severity
    region: str | None
    summary: str
    value: float | None = None
    for_seconds: float = 0.0


@dataclass(slots=True)
class _Track:
    condition: Condition
    state: AlertState
    since: datetime
    started_at: datetime
    true_since: float
    false_since: float | None = None
    ack: Ack | None = None


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
    _tracks: dict[str, _Track] = field(default_factory=dict)
    _resolved: deque[Alert] = field(default_factory=lambda: deque(maxlen=RESOLVED_KEPT))
    _flips: dict[str, deque[float]] = field(default_factory=dict)
    _silences: dict[str, Silence] = field(default_factory=dict)

    def evaluate(self, conditions: Iterable[Condition]) -> list[AlertNotice]:
        now, wall = self.clock.monotonic(), self.clock.utcnow()
        notices: list[AlertNotice] = []
        true_now = {c.id: c for c in conditions}
        for cid, condition in true_now.items():
            track = self._tracks.get(cid)
            if track is None:
                track = _Track(condition, AlertState.PENDING, wall, wall, now)
                self._tracks[cid] = track
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
            if track.false_since is None:
                track.false_since = now
            if now - track.false_since >= self.policy.keep_firing_seconds:
                del self._tracks[cid]
                track.state, track.since, track.ack = AlertState.RESOLVED, wall, None
                self._flip(cid, now)
                resolved = self._alert(track, wall)
                self._resolved.appendleft(resolved)
                notices.append(AlertNotice(resolved, "resolved", wall))
        return notices

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
        return Alert(
            id=c.id,
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

    def ack(self, alert_id: str, by: str, note: str) -> Ack | None:
        track = self._tracks.get(alert_id)
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
        """A firing alert from before a restart: it stays firing (no second page) until
        its condition is seen false."""
        condition = Condition(
            alert.id, alert.rule, alert.severity, alert.region, alert.summary, alert.value
        )
        self._tracks[alert.id] = _Track(
            condition,
            AlertState.FIRING,
            alert.since,
            alert.started_at or alert.since,
            self.clock.monotonic(),
            ack=alert.ack,
        )

    def restore_resolved(self, alert: Alert) -> None:
        self._resolved.appendleft(alert)

    def restore_ack(self, alert_id: str, ack: Ack) -> None:
        track = self._tracks.get(alert_id)
        if track is not None:
            track.ack = ack

    def restore_silence(self, silence: Silence) -> None:
        self._silences[silence.id] = silence
