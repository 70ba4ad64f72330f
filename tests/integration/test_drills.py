"""`noc drill run` end to end: a real subprocess on real health endpoints, real
redis-servers (flag stores and a replicated data class), a real BIND taking TSIG
updates, and an inject/restore hook script that drives the simulated estate's
fault injection. The report's figures are checked against the audit timeline."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from named import NamedServer, TsigKey, Zone, named_servers  # noqa: F401
from replication_fixtures import ReplicatedPair, replicated_pair_fixture  # noqa: F401
from test_cli import REGIONS, Estate, noc

from noc.audit import read_jsonl
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode
from noc_collectors.dns_records import parse_resolver, query

KEY = TsigKey("noc-drill", base64.b64encode(secrets.token_bytes(32)).decode())
DOMAIN = "drill.test"
ZONE_TEXT = (
    "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    "smtp 1 A 192.0.2.10\n"
)
HOOK = Path(__file__).parent.parent / "drill_fault_hook.py"
# How each playbook mode is put in place on the simulated estate.
FAULTS = {"region_down": EndpointMode.DOWN}


class FaultBridge:
    """The estate side of tests/drill_fault_hook.py: applies each request the hook
    writes through the simulator's health endpoints, then answers it."""

    def __init__(self, directory: Path, endpoints: dict[str, HealthEndpoint]) -> None:
        self.directory = directory
        self.endpoints = endpoints
        self.applied: list[dict[str, str]] = []

    async def serve(self) -> None:
        while True:
            for request in sorted(self.directory.glob("*.request")):
                done = request.with_suffix(".done")
                if done.exists():
                    continue
                wanted = json.loads(request.read_text())
                # A mode with no fault to put in place (a regulatory departure) leaves
                # the region as it is.
                fault = FAULTS.get(wanted["mode"])
                if fault is not None:
                    mode = fault if wanted["verb"] == "inject" else EndpointMode.HEALTHY
                    await self.endpoints[wanted["region"]].set_mode(mode)
                self.applied.append(wanted)
                done.write_text("ok")
            # The hook is another process writing a file: there is no event to wait on.
            await asyncio.sleep(0.02)


@dataclass
class DrillEstate(Estate):
    named: NamedServer
    bridge: FaultBridge


@pytest.fixture
async def drill_estate(
    tmp_path: Path,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    redis_servers: Callable[..., list[RedisServer]],
    named_servers: Callable[..., NamedServer],  # noqa: F811
    replicated_pair: ReplicatedPair,
) -> AsyncIterator[DrillEstate]:
    named = named_servers([Zone(DOMAIN, ZONE_TEXT, allow_update=True)], tsig=KEY)
    endpoints = {rid: await health_endpoint(rid) for rid, *_ in REGIONS}
    stores = dict(zip([rid for rid, *_ in REGIONS], redis_servers(3), strict=True))
    faults = tmp_path / "faults"
    faults.mkdir()
    hook = f"{sys.executable} {HOOK}"
    lines = [
        '[estate]\nname = "mail-test"\nrto_seconds = 120\nrpo_seconds = 30\n',
        "[health]\ninterval_seconds = 1\nfailure_threshold = 3\ntimeout_seconds = 1\n"
        "retry_interval_seconds = 0.5\n",
        "[failover]\nstore_timeout_seconds = 1\nflag_interval_seconds = 0.5\n"
        "verify_grace_seconds = 2\n",
        f'[failover.dns]\nserver = "{named.address}"\nzone = "{DOMAIN}"\n'
        f'key_name = "{KEY.name}"\nkey_secret = "{KEY.secret}"\n',
        f"[drills]\npoll_seconds = 0.2\ndetect_timeout_seconds = 30\nsettle_timeout_seconds = 30\n"
        f'[drills.hooks]\ninject = "{hook} inject {faults}"\nrestore = "{hook} restore {faults}"\n',
        f'[dns]\nresolvers = ["{named.address}"]\ninterval_seconds = 0.5\n'
        f'[[dns.records]]\nname = "smtp.{DOMAIN}"\ntype = "A"\n',
        f'[[replication]]\ndata_class = "suppression"\nsource = "ro"\ntarget = "bg"\n'
        f'url = "{replicated_pair.replica.url}"\ninterval_seconds = 0.5\n',
    ]
    for index, (rid, role, (lat, lon)) in enumerate(REGIONS):
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nlocation = [{lat}, {lon}]\n'
            f'redis_url = "{stores[rid].url}"\nservice_ips = ["192.0.2.{10 * (index + 1)}"]\n'
            f'[[regions.checks]]\nurl = "{endpoints[rid].url}"\nbody_contains = "healthy"\n'
        )
    path = tmp_path / "noc.toml"
    path.write_text("\n".join(lines))
    bridge = FaultBridge(faults, endpoints)
    serving = asyncio.create_task(bridge.serve())
    try:
        yield DrillEstate(path, tmp_path / "state", endpoints, stores, named, bridge)
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def smtp(estate: DrillEstate) -> tuple[str, ...]:
    answer = await query(parse_resolver(estate.named.address), f"smtp.{DOMAIN}", "A", 2.0)
    return tuple(r.to_text() for r in answer.records)


def drill_records(estate: Estate, drill_id: str) -> dict[str, dict[str, Any]]:
    records = read_jsonl(estate.audit_path).records
    return {r["event"]: r for r in records if r.get("drill_id") == drill_id}


async def test_a_region_down_drill_end_to_end_matches_the_audit_timeline(
    drill_estate: DrillEstate,
) -> None:
    estate = drill_estate
    config = ["--config", str(estate.path)]
    run = await noc(
        estate, "drill", "run", *config, "--mode", "region_down", "--region", "ro",
        "--reason", "quarterly drill", "--yes",
    )  # fmt: skip
    assert run.code == 0, run.out + run.err
    # The hook injected and restored the fault in ro, in that order.
    assert [(a["verb"], a["region"]) for a in estate.bridge.applied] == [
        ("inject", "ro"),
        ("restore", "ro"),
    ]
    # Failed back at the end: flag and DNS on ro again.
    assert {estate.flag(r)["active"] for r in estate.stores} == {"ro"}
    assert await smtp(estate) == ("192.0.2.10",)

    shown = await noc(estate, "drill", "report", *config, "--json")
    assert shown.code == 0, shown.err
    report = shown.json()
    for key in ("mode", "started_at", "detect_s", "declare_s", "route_s", "restore_s",
                "verify_s", "rto_s", "rto_target_s", "rpo_s", "rpo_target_s", "met",
                "steps", "deviations"):  # fmt: skip
        assert key in report, key
    assert report["mode"] == "region_down" and report["target"] == "bg"
    assert report["title"] == "Drill: Primary datacenter/region outage in ro"
    assert report["timeline"][-1]["event"] == "drill_ended" and report["ended_at"]
    assert report["met"] is True, report["deviations"]
    assert report["deviations"] == []

    # Every figure is the audit record's, and they come in the drill's order.
    drill = drill_records(estate, report["id"])
    assert report["started_at"] == drill["drill_started"]["ts"]
    events = {"detect": "drill_detected", "declare": "drill_declared", "route": "drill_routed",
              "restore": "drill_restored", "verify": "drill_verified"}  # fmt: skip
    for phase, event in events.items():
        assert report[f"{phase}_s"] == drill[event]["seconds"], phase
    figures = [report[f"{p}_s"] for p in ("detect", "declare", "route", "restore", "verify")]
    assert figures == sorted(figures) and figures[0] > 0
    assert report["rto_s"] == report["verify_s"] <= report["rto_target_s"] == 120
    # Detection needs three failed checks at 1 s intervals (retries at 0.5 s).
    assert report["detect_s"] >= 1.0

    # Route is the failover's own record: confirmed, then executed that much later.
    records = read_jsonl(estate.audit_path).records
    action_id = drill["drill_routed"]["action_id"]
    executed = next(r for r in records if r["event"] == "executed" and r["action_id"] == action_id)
    routed = drill["drill_routed"]
    assert report["route_s"] == pytest.approx(
        routed["confirmed_s"] + executed["seconds_since_confirm"], abs=0.002
    )
    assert routed["confirmed_s"] >= report["declare_s"]
    confirmed = next(
        r for r in records if r["event"] == "confirmed" and r["action_id"] == action_id
    )
    assert confirmed["confirmation"] == "--yes" and confirmed["to"] == "bg"
    # RPO: the suppression link's lag as the failover's plan saw it.
    assert set(report["data_at_risk"]) == {"suppression"}
    assert report["rpo_s"] == report["data_at_risk"]["suppression"] <= 30

    # The act sequence: the failover through the operations layer, the cooldown
    # cleared in the drill's name, the failback.
    acts = [r["event"] for r in records if r["event"] in (
        "drill_started", "drill_injected", "drill_detected", "drill_declared", "planned",
        "confirmed", "executed", "verified", "drill_routed", "drill_restored",
        "drill_verified", "drill_fault_restored", "cooldown_ack", "drill_failback",
        "drill_ended")]  # fmt: skip
    assert acts == [
        "drill_started", "drill_injected", "drill_detected", "drill_declared",
        "planned", "confirmed", "executed", "verified", "drill_routed", "drill_restored",
        "drill_verified", "drill_fault_restored", "cooldown_ack",
        "planned", "confirmed", "executed", "verified", "drill_failback", "drill_ended",
    ]  # fmt: skip

    # Every step ticked, each at or after the injection, the response before rollback.
    steps = {(s["phase"], s["id"]): s for s in report["steps"]}
    assert all(s["done_at"] is not None for s in steps.values()), steps
    assert steps[("response", "failover")]["done_at"] >= report["declare_s"]
    assert steps[("response", "failover")]["action"] == "failover"
    assert steps[("response", "failover")]["key"] == "f"
    assert steps[("rollback", "failback")]["done_at"] >= report["verify_s"]
    # The checks after the failover in the playbook judge the state it made: they
    # tick only once it was performed, not because the target was healthy before.
    assert steps[("response", "target_health")]["done_at"] >= report["route_s"]
    # Markdown beside the JSON; history kept.
    folder = estate.state / "noc" / "mail-test" / "drills"
    assert (folder / f"{report['id']}.md").read_text().startswith(f"# Drill {report['id']}")
    schedule = await noc(estate, "drill", "schedule", *config, "--json")
    due = schedule.json()
    assert due["mode"] == "partition" and due["overdue"] is False


async def test_an_unknown_mode_is_a_usage_error_and_changes_nothing(
    drill_estate: DrillEstate,
) -> None:
    run = await noc(
        drill_estate, "drill", "run", "--config", str(drill_estate.path), "--mode", "meteor",
        "--region", "ro", "--reason", "x", "--yes",
    )  # fmt: skip
    assert run.code == 3, run.out + run.err
    assert "no mode 'meteor'" in run.err
    assert drill_estate.bridge.applied == []


async def interact(
    estate: Estate, args: list[str], answers: list[tuple[str, str]]
) -> tuple[int, str, str]:
    """Run `noc ARGS`, typing each answer once its prompt has been printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=estate.env(), cwd=estate.path.parent,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    out = bytearray()
    seen = 0
    for prompt, answer in answers:
        while (found := out.find(prompt.encode(), seen)) < 0:
            chunk = await asyncio.wait_for(process.stdout.read(4096), timeout=60)
            assert chunk, f"ended before {prompt!r}: {out.decode()}"
            out += chunk
        seen = found + len(prompt)
        process.stdin.write(answer.encode())
        await process.stdin.drain()
    rest, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, (out + rest).decode(), err.decode()


async def test_without_yes_the_operator_declares_and_types_each_target(
    drill_estate: DrillEstate,
) -> None:
    estate = drill_estate
    code, out, err = await interact(
        estate,
        ["drill", "run", "--config", str(estate.path), "--mode", "region_down",
         "--region", "ro", "--to", "pa", "--reason", "typed drill"],
        [("press Enter to declare", "\n"),
         ("Type the target region id (pa) to confirm: ", "pa\n"),
         ("Type the target region id (ro) to confirm: ", "ro\n")],
    )  # fmt: skip
    assert code == 0, out + err
    records = read_jsonl(estate.audit_path).records
    confirmed = [(r["to"], r["confirmation"]) for r in records if r["event"] == "confirmed"]
    assert confirmed == [("pa", "typed"), ("ro", "typed")]
    assert {estate.flag(r)["active"] for r in estate.stores} == {"ro"}
    report = (await noc(estate, "drill", "report", "--config", str(estate.path), "--json")).json()
    assert report["target"] == "pa" and report["met"] is True, report["deviations"]
    # The declaration waited for the operator: it comes at or after the detection.
    assert report["declare_s"] >= report["detect_s"]


async def test_an_interrupted_drill_takes_its_fault_away(drill_estate: DrillEstate) -> None:
    estate = drill_estate
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", "drill", "run", "--config", str(estate.path),
        "--mode", "region_down", "--region", "ro", "--reason", "stopped", "--yes",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=estate.env(), cwd=estate.path.parent,
    )  # fmt: skip
    # The fault is in place once the bridge applied it: there is no event to wait on.
    while not estate.bridge.applied:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 130, out.decode() + err.decode()
    assert [a["verb"] for a in estate.bridge.applied] == ["inject", "restore"]
    assert estate.endpoints["ro"].mode is EndpointMode.HEALTHY
    interrupted = [r for r in read_jsonl(estate.audit_path).records
                   if r["event"] == "drill_interrupted"]  # fmt: skip
    assert len(interrupted) == 1 and interrupted[0]["fault_restored"] is True


async def test_a_regulatory_drill_is_declared_and_switches_over(
    drill_estate: DrillEstate,
) -> None:
    """Nothing noc can see: the declaration is the detection, and the move is a
    switchover (planned, replication drained) rather than a failover."""
    estate = drill_estate
    config = ["--config", str(estate.path)]
    run = await noc(
        estate, "drill", "run", *config, "--mode", "regulatory", "--region", "ro",
        "--to", "bg", "--reason", "legal drill", "--yes",
    )  # fmt: skip
    assert run.code == 0, run.out + run.err
    report = (await noc(estate, "drill", "report", *config, "--json")).json()
    assert report["mode"] == "regulatory" and report["met"] is True, report["deviations"]
    assert report["detect_s"] <= report["declare_s"] <= report["route_s"]
    records = read_jsonl(estate.audit_path).records
    moves = [(r["action"], r["to"]) for r in records if r["event"] == "executed"]
    assert moves == [("switchover", "bg"), ("failback", "ro")]
    assert await smtp(estate) == ("192.0.2.10",)
    steps = {(s["phase"], s["id"]): s for s in report["steps"]}
    assert steps[("response", "declare")]["done_at"] is not None
