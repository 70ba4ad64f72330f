"""Maintenance windows with the real parts: the state dir on disk, the audit log, the
notifier's outbox and HTTP to a webhook receiver on loopback (tests/fake_apis.py), the
`noc` command in a subprocess, and a writer killed with SIGKILL mid-history.

Time is a FakeClock where a window must start or end during the test; the engine is
fed the collectors' own samples (tests/support.py), as the scheduler feeds it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_apis import FakeApis
from support import REFUSED, estate_config, feed_flags, feed_round

from noc.audit import EstatePaths, JsonlLog, read_jsonl
from noc.clock import FakeClock
from noc.config import NocConfig
from noc.maintenance import MaintenanceStore
from noc.notify import Notifier, Outbox
from noc.operations import EXIT_DONE, EXIT_NOTHING_CHANGED, EXIT_USAGE, Operations
from noc.scheduler import Scheduler
from noc.simulator import HealthEndpoint

OPERATOR = {"operator": "op@noc1"}
NOC = [sys.executable, "-m", "noc"]


@pytest.fixture
async def apis() -> AsyncIterator[FakeApis]:
    server = FakeApis()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _config(state: Path, **sections: Any) -> NocConfig:
    config = estate_config(redis_urls={}, **sections)
    estate = config.estate.model_copy(update={"state_dir": str(state)})
    updated: NocConfig = config.model_copy(update={"estate": estate})
    return updated


def _operations(config: NocConfig, clock: FakeClock, state: Path) -> Operations:
    scheduler = Scheduler(config, clock, state_dir=state)
    return Operations(config, scheduler, JsonlLog(EstatePaths(state).audit, clock), clock)


async def test_a_window_survives_a_restart_and_is_audited(tmp_path: Path) -> None:
    clock = FakeClock()
    config = _config(tmp_path)
    first = _operations(config, clock, tmp_path)
    opened = await first.add_maintenance("ro", timedelta(hours=2), "kernel upgrade", OPERATOR)
    ahead = await first.add_maintenance(
        "bg", timedelta(minutes=30), "disk swap", OPERATOR,
        starts_at=clock.utcnow() + timedelta(hours=1),
    )  # fmt: skip
    assert (opened.exit_code, ahead.exit_code) == (EXIT_DONE, EXIT_DONE)
    await first.scheduler.stop()

    # A new process on the same state dir: the same windows, in force as before.
    again = _operations(config, clock, tmp_path)
    await again.scheduler.refresh_maintenance()
    shown = {r.id: r.maintenance for r in again.scheduler.snapshot().regions}
    assert shown["ro"] is not None and shown["ro"].reason == "kernel upgrade"
    assert shown["bg"] is None and shown["pa"] is None
    clock.advance(3600)  # the scheduled one starts by the clock
    assert again.scheduler.snapshot().region("bg").maintenance is not None  # type: ignore[union-attr]
    ended = await again.end_maintenance(shown["ro"].id, OPERATOR)
    assert ended.exit_code == EXIT_DONE
    assert (await again.end_maintenance(shown["ro"].id, OPERATOR)).exit_code == (
        EXIT_NOTHING_CHANGED
    )
    await again.scheduler.stop()

    third = _operations(config, clock, tmp_path)
    await third.scheduler.refresh_maintenance()
    assert [r.id for r in third.scheduler.snapshot().regions if r.maintenance] == ["bg"]
    clock.advance(1800)  # and ends by itself
    assert not any(r.maintenance for r in third.scheduler.snapshot().regions)
    await third.scheduler.stop()

    events = [r["event"] for r in read_jsonl(EstatePaths(tmp_path).audit).records]
    assert events == [
        "maintenance_add_intent", "maintenance_add",
        "maintenance_add_intent", "maintenance_add",
        "maintenance_end_intent", "maintenance_end",
    ]  # fmt: skip
    assert all(r["operator"] == "op@noc1" for r in read_jsonl(EstatePaths(tmp_path).audit).records)


async def test_a_window_that_cannot_be_is_refused_and_not_recorded(tmp_path: Path) -> None:
    clock = FakeClock()
    ops = _operations(_config(tmp_path), clock, tmp_path)
    outcome = await ops.add_maintenance("xx", timedelta(hours=1), "work", OPERATOR)
    assert outcome.exit_code == EXIT_USAGE and "no region 'xx'" in outcome.message
    assert not EstatePaths(tmp_path).maintenance.exists()
    assert not EstatePaths(tmp_path).audit.exists()
    await ops.scheduler.stop()


async def test_no_page_during_the_window_and_a_page_after_it_if_still_firing(
    tmp_path: Path, apis: FakeApis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOC_T_HOOK", apis.webhook_url)
    clock = FakeClock()
    config = _config(
        tmp_path,
        notify=[{"kind": "webhook", "secret_env": "NOC_T_HOOK", "min_severity": "warning"}],
    )
    ops = _operations(config, clock, tmp_path)
    scheduler = ops.scheduler
    outbox = Outbox.open(EstatePaths(tmp_path).outbox, clock)
    scheduler.notifier = Notifier(config.notify, outbox, clock, estate=config.estate.name)
    try:
        await ops.add_maintenance("ro", timedelta(minutes=10), "kernel upgrade", OPERATOR)
        feed_flags(scheduler.engine, clock, "ro")
        for _ in range(4):  # ro fails its checks until it is down
            feed_round(scheduler.engine, clock, {"ro": REFUSED})
            await scheduler.evaluate_alerts()
            await scheduler.notifier.send_due()
        firing = [a for a in scheduler.snapshot().alerts if a.rule == "region_down"]
        assert firing and all(a.maintenance for a in firing)
        assert apis.of("webhook") == []
        report = _check_json(scheduler)
        ro = next(r for r in report["regions"] if r["id"] == "ro")
        assert ro["maintenance"]["reason"] == "kernel upgrade"
        assert ro["maintenance"]["by"] == "op@noc1"
        assert {a["maintenance"] for a in report["alerts"] if a["region"] == "ro"} == {True}

        # bg fails too, outside any window: that one pages at once.
        for _ in range(3):
            feed_round(scheduler.engine, clock, {"ro": REFUSED, "bg": REFUSED})
            await scheduler.evaluate_alerts()
            await scheduler.notifier.send_due()
        paged = {r.body["alert"]["key"] for r in apis.of("webhook")}
        assert "region_down:bg" in paged and "region_down:ro" not in paged

        # The window ends by itself with ro still down: its page goes out now.
        clock.advance(10 * 60)
        feed_round(scheduler.engine, clock, {"ro": REFUSED, "bg": REFUSED})
        await scheduler.evaluate_alerts()
        await scheduler.notifier.send_due()
        ro_pages = [
            r.body for r in apis.of("webhook") if r.body["alert"]["key"] == "region_down:ro"
        ]
        assert [p["event"] for p in ro_pages] == ["firing"]
        assert _check_json(scheduler)["regions"][0]["maintenance"] is None
    finally:
        await scheduler.notifier.aclose()
        outbox.close()
        await scheduler.stop()


async def test_an_alert_that_ends_inside_the_window_never_pages(
    tmp_path: Path, apis: FakeApis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOC_T_HOOK", apis.webhook_url)
    clock = FakeClock()
    config = _config(tmp_path, notify=[{"kind": "webhook", "secret_env": "NOC_T_HOOK"}])
    ops = _operations(config, clock, tmp_path)
    scheduler = ops.scheduler
    outbox = Outbox.open(EstatePaths(tmp_path).outbox, clock)
    scheduler.notifier = Notifier(config.notify, outbox, clock, estate=config.estate.name)
    try:
        await ops.add_maintenance("ro", timedelta(minutes=30), "reboot", OPERATOR)
        feed_flags(scheduler.engine, clock, "ro")
        for errors in [{"ro": REFUSED}] * 4 + [{}] * 4:  # down, then back, in the window
            feed_round(scheduler.engine, clock, errors)
            await scheduler.evaluate_alerts()
            await scheduler.notifier.send_due()
        clock.advance(30 * 60)
        feed_round(scheduler.engine, clock)
        await scheduler.evaluate_alerts()
        await scheduler.notifier.send_due()
        assert apis.of("webhook") == []
    finally:
        await scheduler.notifier.aclose()
        outbox.close()
        await scheduler.stop()


def _check_json(scheduler: Scheduler) -> dict[str, Any]:
    from noc.check import report_json

    return report_json(scheduler.snapshot())


async def test_the_cli_opens_lists_and_ends_a_window_and_noc_check_shows_it(
    tmp_path: Path, health_endpoint: Callable[..., Awaitable[HealthEndpoint]]
) -> None:
    # bg answers (a real HTTP endpoint), ro refuses: noc is not cut off, ro is down.
    bg = await health_endpoint("bg")
    state = tmp_path / "state"
    config = tmp_path / "noc.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [estate]
            name = "mt"
            state_dir = "{state}"
            [[regions]]
            id = "ro"
            role = "primary"
            location = [44.4, 26.1]
            [[regions.checks]]
            url = "http://127.0.0.1:{_closed_port()}/health"
            [[regions]]
            id = "bg"
            role = "secondary"
            location = [42.7, 23.3]
            [[regions.checks]]
            url = "{bg.url}"
            """
        )
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*NOC, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    # Off the event loop, which serves bg's health endpoint meanwhile.
    async def noc(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run, *args)

    added = await noc("maintenance", "add", "--config", str(config), "--region", "ro",
                "--for", "2h", "--reason", "kernel upgrade")  # fmt: skip
    assert added.returncode == 0, added.stderr
    refused = await noc("maintenance", "add", "--config", str(config), "--region", "ro",
                  "--for", "9d", "--reason", "x")  # fmt: skip
    assert refused.returncode == EXIT_USAGE and "at most 7 days" in refused.stderr
    listed = json.loads(
        (await noc("maintenance", "list", "--config", str(config), "--json")).stdout
    )
    assert [(w["region"], w["state"], w["reason"]) for w in listed] == [
        ("ro", "active", "kernel upgrade")
    ]
    report = json.loads((await noc("check", "--config", str(config), "--json")).stdout)
    regions = {r["id"]: r["maintenance"] for r in report["regions"]}
    assert regions["bg"] is None
    assert set(regions["ro"]) >= {"until", "reason", "by"}
    assert regions["ro"]["reason"] == "kernel upgrade"
    marked = {(a["key"], a["maintenance"]) for a in report["alerts"]}
    assert ("region_down:ro", True) in marked
    assert all(flag for key, flag in marked if key.endswith(":ro"))
    ended = await noc("maintenance", "end", "--config", str(config), listed[0]["id"])
    assert ended.returncode == 0, ended.stderr
    assert (
        await noc("maintenance", "end", "--config", str(config), listed[0]["id"])
    ).returncode == 1
    report = json.loads((await noc("check", "--config", str(config), "--json")).stdout)
    assert all(r["maintenance"] is None for r in report["regions"])


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


WRITER = """
import sys
from datetime import timedelta
from pathlib import Path
from noc.clock import SystemClock
from noc.maintenance import MaintenanceStore, new_window
clock = SystemClock()
store = MaintenanceStore(Path(sys.argv[1]), clock)
while True:
    window = new_window("ro", ["ro"], timedelta(hours=1), "soak " * 40, "op", clock.utcnow())
    store.add(window)
    print(window.id, flush=True)  # reported: on disk
"""


def test_a_writer_killed_mid_history_loses_no_reported_window(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    reported: list[str] = []
    try:
        assert writer.stdout is not None
        while len(reported) < 200:
            line = writer.stdout.readline()
            assert line, "the writer stopped on its own"
            reported.append(line.strip())
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert writer.stdout is not None
        reported += [line.strip() for line in writer.stdout if line.strip()]
        writer.stdout.close()
    store = MaintenanceStore(path, FakeClock(start=None))
    store.reload()
    kept = {w.id for w in store.book.all()}
    assert set(reported) <= kept
    # And a later write goes on cleanly after whatever the kill left.
    store.add(store.book.all()[0].__class__(**{**_fields(store.book.all()[0]), "id": "after0"}))
    again = MaintenanceStore(path, FakeClock())
    again.reload()
    assert "after0" in {w.id for w in again.book.all()}
    assert again.damaged_lines == ()


def _fields(window: Any) -> dict[str, Any]:
    return {name: getattr(window, name) for name in window.__slots__}


async def test_an_unreadable_window_store_does_not_stop_alerting(tmp_path: Path) -> None:
    clock = FakeClock()
    # A directory where the file should be: stat works, reading fails (as root too).
    EstatePaths(tmp_path).maintenance.mkdir()
    scheduler = Scheduler(_config(tmp_path), clock, state_dir=tmp_path)
    try:
        feed_flags(scheduler.engine, clock, "ro")
        for _ in range(4):
            feed_round(scheduler.engine, clock, {"bg": REFUSED})
            await scheduler.evaluate_alerts()  # logged, not raised
        assert any(a.key == "region_down:bg" for a in scheduler.snapshot().alerts)
    finally:
        await scheduler.stop()
