"""`noc recover` where the review found it unsafe: a newer action since the kill, a DNS
server away while settling, a target that died since, a store holding an interrupted
action's partial flag. Real `noc` processes, real BIND with TSIG, real redis-servers
and real health endpoints on loopback; the kill is a real SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from named import NamedServer, named_servers  # noqa: F401 (a fixture)
from paths import TESTS
from support import stored_flag
from test_cli import Estate, act, config_args, noc
from test_cli import estate as cli_estate  # noqa: F401 (a fixture)
from test_failover_cli import DnsEstate, smtp
from test_failover_cli import estate as dns_estate  # noqa: F401 (a fixture)
from test_operations_cli import PROMPT, closed_port, finish, read_until, started

from noc.audit import JsonlLog, read_jsonl
from noc.clock import SystemClock
from noc.model import ActionKind, FailoverFlag
from noc.recovery import STEP_EVENTS, interrupted_actions
from noc.simulator import HealthEndpoint, RedisServer
from noc.simulator.health_endpoint import EndpointMode

RO, BG = ("192.0.2.10",), ("192.0.2.20",)


def lock_of(estate: Estate, region: str) -> str | None:
    client = redis.Redis.from_url(estate.stores[region].url, decode_responses=True)
    try:
        return client.get("noc:failover:lock")  # type: ignore[return-value]
    finally:
        client.close()


async def killed_after_the_flag(estate: DnsEstate) -> str:
    """A failover ro -> bg SIGKILLed once its flag is written, before DNS: the split of
    issue 11 (flag on bg, DNS on ro). Returns the action id."""
    # The process kills itself right after the flag's result is on disk (see
    # tests/ops_process.py): a kill from outside raced the DNS step under load.
    args = {
        "config": tomllib.loads(estate.path.read_text()), "audit": str(estate.audit_path),
        "kind": "failover", "to": "bg", "operator": {"operator": "op@test"},
        "reason": "ro lost", "force": False, "kill_at": ["step_result", 0, True],
    }  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(TESTS / "ops_process.py"), json.dumps(args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=estate.env(),
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == -signal.SIGKILL, err.decode()
    assert {estate.flag(r)["active"] for r in estate.stores} == {"bg"}
    assert await smtp(estate) == RO
    [item] = interrupted_actions(read_jsonl(estate.audit_path).records)
    assert item.started == ("flag",)
    return item.action_id


async def test_recover_never_settles_an_action_a_newer_one_superseded(
    dns_estate: DnsEstate,  # noqa: F811
) -> None:
    """Finding 1: Bob fixed the split by hand (failback to ro). Completing the killed
    action afterwards would move DNS to bg behind his back: both directions are
    refused naming Bob's action, and the recommended choice closes the record,
    writing nothing."""
    killed = await killed_after_the_flag(dns_estate)
    bob = await act(dns_estate, "failback", "ro", "--yes", "--force", reason="bob fixes it")
    assert bob.code == 0, bob.out + bob.err
    newer = dns_estate.flag("ro")["action_id"]
    assert newer != killed and await smtp(dns_estate) == RO

    complete = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes", "--complete")
    assert complete.code == 1, complete.out + complete.err
    assert f"superseded by {newer}" in complete.out + complete.err
    assert await smtp(dns_estate) == RO
    assert {dns_estate.flag(r)["action_id"] for r in dns_estate.stores} == {newer}

    close = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes")
    assert close.code == 0, close.out + close.err
    assert "closed, nothing written" in close.out
    assert await smtp(dns_estate) == RO
    assert {dns_estate.flag(r)["action_id"] for r in dns_estate.stores} == {newer}
    records = read_jsonl(dns_estate.audit_path).records
    closed = records[-1]
    assert closed["event"] == "recover_closed" and closed["superseded_by"] == newer
    assert interrupted_actions(records) == []


async def test_a_recovery_that_could_not_reach_dns_stays_open_until_dns_is_moved(
    dns_estate: DnsEstate,  # noqa: F811
) -> None:
    """Finding 2: the DNS server is away while `noc recover` completes the action: exit
    2, `recover_partial`, and the action stays open; once the server is back, the next
    `noc recover` finishes the move instead of saying "nothing to recover"."""
    killed = await killed_after_the_flag(dns_estate)
    good = dns_estate.path.read_text()
    address = dns_estate.named.address
    dns_estate.path.write_text(
        good.replace(f'server = "{address}"', f'server = "127.0.0.1:{closed_port()}"\n'
                     "timeout_seconds = 1")
    )  # fmt: skip
    away = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes")
    assert away.code == 2, away.out + away.err
    assert "stays open" in away.err
    records = read_jsonl(dns_estate.audit_path).records
    assert records[-1]["event"] == "recover_partial" and records[-1]["action_id"] == killed
    assert [i.action_id for i in interrupted_actions(records)] == [killed]

    dns_estate.path.write_text(good)
    again = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes")
    assert again.code == 0, again.out + again.err
    assert "the flag, DNS and the record agree (read back now)" in again.out
    assert await smtp(dns_estate) == BG
    assert interrupted_actions(read_jsonl(dns_estate.audit_path).records) == []


async def test_recover_refuses_to_complete_toward_a_target_that_died(
    dns_estate: DnsEstate,  # noqa: F811
) -> None:
    """Finding 3: bg died after the kill. `--yes` would complete toward it: the fresh
    rules refuse (exit 1, nothing written), naming the rule; rolling back to the
    healthy ro is allowed."""
    await killed_after_the_flag(dns_estate)
    await dns_estate.endpoints["bg"].set_mode(EndpointMode.DOWN)
    refused = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes")
    assert refused.code == 1, refused.out + refused.err
    assert "[FAIL] target healthy: bg is down" in refused.out
    assert "complete fails its rules now" in refused.out + refused.err
    assert await smtp(dns_estate) == RO
    assert {dns_estate.flag(r)["active"] for r in dns_estate.stores} == {"bg"}

    back = await noc(dns_estate, "recover", *config_args(dns_estate), "--yes", "--roll-back")
    assert back.code == 0, back.out + back.err
    assert await smtp(dns_estate) == RO
    assert all(dns_estate.flag(r) == {} for r in dns_estate.stores)


async def test_reassert_never_overwrites_an_interrupted_actions_partial_flag(
    cli_estate: Estate,  # noqa: F811
) -> None:
    """Finding 9: action X is on every store; action A was killed inside its flag step
    after writing pa only. Re-asserting the majority (X) would erase A's partial
    write without settling A: it is refused, naming A."""
    moved = await act(cli_estate, "failover", "bg", "--yes", reason="x")
    assert moved.code == 0, moved.out + moved.err
    before = cli_estate.flag("ro")
    audit = JsonlLog(cli_estate.audit_path, SystemClock())
    a_flag = FailoverFlag("ro", "bg", "a@test", "back", "2026-01-01T00:00:00Z", "A-partial")
    common = {"action_id": "A-partial", "action": "failback", "from": "bg", "to": "ro",
              "operator": "a@test", "node": "gone", "pid": 1}  # fmt: skip
    audit.append("confirmed", **common, reason="back", actuators=["flag"])
    audit.append("step_intent", **common, actuator="flag", flag=a_flag.as_mapping())
    client = redis.Redis.from_url(cli_estate.stores["pa"].url, decode_responses=True)
    try:
        client.delete("noc:failover")
        client.hset("noc:failover", mapping=a_flag.as_mapping())
    finally:
        client.close()

    run = await noc(cli_estate, "recover", *config_args(cli_estate), stdin="\nbg\n")
    assert run.code == 1, run.out + run.err
    assert "not re-asserted" in run.out and "A-partial" in run.out
    assert cli_estate.flag("pa")["action_id"] == "A-partial"
    assert cli_estate.flag("ro") == before
    assert "flag_reasserted" not in cli_estate.events()


INTERRUPTS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.mark.parametrize("number", INTERRUPTS, ids=lambda n: signal.Signals(n).name)
async def test_every_interrupt_at_the_prompt_changes_nothing_and_exits_1(
    cli_estate: Estate,  # noqa: F811
    number: int,
) -> None:
    """Finding 5: SIGTERM and SIGHUP (an SSH session that dropped) are the same cancel
    as Ctrl-C: at the prompt, exit 1, nothing written, the cancel audited."""
    process = await started(
        cli_estate, "failover", *config_args(cli_estate), "--to", "bg", "--reason", "x"
    )
    shown = await read_until(process, PROMPT)
    process.send_signal(number)
    run = await finish(process, shown)
    assert run.code == 1, run.out + run.err
    assert "Traceback" not in run.err
    assert all(cli_estate.flag(r) == {} for r in cli_estate.stores)
    assert cli_estate.events() == ["planned", "cancelled"]


@pytest.mark.parametrize("number", INTERRUPTS, ids=lambda n: signal.Signals(n).name)
async def test_every_interrupt_while_dns_is_watched_exits_130_with_the_change_done(
    dns_estate: DnsEstate,  # noqa: F811
    number: int,
) -> None:
    """Findings 5 and 6: during the DNS watch each signal ends the watch, audited
    (`verify_stopped`), exit 130; the change stays made and the lock is released."""
    text = dns_estate.path.read_text().replace(
        f'resolvers = ["{dns_estate.named.address}"]',
        f'resolvers = ["{dns_estate.named.address}", "127.0.0.1:{closed_port()}"]',
    )
    dns_estate.path.write_text(text)
    process = await started(
        dns_estate, "failover", *config_args(dns_estate), "--to", "bg", "--reason", "r", "--yes"
    )
    shown = await read_until(process, "watching DNS")
    process.send_signal(number)
    run = await finish(process, shown)
    assert run.code == 130, run.out + run.err
    assert "Traceback" not in run.err
    assert await smtp(dns_estate) == BG
    assert {dns_estate.flag(r)["active"] for r in dns_estate.stores} == {"bg"}
    assert dns_estate.events()[-2:] == ["executed", "verify_stopped"]
    assert all(lock_of(dns_estate, r) is None for r in dns_estate.stores)
    assert interrupted_actions(read_jsonl(dns_estate.audit_path).records) == []


async def test_the_dashboard_refuses_a_target_that_died_while_its_dialog_was_open(
    tmp_path: Path,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    redis_servers: Callable[..., list[RedisServer]],
) -> None:
    """Finding 4, issue 11's reproduction in the dashboard: the plan was fine, bg's
    endpoint goes down while the operator reads the dialog, they confirm. The engine
    would need failure_threshold x interval to see it; the re-plan probes bg once and
    refuses: nothing written."""
    from failover_support import until
    from support import estate_config
    from textual.screen import ModalScreen

    from noc.app import NocApp
    from noc.config import parse_config
    from noc_widgets.failover_dialog import FailoverDialog

    endpoints = {rid: await health_endpoint(rid) for rid in ("ro", "bg", "pa")}
    stores = dict(zip(("ro", "bg", "pa"), redis_servers(3), strict=True))
    data = estate_config({rid: s.url for rid, s in stores.items()}).model_dump(mode="json")
    for region in data["regions"]:
        region["checks"] = [{"url": endpoints[region["id"]].url, "body_contains": "healthy"}]
    data["health"] = {"interval_seconds": 5, "failure_threshold": 3, "timeout_seconds": 1}
    app = NocApp(parse_config(data), state_path=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: all(r.health.value == "healthy" for r in app.snapshot().regions))
        await app.scheduler.read_flags()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FailoverDialog))
        assert isinstance(app.screen, FailoverDialog) and app.screen.plan.target == "bg"
        assert app.screen.plan.allowed
        await endpoints["bg"].set_mode(EndpointMode.DOWN)
        await pilot.press("tab", "b", "g", "tab", *"ro lost", "enter")
        await until(pilot, lambda: "refused" in [r["event"] for r in records(tmp_path)])
        await until(pilot, lambda: not isinstance(app.screen, ModalScreen))
        await until(pilot, lambda: not app.operator_actions_running())
        # The engine itself has not seen bg fail three times yet.
        assert app.snapshot().region("bg").health.value == "healthy"  # type: ignore[union-attr]
    refused = [r for r in records(tmp_path) if r["event"] == "refused"]
    assert refused and refused[-1]["fresh_preflight"] is True
    assert "target healthy" in refused[-1]["refusal"]
    assert [r["event"] for r in records(tmp_path) if r["event"] not in STEP_EVENTS] == [
        "planned", "refused",
    ]  # fmt: skip
    assert all(stored_flag(s) == {} for s in stores.values())


def records(state: Path) -> list[dict[str, Any]]:
    return read_jsonl(state / "audit.jsonl").records


async def test_a_record_changed_while_the_dialog_was_open_refuses_the_unseen_changes(
    tmp_path: Path,
    dns_primary: NamedServer,
    region_stores: dict[str, RedisServer],
) -> None:
    """Finding 11: someone edits smtp's RRset while the operator reads the plan. The
    fresh plan would send other DNS changes than those confirmed: refused."""
    from failover_support import SMTP, make_failover_app

    from noc.model import FailoverRecordType, RecordChange
    from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO

    _, _, estate = make_failover_app(tmp_path, dns_primary, region_stores)
    ops = Operations(estate.config, estate.scheduler, estate.audit, estate.clock,
                     refresh=estate.scheduler.read_flags)  # fmt: skip

    async def confirm(plan: Any) -> Confirmation:
        extra = RecordChange(SMTP, FailoverRecordType.A, ("192.0.2.10",),
                             ("192.0.2.10", "192.0.2.99"), 60)  # fmt: skip
        assert await estate.updater().replace([extra]) is None
        return Confirmation("drill", False, "--yes")

    request = ActionRequest(ActionKind.FAILOVER, "bg", {"operator": "op@test"}, reason="drill")
    outcome = await ops.run_action(request, OperatorIO(confirm=confirm))
    await estate.scheduler.stop()
    assert outcome.exit_code == 1 and outcome.stage == "refused", outcome.message
    assert "DNS changes differ" in outcome.message
    assert all(estate.flag(r) == {} for r in region_stores)
    assert estate.events() == ["planned", "refused"]


async def test_a_full_disk_after_the_flag_write_rolls_it_back_and_says_so(
    tmp_path: Path,
    dns_primary: NamedServer,
    region_stores: dict[str, RedisServer],
) -> None:
    """Finding 6d: the flag is written, then its result cannot be recorded (ENOSPC).
    A change the record cannot show is not kept: rolled back, exit 1, no traceback."""
    import errno

    from failover_support import ORIGINAL, make_failover_app

    from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO

    class DiskFullAfterTheFlag(JsonlLog):
        full = False

        def append(self, event: str, **fields: Any) -> dict[str, Any]:
            if event == "step_result" and fields.get("actuator") == "flag":
                self.full = True
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().append(event, **fields)

    _, _, estate = make_failover_app(tmp_path, dns_primary, region_stores)
    ops = Operations(
        estate.config, estate.scheduler, DiskFullAfterTheFlag(estate.audit.path, estate.clock),
        estate.clock, refresh=estate.scheduler.read_flags,
    )  # fmt: skip

    async def yes(plan: Any) -> Confirmation:
        return Confirmation("drill", False, "--yes")

    request = ActionRequest(ActionKind.FAILOVER, "bg", {"operator": "op@test"}, reason="drill")
    outcome = await ops.run_action(request, OperatorIO(confirm=yes))
    await estate.scheduler.stop()
    assert outcome.stage == "aborted", outcome.message
    assert outcome.exit_code == 1, outcome.message
    assert "could not be audited" in outcome.message
    assert all(estate.flag(r) == {} for r in region_stores)
    assert await estate.records() == ORIGINAL
    assert all(estate.lock(r) is None for r in region_stores)


async def test_a_damaged_record_is_named_never_a_traceback_and_the_note_is_kept(
    cli_estate: Estate,  # noqa: F811
) -> None:
    """Finding 12: an open action whose record cannot be read whole (a change without
    its type, a pid that is no number) is named as damaged and never settled blindly;
    the operator's note is recorded with the recovery."""
    audit = JsonlLog(cli_estate.audit_path, SystemClock())
    common = {"action_id": "torn", "action": "failover", "from": "ro", "to": "bg",
              "operator": "a@test", "node": "gone"}  # fmt: skip
    audit.append("confirmed", **common, pid="not-a-pid", changes=[{"name": "smtp"}])
    run = await noc(
        cli_estate, "recover", *config_args(cli_estate), "--yes", "--reason", "torn by a crash"
    )
    assert "Traceback" not in run.err, run.err
    assert run.code == 0, run.out + run.err
    assert "torn" in run.out and "closed, nothing written" in run.out
    last = read_jsonl(cli_estate.audit_path).records[-1]
    assert last["event"] == "recover_closed" and last["reason"] == "torn by a crash"
    assert all(cli_estate.flag(r) == {} for r in cli_estate.stores)


async def test_a_hook_killed_before_it_reported_is_never_re_run_by_recover(
    cli_estate: Estate,  # noqa: F811
) -> None:
    """Finding 7: the process is SIGKILLed while its [failover.hooks] run command runs.
    Whether the hook did its work is unknown, and so is its idempotency: `noc recover`
    completes the rest and says the hook was not re-run; it ran once."""
    import contextlib
    import os
    import sys

    ran = cli_estate.path.parent / "hook-ran"
    script = cli_estate.path.parent / "hook.py"
    script.write_text(
        "import os, sys, time\n"
        f"with open({str(ran)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "time.sleep(3)\n"
    )
    text = cli_estate.path.read_text().replace(
        "[failover]\nstore_timeout_seconds = 1\n",
        '[failover]\nstore_timeout_seconds = 1\nactuators = ["flag", "hook"]\n'
        f'[failover.hooks]\nrun = "{sys.executable} {script}"\ntimeout_seconds = 10\n',
    )
    cli_estate.path.write_text(text)
    try:
        killed = await act(
            cli_estate, "failover", "bg", "--yes", reason="ro lost",
            kill_when=lambda: ran.exists() and ran.read_text().endswith("\n"),
        )  # fmt: skip
        assert killed.code == -signal.SIGKILL, killed.out + killed.err
        recover = await noc(cli_estate, "recover", *config_args(cli_estate), "--yes")
        assert recover.code == 0, recover.out + recover.err
        assert "NOT re-run" in recover.out
        assert len(ran.read_text().splitlines()) == 1
        assert {cli_estate.flag(r)["active"] for r in cli_estate.stores} == {"bg"}
        records = read_jsonl(cli_estate.audit_path).records
        assert records[-1]["event"] == "recovered"
        intents = [r for r in records if r["event"] == "step_intent" and r.get("recovery")]
        assert [r["actuator"] for r in intents] == ["flag", "hook"]
    finally:
        for line in ran.read_text().splitlines() if ran.exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGKILL)
