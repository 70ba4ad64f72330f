"""The operations layer as operators meet it through `noc`: the world changing while the
prompt waits, Ctrl-C at each stage, a kill inside execute finished by `noc recover`,
and a store that came back empty. Real processes, real BIND with TSIG, real
redis-servers and health endpoints on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from failover_support import audit_events
from named import NamedServer, named_servers  # noqa: F401 (a fixture)
from test_cli import Estate, Run, act, config_args, noc
from test_cli import estate as cli_estate  # noqa: F401 (a fixture)
from test_failover_cli import DnsEstate, smtp
from test_failover_cli import estate as dns_estate  # noqa: F401 (a fixture)

from noc.audit import JsonlLog, read_jsonl
from noc.model import ActionKind
from noc.recovery import interrupted_actions
from noc.simulator import RedisServer
from noc.simulator.health_endpoint import EndpointMode

PROMPT = "Type the target region id"


async def started(estate: Estate, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=estate.env(), cwd=estate.path.parent,
    )  # fmt: skip


async def read_until(process: asyncio.subprocess.Process, text: str) -> str:
    """stdout up to and including `text` (a prompt has no newline: read by chunk)."""
    assert process.stdout is not None
    seen = b""
    async with asyncio.timeout(60):
        while text.encode() not in seen:
            chunk = await process.stdout.read(256)
            assert chunk, f"ended before {text!r}: {seen.decode()}"
            seen += chunk
    return seen.decode()


async def finish(process: asyncio.subprocess.Process, before: str = "") -> Run:
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, before + out.decode(), err.decode())


async def test_a_target_that_dies_while_the_prompt_waits_is_refused_and_nothing_written(
    cli_estate: Estate,  # noqa: F811
) -> None:
    """The issue's reproduction: the plan was fine, bg dies while the operator reads it,
    the operator types bg. The fresh preflight refuses; exit 1; no flag written."""
    process = await started(
        cli_estate, "failover", *config_args(cli_estate), "--to", "bg", "--reason", "ro lost"
    )
    shown = await read_until(process, PROMPT)
    assert "[ok  ] target healthy: bg is healthy" in shown
    await cli_estate.endpoints["bg"].set_mode(EndpointMode.DOWN)
    assert process.stdin is not None
    process.stdin.write(b"bg\n")
    await process.stdin.drain()
    run = await finish(process, shown)
    assert run.code == 1, run.out + run.err
    assert "refused on a fresh preflight" in run.err and "target healthy" in run.err
    assert "nothing was changed" in run.err
    assert all(cli_estate.flag(r) == {} for r in cli_estate.stores)
    assert cli_estate.events() == ["planned", "refused"]
    assert read_jsonl(cli_estate.audit_path).records[-1]["fresh_preflight"] is True


async def test_ctrl_c_at_the_prompt_changes_nothing_and_exits_1(
    cli_estate: Estate,  # noqa: F811
) -> None:
    process = await started(
        cli_estate, "failover", *config_args(cli_estate), "--to", "bg", "--reason", "x"
    )
    shown = await read_until(process, PROMPT)
    process.send_signal(signal.SIGINT)
    run = await finish(process, shown)
    assert run.code == 1, run.out + run.err
    assert "nothing was changed" in run.err
    assert all(cli_estate.flag(r) == {} for r in cli_estate.stores)
    assert cli_estate.events() == ["planned", "cancelled"]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ctrl_c_while_dns_is_watched_exits_130_with_the_change_done(
    dns_estate: DnsEstate,  # noqa: F811
) -> None:
    # A resolver that never answers keeps the watch going until the TTL has passed.
    text = dns_estate.path.read_text().replace(
        f'resolvers = ["{dns_estate.named.address}"]',
        f'resolvers = ["{dns_estate.named.address}", "127.0.0.1:{closed_port()}"]',
    )
    dns_estate.path.write_text(text)
    process = await started(
        dns_estate, "failover", *config_args(dns_estate), "--to", "bg", "--reason", "ro", "--yes"
    )
    shown = await read_until(process, "watching DNS")
    process.send_signal(signal.SIGINT)
    run = await finish(process, shown)
    assert run.code == 130, run.out + run.err
    assert "the change was finished and audited" in run.err
    assert await smtp(dns_estate) == ("192.0.2.20",)
    assert {dns_estate.flag(r)["active"] for r in dns_estate.stores} == {"bg"}
    assert dns_estate.events()[-2:] == ["executed", "verify_stopped"]


def audit_has(estate: Estate, event: str, actuator: str) -> Callable[[], bool]:
    def seen() -> bool:
        if not estate.audit_path.exists():
            return False
        for line in estate.audit_path.read_bytes().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event and record.get("actuator") == actuator:
                return True
        return False

    return seen


async def test_a_kill_between_flag_and_dns_is_found_and_completed_by_noc_recover(
    dns_estate: DnsEstate,  # noqa: F811
) -> None:
    """SIGKILL once the flag is written and before DNS: split (flag on bg, DNS on ro),
    the record ends inside the action. `noc recover` finds it, takes over the dead
    process's lock, and completes the move: flag, DNS and the record agree."""
    killed = await act(
        dns_estate, "failover", "bg", "--yes", reason="ro lost",
        kill_when=audit_has(dns_estate, "step_result", "flag"),
    )  # fmt: skip
    assert killed.code == -signal.SIGKILL
    assert {dns_estate.flag(r)["active"] for r in dns_estate.stores} == {"bg"}
    assert await smtp(dns_estate) == ("192.0.2.10",)  # split: DNS still on ro
    records = read_jsonl(dns_estate.audit_path).records
    [item] = interrupted_actions(records)
    assert item.target == "bg" and item.started[0] == "flag"

    dry = await noc(dns_estate, "recover", *config_args(dns_estate), "--dry-run")
    assert dry.code == 0, dry.out + dry.err
    assert item.action_id in dry.out and "would apply" in dry.out
    assert await smtp(dns_estate) == ("192.0.2.10",)

    recover = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes")
    assert recover.code == 0, recover.out + recover.err
    assert "completed" in recover.out
    assert await smtp(dns_estate) == ("192.0.2.20",)
    assert {dns_estate.flag(r)["active"] for r in dns_estate.stores} == {"bg"}
    after = read_jsonl(dns_estate.audit_path).records
    assert interrupted_actions(after) == []
    recovered = after[-1]
    assert recovered["event"] == "recovered" and recovered["choice"] == "complete"
    assert recovered["ok"] is True and recovered["action_id"] == item.action_id
    # The lock the killed process held does not block the next action.
    back = await act(dns_estate, "failback", "ro", "--yes", "--force", reason="drill over")
    assert back.code == 0, back.out + back.err
    again = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes")
    assert again.code == 0 and "nothing to recover" in again.out


async def test_a_kill_inside_dns_rolled_back_by_noc_recover(
    dns_estate: DnsEstate,  # noqa: F811
) -> None:
    killed = await act(
        dns_estate, "failover", "bg", "--yes", reason="ro lost",
        kill_when=audit_has(dns_estate, "step_intent", "dns"),
    )  # fmt: skip
    assert killed.code == -signal.SIGKILL
    recover = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes", "--roll-back")
    assert recover.code == 0, recover.out + recover.err
    assert await smtp(dns_estate) == ("192.0.2.10",)
    assert all(dns_estate.flag(r) == {} for r in dns_estate.stores)
    last = read_jsonl(dns_estate.audit_path).records[-1]
    assert last["event"] == "recovered" and last["choice"] == "roll_back"


async def test_a_store_that_came_back_empty_gets_the_flag_back_by_noc_recover(
    cli_estate: Estate,  # noqa: F811
) -> None:
    moved = await act(cli_estate, "failover", "bg", "--yes", reason="ro lost")
    assert moved.code == 0, moved.out + moved.err
    cli_estate.stores["pa"].restart()  # its files are gone: it comes back without a flag
    assert cli_estate.flag("pa") == {}
    check = await noc(cli_estate, "check", *config_args(cli_estate))
    assert "disagree" in check.out + check.err or check.code != 0
    refuse = await noc(cli_estate, "recover", *config_args(cli_estate), stdin="no\n")
    assert refuse.code == 1 and cli_estate.flag("pa") == {}
    recover = await noc(cli_estate, "recover", *config_args(cli_estate), "--yes")
    assert recover.code == 0, recover.out + recover.err
    assert "re-asserted on pa" in recover.out
    assert cli_estate.flag("pa") == cli_estate.flag("ro")
    reasserted = read_jsonl(cli_estate.audit_path).records[-1]
    assert reasserted["event"] == "flag_reasserted" and reasserted["stores"] == ["pa"]


async def test_the_dashboard_names_an_interrupted_action_on_start_and_rolls_it_back(
    tmp_path: Path, dns_primary: NamedServer, region_stores: dict[str, RedisServer]
) -> None:
    """A failover killed after the flag step, left in the record; the next dashboard
    start names it, and the palette's roll back runs the same recovery path."""
    from failover_support import ORIGINAL, make_failover_app, until
    from textual.screen import ModalScreen

    from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO
    from noc.recovery import Choice

    _, _, estate = make_failover_app(tmp_path, dns_primary, region_stores)

    class KilledHere(BaseException):
        pass

    class KillAfterFlag(JsonlLog):
        def append(self, event: str, **fields: Any) -> dict[str, Any]:
            record = super().append(event, **fields)
            if event == "step_result" and fields.get("actuator") == "flag":
                raise KilledHere
            return record

    async def yes(plan: Any) -> Confirmation:
        return Confirmation("drill", False, "--yes")

    ops = Operations(
        estate.config, estate.scheduler, KillAfterFlag(estate.audit.path, estate.clock),
        estate.clock, refresh=estate.scheduler.read_flags,
    )  # fmt: skip
    with pytest.raises(KilledHere):
        await ops.run_action(
            ActionRequest(ActionKind.FAILOVER, "bg", {"operator": "op@test"}, reason="drill"),
            OperatorIO(confirm=yes),
        )
    await estate.scheduler.stop()
    assert {estate.flag(r)["active"] for r in region_stores} == {"bg"}

    app, _, estate = make_failover_app(tmp_path, dns_primary, region_stores)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: bool(app.interrupted_actions))
        shown = [n.message for n in app._notifications]
        assert any("INTERRUPTED ACTION" in m and "noc recover" in m for m in shown), shown
        app.recover_interrupted(Choice.ROLL_BACK)
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        await pilot.press(*"put it back", "enter")
        await until(pilot, lambda: "recovered" in audit_events(tmp_path))
        await until(pilot, lambda: not app.operator_actions_running())
    assert all(estate.flag(r) == {} for r in region_stores)
    assert await estate.records() == ORIGINAL
    assert interrupted_actions(read_jsonl(tmp_path / "audit.jsonl").records) == []
