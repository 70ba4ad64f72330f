"""Kill safety of the dashboard, bounded: bench/kill_dashboard.py with a few kills.

The real dashboard on a pseudo-terminal against real redis-servers and HTTP health
endpoints on loopback; the operator's keys ack and silence the firing alert and the
process is SIGKILLed at a random moment of each act (the bench's docstring says how).
The bench counts what must never happen under names ending in "(want 0)"; here each
of them must be 0. The 100-kill run's figures are in the README.
"""

from __future__ import annotations

import sys
from pathlib import Path

from paths import BENCH

sys.path.insert(0, str(BENCH))
from kill_dashboard import run

KILLS = 5
# This seed's five rounds: three acks, killed 0-200 ms after Enter and as the audit grew
# (once the act was done), and two silences killed just after the journal grew, their
# records each setting off a compaction of a journal filled to just under its bound.
SEED = 3


def test_kills_during_acks_and_silences_lose_nothing_and_leave_no_lock(tmp_path: Path) -> None:
    counts = run(KILLS, SEED, minutes=10, directory=tmp_path)
    assert counts["kills"] == KILLS, counts
    broken = {name: value for name, value in counts.items() if "(want 0)" in name and value}
    assert not broken, counts
    # Every start after a kill restored the one firing episode (never a second one).
    assert counts["firing episodes of region_down:pa seen (want 1)"] == 1, counts
    # Something was completed and then checked for: the rounds are not all misses.
    completed = (
        counts["acks completed (in the journal)"] + counts["silences completed (in the journal)"]
    )
    assert completed >= 1, counts
    assert counts["starts"] == KILLS + 1, counts
    assert counts["next failover --dry-run exit 0"] == KILLS, counts
    assert counts["failover locks left in a store"] == 0, counts
