"""Canary messages through real mail: a submission Postfix per region (STARTTLS, SASL
AUTH through Dovecot's auth socket) delivering into a Dovecot's maildirs, read over
IMAPS; the faults are Postfix's own: a header_checks DISCARD (lost), a HOLD released
later by postsuper and postqueue (slow), delivery into the .Junk folder and a receiver's
Authentication-Results that fails DKIM (auth)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from mailflow import MailFlow

from noc.check import report_json, report_text
from noc.clock import Clock, FakeClock, SystemClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.model import CanarySample, CanaryState
from noc.rules import canary_conditions
from noc.scheduler import Scheduler, canary_prober
from noc_collectors.canary import CanaryProber

SUBMISSION_PASSWORD_ENV = "NOC_TEST_CANARY_SUBMISSION"
SEED_PASSWORD_ENV = "NOC_TEST_CANARY_SEED"
# What the seed's receiver writes when it trusts the message: prepended by the region's
# Postfix (header_checks PREPEND), as a receiving MTA's milter would.
PASSING = (
    "Authentication-Results: seed.test; spf=pass smtp.mailfrom=canary@example.com; "
    "dkim=pass header.d=example.com header.s=s2026; dmarc=pass header.from=example.com"
)
DKIM_FAILS = PASSING.replace("dkim=pass", "dkim=fail (body hash did not verify)")
# Reads of a seed until a canary shows up; each read waits READ_PAUSE_SECONDS first.
MAX_READS = 100
READ_PAUSE_SECONDS = 0.1


def prepend(header: str) -> str:
    return f"/^Subject: noc canary / PREPEND {header}"


@pytest.fixture
def flow(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailFlow]:
    mail = MailFlow(trustme.CA())
    monkeypatch.setenv(SUBMISSION_PASSWORD_ENV, mail.sender[1])
    monkeypatch.setenv(SEED_PASSWORD_ENV, mail.seed_password)
    try:
        yield mail.start()
    finally:
        mail.stop()


def canary_config(flow: MailFlow, ports: dict[str, int], **seed: Any) -> NocConfig:
    regions = []
    for index, (region, port) in enumerate(ports.items()):
        regions.append(
            {
                "id": region,
                "role": "primary" if index == 0 else "secondary",
                "submission": {
                    "host": "127.0.0.1",
                    "port": port,
                    "tls_name": "smtp.test.example",
                    "username": flow.sender[0],
                    "password_env": SUBMISSION_PASSWORD_ENV,
                    "from_address": flow.sender[0],
                    "ca_file": str(flow.ca_file),
                },
            }
        )
    return parse_config(
        {
            "regions": regions,
            "canary": [
                {
                    "name": "seed",
                    "address": flow.address("seed"),
                    "imap_host": "127.0.0.1",
                    "imap_port": flow.imap_port,
                    "imap_user": flow.address("seed"),
                    "imap_password_env": SEED_PASSWORD_ENV,
                    "imap_ca_file": str(flow.ca_file),
                    **seed,
                }
            ],
        }
    )


async def until_settled(prober: CanaryProber, seed: str = "seed") -> list[CanarySample]:
    """Read the seed until something is learnt of the awaited canaries."""
    for _ in range(MAX_READS):
        await asyncio.sleep(READ_PAUSE_SECONDS)
        samples = await prober.read(seed)
        if samples:
            return samples
    raise AssertionError("no canary arrived")


def conditions(config: NocConfig, clock: Clock, *samples: CanarySample) -> dict[str, str]:
    engine = Engine(config, clock)
    for sample in samples:
        engine.ingest_canary(sample)
    return {c.rule: c.summary for c in canary_conditions(engine.snapshot(), config)}


def messages_left(flow: MailFlow) -> list[Path]:
    maildir = flow.maildir("seed")
    return [
        f for sub in ("new", "cur", ".Junk/new", ".Junk/cur") for f in (maildir / sub).iterdir()
    ]


async def test_a_canary_arrives_in_the_inbox_with_its_verdict_and_is_deleted(
    flow: MailFlow,
) -> None:
    ro = flow.region("ro", header_checks=(prepend(PASSING),))
    config = canary_config(flow, {"ro": ro.port})
    prober = canary_prober(config, SystemClock())

    sent = await prober.send("ro", "seed")
    assert sent.state is CanaryState.PENDING, sent.error
    (arrived,) = await until_settled(prober)

    assert arrived.state is CanaryState.ARRIVED
    assert arrived.token == sent.token
    assert arrived.folder == "inbox" and arrived.mailbox == "INBOX"
    assert arrived.sending_ip == "127.0.0.1"  # the client the region's Postfix received from
    assert arrived.auth is not None
    assert (arrived.auth.spf, arrived.auth.dkim, arrived.auth.dmarc) == ("pass",) * 3
    assert arrived.auth.dkim_selector == "s2026"
    assert arrived.latency_seconds is not None and arrived.latency_seconds >= 0
    assert messages_left(flow) == []  # deleted after reading
    assert conditions(config, SystemClock(), arrived) == {}


async def test_a_discarded_canary_is_lost_after_its_deadline(flow: MailFlow) -> None:
    ro = flow.region("ro", header_checks=("/^X-Noc-Canary:/ DISCARD dropped by a test",))
    config = canary_config(flow, {"ro": ro.port}, slow_seconds=5, deadline_seconds=60)
    clock = FakeClock()
    prober = canary_prober(config, clock)

    sent = await prober.send("ro", "seed")
    assert sent.state is CanaryState.PENDING, sent.error
    for _ in range(MAX_READS):  # Postfix has really thrown it away
        if "discard" in ro.log():
            break
        await asyncio.sleep(READ_PAUSE_SECONDS)
    assert "dropped by a test" in ro.log()
    assert await prober.read("seed") == []  # within its deadline: still awaited
    clock.advance(61)
    (lost,) = await prober.read("seed")

    assert lost.state is CanaryState.LOST and lost.token == sent.token
    assert prober.awaited("seed") == 0
    assert "lost: not in seed within 60 s" in conditions(config, clock, lost)["canary_lost"]


async def test_a_canary_in_the_spam_folder_failing_dkim_is_an_auth_alert(
    flow: MailFlow,
) -> None:
    bg = flow.region("bg", header_checks=(prepend(DKIM_FAILS),), junk=True)
    config = canary_config(flow, {"bg": bg.port})
    prober = canary_prober(config, SystemClock())

    await prober.send("bg", "seed")
    (arrived,) = await until_settled(prober)

    assert arrived.state is CanaryState.ARRIVED
    assert arrived.folder == "spam" and arrived.mailbox == "Junk"
    assert arrived.auth is not None and arrived.auth.failed == ("DKIM",)
    assert messages_left(flow) == []
    summary = conditions(config, SystemClock(), arrived)["canary_auth"]
    assert "in spam (Junk)" in summary and "failed DKIM" in summary


async def test_a_held_canary_released_later_is_slow(flow: MailFlow) -> None:
    ro = flow.region("ro", header_checks=("/^X-Noc-Canary:/ HOLD held by a test",))
    config = canary_config(flow, {"ro": ro.port}, slow_seconds=1, deadline_seconds=600)
    prober = canary_prober(config, SystemClock())

    await prober.send("ro", "seed")
    for _ in range(MAX_READS):
        if "held by a test" in ro.log():
            break
        await asyncio.sleep(READ_PAUSE_SECONDS)
    assert await prober.read("seed") == []  # held in the queue: not in the mailbox
    # Held long enough that the whole-second delivery time is past slow_seconds.
    await asyncio.sleep(2.5)
    await asyncio.to_thread(flow.release_held, ro)
    (arrived,) = await until_settled(prober)

    assert arrived.state is CanaryState.ARRIVED
    assert arrived.latency_seconds is not None and arrived.latency_seconds > 1
    assert "took" in conditions(config, SystemClock(), arrived)["canary_slow"]


async def test_noc_check_json_has_each_regions_canary(flow: MailFlow) -> None:
    ro = flow.region("ro", header_checks=(prepend(PASSING),))
    bg = flow.region("bg", header_checks=(prepend(DKIM_FAILS),), junk=True)
    config = canary_config(flow, {"ro": ro.port, "bg": bg.port})
    scheduler = Scheduler(config, SystemClock(), single_round=True)
    try:
        await scheduler.collect_once()
        report = report_json(scheduler.engine.snapshot())
        text = report_text(scheduler.engine.snapshot())
    finally:
        await scheduler.stop()

    blocks = {r["id"]: r["canary"] for r in report["regions"]}
    (ro_block,) = blocks["ro"]
    (bg_block,) = blocks["bg"]
    assert ro_block["state"] == "arrived" and ro_block["folder"] == "inbox"
    assert (ro_block["spf"], ro_block["dkim"], ro_block["dmarc"]) == ("pass",) * 3
    assert ro_block["dkim_selector"] == "s2026"
    assert ro_block["latency_seconds"] is not None and ro_block["age_seconds"] is not None
    assert ro_block["error"] is None
    assert bg_block["folder"] == "spam" and bg_block["dkim"] == "fail"
    rules = {a["rule"] for a in report["alerts"]}
    assert "canary_auth" in rules
    assert "canary seed: arrived in" in text and "SPF/DKIM/DMARC pass, from 127.0.0.1" in text
    assert "canary bg→seed arrived in spam (Junk), failed DKIM" in report["summary"]


async def test_a_wrong_submission_password_is_a_canary_not_sent(
    flow: MailFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = flow.region("ro")
    config = canary_config(flow, {"ro": ro.port})
    monkeypatch.setenv(SUBMISSION_PASSWORD_ENV, "not-the-password")
    prober = canary_prober(config, SystemClock())

    failed = await prober.send("ro", "seed")

    assert failed.state is CanaryState.FAILED and "535" in (failed.error or "")
    assert prober.awaited("seed") == 0
    assert "not sent" in conditions(config, SystemClock(), failed)["canary_lost"]


async def test_an_unreadable_seed_is_an_unreachable_source(
    flow: MailFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = flow.region("ro")
    config = canary_config(flow, {"ro": ro.port})
    prober = canary_prober(config, SystemClock())
    await prober.send("ro", "seed")
    monkeypatch.setenv(SEED_PASSWORD_ENV, "not-the-password")

    (unread,) = await prober.read("seed")

    assert unread.state is CanaryState.UNREAD and "login" in (unread.error or "")
    assert prober.awaited("seed") == 1  # still awaited: the mailbox was not read
    assert "source_unreachable" in conditions(config, SystemClock(), unread)


async def failover_through(
    flow: MailFlow, estate_parts: tuple[Path, Any, Any], bg_checks: tuple[str, ...], **seed: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """A failover ro -> bg on the failover estate (real BIND, real Redis stores), its
    seed reached through bg's submission Postfix: the outcome and the audit records."""
    from failover_support import make_failover_app

    from noc.audit import read_jsonl
    from noc.model import ActionKind
    from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO

    tmp_path, named, stores = estate_parts
    _, _, estate = make_failover_app(tmp_path, named, stores)
    bg = flow.region("bg", header_checks=bg_checks)
    # The prober keeps real time: latencies are read against the seed server's clock.
    estate.scheduler.canary = canary_prober(
        canary_config(flow, {"bg": bg.port}, **seed), SystemClock()
    )
    ops = Operations(estate.config, estate.scheduler, estate.audit, estate.clock,
                     refresh=estate.scheduler.read_flags)  # fmt: skip

    async def yes(plan: Any) -> Confirmation:
        return Confirmation("drill", False, "--yes")

    request = ActionRequest(ActionKind.FAILOVER, "bg", {"operator": "op@test"}, reason="drill")
    try:
        outcome = await ops.run_action(request, OperatorIO(confirm=yes))
    finally:
        await estate.scheduler.stop()
    return outcome, read_jsonl(estate.audit.path).records


async def test_a_failover_is_verified_once_its_canary_arrives_through_the_new_region(
    flow: MailFlow, tmp_path: Path, dns_primary: Any, region_stores: Any
) -> None:
    outcome, records = await failover_through(
        flow, (tmp_path, dns_primary, region_stores), (prepend(PASSING),)
    )

    assert outcome.stage == "verified" and outcome.exit_code == 0, outcome.message
    assert "canary: through bg: seed: arrived in" in outcome.message
    timeline = dict(outcome.result.timeline)
    assert "mail_flowing" in timeline and "all_moved" in timeline
    steps = [(r["event"], r.get("ok")) for r in records if r.get("actuator") == "canary"]
    assert steps == [("step_intent", None), ("step_result", True)]
    verified = next(r for r in records if r["event"] == "verified")
    assert "mail_flowing" in verified["timeline"]
    assert messages_left(flow) == []


async def test_a_failover_whose_canary_is_lost_is_not_verified(
    flow: MailFlow, tmp_path: Path, dns_primary: Any, region_stores: Any
) -> None:
    outcome, records = await failover_through(
        flow, (tmp_path, dns_primary, region_stores),
        ("/^X-Noc-Canary:/ DISCARD dropped by a test",), slow_seconds=1, deadline_seconds=2,
    )  # fmt: skip

    assert outcome.stage == "failed" and outcome.exit_code == 2, outcome.message
    assert "FAILED" in outcome.message and "canary: through bg: seed: lost" in outcome.message
    assert "mail_flowing" not in dict(outcome.result.timeline)
    (result,) = [r for r in records if r["event"] == "step_result" and r["actuator"] == "canary"]
    assert result["ok"] is False and "lost" in result["detail"]
    assert any(r["event"] == "verify_failed" for r in records)


async def test_the_dashboards_loop_sends_on_its_interval_and_keeps_the_last_verdict(
    flow: MailFlow,
) -> None:
    ro = flow.region("ro", header_checks=(prepend(PASSING),))
    config = canary_config(flow, {"ro": ro.port}, poll_seconds=0.2, interval_seconds=3600)
    scheduler = Scheduler(config, SystemClock())
    scheduler.start()
    try:
        for _ in range(MAX_READS):
            canaries = scheduler.engine.snapshot().canary
            if canaries and canaries[0].state is CanaryState.ARRIVED:
                break
            await asyncio.sleep(READ_PAUSE_SECONDS)
    finally:
        await scheduler.stop()

    (canary,) = canaries
    assert canary.state is CanaryState.ARRIVED and canary.outstanding == 0
    # One canary an interval: the next is an hour away (Postfix saw one submission).
    assert ro.log().count("sasl_username=") == 1
    assert messages_left(flow) == []


async def test_a_canary_no_process_awaits_any_more_is_deleted_once_stale(flow: MailFlow) -> None:
    ro = flow.region("ro")
    config = canary_config(flow, {"ro": ro.port}, slow_seconds=5, deadline_seconds=60)
    # A `noc check` that gave up on its canary and ended: nobody awaits it any more.
    forgotten = await canary_prober(config, SystemClock()).send("ro", "seed")
    assert forgotten.sent_wall is not None
    # Another noc, later than twice the deadline, awaits a canary of its own.
    later = FakeClock(start=forgotten.sent_wall + timedelta(seconds=121))
    prober = canary_prober(config, later)
    await prober.send("ro", "seed")
    for _ in range(MAX_READS):  # both delivered before the read that settles
        if len(messages_left(flow)) == 2:
            break
        await asyncio.sleep(READ_PAUSE_SECONDS)

    (arrived,) = await until_settled(prober)

    assert arrived.token != forgotten.token
    assert messages_left(flow) == []  # the stale one went with it
