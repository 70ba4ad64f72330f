"""When the next failover drill is due, and which mode: read from the kept reports.

Apart from noc.drills so that the dashboard can show the schedule at start without
importing the operations layer a drill runs on (tests/project/test_startup_imports).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from noc.config import NocConfig
from noc.model import DrillDue
from noc.playbook import Playbook

DRILLS_DIR = "drills"


def drills_dir(state_dir: Path) -> Path:
    return state_dir / DRILLS_DIR


def drill_history(state_dir: Path) -> list[dict[str, Any]]:
    """Every kept report, oldest first (ids sort by their start time)."""
    found = []
    for path in sorted(drills_dir(state_dir).glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    return found


def next_drill(
    playbook: Playbook,
    history: Sequence[Mapping[str, Any]],
    today: date,
    *,
    onboarded: date | None,
    interval_days: int,
    first_within_days: int,
) -> DrillDue:
    """Quarterly, one mode at a time: the mode drilled longest ago (never drilled
    first, in playbook order), due `interval_days` after the last drill; the first
    within `first_within_days` of onboarding (unset: due today)."""
    last_by_mode: dict[str, str] = {}
    for report in history:
        if report.get("mode") and report.get("started_at"):
            last_by_mode[str(report["mode"])] = str(report["started_at"])
    order = {m.id: index for index, m in enumerate(playbook.modes)}
    mode = min(playbook.modes, key=lambda m: (last_by_mode.get(m.id, ""), order[m.id])).id
    last = max(last_by_mode.values(), default=None)
    if last is not None:
        when = datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).date()
        due = when + timedelta(days=interval_days)
    elif onboarded is not None:
        due = onboarded + timedelta(days=first_within_days)
    else:
        due = today
    return DrillDue(mode, due, today > due, last)


def drill_schedule(
    config: NocConfig, playbook: Playbook, state_dir: Path, today: date
) -> DrillDue | None:
    """The estate's next drill, or None while noc cannot know when it is due: no
    onboarding date configured and no drill run yet."""
    drills = config.drills
    history = drill_history(state_dir)
    if drills.onboarded is None and not history:
        return None
    return next_drill(
        playbook,
        history,
        today,
        onboarded=drills.onboarded,
        interval_days=drills.interval_days,
        first_within_days=drills.first_within_days,
    )
