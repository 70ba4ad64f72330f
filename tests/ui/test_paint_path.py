"""What reaches the screen when: the structure behind bench/paint_latency.py and
bench/startup.py (the benches measure the time; these hold the shape).

- a verdict change is painted at once, whatever the repaint ceiling; a number that
  only drifts waits for the clock tick;
- `noc check` and a scheduler of HTTP checks import no Textual, no Rich, and no
  store, DNS or metrics library they do not use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from noc.app import NocApp
from noc.clock import FakeClock
from noc.model import Health
from noc_widgets.health_table import HealthTable
from tests.support import HTTP_503, estate_config, feed_round

# A ceiling of one repaint in ten seconds: a paint deferred to it cannot happen
# within a test, so whatever is on the widgets was painted at once.
SLOW_CEILING = {"refresh_hz": 0.1}


def shown_health(app: NocApp, region_id: str) -> Health:
    snapshot = app.query_one(HealthTable).snapshot
    assert snapshot is not None
    return next(region.health for region in snapshot.regions if region.id == region_id)


async def test_a_verdict_change_is_painted_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    config = estate_config(redis_urls={}, ui=SLOW_CEILING)
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        engine = app.scheduler.engine
        feed_round(engine, clock)
        app.refresh_snapshot()  # a paint has just happened: the ceiling holds the next one
        await pilot.pause()
        assert shown_health(app, "ro") is Health.HEALTHY
        for _ in range(config.health.failure_threshold or 3):
            feed_round(engine, clock, errors={"ro": HTTP_503})
        app._engine_changed()  # what the scheduler calls after each ingested sample
        await pilot.pause()
        assert shown_health(app, "ro") is Health.DOWN


async def test_a_number_that_only_drifts_waits_for_the_tick(tmp_path: Path) -> None:
    clock = FakeClock()
    config = estate_config(redis_urls={}, ui=SLOW_CEILING)
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        engine = app.scheduler.engine
        feed_round(engine, clock)
        app.refresh_snapshot()
        await pilot.pause()
        shown = app.query_one(HealthTable).snapshot
        feed_round(engine, clock)  # the same verdicts, newer latencies and ages
        app._engine_changed()
        await pilot.pause()
        assert app.query_one(HealthTable).snapshot is shown


# Run in a fresh interpreter: this test process has imported everything already.
_IMPORTS_OF_A_CHECK = """
import json, sys
from noc.cli import main
from noc.clock import SystemClock
from noc.config import parse_config
from noc.scheduler import Scheduler
try:
    main(["check", "--help"])
except SystemExit:
    pass
config = parse_config({"regions": [
    {"id": rid, "role": role, "checks": [{"url": f"http://127.0.0.1:9/{rid}/health"}]}
    for rid, role in (("ro", "primary"), ("bg", "secondary"), ("pa", "secondary"))
]})
Scheduler(config, SystemClock(), single_round=True)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_noc_check_imports_only_what_a_check_uses() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_OF_A_CHECK],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "httpx" in loaded, "the HTTP collector is what a check runs"
    unwanted = {
        "textual", "rich", "noc_widgets", "noc_themes",  # the dashboard
        "click", "pygments",  # httpx's own command-line client
        "redis", "dns", "prometheus_client", "publicsuffixlist",  # collectors not configured
    }  # fmt: skip
    assert not loaded & unwanted, sorted(loaded & unwanted)
