"""The failover dialog, break-glass verdict and result screens of a DNS-moving action.

Pinned at 80x24 (SSH) and 200x60 (wall screen): at 80x24 the dialog condenses to
one line per rule (failing first) and a blast radius summary, so rules, blast
radius, the typed id, the reason and the buttons are all on screen unscrolled. Plans come from the
real `plan_action()` on a fed snapshot, with the actuators' facts made by hand.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import estate_config, with_dns, with_replication
from test_app_snapshots import SIZES, make_app
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Input, Label

from noc.app import NocApp, ShownResult
from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.failover import plan_action
from noc.model import (
    ActionKind,
    ActionPlan,
    ActionResult,
    ActuatorFacts,
    ActuatorStep,
    AuthCheck,
    DeliverabilitySample,
    DmarcCheck,
    DnsblSample,
    DnsRecordSample,
    EmailAuthSample,
    FailoverFlag,
    FailoverRecordType,
    LagBasis,
    LinkState,
    PropagationProgress,
    PtrCheck,
    RegionDeliverability,
    ReplicationSample,
    RRsetState,
    StoreOutcome,
    StoreResult,
    SuppressionCount,
    SuppressionDivergence,
    SuppressionSample,
)
from noc.model import DeliverabilityCounts as Counts
from noc_widgets.action_result import ActionResultScreen
from noc_widgets.blast_radius import blast_radius_content
from noc_widgets.drain_wait import DrainWait
from noc_widgets.failover_dialog import FailoverDialog, plan_title
from noc_widgets.force_dialog import ForceDialog

ZONE = "demo-mail.test."
A, MX = FailoverRecordType.A, FailoverRecordType.MX
SERVER = "127.0.0.1:5353"
RESOLVERS = ("10.0.0.53:53", "10.0.1.53:53", "10.0.2.53:53")
# The flag the stores hold (support.feed_flags) was written at 02:00.
AN_HOUR_LATER = datetime(2026, 11, 23, 3, 0, 30, tzinfo=UTC)
THREE_MINUTES_LATER = datetime(2026, 11, 23, 2, 3, 0, tzinfo=UTC)
FACTS = ActuatorFacts(
    rrsets=(
        RRsetState("smtp.demo-mail.test.", A, ("192.0.2.10",), 60),
        RRsetState("demo-mail.test.", MX, ("10 mx.ro.demo-mail.test",), 300),
    )
)


def dns_config() -> NocConfig:
    """The estate with replication, DNS checks and a DNS actuator for demo-mail.test."""
    data = with_dns(with_replication(estate_config())).model_dump(mode="json")
    data["dns"]["records"] = [
        {"name": "smtp.demo-mail.test.", "type": "A"},
        {"name": "demo-mail.test.", "type": "MX"},
    ]
    data["email"]["domain"] = "demo-mail.test"
    for region in data["regions"]:
        region["mx_host"] = f"mx.{region['id']}.demo-mail.test."
    data["failover"]["dns"] = {
        "server": SERVER,
        "zone": ZONE,
        "key_name": "noc.",
        "key_secret": "c2VjcmV0LWZvci10ZXN0cw==",
    }
    return parse_config(data)


def feed_estate(engine: Engine, clock: FakeClock, *, lag: float, unsynced: int) -> None:
    """What the blast radius is made of: lag toward bg (a floor when over 60 s, as if
    the link were down), suppression bg lacks, complaints, blocklists, SPF, TTLs."""
    when = (clock.monotonic(), clock.utcnow())
    down = lag > 60
    for link in engine.config.replication:
        spec = link.spec()
        this_lag = lag if spec.target == "bg" else 2.0
        state = LinkState.DOWN if down and spec.target == "bg" else LinkState.UP
        engine.ingest_replication(
            link.link_id,
            ReplicationSample(
                spec, *when, state, this_lag, LagBasis.HEARTBEAT,
                lag_is_floor=state is LinkState.DOWN, offset_lag_bytes=int(this_lag * 1200),
            ),
        )  # fmt: skip
    engine.ingest_suppression(
        SuppressionSample(
            *when, 3600,
            tuple(SuppressionCount(r, name, 120_000 - (unsynced if r == "bg" else 0))
                  for r in ("ro", "bg", "pa") for name in ("unsubscribe", "complaint")),
            (SuppressionDivergence("ro", "bg", "unsubscribe", unsynced, 40.0 if unsynced else None,
                                   examined=812),
             SuppressionDivergence("ro", "bg", "complaint", 0, None, examined=64),
             SuppressionDivergence("ro", "pa", "unsubscribe", 0, None, examined=812)),
            examined=1688, truncated=False,
        )
    )  # fmt: skip
    engine.ingest_deliverability(
        DeliverabilitySample(
            *when, 60, clock.utcnow(),
            (RegionDeliverability("ro", Counts(182_000, 178_100, 900, 1_400, 60), (1,) * 60),
             RegionDeliverability("bg", Counts(24_000, 23_500, 110, 160, 12), (0,) * 60),
             RegionDeliverability("pa", Counts(9_000, 8_800, 60, 70, 3), (0,) * 60)),
            Counts(215_000, 210_400, 1_070, 1_630, 75),
            (1,) * 60,
        )
    )  # fmt: skip
    engine.ingest_dnsbl(
        tuple(
            DnsblSample(f"198.51.100.{octet}", rid, "zen.test", *when, False, None, "not listed")
            for rid, octet in (("ro", 10), ("bg", 20), ("pa", 30))
        )
    )
    ok = AuthCheck(True, "pass")
    engine.ingest_email_auth(
        tuple(
            EmailAuthSample(rid, *when, ok, ok, DmarcCheck(True, "p=reject", "reject"),
                            PtrCheck(True, "ok"))
            for rid in ("ro", "bg", "pa")
        )
    )  # fmt: skip
    remaining = {A: (58, 41, 12), MX: (240, 187, 95)}
    answers = {A: "192.0.2.10", MX: "10 mx.ro.demo-mail.test"}
    engine.ingest_dns(
        tuple(
            DnsRecordSample(record.name, rtype, resolver, *when, (answers[rtype],), ttl)
            for record in engine.config.dns.records
            for rtype in [FailoverRecordType(record.type)]
            for resolver, ttl in zip(engine.config.dns.resolvers, remaining[rtype], strict=True)
        )
    )
    engine.evaluate_alerts()


def dns_app(tmp_path: Path, *, lag: float = 4.0, unsynced: int = 0) -> NocApp:
    app = make_app(tmp_path, "normal", config=dns_config())
    feed_estate(app.scheduler.engine, app.clock, lag=lag, unsynced=unsynced)  # type: ignore[arg-type]
    return app


def failover_plan(app: NocApp, now: datetime) -> ActionPlan:
    operator = {"operator": "op@noc1"}
    return plan_action(
        app.snapshot(), app.config, ActionKind.FAILOVER, "bg", operator, facts=FACTS, now=now
    )


def showing(screen: Callable[[], Screen[Any]]) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.app.push_screen(screen())
        await fitted(pilot)

    return run


async def fitted(pilot: Pilot[None]) -> None:
    """Time for a dialog to fit itself: each fit runs after a refresh, and a refresh
    waits for the screen's update timer, so on a loaded machine a few bare pauses
    could take the picture between the condensing and the fit that follows it."""
    for _ in range(4):
        await pilot.pause(0.05)


def moved(result: ActionResult, progress: PropagationProgress | None) -> ActionResult:
    return ActionResult(
        result.plan,
        result.flag,
        result.stores,
        result.steps,
        result.aborted,
        progress,
        result.timeline,
    )


def executed(plan: ActionPlan) -> ActionResult:
    """A failover that wrote the flag on every store and replaced both RRsets."""
    flag = FailoverFlag("bg", "ro", "op@noc1", "ro lost", "2026-11-23T03:00:30Z", plan.action_id)
    return ActionResult(
        plan,
        flag,
        tuple(StoreResult(r, StoreOutcome.VERIFIED) for r in ("ro", "bg", "pa")),
        (
            ActuatorStep("lock", True, "held on 3/3 stores"),
            ActuatorStep("flag", True, "3/3 stores verified"),
            ActuatorStep("dns", True, "2 RRset(s) replaced in one signed update"),
        ),
        timeline=(("confirmed", 0.0), ("executed", 0.4)),
    )


# (a) Every rule passes; the blast radius shows two record changes and what is at risk.
@pytest.mark.parametrize("size", SIZES)
def test_dns_failover_preview(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = dns_app(tmp_path)
    plan = failover_plan(app, AN_HOUR_LATER)
    assert plan.allowed and plan.actuators == ("flag", "dns")
    assert [c.remaining_ttl for c in plan.blast.changes] == [58, 240]
    assert snap_compare(app, terminal_size=size, run_before=showing(lambda: FailoverDialog(plan)))


# (b) Refused by rules a break-glass override may bypass: lag over the RPO, cooldown.
@pytest.mark.parametrize("size", SIZES)
def test_dns_failover_needs_break_glass(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = dns_app(tmp_path, lag=95.0, unsynced=312)
    plan = failover_plan(app, THREE_MINUTES_LATER)
    assert {c.name for c in plan.failed} == {"replication within RPO", "cooldown"}
    assert plan.needs_force
    assert snap_compare(app, terminal_size=size, run_before=showing(lambda: FailoverDialog(plan)))


# At 80x24 rules and blast radius fit condensed: PgDn has nothing to scroll.
def test_dns_failover_preview_scrolled(snap_compare: Any, tmp_path: Path) -> None:
    app = dns_app(tmp_path, lag=95.0, unsynced=312)
    plan = failover_plan(app, THREE_MINUTES_LATER)

    async def scroll(pilot: Pilot[None]) -> None:
        await showing(lambda: FailoverDialog(plan))(pilot)
        await pilot.press("pagedown", "pagedown")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=scroll)


# The break-glass override names every rule it bypasses.
@pytest.mark.parametrize("size", SIZES)
def test_break_glass_dialog(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = dns_app(tmp_path, lag=95.0, unsynced=312)
    plan = failover_plan(app, THREE_MINUTES_LATER)
    assert snap_compare(app, terminal_size=size, run_before=showing(lambda: ForceDialog(plan)))


# (c) Verified: the flag on every store, both RRsets replaced, every server moved.
@pytest.mark.parametrize("size", SIZES)
def test_dns_failover_verified(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = dns_app(tmp_path)
    plan = failover_plan(app, AN_HOUR_LATER)
    result = executed(plan)
    final = ActionResult(
        plan,
        result.flag,
        result.stores,
        result.steps,
        propagation=PropagationProgress(3.6, (SERVER, *RESOLVERS[:2]), (), done=True),
        timeline=(
            ("confirmed", 0.0),
            ("executed", 0.4),
            ("first_resolver_moved", 1.1),
            ("all_moved", 4.0),
        ),
    )
    assert final.success and final.propagation_text == "3/3 DNS servers on bg after 4 s"
    assert snap_compare(
        app, terminal_size=size, run_before=showing(lambda: ActionResultScreen(final))
    )


# After an automated failover: the verdict and RTO in the banner, the dashboard in
# front (no dialog to close before any key works); `t` opens the timeline.
@pytest.mark.parametrize("size", SIZES)
def test_automated_failover_outcome_in_the_banner(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    config = dns_config()
    config = config.model_copy(
        update={"failover": config.failover.model_copy(update={"auto": True})}
    )
    app = make_app(tmp_path, "normal", config=config)
    feed_estate(app.scheduler.engine, app.clock, lag=4.0, unsynced=0)  # type: ignore[arg-type]
    final = replace(
        executed(failover_plan(app, AN_HOUR_LATER)),
        propagation=PropagationProgress(3.6, (SERVER, *RESOLVERS[:2]), (), done=True),
        timeline=(("confirmed", 0.0), ("executed", 0.4), ("first_resolver_moved", 1.1),
                  ("all_moved", 4.0)),
    )  # fmt: skip
    fired = "ro → bg at 03:00:30 UTC"

    async def fire(pilot: Pilot[None]) -> None:
        await pilot.pause()
        app.auto.fired = fired
        app.last_result = ShownResult(final, watching=False, automated=fired)
        app._show_last_result()
        app.refresh_snapshot()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=fire)


# (d) DNS refused the update (the record changed since planning): the flag is rolled back.
@pytest.mark.parametrize("size", SIZES)
def test_dns_failover_rolled_back(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = dns_app(tmp_path)
    plan = failover_plan(app, AN_HOUR_LATER)
    why = "prerequisite failed (NXRRSET): smtp.demo-mail.test. A is no longer 192.0.2.10"
    result = ActionResult(
        plan,
        None,
        tuple(StoreResult(r, StoreOutcome.VERIFIED) for r in ("ro", "bg", "pa")),
        (
            ActuatorStep("lock", True, "held on 3/3 stores"),
            ActuatorStep("flag", True, "3/3 stores verified"),
            ActuatorStep("dns", False, why),
            ActuatorStep("flag", True, "rollback: ro restored on ro, bg, pa", rolled_back=True),
        ),
        aborted=f"dns failed ({why}); rolled back: flag",
        timeline=(("confirmed", 0.0),),
    )
    assert not result.success
    assert snap_compare(
        app, terminal_size=size, run_before=showing(lambda: ActionResultScreen(result))
    )


# While DNS propagates: the same screen, re-rendered in place as progress comes in.
@pytest.mark.parametrize("size", SIZES)
def test_dns_failover_watching(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = dns_app(tmp_path)
    result = executed(failover_plan(app, AN_HOUR_LATER))
    progress = PropagationProgress(
        2.0,
        (SERVER, RESOLVERS[0]),
        ((RESOLVERS[1], "stale (serial 7): still smtp A: 192.0.2.10; MX: 10 mx.ro"),),
        done=False,
    )

    async def watch(pilot: Pilot[None]) -> None:
        await pilot.pause()
        screen = ActionResultScreen(result, watching=True)
        await pilot.app.push_screen(screen)
        await pilot.pause()
        screen.show_result(moved(result, progress), watching=True)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=watch)


# Shared RRsets: a backup MX and a third party's address beside the region's values.
SHARED = ActuatorFacts(
    rrsets=(
        RRsetState("smtp.demo-mail.test.", A, ("192.0.2.10", "203.0.113.9"), 60),
        RRsetState(
            "demo-mail.test.", MX, ("10 mx.ro.demo-mail.test", "20 mx.bg.demo-mail.test"), 300
        ),
    )
)


def shared_plan(app: NocApp) -> ActionPlan:
    operator = {"operator": "op@noc1"}
    return plan_action(
        app.snapshot(), app.config, ActionKind.FAILOVER, "bg", operator, SHARED, now=AN_HOUR_LATER
    )


# Only ro's values move: the backup MX swaps places, the third party's address is kept,
# and the plan names it as belonging to no region (a warning, not a refusal).
@pytest.mark.parametrize("size", SIZES)
def test_dns_failover_preview_keeps_what_is_not_the_source(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = dns_app(tmp_path)
    plan = shared_plan(app)
    assert plan.allowed, plan.refusal
    assert snap_compare(app, terminal_size=size, run_before=showing(lambda: FailoverDialog(plan)))


def test_the_preview_marks_kept_values(tmp_path: Path) -> None:
    plan = shared_plan(dns_app(tmp_path))
    text = blast_radius_content(plan.blast, plan.actuators, "bg").plain
    assert (
        "DNS           smtp.demo-mail.test A  192.0.2.10, 203.0.113.9 → "
        "192.0.2.20, 203.0.113.9 (kept, no region)  TTL 60 s (clients move within 58 s)"
    ) in text.splitlines()
    assert (
        "              demo-mail.test MX  10 mx.ro.demo-mail.test, 20 mx.bg.demo-mail.test → "
        "10 mx.bg.demo-mail.test, 20 mx.ro.demo-mail.test  TTL 300 s (clients move within 240 s)"
    ) in text.splitlines()
    finding = next(c for c in plan.checks if c.name == "DNS values of no region")
    assert not finding.ok and not finding.blocking
    assert finding.detail.startswith(
        "smtp.demo-mail.test. A 203.0.113.9 belongs to no region: left in place"
    )


def test_flag_only_blast_radius_says_only_the_flag_changes(tmp_path: Path) -> None:
    app = make_app(tmp_path, "normal")
    plan = plan_action(app.snapshot(), app.config, ActionKind.FAILOVER, "bg", {"operator": "o"})
    assert plan.actuators == ("flag",)
    assert blast_radius_content(plan.blast, plan.actuators).plain == (
        "Blast radius\nOnly the failover flag changes (no DNS actuator configured)."
    )


def test_a_wrapped_change_keeps_each_value_whole(tmp_path: Path) -> None:
    plan = failover_plan(dns_app(tmp_path), AN_HOUR_LATER)
    text = blast_radius_content(plan.blast, plan.actuators, "bg", width=60).plain
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert "\u00a0" not in text and "\ue000" not in text  # plain spaces when copied
    indent = " " * 14  # under the values, not under "DNS"
    assert indent + "10 mx.bg.demo-mail.test  TTL 300 s" in lines
    assert indent + "(clients move within 240 s)" in lines


def test_titles_name_what_moves(tmp_path: Path) -> None:
    plan = failover_plan(dns_app(tmp_path), AN_HOUR_LATER)
    assert plan_title(replace(plan, kind=ActionKind.SWITCHOVER)) == "SWITCHOVER ro → bg"
    assert plan_title(replace(plan, kind=ActionKind.DRAIN)) == "DRAIN bg"
    assert plan_title(replace(plan, kind=ActionKind.RESTORE)) == "RESTORE bg"


async def test_show_result_rerenders_in_place(tmp_path: Path) -> None:
    app = dns_app(tmp_path)
    result = executed(failover_plan(app, AN_HOUR_LATER))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = ActionResultScreen(result, watching=True)
        await app.push_screen(screen)
        await pilot.pause()
        title = screen.query_one("#title", Label)
        assert "WATCHING DNS" in str(title.render())
        assert not screen.has_class("-failed")
        done = PropagationProgress(3.6, (SERVER, *RESOLVERS[:2]), (), done=True)
        screen.show_result(moved(result, done))
        await pilot.pause()
        assert screen.result.propagation is done
        assert "VERIFIED" in str(screen.query_one("#title", Label).render())
        assert app.focused is screen.query_one("#close", Button)


async def test_rules_and_blast_radius_fit_at_80x24_without_scrolling(tmp_path: Path) -> None:
    """Condensed: every rule (failing first), the blast radius summary, the inputs and
    the buttons on one 80x24 screen; nothing to scroll."""
    app = dns_app(tmp_path, lag=95.0, unsynced=312)
    plan = failover_plan(app, THREE_MINUTES_LATER)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = FailoverDialog(plan)
        await app.push_screen(dialog)
        await fitted(pilot)
        assert dialog.condensed
        assert app.focused is dialog.query_one("#cancel", Button)
        for widget in (*dialog.query(Input), *dialog.query(Button)):
            assert widget.region.bottom <= 24, widget
        assert dialog.query_one("#body").max_scroll_y == 0
        assert not dialog.query_one("#dialog").border_subtitle  # no "PgUp/PgDn: more"
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "typed"


async def test_the_wall_shows_the_full_dialog(tmp_path: Path) -> None:
    app = dns_app(tmp_path, lag=95.0, unsynced=312)
    plan = failover_plan(app, THREE_MINUTES_LATER)
    async with app.run_test(size=(200, 60)) as pilot:
        dialog = FailoverDialog(plan)
        await app.push_screen(dialog)
        await fitted(pilot)
        assert not dialog.condensed
        assert dialog.query_one("#body").max_scroll_y == 0


# A switchover holding until replication has drained; Cancel has the focus.
@pytest.mark.parametrize("size", SIZES)
def test_switchover_waiting_for_lag(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = dns_app(tmp_path)
    plan = replace(failover_plan(app, AN_HOUR_LATER), kind=ActionKind.SWITCHOVER)

    def waiting() -> DrainWait:
        dialog = DrainWait(plan)
        dialog.progress = "waiting: suppression: 4800 bytes behind; subscribers: lag 2.1 s"
        return dialog

    assert snap_compare(app, terminal_size=size, run_before=showing(waiting))


# A failback holding until the target's deferred mail queue has drained: the title
# says it waits for the mail queue, not for lag.
@pytest.mark.parametrize("size", SIZES)
def test_failback_waiting_for_the_mail_queue(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = dns_app(tmp_path)
    plan = replace(
        failover_plan(app, AN_HOUR_LATER), kind=ActionKind.FAILBACK, source="bg", target="ro"
    )

    def waiting() -> DrainWait:
        dialog = DrainWait(plan)
        dialog.progress = "waiting: ro has 212 deferred (> 50)"
        return dialog

    assert snap_compare(app, terminal_size=size, run_before=showing(waiting))
