"""Every alert and group carries its next step: the estate's `[[alerts.rules]] hint`
when it has one, else noc's built-in step in the words of where it is read."""

from __future__ import annotations

from support import REFUSED, estate_config, feed_flags, feed_round

from noc.check import report_json
from noc.clock import FakeClock
from noc.engine import Engine
from noc.grouping import group_alerts
from noc.model import Interface
from noc.next_steps import CLI_STEPS, DASHBOARD_STEPS, builtin_step, next_step
from noc.notify import NoticeRecord, message_text
from noc.rules import RULES

RUNBOOK = "runbook: https://wiki.example.com/noc/region-down (page the DC on-call)"


def down_estate(**alerts: object) -> Engine:
    clock = FakeClock()
    engine = Engine(estate_config(alerts=alerts), clock)
    feed_flags(engine, clock, "ro")
    for _ in range(4):
        feed_round(engine, clock, {"bg": REFUSED})
    engine.evaluate_alerts()
    return engine


def test_every_rule_has_a_step_in_each_interface() -> None:
    assert set(RULES) <= set(DASHBOARD_STEPS) and set(RULES) <= set(CLI_STEPS)


def test_the_built_in_step_names_the_key_on_the_dashboard_and_the_command_elsewhere() -> None:
    dashboard = builtin_step("suppression_unsynced", "bg", Interface.DASHBOARD,
                             {"sync_detail": "u", "sync_now": "ctrl+y"})  # fmt: skip
    assert "(u)" in dashboard and "(ctrl+y)" in dashboard
    cli = builtin_step("suppression_unsynced", "bg", Interface.CLI)
    assert "`noc sync --from REGION --to bg`" in cli
    assert builtin_step("suppression_unsynced", "bg", None) == cli  # a page: the command


def test_the_rules_own_hint_wins_everywhere() -> None:
    engine = down_estate(rules=[{"rule": "region_down", "hint": RUNBOOK}])
    (down,) = [a for a in engine.snapshot().alerts if a.rule == "region_down"]
    assert down.hint == RUNBOOK
    for interface in (Interface.DASHBOARD, Interface.CLI, None):
        assert next_step(down, interface) == RUNBOOK
    page = message_text(NoticeRecord.of(down, "firing", down.since), "mail-prod")
    assert page.splitlines()[-1] == f"Next step: {RUNBOOK}"
    (checked,) = [a for a in report_json(engine.snapshot())["alerts"] if a["rule"] == "region_down"]
    assert checked["next_step"] == RUNBOOK


def test_without_a_hint_noc_check_gives_the_commands_step() -> None:
    engine = down_estate()
    (checked,) = [a for a in report_json(engine.snapshot())["alerts"] if a["rule"] == "region_down"]
    assert "noc failover --to REGION" in checked["next_step"]


def test_noc_check_lists_groups_when_asked() -> None:
    engine = down_estate(group_by=["region"])
    snapshot = engine.snapshot()
    report = report_json(snapshot, ["region"])
    expected = group_alerts(snapshot.alerts, ["region"])
    assert [g["key"] for g in report["groups"]] == [g.key for g in expected]
    bg = next(g for g in report["groups"] if g["key"] == "group:region=bg")
    assert bg["labels"] == {"region": "bg"} and bg["severity"] == "critical"
    assert "noc failover --to REGION" in bg["next_step"]
    assert report_json(snapshot)["groups"] == []  # not grouped unless configured
