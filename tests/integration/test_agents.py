"""Agents and quorum end to end: a real redis-server as the control plane, three
`noc agent` processes as three vantages, each with its own endpoints on loopback.

Vantage a's path to ro is broken (its ro endpoint answers 503) while b and c reach a
healthy ro: with quorum 2, ro is not down, the split is shown and warned about. Then
ro fails for every vantage: down by quorum. SIGTERM ends every agent with 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from processes import leaves_no_process

from noc.agent import Agent
from noc.clock import SystemClock
from noc.config import load_config
from noc.control import ControlKeys, connect, read_reports, shared_snapshot
from noc.model import CheckSample, EstateSnapshot, Health
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

REGIONS = (("ro", "primary"), ("bg", "secondary"), ("pa", "secondary"))
REPORT_SECONDS = 0.5
# How long a wait for the agents to agree may take before the test gives up on them.
SETTLE_SECONDS = 60.0


def write_config(
    path: Path,
    urls: dict[str, str],
    control_url: str | None,
    *,
    quorum: int = 2,
    store_url: str | None = None,
) -> Path:
    """Three regions, one check each; `store_url`: ro's flag store (its reads are
    observations too)."""
    lines = [
        '[estate]\nname = "mail-test"\ntopology = "active-passive"\n',
        "[health]\ninterval_seconds = 0.5\nfailure_threshold = 2\ntimeout_seconds = 1\n"
        f"quorum = {quorum}\n",
    ]
    if control_url is not None:
        lines.append(
            f'[control]\nredis_url = "{control_url}"\nreport_interval_seconds = {REPORT_SECONDS}\n'
        )
    for rid, role in REGIONS:
        store = f'redis_url = "{store_url}"\n' if store_url and rid == "ro" else ""
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\n{store}'
            f'[[regions.checks]]\nurl = "{urls[rid]}"\nbody_contains = "healthy"\n'
        )
    path.write_text("\n".join(lines))
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


async def _noc(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tmp_path),
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _shared(config_path: Path) -> EstateSnapshot:
    config = load_config(config_path).config
    assert config.control is not None
    client = connect(config.control)
    try:
        reports = await read_reports(client, ControlKeys.of(config, config.control))
    finally:
        await client.aclose()
    return shared_snapshot(config, reports, SystemClock())


async def _until(config_path: Path, agreed: Callable[[EstateSnapshot], bool]) -> None:
    """Wait until the shared state satisfies `agreed` (the agents probe and report on
    their own schedule); fail with what was last seen if it never does."""
    last: EstateSnapshot | None = None
    try:
        async with asyncio.timeout(SETTLE_SECONDS):
            while True:
                last = await _shared(config_path)
                if agreed(last):
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"the shared state never agreed; last: {last}")


def _votes(snapshot: EstateSnapshot, region: str) -> tuple[Health, int, int]:
    status = snapshot.region(region)
    assert status is not None and status.votes is not None
    return status.health, status.votes.down_votes, status.votes.vantages_reporting


@pytest.mark.slow
async def test_one_vantage_losing_its_path_is_a_split_and_all_three_a_down(
    tmp_path: Path,
    redis_server: RedisServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    control_url = f"redis://127.0.0.1:{redis_server.port}/0"
    ro_broken_path = await health_endpoint("ro")
    await ro_broken_path.set_mode(EndpointMode.UNAVAILABLE)
    ro = await health_endpoint("ro")
    others = {rid: (await health_endpoint(rid)).url for rid in ("bg", "pa")}
    configs = {
        name: write_config(
            tmp_path / f"{name}.toml",
            {"ro": (ro_broken_path if name == "a" else ro).url, **others},
            control_url,
            # ro's flag store: another database of the same redis-server.
            store_url=f"redis://127.0.0.1:{redis_server.port}/1",
        )
        for name in ("a", "b", "c")
    }
    # Each agent's log to a file: a pipe nobody reads while the test waits could fill
    # and stall the agent writing to it.
    logs = {name: tmp_path / f"{name}.log" for name in configs}
    with leaves_no_process():
        agents = {}
        for name, path in configs.items():
            with logs[name].open("wb") as log:
                agents[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "noc", "agent", "--config", str(path),
                    "--vantage", name,
                    stdout=asyncio.subprocess.DEVNULL, stderr=log, env=_env(tmp_path),
                )  # fmt: skip
        try:
            reader = configs["b"]
            # a sees ro down; b and c see it healthy: 1 of 3, below the quorum of 2.
            await _until(
                reader,
                lambda s: (
                    _votes(s, "ro") == (Health.HEALTHY, 1, 3)
                    and all(_votes(s, r)[0] is Health.HEALTHY for r in ("bg", "pa"))
                ),
            )
            code, out, _ = await _noc(tmp_path, "check", "--json", "--config", str(reader))
            report = json.loads(out)
            assert code == 1, out  # WARNING: a split is not a page
            assert "ro down from 1 of 3 vantages (quorum 2)" in report["summary"]
            ro_json = next(r for r in report["regions"] if r["id"] == "ro")
            assert (ro_json["health"], ro_json["down_votes"], ro_json["vantages_reporting"]) == (
                "healthy", 1, 3,
            )  # fmt: skip
            assert ro_json["vantage_verdicts"] == {"a": "down", "b": "healthy", "c": "healthy"}
            assert [(v["name"], v["cut_off"], v["stale"]) for v in report["vantages"]] == [
                ("a", False, False), ("b", False, False), ("c", False, False),
            ]  # fmt: skip

            # ro really fails, for every vantage: down by quorum.
            await ro.set_mode(EndpointMode.UNAVAILABLE)
            await _until(reader, lambda s: _votes(s, "ro") == (Health.DOWN, 3, 3))
            code, out, _ = await _noc(tmp_path, "check", "--json", "--config", str(reader))
            report = json.loads(out)
            assert code == 2, out
            assert "ro down (active region)" in report["summary"]

            # Observations went to the stream, from every vantage.
            store = redis.Redis(port=redis_server.port, decode_responses=True)
            try:
                entries = store.xrange("noc:mail-test:observations", count=2000)
            finally:
                store.close()
            assert {fields["vantage"] for _, fields in entries} == {"a", "b", "c"}
            # Every collector's samples, not only the checks' (deliverability reads the
            # flag store's Redis too).
            assert {"check", "flag", "deliverability"} <= {f["kind"] for _, f in entries}

            # An agent that stops reporting goes stale and no longer votes.
            agents["a"].send_signal(signal.SIGTERM)
            assert await agents["a"].wait() == 0
            await _until(
                reader,
                lambda s: (
                    [v.name for v in s.vantages if v.stale] == ["a"]
                    and _votes(s, "ro") == (Health.DOWN, 2, 2)
                ),
            )
        finally:
            for process in agents.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            codes = {name: await process.wait() for name, process in agents.items()}
        said = {name: log.read_text() for name, log in logs.items()}
        assert codes == {"a": 0, "b": 0, "c": 0}, said
        assert all(f"agent {name}: stopping" in said[name] for name in said), said


async def test_standalone_and_no_control_keep_polling_from_here(
    tmp_path: Path, health_endpoint: Callable[..., Awaitable[HealthEndpoint]]
) -> None:
    """`--standalone` probes by itself even with [control] (here a control plane that
    does not exist); without [control], nothing changes."""
    urls = {rid: (await health_endpoint(rid)).url for rid, _ in REGIONS}
    dead_control = "redis://127.0.0.1:1/0"
    attached = write_config(tmp_path / "attached.toml", urls, dead_control)
    plain = write_config(tmp_path / "plain.toml", urls, None)
    for args in (("--config", str(attached), "--standalone"), ("--config", str(plain))):
        code, out, _ = await _noc(tmp_path, "check", "--json", *args)
        report = json.loads(out)
        assert code == 0, out
        assert "vantages" not in report
        assert all("down_votes" not in r for r in report["regions"])
    # Attached, with the control plane away: UNKNOWN and why, not a silent poll.
    code, out, _ = await _noc(tmp_path, "check", "--config", str(attached))
    assert code == 3
    assert out.startswith("NOC UNKNOWN - control plane unreachable")


async def test_agent_config_errors_are_named_and_exit_3(
    tmp_path: Path, health_endpoint: Callable[..., Awaitable[HealthEndpoint]]
) -> None:
    urls = {rid: "http://127.0.0.1:9/health" for rid, _ in REGIONS}
    plain = write_config(tmp_path / "plain.toml", urls, None)
    code, _, err = await _noc(tmp_path, "agent", "--config", str(plain), "--vantage", "a")
    assert code == 3
    assert "noc agent needs [control] with redis_url" in err
    attached = write_config(tmp_path / "attached.toml", urls, "redis://127.0.0.1:1/0")
    code, _, err = await _noc(tmp_path, "agent", "--config", str(attached), "--vantage", "a b")
    assert code == 3
    assert "--vantage 'a b'" in err


async def test_the_observation_stream_is_trimmed_to_its_bound(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """XADD MAXLEN ~: the stream stays near stream_max_entries however much is seen."""
    urls = {rid: "http://127.0.0.1:9/health" for rid, _ in REGIONS}
    path = write_config(tmp_path / "a.toml", urls, f"redis://127.0.0.1:{redis_server.port}/0")
    config = load_config(path).config
    assert config.control is not None
    control = config.control.model_copy(update={"stream_max_entries": 1000})
    agent = Agent(config, control, "a", SystemClock())
    clock = SystemClock()
    try:
        for index in range(5000):
            agent.observe(
                "check",
                CheckSample(f"ro/{index % 3}", "ro", clock.monotonic(), clock.utcnow(), True, 200),
            )
        await agent.flush()
        length: Any = await agent.redis.xlen(agent.keys.observations)
    finally:
        await agent.scheduler.stop()
        await agent.redis.aclose()
    assert len(agent.buffer) == 0
    # Approximate trimming removes whole macro nodes (100 entries by default).
    assert 1000 <= length < 1000 + 200


async def test_observations_wait_in_a_bounded_buffer_while_the_control_plane_is_away(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Redis away: the agent holds at most buffer_max_entries (the oldest dropped and
    counted), and sends what it holds once Redis is back."""
    urls = {rid: "http://127.0.0.1:9/health" for rid, _ in REGIONS}
    path = write_config(tmp_path / "a.toml", urls, f"redis://127.0.0.1:{redis_server.port}/0")
    config = load_config(path).config
    assert config.control is not None
    control = config.control.model_copy(update={"buffer_max_entries": 100, "timeout_seconds": 0.5})
    agent = Agent(config, control, "a", SystemClock())
    clock = SystemClock()
    redis_server.stop()
    try:
        for index in range(150):
            agent.observe(
                "check",
                CheckSample(f"ro/{index}", "ro", clock.monotonic(), clock.utcnow(), True, 200),
            )
        with pytest.raises((redis.exceptions.ConnectionError, OSError)):
            await agent.flush()
        assert (len(agent.buffer), agent.buffer.dropped) == (100, 50)
        redis_server.start()  # the same port
        await agent.flush()
        entries: Any = await agent.redis.xrange(agent.keys.observations)
    finally:
        await agent.scheduler.stop()
        await agent.redis.aclose()
    # The newest 100 arrived, in order; the 50 oldest were the ones dropped.
    assert [fields["check"] for _, fields in entries] == [f"ro/{i}" for i in range(50, 150)]
