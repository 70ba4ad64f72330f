"""Acks and silences from attached screens, end to end: a real redis-server as the
control plane, one `noc agent` process leading, two attached dashboards (Pilot).

ro is down: the leader's alert book (judged on the vantages' verdict) says so on both
screens. An ack typed on the first screen goes to the leader as an operator event;
the leader applies it to its alert book and the shared audit, publishes the book, and
the second screen shows the ack at its next read (it reads every half second). A
silence from the second screen comes back to the first the same way. Failover stays
refused on an attached screen."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from processes import leaves_no_process
from textual.pilot import Pilot

from noc.actions import ACTIONS_BY_ID
from noc.app import NocApp
from noc.clock import SystemClock
from noc.config import load_config
from noc.control import SharedReader
from noc.model import AlertState
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

MAX_PAUSES = 600
BOOK = "noc:mail-test:alerts"


def _config(path: Path, urls: dict[str, str], control: str) -> Path:
    lines = [
        '[estate]\nname = "mail-test"\ntopology = "active-passive"\n',
        "[health]\ninterval_seconds = 0.3\nfailure_threshold = 2\ntimeout_seconds = 1\n"
        "quorum = 1\n",
        f'[control]\nredis_url = "{control}"\nreport_interval_seconds = 0.5\nlease_seconds = 2\n',
    ]
    for rid, role in (("ro", "primary"), ("bg", "secondary")):
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\n'
            f'[[regions.checks]]\nurl = "{urls[rid]}"\nbody_contains = "healthy"\n'
        )
    path.write_text("\n".join(lines))
    return path


async def _until(pilot: Pilot[Any], shown: Callable[[], Any]) -> Any:
    for _ in range(MAX_PAUSES):
        if value := shown():
            return value
        await pilot.pause(0.05)
    raise AssertionError("the screen never showed it")


def _ro_down(app: NocApp) -> Any:
    return next(
        (a for a in app.snapshot().alerts
         if a.rule == "region_down" and a.state is AlertState.FIRING),
        None,
    )  # fmt: skip


async def test_an_ack_on_one_screen_shows_on_the_other_once_the_leader_applied_it(
    tmp_path: Path,
    redis_server: RedisServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    await ro.set_mode(EndpointMode.UNAVAILABLE)
    path = _config(
        tmp_path / "noc.toml", {"ro": ro.url, "bg": bg.url},
        f"redis://127.0.0.1:{redis_server.port}/0",
    )  # fmt: skip
    config = load_config(path).config
    assert config.control is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "agent-state")
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    with leaves_no_process():
        with (tmp_path / "agent.log").open("wb") as log:
            agent = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "noc", "agent", "--config", str(path), "--vantage", "a",
                stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
            )  # fmt: skip
        screens = [
            NocApp(config, state_path=tmp_path / f"screen{n}",
                   shared=SharedReader(config, config.control, SystemClock()))
            for n in (1, 2)
        ]  # fmt: skip
        try:
            async with (
                screens[0].run_test(size=(160, 45)) as one,
                screens[1].run_test(size=(160, 45)) as two,
            ):
                first = await _until(one, lambda: _ro_down(screens[0]))
                await _until(two, lambda: _ro_down(screens[1]))
                # Traffic does not move from an attached screen.
                assert not screens[0].may_run(ACTIONS_BY_ID["failover"], on_main=True)
                assert screens[0].may_run(ACTIONS_BY_ID["ack"], on_main=True)

                screens[0].ack_episode(first.id)
                await _until(one, lambda: len(screens[0].screen_stack) > 1)
                await one.press(*"on it", "enter")
                acked = await _until(two, lambda: (a := _ro_down(screens[1])) and a.ack)
                seen_at = time.time()
                assert acked.note == "on it"
                book = json.loads(client.get(BOOK) or "{}")
                published = datetime_of(book["at"])
                print(f"ack on the second screen {seen_at - published:.2f} s after the "
                      "leader published it (screens read every 0.5 s)")  # fmt: skip
                audit = _audit(client)
                assert [(f["event"], f["outcome"]) for f in audit] == [
                    ("ack", f"Acked {acked_id(book)}")
                ]

                # A silence from the second screen comes back to the first.
                screens[1].silence_episode(first.id)
                await _until(two, lambda: len(screens[1].screen_stack) > 1)
                await two.press(*"maintenance window", "enter")
                silenced = await _until(one, lambda: (a := _ro_down(screens[0])) and a.silenced_by)
                assert silenced in {s.id for s in screens[0].shared.silences}  # type: ignore[union-attr]
                assert [f["event"] for f in _audit(client)] == [
                    "ack", "silence",
                ]  # fmt: skip
        finally:
            agent.terminate()
            assert await agent.wait() == 0
            client.close()
    said = (tmp_path / "agent.log").read_text()
    assert "operator event" in said, said


def datetime_of(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def acked_id(book: dict[str, Any]) -> str:
    return str(next(a["id"] for a in book["alerts"] if a["rule"] == "region_down"))


def _audit(client: redis.Redis) -> list[dict[str, str]]:
    """The shared audit stream's entries, oldest first."""
    entries: Any = client.xrange("noc:mail-test:audit")
    return [dict(fields) for _, fields in entries]
