"""Grouped pages against the webhook receiver and PagerDuty stand-in on loopback
(tests/fake_apis.py): one stalled region's criticals are one group and one page.

The alerts are what the engine keeps for a stalled region (its down verdict, its
replication link, its store, its suppression sync, its mail queue and SMTP), so
the notifier is driven exactly as the scheduler drives it: `firing_now()` each
tick with every alert. Time is a FakeClock stepped past group_wait and
group_interval; `send_due()` delivers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_apis import FakeApis

from noc.clock import FakeClock
from noc.config import NotifyConfig
from noc.grouping import group_alerts
from noc.model import Ack, Alert, AlertState, Severity
from noc.notify import Notifier, Outbox, dedup_key

ESTATE = "mail-prod"
# (rule, key, severity, summary): what a stalled ro raises.
STALLED_RO = (
    ("region_down", "region_down:ro", Severity.CRITICAL, "ro down: every check failing"),
    ("replication_link_down", "replication_link_down:db:ro>bg", Severity.CRITICAL,
     "replication db ro→bg link down"),
    ("suppression_unsynced", "suppression_unsynced:ro", Severity.CRITICAL,
     "suppression entries not reaching ro"),
    ("smtp_down", "smtp_down:ro", Severity.CRITICAL, "ro down for mail"),
    ("tls_broken", "tls_broken:mx.ro", Severity.CRITICAL, "mx.ro: no STARTTLS"),
    ("dnsbl_listed", "dnsbl_listed:ro:192.0.2.10", Severity.CRITICAL, "192.0.2.10 listed"),
)  # fmt: skip


@pytest.fixture
async def apis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeApis]:
    server = FakeApis()
    await server.start()
    monkeypatch.setenv("NOC_T_HOOK", server.webhook_url)
    monkeypatch.setenv("NOC_T_PD", server.routing_key)
    try:
        yield server
    finally:
        await server.stop()


def channels(apis: FakeApis, **kwargs: Any) -> list[NotifyConfig]:
    return [
        NotifyConfig(kind="webhook", secret_env="NOC_T_HOOK", **kwargs),
        NotifyConfig(kind="pagerduty", secret_env="NOC_T_PD", api_url=apis.pagerduty_url),
    ]


def stalled(clock: FakeClock, count: int = 6, **kwargs: Any) -> list[Alert]:
    at = clock.utcnow()
    return [
        Alert(
            id=f"{key}@{at:%Y-%m-%dT%H:%M:%S}Z", key=key, rule=rule, severity=severity,
            state=AlertState.FIRING, region="ro", summary=summary, since=at, started_at=at,
            **kwargs,
        )
        for rule, key, severity, summary in STALLED_RO[:count]
    ]  # fmt: skip


def warning(clock: FakeClock, region: str, rule: str = "replication_lag") -> Alert:
    at = clock.utcnow()
    return Alert(
        id=f"{rule}:{region}@x", key=f"{rule}:{region}", rule=rule, severity=Severity.WARNING,
        state=AlertState.FIRING, region=region, summary=f"{rule} {region}", since=at,
    )  # fmt: skip


class Pager:
    """A notifier over one outbox file, reopened to simulate a restart."""

    def __init__(self, path: Path, clock: FakeClock, apis: FakeApis) -> None:
        self.path, self.clock, self.apis = path, clock, apis
        self.outbox: Outbox | None = None
        self.notifier: Notifier | None = None

    def open(self) -> Notifier:
        self.outbox = Outbox.open(self.path, self.clock)
        self.notifier = Notifier(
            channels(self.apis), self.outbox, self.clock, estate=ESTATE,
            group_by=("region",), group_wait_seconds=30, group_interval_seconds=300,
        )  # fmt: skip
        return self.notifier

    async def tick(self, alerts: list[Alert]) -> None:
        assert self.notifier is not None
        await self.notifier.firing_now(alerts)
        await self.notifier.send_due()

    async def close(self) -> None:
        if self.notifier is not None:
            await self.notifier.aclose()
        if self.outbox is not None:
            self.outbox.close()


@pytest.fixture
async def pager(tmp_path: Path, apis: FakeApis) -> AsyncIterator[Pager]:
    made = Pager(tmp_path / "outbox.jsonl", FakeClock(), apis)
    made.open()
    try:
        yield made
    finally:
        await made.close()


def hooks(apis: FakeApis) -> list[dict[str, Any]]:
    return [r.body for r in apis.of("webhook")]


async def test_a_stalled_regions_six_criticals_are_one_group_and_one_page(
    pager: Pager, apis: FakeApis
) -> None:
    clock = pager.clock
    first = stalled(clock, 2)
    await pager.tick(first)  # the first two fire: the group waits for the rest
    assert apis.requests == []
    clock.advance(10)
    alerts = [*first, *stalled(clock)[2:], warning(clock, "ro", "queue_backlog")]
    await pager.tick(alerts)
    assert apis.requests == []
    clock.advance(20)  # group_wait since the first member: one page, every member
    await pager.tick(alerts)
    (page,) = hooks(apis)
    assert page["event"] == "firing"
    assert page["alert"]["rule"] == "group" and page["alert"]["key"] == "group:region=ro"
    assert page["alert"]["severity"] == "critical"  # the worst member's
    members = page["alert"]["members"]
    assert len(members) == 7
    assert [m["severity"] for m in members] == ["critical"] * 6 + ["warning"]
    assert members[0]["rule"] == "region_down"  # the root cause leads
    assert "noc failover --to REGION" in page["alert"]["next_step"]
    (trigger,) = [r.body for r in apis.of("pagerduty")]
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "critical"
    assert len(trigger["payload"]["custom_details"]["members"]) == 7

    # Ticks go on, the group unchanged: nothing more.
    for _ in range(5):
        clock.advance(30)
        await pager.tick(alerts)
    assert len(hooks(apis)) == 1 and len(apis.of("pagerduty")) == 1

    # Everything resolves: one resolve each, under the same incident.
    await pager.tick([])
    resolve = hooks(apis)[-1]
    assert (resolve["event"], resolve["alert"]["id"]) == ("resolved", page["alert"]["id"])
    assert apis.incidents == {dedup_key(ESTATE, page["alert"]["id"]): "resolved"}


async def test_a_groups_severity_is_its_worst_members(pager: Pager, apis: FakeApis) -> None:
    clock = pager.clock
    only_warnings = [warning(clock, "bg"), warning(clock, "bg", "queue_backlog")]
    mixed = [warning(clock, "pa"), *stalled(clock, 1)]
    mixed = [
        a if a.region != "ro" else Alert(**{**_fields(a), "region": "pa", "key": "x:pa"})
        for a in mixed
    ]
    groups = {g.key: g for g in group_alerts([*only_warnings, *mixed], ("region",))}
    assert groups["group:region=bg"].severity is Severity.WARNING
    assert groups["group:region=pa"].severity is Severity.CRITICAL
    clock.advance(30)
    await pager.tick([*only_warnings, *mixed])
    severities = {p["alert"]["key"]: p["alert"]["severity"] for p in hooks(apis)}
    assert severities == {"group:region=bg": "warning", "group:region=pa": "critical"}


async def test_members_joining_are_told_once_per_group_interval_and_a_restart_repeats_nothing(
    pager: Pager, apis: FakeApis
) -> None:
    clock = pager.clock
    alerts = stalled(clock, 3)
    clock.advance(30)
    await pager.tick(alerts)
    assert len(hooks(apis)) == 1
    clock.advance(60)
    alerts += stalled(clock)[3:]
    await pager.tick(alerts)
    assert len(hooks(apis)) == 1  # within group_interval: held back

    await pager.close()  # a restart: what each channel was told is in the outbox
    pager.open()
    clock.advance(240)  # group_interval since the page
    await pager.tick(alerts)
    update = hooks(apis)[-1]
    assert len(hooks(apis)) == 2
    assert update["event"] == "firing" and len(update["alert"]["members"]) == 6
    assert update["alert"]["id"] == hooks(apis)[0]["alert"]["id"]  # the same incident
    clock.advance(30)
    await pager.tick(alerts)
    assert len(hooks(apis)) == 2


async def test_muted_members_page_no_one_and_acked_groups_do_not_repeat(
    pager: Pager, apis: FakeApis
) -> None:
    clock = pager.clock
    in_maintenance = stalled(clock, maintenance="w1")
    clock.advance(30)
    await pager.tick(in_maintenance)
    assert apis.requests == []  # a maintenance window: the whole group is muted
    ack = Ack("op@noc1", "on it", clock.utcnow())
    acked = stalled(clock, ack=ack)
    clock.advance(30)
    await pager.tick(acked)
    assert len(hooks(apis)) == 1  # an ack does not stop the first page
    clock.advance(timedelta(hours=2).total_seconds())
    await pager.tick(acked)
    assert len(hooks(apis)) == 1  # every member acked: no repeat


def _fields(alert: Alert) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in alert.__slots__}


async def test_an_alert_paged_alone_before_grouping_still_gets_its_resolve(
    tmp_path: Path, apis: FakeApis
) -> None:
    """group_by set on a running estate: what a channel was told alone still closes."""
    from noc.model import AlertNotice

    clock = FakeClock()
    path = tmp_path / "outbox.jsonl"
    outbox = Outbox.open(path, clock)
    alone = Notifier(channels(apis), outbox, clock, estate=ESTATE)
    (down,) = stalled(clock, 1)
    await alone.notify(AlertNotice(down, "firing", clock.utcnow()))
    await alone.send_due()
    await alone.aclose()
    outbox.close()
    pager = Pager(path, clock, apis)
    pager.open()
    try:
        clock.advance(60)
        ended = Alert(**{**_fields(down), "state": AlertState.RESOLVED, "since": clock.utcnow()})
        assert pager.notifier is not None
        await pager.notifier.notify(AlertNotice(ended, "resolved", clock.utcnow()))
        await pager.tick([])
        assert [p["event"] for p in hooks(apis)] == ["firing", "resolved"]
        assert set(apis.incidents.values()) == {"resolved"}
    finally:
        await pager.close()
