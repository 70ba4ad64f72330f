"""What `noc check` and the dashboard's first frame import: nothing they do not use.

Start-up time is mostly imports (bench/startup.py measures it beside its anchors);
these tests keep the structure that makes it short, in fresh interpreters (this test
process has imported everything already): the operations layer with its Redis and
DNS actuators, the screens an operator opens later, aiohttp and trio stay out of a
check and of the first frame.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from test_cli import REGIONS

from noc.simulator.health_endpoint import HealthEndpoint

# Loaded by an act, a screen or a configured collector, never by a first frame or a check.
LATER = {
    "noc.operations", "noc.failover", "noc.recovery", "noc.safety",
    "redis", "dns",  # actuators and collectors this estate does not configure
    "noc_widgets.lag_detail", "plotext", "noc_widgets.alert_detail",  # opened screens
    "trio", "h2",  # httpcore's other event loop and HTTP/2: noc uses neither
}  # fmt: skip


def http_estate(path: Path, urls: dict[str, str]) -> Path:
    lines = ['[estate]\nname = "startup"\n', "[health]\ntimeout_seconds = 2\n"]
    for rid, role, (lat, lon) in REGIONS:
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nlocation = [{lat}, {lon}]\n'
            f'[[regions.checks]]\nurl = "{urls[rid]}"\nbody_contains = "healthy"\n'
        )
    path.write_text("\n".join(lines))
    return path


# `noc check` as its console script runs it, then what it imported (None entries are
# imports refused on purpose).
_CHECK = """
import json, sys
from noc.cli import main
status = main(["check", "--config", sys.argv[1]])
print(json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)), file=sys.stderr)
sys.exit(status)
"""


async def test_noc_check_runs_its_round_without_the_dashboard_aiohttp_or_trio(
    tmp_path: Path, health_endpoint: Callable[..., Awaitable[HealthEndpoint]]
) -> None:
    endpoints = {rid: await health_endpoint(rid) for rid, *_ in REGIONS}
    config = http_estate(tmp_path / "noc.toml", {r: e.url for r, e in endpoints.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHECK, str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path / "state")},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, (out, err[-2000:])
    assert out.decode().startswith("NOC OK - 3/3 regions healthy")
    loaded = set(json.loads(err.decode().splitlines()[-1]))
    assert {"httpx", "httpcore", "noc.scheduler"} <= loaded, "what a check runs"
    # One round: aiohttp's cheaper probes cannot repay its import.
    unwanted = LATER | {"textual", "rich", "noc_widgets", "noc_themes", "noc.app", "aiohttp"}
    assert not loaded & unwanted, sorted(loaded & unwanted)


# The app imported, then a dashboard up and probing (read-only: no act can start).
_FIRST_FRAME = """
import asyncio, json, sys
from pathlib import Path
import noc.app
after_import = sorted(sys.modules)
from noc.app import NocApp
from noc.config import parse_config

config = parse_config({"regions": [
    {"id": rid, "role": role, "checks": [{"url": f"http://127.0.0.1:9/{rid}/health"}]}
    for rid, role in (("ro", "primary"), ("bg", "secondary"), ("pa", "secondary"))
]})

async def first_frame():
    app = NocApp(config, read_only=True, state_path=Path(sys.argv[1]))
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        assert app.query_one("HealthTable").row_count == 3
        return sorted(sys.modules)

print(json.dumps([after_import, asyncio.run(first_frame())]))
"""


def test_the_first_frame_waits_for_no_operations_layer_and_no_opened_screen(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_FRAME, str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    after_import, after_frame = (set(names) for names in json.loads(done.stdout.splitlines()[-1]))
    assert "textual" in after_import and "noc_widgets.health_table" in after_import
    # sys.modules holds every parent package too: "dns" is there if any of it is.
    assert not after_import & LATER, sorted(after_import & LATER)
    assert not after_frame & LATER, sorted(after_frame & LATER)
