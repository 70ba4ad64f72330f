"""The demo estate's mail: SMTP servers, MTA exporter pages and the MTA-STS policy.

Each region has an in-process SMTP server (aiosmtpd) with certificates from the demo's
own CA, an exporter page in postfix_exporter's format from a queue model, and the
domain's MTA-STS policy over HTTPS with its id in the demo DNS. Read with noc's own
collectors and scheduler: every mail fault of the panel must change what noc sees, and
restore must undo it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from failover_support import OPERATOR
from test_demo_data import PanelApp, option_prompts
from textual.widgets import OptionList

from noc.clock import FakeClock, SystemClock
from noc.config import NocConfig
from noc.failover import plan_action
from noc.model import (
    ActionKind,
    AlertState,
    ErrorKind,
    EstateSnapshot,
    Fault,
    MtaSample,
    SmtpSample,
)
from noc.scheduler import Scheduler
from noc.simulator import DemoEstate
from noc.simulator.mail import EXPIRING_DAYS, QueueTuning
from noc_collectors.mta import MtaCollector
from noc_collectors.smtp import SmtpCollector
from noc_widgets.fault_panel import FaultPanel

MAIL_FAULTS = (
    Fault.SMTP_421,
    Fault.NO_STARTTLS,
    Fault.TLS_HANDSHAKE,
    Fault.CERT_EXPIRING,
    Fault.CERT_WRONG_NAME,
    Fault.QUEUE_HELD,
    Fault.REJECTION_SPIKE,
    Fault.MX_OUTSIDE_POLICY,
)
# Seconds instead of minutes: a held queue grows by hundreds between two reads.
QUEUE_TUNING = QueueTuning(held_per_second=400, deferred_in_fault_per_second=300, drain_seconds=0.5)


@pytest.fixture
async def estate(tmp_path: Path) -> AsyncIterator[DemoEstate]:
    estate = DemoEstate(seed=3, queue_tuning=QUEUE_TUNING, certificate_dir=tmp_path)
    yield estate
    await estate.stop()


async def probe(config: NocConfig, region: str) -> SmtpSample:
    (target,) = [t for t in config.smtp_targets() if t.region_id == region]
    return await SmtpCollector().probe(target)


async def test_smtp_faults_reach_noc_smtp_probes(estate: DemoEstate, tmp_path: Path) -> None:
    config = await estate.start()
    # The demo CA and its certificates are where the estate was told to put them.
    assert (tmp_path / "tls" / "ca.pem").is_file()

    healthy = await probe(config, "ro")
    assert healthy.ok and healthy.banner_code == 220, healthy.error
    assert healthy.tls_version is not None and healthy.tls_version.startswith("TLSv1.")
    assert healthy.cert_days_left is not None and healthy.cert_days_left > 300

    await estate.inject("ro", Fault.SMTP_421)
    refused = await probe(config, "ro")
    assert not refused.ok and refused.banner_code == 421
    assert refused.error is not None and refused.error.kind is ErrorKind.SMTP_STATUS
    # Another region is untouched.
    assert (await probe(config, "bg")).ok

    await estate.inject("ro", Fault.NO_STARTTLS)  # replaces the 421: one SMTP fault at a time
    assert estate.active_faults("ro") == (Fault.NO_STARTTLS,)
    plain = await probe(config, "ro")
    assert not plain.ok and plain.tls_broken and plain.banner_code == 220

    await estate.inject("ro", Fault.TLS_HANDSHAKE)
    handshake = await probe(config, "ro")
    assert not handshake.ok and handshake.tls_broken and handshake.tls_version is None

    await estate.inject("ro", Fault.CERT_WRONG_NAME)
    wrong = await probe(config, "ro")
    assert not wrong.ok and wrong.tls_broken
    assert wrong.error is not None and "mx.ro.demo-mail.test" in str(wrong.error)

    await estate.inject("ro", Fault.CERT_EXPIRING)
    expiring = await probe(config, "ro")
    assert expiring.ok and expiring.cert_days_left is not None
    assert EXPIRING_DAYS - 1 < expiring.cert_days_left <= EXPIRING_DAYS

    await estate.inject("ro", Fault.RESTORE)
    again = await probe(config, "ro")
    assert again.ok and again.cert_days_left is not None and again.cert_days_left > 300


async def read_mta(collector: MtaCollector) -> MtaSample:
    sample = await collector.poll()
    assert sample.error is None, sample.error
    return sample


async def test_queue_and_rejection_faults_reach_noc_mta_collector(estate: DemoEstate) -> None:
    config = await estate.start()
    (ro,) = [r for r in config.regions if r.id == "ro"]
    assert ro.mta is not None
    collector = MtaCollector("ro", ro.mta.metrics_url, clock=SystemClock())
    try:
        first = await read_mta(collector)
        assert first.queue_hold == 0 and first.queue_deferred is not None
        assert first.queue_deferred < ro.mta.queue_depth_threshold

        await estate.inject("ro", Fault.QUEUE_HELD)
        await asyncio.sleep(0.3)
        held = await read_mta(collector)
        await asyncio.sleep(0.3)
        growing = await read_mta(collector)
        assert held.queue_hold is not None and growing.queue_hold is not None
        assert 0 < held.queue_hold < growing.queue_hold
        assert held.queue_deferred is not None and growing.queue_deferred is not None
        assert held.queue_deferred < growing.queue_deferred
        assert growing.queue_hold + growing.queue_deferred > ro.mta.queue_depth_threshold

        await estate.inject("ro", Fault.REJECTION_SPIKE)
        await asyncio.sleep(0.5)
        spike = await read_mta(collector)
        assert spike.rejections_per_minute is not None
        assert spike.rejections_per_minute["5xx"] > ro.mta.rejections_per_minute_threshold

        # Restore releases the hold; the backlog drains within the (test) drain time.
        await estate.inject("ro", Fault.RESTORE)
        await asyncio.sleep(QUEUE_TUNING.drain_seconds + 0.2)
        drained = await read_mta(collector)
        assert drained.queue_hold == 0
        assert drained.queue_deferred is not None
        assert drained.queue_deferred <= ro.mta.failback_deferred_threshold
    finally:
        await collector.aclose()


async def test_mx_outside_policy_reaches_noc_mta_sts(estate: DemoEstate) -> None:
    config = await estate.start()
    assert config.email.mta_sts

    async def mta_sts_round() -> EstateSnapshot:
        scheduler = Scheduler(config, FakeClock(), single_round=True)
        try:
            await scheduler.collect_once()
            return scheduler.snapshot()
        finally:
            await scheduler.stop()

    before = await mta_sts_round()
    sample = before.mta_sts
    assert sample is not None and sample.error is None, sample
    assert sample.mode == "enforce"
    assert set(sample.mx_patterns) == {f"mx.{r}.demo-mail.test" for r in ("ro", "bg", "pa")}
    assert sample.live_mx == ("mx.ro.demo-mail.test",)
    assert not [a for a in before.alerts if a.rule == "mta_sts_mismatch"]

    # bg outside the policy: a failover to bg is refused, and nothing fires (bg is
    # not the live MX).
    await estate.inject("bg", Fault.MX_OUTSIDE_POLICY)
    outside = await mta_sts_round()
    changed = outside.mta_sts
    assert changed.policy_id != sample.policy_id
    assert "mx.bg.demo-mail.test" not in changed.mx_patterns
    plan = plan_action(outside, config, ActionKind.FAILOVER, "bg", OPERATOR)
    assert "MX in the MTA-STS policy" in {c.name for c in plan.failed}

    # ro (the live MX) outside: mta_sts_mismatch fires.
    await estate.inject("ro", Fault.MX_OUTSIDE_POLICY)
    live_outside = await mta_sts_round()
    mismatch = [a for a in live_outside.alerts if a.rule == "mta_sts_mismatch"]
    assert mismatch and mismatch[0].state is AlertState.FIRING
    assert "mx.ro.demo-mail.test" in mismatch[0].summary

    await estate.inject("ro", Fault.RESTORE)
    await estate.inject("bg", Fault.RESTORE)
    restored = await mta_sts_round()
    assert restored.mta_sts.policy_id == sample.policy_id


async def test_fault_panel_lists_the_mail_faults(estate: DemoEstate) -> None:
    await estate.start()
    await estate.inject("pa", Fault.QUEUE_HELD)
    await estate.inject("pa", Fault.CERT_EXPIRING)
    app = PanelApp(FaultPanel(estate))
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        prompts = option_prompts(app.panel.query_one(OptionList))
        assert "pa now: queue held and growing, expiring certificate" in prompts
        ids = set(prompts.values())
        for region in ("ro", "bg", "pa"):
            for fault in MAIL_FAULTS:
                assert f"{region}:{fault.value}" in ids
