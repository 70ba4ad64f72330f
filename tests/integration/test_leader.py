"""One leader among agents, end to end: a real redis-server as the control plane, two
`noc agent` processes, a webhook channel on the fake APIs (tests/fake_apis.py).

- The leader killed with SIGKILL: the standby takes over once the lease lapses, with
  the next fencing token; it resumes the shared outbox, so the page already sent is
  not sent again and the resolve, sent by the new leader, goes under the same alert id.
- The leader paused (SIGSTOP) with a page on the wire, past its lease: the standby
  takes over and resends it (same delivery_id: the receiver's idempotency key); the
  old leader, continued (SIGCONT), has its "delivered" refused by the fence, and says
  so in its log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fake_apis import Answer, FakeApis
from processes import leaves_no_process

from noc.lease import Holder
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

LEASE_SECONDS = 2.0
SETTLE_SECONDS = 60.0
WEBHOOK_ENV = "NOC_TEST_LEADER_WEBHOOK"
LEASE_KEY = "noc:mail-test:leader"
OUTBOX_KEY = "noc:mail-test:outbox"


@pytest.fixture
async def apis() -> AsyncIterator[FakeApis]:
    server = FakeApis()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _config(
    path: Path, urls: dict[str, str], control_url: str, store_url: str, *, quorum: int = 1
) -> Path:
    regions = (("ro", "primary"), ("bg", "secondary"))
    lines = [
        '[estate]\nname = "mail-test"\ntopology = "active-passive"\n',
        "[health]\ninterval_seconds = 0.3\nfailure_threshold = 2\ntimeout_seconds = 1\n"
        f"quorum = {quorum}\n",
        f'[control]\nredis_url = "{control_url}"\nreport_interval_seconds = 0.5\n'
        f"lease_seconds = {LEASE_SECONDS}\n",
        f'[[notify]]\nkind = "webhook"\nname = "hook"\nsecret_env = "{WEBHOOK_ENV}"\n'
        'min_severity = "critical"\ntimeout_seconds = 30\n',
    ]
    for rid, role in regions:
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nredis_url = "{store_url}"\n'
            f'[[regions.checks]]\nurl = "{urls[rid]}"\nbody_contains = "healthy"\n'
        )
    path.write_text("\n".join(lines))
    return path


class Agents:
    """`noc agent` processes, each logging to its own file."""

    def __init__(self, tmp_path: Path, config: Path, webhook: str) -> None:
        self.tmp_path = tmp_path
        self.config = config
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
        self.env["XDG_STATE_HOME"] = str(tmp_path / "state")
        self.env[WEBHOOK_ENV] = webhook
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.logs: dict[str, Path] = {}

    async def start(self, name: str, config: Path | None = None) -> None:
        self.logs[name] = self.tmp_path / f"{name}.log"
        with self.logs[name].open("wb") as log:
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "noc", "agent", "--config", str(config or self.config),
                "--vantage", name,
                stdout=asyncio.subprocess.DEVNULL, stderr=log, env=self.env,
            )  # fmt: skip

    def said(self, name: str) -> str:
        return self.logs[name].read_text()

    async def stop_all(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                with_signal = signal.SIGCONT, signal.SIGTERM
                for number in with_signal:
                    process.send_signal(number)
        for process in self.processes.values():
            await process.wait()


async def _until(what: str, ready: Callable[[], Any]) -> Any:
    last = None
    try:
        async with asyncio.timeout(SETTLE_SECONDS):
            while True:
                last = ready()
                if last:
                    return last
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"never: {what} (last {last!r})")


def _leader(client: redis.Redis) -> Holder | None:
    text = client.get(LEASE_KEY)
    return Holder.from_text(str(text)) if text else None


def _pages(apis: FakeApis, event: str) -> list[dict[str, Any]]:
    return [
        r.body for r in apis.of("webhook")
        if r.body.get("event") == event and r.body["alert"]["rule"] == "region_down"
    ]  # fmt: skip


async def _estate(
    tmp_path: Path,
    redis_server: RedisServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    apis: FakeApis,
) -> tuple[Agents, HealthEndpoint, redis.Redis]:
    ro = await health_endpoint("ro")
    bg = await health_endpoint("bg")
    control = f"redis://127.0.0.1:{redis_server.port}/0"
    config = _config(
        tmp_path / "noc.toml", {"ro": ro.url, "bg": bg.url}, control,
        f"redis://127.0.0.1:{redis_server.port}/1",
    )  # fmt: skip
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    return Agents(tmp_path, config, apis.webhook_url), ro, client


@pytest.mark.slow
async def test_the_leader_killed_a_standby_takes_over_and_nothing_is_paged_twice(
    tmp_path: Path,
    redis_server: RedisServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    apis: FakeApis,
) -> None:
    agents, ro, client = await _estate(tmp_path, redis_server, health_endpoint, apis)
    with leaves_no_process():
        try:
            await agents.start("a")
            first = await _until("a leads", lambda: _leader(client))
            assert first.vantage == "a"
            await agents.start("b")
            await ro.set_mode(EndpointMode.UNAVAILABLE)
            fired = await _until("ro's page", lambda: _pages(apis, "firing"))
            # Killed once its delivery is on record (a kill between the answer and the
            # record is the next test's case: a resend with the same delivery_id).
            await _until(
                "a records the delivery",
                lambda: any('"delivered"' in r for r in client.lrange(OUTBOX_KEY, 0, -1)),
            )

            agents.processes["a"].kill()
            killed_at = time.time()
            await agents.processes["a"].wait()
            second = await _until(
                "b leads", lambda: (h := _leader(client)) and h.vantage == "b" and h
            )
            took = time.time() - killed_at
            assert second.token > first.token
            # `noc check --json` says who leads.
            checked = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "noc", "check", "--json", "--config", str(agents.config),
                stdout=asyncio.subprocess.PIPE, env=agents.env,
            )  # fmt: skip
            out, _ = await checked.communicate()
            assert json.loads(out)["leader"] == {
                "vantage": "b", "since": second.since[:19] + "Z", "term": second.token,
            }  # fmt: skip
            await _until("b resumes the outbox", lambda: "resumes" in agents.said("b"))

            # Notifications continue under b: ro comes back, and the resolve is b's.
            await ro.set_mode(EndpointMode.HEALTHY)
            resolved = await _until("ro's resolve", lambda: _pages(apis, "resolved"))
            # Per alert, messages leave in order: any second "firing" would be in by now.
            assert len(_pages(apis, "firing")) == 1, apis.of("webhook")
            assert len(resolved) == 1
            assert resolved[0]["alert"]["id"] == fired[0]["alert"]["id"]
            print(f"takeover {took:.2f} s after SIGKILL (lease {LEASE_SECONDS} s)")
        finally:
            await agents.stop_all()
            client.close()


@pytest.mark.slow
async def test_a_deposed_leaders_delayed_write_is_refused_by_the_fence(
    tmp_path: Path,
    redis_server: RedisServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    apis: FakeApis,
) -> None:
    agents, ro, client = await _estate(tmp_path, redis_server, health_endpoint, apis)
    # The first page sits at the receiver well past the lease; the next is answered.
    apis.script("webhook", Answer(200, delay=4 * LEASE_SECONDS))
    with leaves_no_process():
        try:
            await agents.start("a")
            first = await _until("a leads", lambda: _leader(client))
            await agents.start("b")
            await ro.set_mode(EndpointMode.UNAVAILABLE)
            await _until("a's page on the wire", lambda: apis.in_flight == 1)

            agents.processes["a"].send_signal(signal.SIGSTOP)
            second = await _until(
                "b leads", lambda: (h := _leader(client)) and h.vantage == "b" and h
            )
            assert second.token == first.token + 1
            # b resumed the outbox: the page a never saw answered goes again, with the
            # same delivery_id.
            resent = await _until("b's resend", lambda: _pages(apis, "firing"))

            agents.processes["a"].send_signal(signal.SIGCONT)
            await _until("a's page answered", lambda: len(_pages(apis, "firing")) == 2)
            said = await _until(
                "a's write refused",
                lambda: "FENCED" in (text := agents.said("a")) and "steps down" in text and text,
            )
            assert f"refused a write of term {first.token}" in said, said
            pages = _pages(apis, "firing")
            assert {p["delivery_id"] for p in pages} == {resent[0]["delivery_id"]}
            # The outbox is b's: the message is delivered, by b's record.
            assert client.llen("noc:mail-test:outbox") > 0
            assert client.get("noc:mail-test:leader-token") == str(second.token)
        finally:
            await agents.stop_all()
            client.close()


@pytest.mark.slow
async def test_the_leader_pages_on_the_vantages_verdict_not_its_own_path(
    tmp_path: Path,
    redis_server: RedisServer,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    apis: FakeApis,
) -> None:
    """Leader a's path to ro is broken; b reaches ro. With quorum 2 that is a split:
    a leads, and pages nothing. Once b loses ro too, ro is down by quorum: one page."""
    ro_from_a, ro_from_b = await health_endpoint("ro"), await health_endpoint("ro")
    bg = await health_endpoint("bg")
    await ro_from_a.set_mode(EndpointMode.UNAVAILABLE)
    control = f"redis://127.0.0.1:{redis_server.port}/0"
    store = f"redis://127.0.0.1:{redis_server.port}/1"
    configs = {
        name: _config(
            tmp_path / f"{name}.toml", {"ro": ro.url, "bg": bg.url}, control, store, quorum=2
        )
        for name, ro in (("a", ro_from_a), ("b", ro_from_b))
    }
    agents = Agents(tmp_path, configs["a"], apis.webhook_url)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    with leaves_no_process():
        try:
            await agents.start("a", configs["a"])
            await _until("a leads", lambda: _leader(client))
            await agents.start("b", configs["b"])
            reports = "noc:mail-test:vantages"
            await _until(
                "the split: a sees ro down, b healthy",
                lambda: (
                    (r := client.hgetall(reports)).keys() == {"a", "b"}
                    and json.loads(r["a"])["regions"]["ro"]["health"] == "down"
                    and json.loads(r["b"])["regions"]["ro"]["health"] == "healthy"
                ),
            )
            broken_at = datetime.now(UTC)
            await ro_from_b.set_mode(EndpointMode.UNAVAILABLE)
            pages = await _until("ro's page", lambda: _pages(apis, "firing"))
            assert len(pages) == 1
            # The episode began once both saw ro down, not while a alone did.
            assert datetime.fromisoformat(pages[0]["alert"]["since"]) >= broken_at, pages
            assert _leader(client) is not None and _leader(client).vantage == "a"  # type: ignore[union-attr]
        finally:
            await agents.stop_all()
            client.close()
