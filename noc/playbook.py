"""The six failure modes as data, and what noc's own snapshot says about them.

The modes live in noc/playbook.toml (an estate replaces it with `[drills] playbook`).
Each names its detection signals, response steps (linked to the noc action that
performs them), validation criteria and rollback, all in one vocabulary of
predicates judged on an `EstateSnapshot`: the dashboard, `noc drill run` and the
tests read the same words. Everything here is pure: a snapshot in, verdicts out.

Free of Textual and of the operations layer: see the import-linter contracts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from noc.actions import ACTIONS_BY_ID
from noc.model import EstateSnapshot, Health, LinkState, LinkStatus

__all__ = [
    "PREDICATES",
    "Context",
    "Match",
    "Mode",
    "Playbook",
    "PlaybookError",
    "Step",
    "default_playbook",
    "judge",
    "load_playbook",
    "matching_modes",
]


class PlaybookError(ValueError):
    """A playbook file that cannot be used, with every reason."""


@dataclass(frozen=True, slots=True)
class Context:
    """Who the predicates are about: the region the mode concerns, the region traffic
    moves to, and the modes an operator declared."""

    region: str
    target: str | None = None
    declared: frozenset[str] = frozenset()
    mode: str = ""


def _region_health(snapshot: EstateSnapshot, region_id: str | None) -> Health | None:
    region = None if region_id is None else snapshot.region(region_id)
    return None if region is None else region.health


def _region_down(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _region_health(snapshot, ctx.region) is Health.DOWN


def _region_healthy(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _region_health(snapshot, ctx.region) is Health.HEALTHY


def _target_healthy(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _region_health(snapshot, ctx.target) is Health.HEALTHY


def _peers_healthy(snapshot: EstateSnapshot, ctx: Context) -> bool:
    peers = [r for r in snapshot.regions if r.id != ctx.region]
    return bool(peers) and all(r.health is Health.HEALTHY for r in peers)


def lag_growing(link: LinkStatus) -> bool:
    """Over threshold (or down) and higher at the end of its history than at the
    start: a stalled link, not a spike that is already draining."""
    last = link.last
    if last is None:
        return False
    over = link.over_threshold or last.link is LinkState.DOWN
    lags = [p.lag_seconds for p in link.history if p.lag_seconds is not None]
    return over and len(lags) >= 2 and lags[-1] > lags[0]


def _lag_growing(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return any(
        lag_growing(link)
        for link in snapshot.replication
        if ctx.region in (link.spec.source, link.spec.target)
    )


def _listed(snapshot: EstateSnapshot, region_id: str | None) -> bool:
    region = None if region_id is None else snapshot.region(region_id)
    if region is not None and region.sending_listed:
        return True
    return any(s.listed is True for s in snapshot.dnsbl if s.region == region_id)


def _sending_listed(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _listed(snapshot, ctx.region)


def _target_not_listed(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return ctx.target is not None and not _listed(snapshot, ctx.target)


def _answer_of_no_region(snapshot: EstateSnapshot, ctx: Context) -> bool:
    # A replaced answer concerns the region the records should name: the active one.
    return ctx.region == snapshot.active_region and any(v.unexpected for v in snapshot.dns)


def _answers_clean(snapshot: EstateSnapshot, _: Context) -> bool:
    return bool(snapshot.dns) and not any(v.unexpected for v in snapshot.dns)


def _answer_off_flag(snapshot: EstateSnapshot, ctx: Context) -> bool:
    authority = snapshot.authority
    # Only when every store agrees on the flag: a flag in motion (or split) is a
    # change of noc's own, not answers moving behind its back.
    if authority.split or authority.unreadable or ctx.region != authority.active_region:
        return False
    return any(
        c.region is not None and c.region != authority.active_region for c in snapshot.consensus
    )


def _declared(_: EstateSnapshot, ctx: Context) -> bool:
    return ctx.mode in ctx.declared


def _flag_on(snapshot: EstateSnapshot, region_id: str | None) -> bool:
    authority = snapshot.authority
    return region_id is not None and authority.active_region == region_id and not authority.split


def _flag_on_target(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _flag_on(snapshot, ctx.target)


def _flag_on_region(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _flag_on(snapshot, ctx.region)


def _dns_on(snapshot: EstateSnapshot, region_id: str | None) -> bool:
    """Every resolver sends every failover record to the region (no records: no DNS
    to judge, which is not a pass)."""
    consensus = snapshot.consensus
    return (
        region_id is not None
        and bool(consensus)
        and all(c.region == region_id and c.agreeing == c.asked for c in consensus)
    )


def _dns_on_target(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _dns_on(snapshot, ctx.target)


def _dns_on_region(snapshot: EstateSnapshot, ctx: Context) -> bool:
    return _dns_on(snapshot, ctx.region)


def _replication_caught_up(snapshot: EstateSnapshot, _: Context) -> bool:
    def healthy(region_id: str) -> bool:
        return _region_health(snapshot, region_id) is Health.HEALTHY

    return all(
        not link.over_threshold and link.last is not None and link.last.lag_seconds is not None
        for link in snapshot.replication
        if healthy(link.spec.source) and healthy(link.spec.target)
    )


Predicate = Callable[[EstateSnapshot, Context], bool]

PREDICATES: Mapping[str, Predicate] = {
    "region_down": _region_down,
    "region_healthy": _region_healthy,
    "target_healthy": _target_healthy,
    "peers_healthy": _peers_healthy,
    "lag_growing": _lag_growing,
    "sending_listed": _sending_listed,
    "target_not_listed": _target_not_listed,
    "answer_of_no_region": _answer_of_no_region,
    "answers_clean": _answers_clean,
    "answer_off_flag": _answer_off_flag,
    "declared": _declared,
    "flag_on_target": _flag_on_target,
    "flag_on_region": _flag_on_region,
    "dns_on_target": _dns_on_target,
    "dns_on_region": _dns_on_region,
    "replication_caught_up": _replication_caught_up,
}


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    text: str
    action: str | None = None  # an id of noc.actions.ACTIONS_BY_ID
    observe: str | None = None  # a predicate that shows the step done

    @property
    def key(self) -> str | None:
        """The key that performs the step in the dashboard, if its action has one."""
        spec = None if self.action is None else ACTIONS_BY_ID.get(self.action)
        return None if spec is None else spec.keys


@dataclass(frozen=True, slots=True)
class Mode:
    id: str
    title: str
    detect: tuple[str, ...]
    validate: tuple[str, ...]
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...] = ()

    def step_with_action(self, actions: Iterable[str]) -> Step | None:
        wanted = set(actions)
        return next((s for s in self.steps if s.action in wanted), None)


@dataclass(frozen=True, slots=True)
class Playbook:
    modes: tuple[Mode, ...]
    source: str = "noc/playbook.toml"
    by_id: dict[str, Mode] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id.update({m.id: m for m in self.modes})

    def mode(self, mode_id: str) -> Mode:
        try:
            return self.by_id[mode_id]
        except KeyError:
            known = ", ".join(m.id for m in self.modes)
            raise PlaybookError(f"no mode {mode_id!r} in {self.source} (modes: {known})") from None


@dataclass(frozen=True, slots=True)
class Match:
    """A mode whose every detection signal holds, and for which region."""

    mode: str
    region: str


def judge(snapshot: EstateSnapshot, predicate: str, ctx: Context) -> bool:
    return PREDICATES[predicate](snapshot, ctx)


def matching_modes(
    snapshot: EstateSnapshot, playbook: Playbook, declared: Iterable[str] = ()
) -> tuple[Match, ...]:
    """The modes whose detection signals all hold on this snapshot, for each region,
    in playbook order then region order. `declared`: modes an operator declared (a
    regulatory event shows no signal noc can see)."""
    chosen = frozenset(declared)
    found = []
    for mode in playbook.modes:
        for region in snapshot.regions:
            ctx = Context(region.id, declared=chosen, mode=mode.id)
            if mode.detect and all(judge(snapshot, p, ctx) for p in mode.detect):
                found.append(Match(mode.id, region.id))
    return tuple(found)


def _steps(raw: Any, where: str, problems: list[str]) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list of steps")
        return ()
    steps = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            problems.append(f"{at}: a step needs an id")
            continue
        unknown = sorted(set(item) - {"id", "text", "action", "observe"})
        if unknown:
            problems.append(f"{at}: unknown keys {', '.join(unknown)}")
        action, observe = item.get("action"), item.get("observe")
        if action is not None and action not in ACTIONS_BY_ID:
            problems.append(f"{at}: action {action!r} is no noc action (see noc/actions.py)")
        if observe is not None and observe not in PREDICATES:
            problems.append(f"{at}: observe {observe!r} is no predicate")
        steps.append(Step(item["id"], str(item.get("text", item["id"])), action, observe))
    return tuple(steps)


def _predicates(raw: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        problems.append(f"{where}: must be a list of predicate names")
        return ()
    for name in raw:
        if name not in PREDICATES:
            problems.append(f"{where}: {name!r} is no predicate ({', '.join(PREDICATES)})")
    return tuple(raw)


def parse_playbook(data: Mapping[str, Any], source: str) -> Playbook:
    problems: list[str] = []
    modes = []
    raw_modes = data.get("modes")
    if not isinstance(raw_modes, list) or not raw_modes:
        raise PlaybookError(f"{source}: needs at least one [[modes]]")
    for index, raw in enumerate(raw_modes):
        where = f"{source}: modes[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            problems.append(f"{where}: a mode needs an id")
            continue
        where = f"{source}: mode {raw['id']}"
        unknown = sorted(set(raw) - {"id", "title", "detect", "validate", "steps", "rollback"})
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(unknown)}")
        modes.append(
            Mode(
                raw["id"],
                str(raw.get("title", raw["id"])),
                _predicates(raw.get("detect", []), f"{where}.detect", problems),
                _predicates(raw.get("validate", []), f"{where}.validate", problems),
                _steps(raw.get("steps", []), f"{where}.steps", problems),
                _steps(raw.get("rollback", []), f"{where}.rollback", problems),
            )
        )
    ids = [m.id for m in modes]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        problems.append(f"{source}: modes repeated: {', '.join(repeated)}")
    if problems:
        raise PlaybookError("; ".join(problems))
    return Playbook(tuple(modes), source)


def default_playbook() -> Playbook:
    text = resources.files("noc").joinpath("playbook.toml").read_text(encoding="utf-8")
    return parse_playbook(tomllib.loads(text), "noc/playbook.toml")


def load_playbook(path: str | Path | None) -> Playbook:
    """The estate's playbook (`[drills] playbook`), or the one shipped with noc."""
    if path is None:
        return default_playbook()
    file = Path(path).expanduser()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PlaybookError(f"{file}: {exc}") from exc
    return parse_playbook(data, str(file))


def unmet(snapshot: EstateSnapshot, predicates: Sequence[str], ctx: Context) -> list[str]:
    """The predicates that do not hold now (validation: [] means it passes)."""
    return [p for p in predicates if not judge(snapshot, p, ctx)]
