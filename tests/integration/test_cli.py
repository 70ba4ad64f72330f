"""The `noc` command end to end: real health endpoints, real redis-servers, a real
subprocess with its own state directory. No part of the path is replaced."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import stored_flag

from noc.audit import read_jsonl
from noc.recovery import STEP_EVENTS
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

FLAG_KEY = "noc:failover"
REGIONS = (
    ("ro", "primary", (44.43, 26.10)),
    ("bg", "secondary", (42.70, 23.32)),
    ("pa", "secondary", (8.98, -79.52)),
)


@dataclass
class Estate:
    path: Path
    state: Path
    endpoints: dict[str, HealthEndpoint]
    stores: dict[str, RedisServer]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
        env["XDG_STATE_HOME"] = str(self.state)
        env["XDG_CONFIG_HOME"] = str(self.state / "config")
        return env

    @property
    def audit_path(self) -> Path:
        return self.state / "noc" / "mail-test" / "audit.jsonl"

    def flag(self, region: str) -> dict[str, str]:
        return stored_flag(self.stores[region])

    def events(self) -> list[str]:
        # The per-step intent and result records are the recovery's; tests read acts.
        records = read_jsonl(self.audit_path).records
        return [r["event"] for r in records if r["event"] not in STEP_EVENTS]


def write_config(
    path: Path, endpoints: dict[str, str], stores: dict[str, str], extra: str = ""
) -> Path:
    lines = [
        '[estate]\nname = "mail-test"\ntopology = "active-passive"\n',
        "[health]\ninterval_seconds = 1\nfailure_threshold = 3\ntimeout_seconds = 1\n",
        "[failover]\nstore_timeout_seconds = 1\n",
        extra,
    ]
    for rid, role, (lat, lon) in REGIONS:
        lines.append(
            f'[[regions]]\nid = "{rid}"\nrole = "{role}"\nlocation = [{lat}, {lon}]\n'
            f'redis_url = "{stores[rid]}"\n'
            f'[[regions.checks]]\nurl = "{endpoints[rid]}"\nbody_contains = "healthy"\n'
        )
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
async def estate(
    tmp_path: Path,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    redis_servers: Callable[..., list[RedisServer]],
) -> Estate:
    endpoints = {rid: await health_endpoint(rid) for rid, *_ in REGIONS}
    stores = dict(zip([rid for rid, *_ in REGIONS], redis_servers(3), strict=True))
    path = write_config(
        tmp_path / "noc.toml",
        {rid: e.url for rid, e in endpoints.items()},
        {rid: s.url for rid, s in stores.items()},
    )
    return Estate(path, tmp_path / "state", endpoints, stores)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def noc(
    estate: Estate, *args: str, stdin: str = "", kill_when: Callable[[], bool] | None = None
) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "noc",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=estate.env(),
        cwd=estate.path.parent,
    )
    if kill_when is not None:
        # Polls a file another process writes: there is no event to wait on.
        while process.returncode is None and not kill_when():  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def config_args(estate: Estate) -> list[str]:
    return ["--config", str(estate.path)]


async def act(estate: Estate, kind: str, to: str, *flags: str, reason: str = "x", **kw: Any) -> Run:
    """`noc failover|failback --to TO --reason REASON FLAGS` against the estate."""
    return await noc(
        estate, kind, *config_args(estate), "--to", to, "--reason", reason, *flags, **kw
    )


async def test_check_ok_json_fields(estate: Estate) -> None:
    run = await noc(estate, "check", *config_args(estate), "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["estate"] == "mail-test"
    assert report["generated_at"].endswith("Z")
    assert report["active_region"] == "ro"
    assert report["alerts"] == []
    region = report["regions"][0]
    assert {"id", "role", "health", "checks"} <= region.keys()
    check = region["checks"][0]
    assert {"url", "ok", "status", "latency_ms", "error"} <= check.keys()
    assert check["ok"] is True and check["status"] == 200


async def test_check_text_first_line_is_nagios(estate: Estate) -> None:
    run = await noc(estate, "check", *config_args(estate))
    verdict, bar, _perf_data = run.out.splitlines()[0].partition(" | ")
    assert verdict == "NOC OK - 3/3 regions healthy" and bar


async def test_check_warning_when_a_secondary_is_down(estate: Estate) -> None:
    await estate.endpoints["bg"].set_mode(EndpointMode.UNAVAILABLE)
    run = await noc(estate, "check", *config_args(estate))
    # One round: every check of bg failed, so bg is down; it is not the active region.
    assert run.code == 2
    assert run.out.startswith("NOC CRITICAL - bg down")


async def test_check_critical_when_active_region_down(estate: Estate) -> None:
    await estate.endpoints["ro"].set_mode(EndpointMode.DOWN)
    run = await noc(estate, "check", *config_args(estate), "--json")
    assert run.code == 2
    report = run.json()
    assert report["status"] == "CRITICAL"
    ro = report["regions"][0]
    assert ro["health"] == "down"
    assert "refused" in ro["checks"][0]["error"]


async def test_check_unknown_when_nothing_is_reachable(estate: Estate) -> None:
    for endpoint in estate.endpoints.values():
        await endpoint.set_mode(EndpointMode.DOWN)
    for store in estate.stores.values():
        store.stop()
    run = await noc(estate, "check", *config_args(estate))
    assert run.code == 3
    assert run.out.startswith("NOC UNKNOWN - noc cannot reach anything")


async def test_check_every_endpoint_down_while_stores_answer_is_an_outage(estate: Estate) -> None:
    """Cut off is judged over every source: the stores answer, so noc is not cut off;
    every region is down and the estate is (issue 12: "cut-off from HTTP alone")."""
    for endpoint in estate.endpoints.values():
        await endpoint.set_mode(EndpointMode.DOWN)
    run = await noc(estate, "check", *config_args(estate), "--json")
    assert run.code == 2
    report = run.json()
    assert report["cut_off"] is False and report["estate_outage"] is True
    assert report["summary"].startswith("NOC CRITICAL - estate-wide outage")
    assert {r["health"] for r in report["regions"]} == {"down"}


async def test_check_active_region_null_when_no_store_readable(estate: Estate) -> None:
    for store in estate.stores.values():
        store.stop()
    run = await noc(estate, "check", *config_args(estate), "--json")
    assert run.json()["active_region"] is None
    assert run.code == 1


async def test_config_error_names_file_key_and_exits_3(estate: Estate) -> None:
    text = estate.path.read_text().replace('url = "http', 'url = "ftp', 1)
    estate.path.write_text(text.replace('role = "secondary"', 'role = "tertiary"', 1))
    run = await noc(estate, "check", *config_args(estate))
    assert run.code == 3
    assert run.out.startswith("NOC UNKNOWN - config error")
    problems = [line for line in run.err.splitlines() if "config error" in line]
    assert any(f"{estate.path}: regions[0].checks[0].url:" in p for p in problems)
    assert any(f"{estate.path}: regions[1].role:" in p for p in problems)
    dashboard = await noc(estate, *config_args(estate))
    assert dashboard.code == 3


async def test_failover_verified_on_reachable_stores_with_one_dead(estate: Estate) -> None:
    estate.stores["ro"].stop()
    await estate.endpoints["ro"].set_mode(EndpointMode.DOWN)
    run = await act(estate, "failover", "bg", "--yes", reason="ro lost")
    assert run.code == 0, run.out + run.err
    assert "bg verified" in run.out and "pa verified" in run.out
    assert "ro: unreachable" in run.out
    for region in ("bg", "pa"):
        flag = estate.flag(region)
        assert flag["active"] == "bg" and flag["reason"] == "ro lost"
    assert estate.events() == ["planned", "confirmed", "executed", "verified"]
    verified = read_jsonl(estate.audit_path).records[-1]
    assert verified["stores"] == {"ro": "unreachable", "bg": "verified", "pa": "verified"}
    assert verified["before"] == {"active": "ro"} and verified["after"] == {"active": "bg"}
    assert "@" in verified["operator"]


async def test_failover_refused_when_target_unhealthy(estate: Estate) -> None:
    await estate.endpoints["bg"].set_mode(EndpointMode.UNAVAILABLE)
    run = await act(estate, "failover", "bg", "--yes")
    assert run.code == 1
    assert "target healthy" in run.err and "--force" in run.err
    assert estate.flag("bg") == {}
    assert estate.events() == ["planned", "refused"]


async def test_forced_failover_is_recorded_as_forced(estate: Estate) -> None:
    await estate.endpoints["bg"].set_mode(EndpointMode.UNAVAILABLE)
    run = await act(estate, "failover", "bg", "--yes", "--force")
    assert run.code == 0, run.err
    confirmed = next(r for r in read_jsonl(estate.audit_path).records if r["event"] == "confirmed")
    assert confirmed["forced"] is True
    assert confirmed["overridden"] == ["target healthy"]


async def test_typed_confirmation_on_the_terminal(estate: Estate) -> None:
    wrong = await act(estate, "failover", "bg", stdin="pa\n")
    assert wrong.code == 1
    assert estate.flag("bg") == {}
    assert estate.events()[-1] == "cancelled"
    right = await act(estate, "failover", "bg", stdin="bg\n")
    assert right.code == 0, right.err
    assert estate.flag("ro")["active"] == "bg"


async def test_dry_run_changes_nothing(estate: Estate) -> None:
    run = await act(estate, "failover", "bg", "--dry-run")
    assert run.code == 0
    assert "dry run" in run.out
    assert all(estate.flag(r) == {} for r in estate.stores)


async def test_no_majority_of_stores_refuses(estate: Estate) -> None:
    estate.stores["ro"].stop()
    estate.stores["pa"].stop()
    run = await act(estate, "failover", "bg", "--yes")
    assert run.code == 1
    assert "flag stores" in run.err


async def test_failback_is_its_own_act(estate: Estate) -> None:
    await act(estate, "failover", "pa", "--yes", reason="drill")
    wrong_way = await act(estate, "failover", "ro", "--yes")
    assert wrong_way.code == 1 and "failback" in wrong_way.err
    not_primary = await act(estate, "failback", "bg", "--yes")
    assert not_primary.code == 1
    # Straight back is a flap: the cooldown refuses it until someone acks it.
    too_soon = await act(estate, "failback", "ro", "--yes", reason="validated")
    assert too_soon.code == 1 and "cooldown" in too_soon.err
    # Said in the CLI's terms: its command, not the dashboard's key.
    assert "`noc ack-cooldown` clears it" in too_soon.err and "(c)" not in too_soon.err
    assert "--force breaks glass" in too_soon.err
    ack = await noc(estate, "ack-cooldown", *config_args(estate), "--reason", "pa validated")
    assert ack.code == 0, ack.out + ack.err
    assert "cleared on 3/3 stores" in ack.out
    back = await act(estate, "failback", "ro", "--yes", reason="validated")
    assert back.code == 0, back.err
    assert "cooldown_ack" not in estate.flag("ro")  # a new failover starts a new cooldown
    assert estate.flag("pa") | {"at": "", "action_id": "", "operator": ""} == {
        "active": "ro",
        "previous": "pa",
        "reason": "validated",
        "at": "",
        "action_id": "",
        "operator": "",
    }


async def test_usage_error_exits_3(estate: Estate) -> None:
    run = await noc(estate, "failover", *config_args(estate), "--to", "bg")
    assert run.code == 3


async def test_sigkill_leaves_a_well_formed_audit_file(estate: Estate) -> None:
    """SIGKILL the CLI right after each step of a failover reaches the audit log:
    every line left is whole JSON, and the log still reads."""

    def lines() -> int:
        return len(estate.audit_path.read_bytes().splitlines()) if estate.audit_path.exists() else 0

    for step in (1, 2, 3):
        before = lines()
        run = await act(
            estate,
            "failover",
            "bg" if step != 2 else "pa",
            "--yes",
            # A kill can land after the move: the next run must not stop at the cooldown.
            "--force",
            reason=f"killed after step {step}",
            kill_when=lambda before=before, step=step: lines() >= before + step,
        )
        assert run.code == -signal.SIGKILL
    text = estate.audit_path.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    # Each run got at least as far as its step before the kill landed.
    assert [r["event"] for r in records].count("planned") == 3
    assert len(records) >= 1 + 2 + 3
    assert read_jsonl(estate.audit_path).damaged_lines == []
    listing = await noc(estate, "audit", "--json")
    assert listing.code == 0
    assert len(listing.json()) == len(records)


async def test_config_show_masks_secrets_and_names_sources(estate: Estate) -> None:
    text = estate.path.read_text().replace("redis://127.0.0.1", "redis://:hunter2@127.0.0.1", 1)
    estate.path.write_text(text)
    env_run = estate.env() | {"NOC_HEALTH__TIMEOUT_SECONDS": "1.5"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", "config", "show", "--config", str(estate.path),
        stdout=asyncio.subprocess.PIPE, env=env_run,
    )  # fmt: skip
    out = (await process.communicate())[0].decode()
    assert "hunter2" not in out and ":****@" in out
    assert "health.timeout_seconds = 1.5  # env NOC_HEALTH__TIMEOUT_SECONDS" in out
    assert f'estate.name = "mail-test"  # {estate.path}' in out
    assert "health.verify_tls = true  # default" in out


async def test_check_and_config_show_mask_every_credential_of_a_url(estate: Estate) -> None:
    """A password and token-like query parameters: never in `noc check` (text or
    JSON) nor in `noc config show`."""
    url = estate.endpoints["ro"].url
    text = estate.path.read_text().replace(
        f'"{url}"', f'"{url}?token=t0ken&X-Amz-Signature=s1g&region=ro"', 1
    )
    text = text.replace('url = "http://', 'url = "http://operator:hunter2@', 1)
    estate.path.write_text(text)
    for args in (("check",), ("check", "--json"), ("config", "show")):
        run = await noc(estate, *args, *config_args(estate))
        shown = run.out + run.err
        for secret in ("hunter2", "t0ken", "s1g"):
            assert secret not in shown, (args, shown)
    check = await noc(estate, "check", *config_args(estate), "--json")
    urls = [c["url"] for r in check.json()["regions"] for c in r["checks"]]
    assert any("operator:****@" in u and "token=****" in u and "region=ro" in u for u in urls)


async def test_check_into_a_closed_pipe_prints_no_traceback(estate: Estate) -> None:
    """`noc check | head -1`: the reader goes away before noc has written everything.
    `true` reads nothing and exits at once, so every write meets EPIPE (with head
    the small report can fit in the pipe first, and the test would prove nothing)."""
    for reader in ("true", "head -1"):
        noc_command = f"{sys.executable} -m noc check --config {estate.path}"
        process = await asyncio.create_subprocess_exec(
            "bash", "-o", "pipefail", "-c", f"{noc_command} | {reader}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=estate.env(),
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
        assert process.returncode == 0  # noc's own verdict (OK), not an EPIPE failure
        if reader == "head -1":
            assert out.decode().startswith("NOC OK - ")


async def test_a_record_that_cannot_be_written_is_a_clear_error(estate: Estate) -> None:
    """A full disk under the audit (here /dev/full, a real ENOSPC): the action stops
    with a message naming the file, no traceback, nothing changed."""
    estate.audit_path.parent.mkdir(parents=True)
    estate.audit_path.symlink_to("/dev/full")
    run = await act(estate, "failover", "bg", "--yes")
    assert run.code == 2
    assert f"cannot write a record to {estate.audit_path}: No space left on device" in run.err
    assert "Traceback" not in run.err
    assert all(estate.flag(r) == {} for r in estate.stores)


async def test_config_example_is_a_valid_config(tmp_path: Path, estate: Estate) -> None:
    run = await noc(estate, "config", "example")
    example = tmp_path / "example.toml"
    example.write_text(run.out)
    from noc.config import load_config

    loaded = load_config(example)
    assert loaded.config.estate.name == "mail-prod"


async def test_audit_text_says_why_who_from_where_how_it_ended_and_how_long(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.7 52100 10.0.0.1 22")
    dry = await act(estate, "failover", "pa", "--dry-run", reason="what if")
    assert dry.code == 0, dry.out + dry.err
    real = await act(estate, "failover", "pa", "--yes", reason="ro lost power")
    assert real.code == 0, real.out + real.err
    text = await noc(estate, "audit", *config_args(estate))
    assert text.code == 0, text.err
    blocks = text.out.split("\n2")  # one record each: its first line starts with the year
    dry_run = next(b for b in blocks if "DRY RUN planned" in b)
    assert "reason: what if" in dry_run
    assert "over SSH from 203.0.113.7 via cli" in dry_run
    real_plan = [b for b in blocks if " planned " in b and "DRY RUN" not in b]
    assert len(real_plan) == 1 and "reason: ro lost power" in real_plan[0]
    verified = next(b for b in blocks if " verified " in b)
    assert "outcome: failover to pa verified" in verified
    assert "timeline: confirmed 0.0 s, executed" in verified
    assert "over SSH from 203.0.113.7" in verified
    # The JSON stays the records as written: extended, never reshaped.
    as_json = await noc(estate, "audit", *config_args(estate), "--json")
    assert json.loads(as_json.out) == read_jsonl(estate.audit_path).records
