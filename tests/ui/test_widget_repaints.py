"""Every widget repaints on every field it shows (issue 12: after a verified failover
the region list and the map kept the `◆ DNS` marker on the old region, because a DNS
move or a blocklist listing alone never repainted them).

For each widget: feed a snapshot, then the same snapshot with one field changed,
and assert that what is on the screen changed. The fields come from the dataclass
itself, so a field added later is tested without anyone remembering to."""

from __future__ import annotations

import dataclasses
import enum
import io
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from rich.console import Console
from support import (
    HTTP_503,
    TIMEOUT,
    estate_config,
    feed_data,
    feed_dns,
    feed_flags,
    feed_mail,
    feed_round,
    with_dns,
    with_mail,
    with_replication,
)
from test_region_map import (
    BUCHAREST,
    PANAMA,
    SOFIA,
    WidgetApp,
    estate,
    region,
    screen_lines,
)
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widget import Widget

from noc.clock import FakeClock
from noc.engine import Engine
from noc.model import (
    Ack,
    Alert,
    AlertState,
    AutoMode,
    AutoStatus,
    ChannelStatus,
    DnsError,
    DnsErrorKind,
    ErrorKind,
    EstateSnapshot,
    FailoverFlag,
    Health,
    MaintenanceWindow,
    ProbeError,
    RegionStatus,
    RegionVotes,
    Role,
    Severity,
    SmtpStatus,
    SmtpTarget,
    SmtpTls,
    StoreStatus,
    VantageStatus,
)
from noc_widgets.alert_pane import AlertPane
from noc_widgets.banner import Banner
from noc_widgets.critical_banner import CriticalBanner
from noc_widgets.deliverability_screen import DeliverabilityScreen
from noc_widgets.deliverability_summary import DeliverabilitySummary
from noc_widgets.dns_screen import DnsScreen
from noc_widgets.dns_summary import DnsSummary
from noc_widgets.estate_counts import EstateCounts
from noc_widgets.health_table import HealthTable
from noc_widgets.lag_detail import LagDetailScreen
from noc_widgets.mail_flow import MailFlowView
from noc_widgets.region_board import RegionBoard
from noc_widgets.region_list import RegionList
from noc_widgets.region_map import RegionMap
from noc_widgets.replication_panel import ReplicationPanel
from noc_widgets.snapshot_screen import SnapshotScreen
from noc_widgets.status_bar import StatusBar
from noc_widgets.suppression_screen import SuppressionScreen
from noc_widgets.sync_summary import SyncSummary
from noc_widgets.view import SnapshotView
from noc_widgets.wall_header import WallHeader

BASE = (
    region("ro", "Bucharest", BUCHAREST, role=Role.PRIMARY, active=True),
    region("bg", "Sofia", SOFIA),
    region("pa", "Panama City", PANAMA, Health.DEGRADED),
)

# One new value per field of RegionStatus, for the region "bg".
CHANGED: dict[str, Any] = {
    "id": "bx",
    "name": "Plovdiv",
    "role": Role.PRIMARY,
    "location": (-33.87, 151.21),  # Sydney: far enough to move the marker
    "health": Health.DOWN,
    "checks": (),
    "store": StoreStatus("bg", False, None, "connection refused", 2.0),
    "is_active": True,
    "dns_records": ("smtp.example.com.",),
    "sending_listed": True,
    "mx_host": "mx.bx.example.com.",
    "maintenance": MaintenanceWindow(
        "w1",
        "bg",
        datetime(2026, 11, 23, 1, tzinfo=UTC),
        datetime(2026, 11, 23, 3, tzinfo=UTC),
        "kernel upgrade",
        "op@noc1",
        datetime(2026, 11, 23, 1, tzinfo=UTC),
    ),
    "smtp": (
        SmtpStatus(
            SmtpTarget(
                "bg/smtp0",
                "bg",
                "mx1.bg.example.com",
                25,
                SmtpTls.STARTTLS,
                "mx1.bg.example.com",
                "noc",
            ),
            Health.DOWN,
            3,
            None,
        ),
    ),
    # Attached to a control plane: one vantage of three sees bg down (a split).
    "votes": RegionVotes(
        2, 1, 3, (("a", Health.DOWN), ("b", Health.HEALTHY), ("c", Health.HEALTHY))
    ),
}
# What each widget does not draw, and why.
NOT_DRAWN = {
    # A list has no geography; checks and SMTP probes are the table's rows.
    # The MX host is the mail flow view's, beside the MTA-STS policy.
    RegionList: {"location", "checks", "smtp", "mx_host"},
    RegionMap: {"checks", "smtp", "mx_host"},
}


def test_every_region_field_has_a_changed_value() -> None:
    assert {f.name for f in dataclasses.fields(RegionStatus)} == set(CHANGED)


def variant(field: str) -> tuple[RegionStatus, ...]:
    return tuple(
        dataclasses.replace(r, **{field: CHANGED[field]}) if r.id == "bg" else r for r in BASE
    )


@pytest.mark.parametrize("widget_type", [RegionList, RegionMap])
@pytest.mark.parametrize("field", sorted(CHANGED))
async def test_region_widgets_repaint_on_each_field(
    widget_type: type[RegionList | RegionMap], field: str
) -> None:
    if field in NOT_DRAWN[widget_type]:
        pytest.skip(f"{widget_type.__name__} does not draw {field}")
    app = WidgetApp(widget_type(), estate(*BASE))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        before = screen_lines(app.widget)
        app.widget.snapshot = estate(*variant(field))
        await pilot.pause()
        after = screen_lines(app.widget)
    assert before != after, f"{widget_type.__name__} did not repaint when {field} changed"


# --- every widget that draws the snapshot ----------------------------------------
#
# The same idea for the rest of the dashboard, reaching every field of the snapshot
# the widget reads, however deep: a path such as `regions.0.checks.1.last.latency_ms`
# is one variant. Paths come from walking the snapshot's dataclasses, so a field added
# to any of them is tried at once; each widget names what it does not draw, and why.

Path = tuple[str | int, ...]

WHEN = datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
# Values for a field that is None in the base snapshot, by type, where a value cannot
# be built from the type's fields alone (their defaults would draw as nothing).
EXAMPLES: dict[type, Any] = {
    Ack: Ack("bob", "on it", WHEN),
    ProbeError: ProbeError(ErrorKind.TIMEOUT, "no answer within 2.0 s"),
    AutoStatus: AutoStatus(AutoMode.HELD, "the target is not healthy"),
    FailoverFlag: FailoverFlag("pa", "ro", "op@noc9", "drill", "2026-11-23T01:00:00Z"),
    DnsError: DnsError(DnsErrorKind.TIMEOUT, "no answer"),
}
# Values by field name where the type's generic change would be meaningless.
BY_NAME: dict[str, Any] = {
    "location": (-33.87, 151.21),  # Sydney: on the map, far from every other region
    "rejections_per_minute": {"4xx": 97.0, "5xx": 97.5},  # both classes new
}


def new_value(hint: Any) -> Any:
    """A value of type `hint`, one that draws as something (not empty, not zero)."""
    args = [a for a in get_args(hint) if a is not type(None)]
    origin = get_origin(hint)
    if origin in (types.UnionType, Union):
        return new_value(args[0])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (new_value(args[0]),)
        return tuple(new_value(a) for a in args)
    if hint in EXAMPLES:
        return EXAMPLES[hint]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = get_type_hints(hint)
        return hint(**{
            f.name: new_value(hints[f.name])
            for f in dataclasses.fields(hint)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        })  # fmt: skip
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[-1]
    return {str: "zz-new", bool: True, int: 97, float: 97.5, datetime: WHEN}[hint]


def changed(value: Any, hint: Any, name: str) -> Any:
    """`value` changed enough to draw differently wherever it is drawn at all."""
    if name in BY_NAME:
        return BY_NAME[name]
    if value is None:
        return new_value(hint)
    if isinstance(value, bool):
        return not value
    if isinstance(value, enum.Enum):
        members = list(type(value))
        return members[(members.index(value) + 1) % len(members)]
    if isinstance(value, int):
        return value * 3 + 7  # enough to move a rounded rate or a count in minutes
    if isinstance(value, float):
        return value * 3 + 100
    if isinstance(value, str):
        return "Z" + value if value else "zz-new"
    if isinstance(value, datetime):
        return value - timedelta(hours=3, minutes=7, seconds=11)
    if isinstance(value, tuple):
        # An empty one gets an element. Otherwise one element fewer: the first of a
        # tuple of dataclasses (regions, alerts: the one drawn first), the last of
        # values (a series: the newest reading).
        if not value:
            return new_value(hint)
        return value[1:] if dataclasses.is_dataclass(value[0]) else value[:-1]
    raise TypeError(f"no way to change {name}={value!r}: add it to BY_NAME or EXAMPLES")


def field_paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any, str]]:
    """Every field under `value`: (path, its type hint, its name). Into a dataclass's
    fields, and into the first and the last element of a tuple of dataclasses (the
    tuple itself is a field too: one element fewer)."""
    hints = get_type_hints(type(value))
    for f in dataclasses.fields(value):
        inner = getattr(value, f.name)
        here = (*path, f.name)
        if dataclasses.is_dataclass(inner):  # changed field by field, not as a whole
            yield from field_paths(inner, here)
            continue
        yield here, hints[f.name], f.name
        if isinstance(inner, tuple) and inner and dataclasses.is_dataclass(inner[0]):
            for index in dict.fromkeys((0, len(inner) - 1)):
                yield from field_paths(inner[index], (*here, index))


def replaced(value: Any, path: Path, new: Any) -> Any:
    """`value` with the thing at `path` replaced by `new`."""
    if not path:
        return new
    head, *rest = path
    if isinstance(head, int):
        items = list(value)
        items[head] = replaced(items[head], tuple(rest), new)
        return tuple(items)
    return dataclasses.replace(value, **{head: replaced(getattr(value, head), tuple(rest), new)})


def at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step] if isinstance(step, int) else getattr(value, step)
    return value


def pattern(path: Path) -> str:
    """`regions.0.checks.1.last` as `regions.*.checks.*.last`: what NOT_DRAWN names."""
    return ".".join("*" if isinstance(step, int) else step for step in path)


def rich_snapshot() -> EstateSnapshot:
    """Something in every part: bg down (its checks failing), lag past its threshold and
    a broken link, suppression behind, a complaint spike, DNS hijacked on one resolver,
    failing auth and a listing, a failing notification channel, automation counting."""
    clock = FakeClock()
    engine = Engine(with_dns(with_replication(estate_config())), clock)
    feed_round(engine, clock)
    feed_flags(engine, clock, "ro")
    feed_data(engine, clock)
    for _ in range(3):
        feed_round(engine, clock, {"bg": HTTP_503, "pa/1": TIMEOUT})
    feed_flags(engine, clock, "ro")
    feed_dns(engine, clock)
    engine.evaluate_alerts()
    channel = ChannelStatus(
        "pager", "webhook", 3, WHEN, WHEN, "connection refused", 502, 4, 0, 12.0
    )
    return dataclasses.replace(
        engine.snapshot(),
        notifications=(channel,),
        automation=AutoStatus(AutoMode.COUNTING, "ro down for 40 s of 60"),
    )


RICH = rich_snapshot()
# Attached to a control plane: one vantage stale (drawn), one voting (not drawn).
VANTAGES = dataclasses.replace(
    RICH,
    vantages=(
        VantageStatus("outside", WHEN, 42.0, cut_off=False, stale=True),
        VantageStatus("ro", WHEN, 1.0, cut_off=False, stale=False),
    ),
)
CUT_OFF = dataclasses.replace(RICH, cut_off=True, cut_off_since=WHEN)
STALE = dataclasses.replace(RICH, stale=True)
HEALTHY_BASE = dataclasses.replace(RICH, estate_outage=False)


def mail_snapshot() -> EstateSnapshot:
    """Queues and rejections in every region (bg's backlog and 5xx spike firing, pa's
    exporter unread) and the MTA-STS policy covering ro and bg, not pa."""
    clock = FakeClock()
    engine = Engine(with_mail(estate_config()), clock)
    feed_round(engine, clock)
    feed_flags(engine, clock, "ro")
    feed_mail(engine, clock)
    snapshot = engine.snapshot()
    # Only the alerts the view colours by, so that the first and the last are its own
    # (pa's unread exporter is the alert pane's to say).
    mail_rules = ("queue_backlog", "rejections")
    return dataclasses.replace(
        snapshot, alerts=tuple(a for a in snapshot.alerts if a.rule in mail_rules)
    )


MAIL = mail_snapshot()


class Host(App[None]):
    """A bare app showing one widget or one detail screen, fed the snapshot by hand."""

    def __init__(self, make: Callable[[], Widget | SnapshotScreen]) -> None:
        super().__init__()
        self.shown = make()

    def compose(self) -> ComposeResult:
        if isinstance(self.shown, Widget):
            yield self.shown

    def on_mount(self) -> None:
        if isinstance(self.shown, SnapshotScreen):
            self.push_screen(self.shown)
        elif isinstance(self.shown, SnapshotView | WallHeader):
            self.shown.display = True  # views are hidden until the app shows one

    def feed(self, snapshot: EstateSnapshot) -> None:
        # Every widget here keeps its snapshot in a reactive called `snapshot`.
        self.shown.snapshot = snapshot  # type: ignore[attr-defined]

    def screen_text(self) -> str:
        """The whole screen as the terminal would get it, styles included, from the
        widgets' own render caches: a widget that did not repaint shows its old lines."""
        console = Console(
            width=self.size.width, height=self.size.height, file=io.StringIO(),
            force_terminal=True, color_system="truecolor", record=True,
        )  # fmt: skip
        console.print(self.screen._compositor.render_update(full=True))
        return console.export_text(styles=True)


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[], Widget | SnapshotScreen]
    # The snapshots each variant is made from: a field counts as repainted if changing
    # it changes the screen from at least one of them (some lines show only when cut off).
    bases: tuple[EstateSnapshot, ...]
    # Path patterns (and everything under them) the widget does not draw, with why;
    # one ending in `$` names the tuple itself (one element fewer), not its elements.
    not_drawn: frozenset[str]
    # Changes after which the screen may rightly differ once the base is back (the
    # operator's cursor follows the alert it is on, wherever that alert moves).
    stateful: frozenset[str] = frozenset()


# What nothing on the screen draws: when a sample was taken by the monotonic clock, the
# URL a replication link reads (a secret may be in it), and the wall time of a sample
# (each pane shows ages, or the snapshot's own clock).
NEVER_DRAWN = frozenset({"*.at", "*.wall", "*.url"})
# The parts of the snapshot a widget that shows only the estate-wide summary ignores.
REGIONS_DETAIL = {"regions.*.checks", "regions.*.store", "regions.*.location", "regions.*.name"}

CASES: dict[str, Case] = {}

SNAPSHOT_FIELDS = frozenset(f.name for f in dataclasses.fields(EstateSnapshot))


def case(
    make: Callable[[], Widget | SnapshotScreen],
    reads: set[str],
    not_drawn: set[str],
    bases: tuple[EstateSnapshot, ...] = (RICH,),
    stateful: frozenset[str] = frozenset(),
) -> Case:
    """A widget that reads the top-level fields `reads` (the others are not its to draw)
    and, under them, draws everything but `not_drawn`."""
    assert reads <= SNAPSHOT_FIELDS, reads - SNAPSHOT_FIELDS
    ignored = (SNAPSHOT_FIELDS - reads) | not_drawn | NEVER_DRAWN
    return Case(make, bases, frozenset(ignored), stateful)


def skipped(path: str, not_drawn: frozenset[str]) -> bool:
    return any(
        fnmatch(path, entry[:-1])
        if entry.endswith("$")
        else fnmatch(path, entry) or fnmatch(path, entry + ".*")
        for entry in not_drawn
    )


# A busy machine may paint a change a few pauses later: a screen that does not yet show
# what is expected is read again this many times before it counts.
SETTLE_READS = 10


async def screen_once(pilot: Pilot[None], app: Host, wanted: Callable[[str], bool]) -> str:
    """The screen's text once `wanted` holds of it, or as it is after SETTLE_READS reads."""
    text = app.screen_text()
    for _ in range(SETTLE_READS):
        if wanted(text):
            break
        await pilot.pause(0.05)
        text = app.screen_text()
    return text


async def repaints(case: Case) -> tuple[set[str], set[str], set[str], set[str]]:
    """(fields tried, fields whose change repainted the screen, fields whose change
    back to the base did not repaint it back, NOT_DRAWN entries that match nothing)."""
    unused = {e for e in case.not_drawn if e not in SNAPSHOT_FIELDS and e not in NEVER_DRAWN}
    tried: set[str] = set()
    repainted: set[str] = set()
    not_restored: set[str] = set()
    for base in case.bases:
        app = Host(case.make)
        async with app.run_test(size=(160, 60)) as pilot:
            app.feed(base)
            await pilot.pause()
            before = app.screen_text()
            for path, hint, name in field_paths(base):
                where = pattern(path)
                unused -= {e for e in unused if skipped(where, frozenset({e}))}
                if skipped(where, case.not_drawn):
                    continue
                tried.add(where)
                app.feed(replaced(base, path, changed(at(base, path), hint, name)))
                await pilot.pause()
                if await screen_once(pilot, app, before.__ne__) != before:
                    repainted.add(where)
                app.feed(base)
                await pilot.pause()
                restored = await screen_once(pilot, app, before.__eq__)
                if restored != before:
                    if where not in case.stateful:
                        not_restored.add(where)
                    before = restored  # so that one difference is reported once
    return tried, repainted, not_restored, unused


# What every widget below draws of a region's check, as the health table does.
CHECK_INTERNALS = {
    # An HTTPS certificate's expiry: its alert (cert_expiry) and `noc check` say it.
    "regions.*.checks.*.last.cert_days_left",
    "regions.*.checks.*.last.cert_not_after",
    "regions.*.checks.*.consecutive_successes",  # the fails column counts failures
    "regions.*.checks.*.last.check_id",  # the row's key is the target's id
    "regions.*.checks.*.last.region_id",
    "regions.*.checks.*.last.ok",  # drawn as its error and status
    "regions.*.checks.*.target.check_id",  # a key, not a word on screen
    # How to probe: configuration the table does not repeat.
    "regions.*.checks.*.target.body_contains",
    "regions.*.checks.*.target.expect_status",
    "regions.*.checks.*.target.interval_seconds",
    "regions.*.checks.*.target.retry_interval_seconds",  # drawn through its "down in"
    "regions.*.checks.*.target.json_equals",
    "regions.*.checks.*.target.json_field",
    "regions.*.checks.*.target.recovery_threshold",
    "regions.*.checks.*.target.timeout_seconds",
    "regions.*.checks.*.target.verify_tls",
}
# A region's own fields, for the widgets that draw its checks or counts only.
REGION_FIELDS = {
    "regions.*.id", "regions.*.name", "regions.*.role", "regions.*.location",
    "regions.*.health", "regions.*.is_active", "regions.*.dns_records",
    "regions.*.sending_listed", "regions.*.store",
    # How each vantage voted: the region list and the map draw it beside the health.
    "regions.*.votes",
    "regions.*.mx_host",  # the mail flow view's, beside the MTA-STS policy
    # A maintenance window: the region map, list and board say it, and the alert rows.
    "regions.*.maintenance",
}  # fmt: skip
# The store's flag is the authority's input; widgets draw the authority.
STORE_DETAIL = {"regions.*.store.flag", "regions.*.store.age_seconds", "regions.*.store.error",
                "regions.*.store.region_id"}  # fmt: skip
# Only the active region's id is read from the authority, by these widgets.
AUTHORITY_DETAIL = {"authority.agreeing", "authority.source", "authority.unreadable"}
# The sample a link's row is drawn from carries its spec again; the link's own is drawn.
LINK_INTERNALS = {
    "replication.*.last.spec",
    "replication.*.history.*.link",  # the chart and sparkline draw the lag
    "replication.*.last.lag_basis",  # how the lag was measured: the CLI's JSON says
    "replication.*.last.lag_is_floor",  # drawn as "link down ≥Ns"
    "replication.*.last.last_io_seconds",  # the inputs the lag was computed from
    "replication.*.last.link_down_seconds",
    "replication.*.spec.metric",  # where to read it: configuration
    "replication.*.spec.link_metric",
}
DEGRADED_CHECK = replaced(RICH, ("regions", 2, "checks", 1, "health"), Health.DEGRADED)
SPLIT = replaced(RICH, ("authority", "disagreeing"), (("pa", "bg"),))

CASES.update({
    "status_bar": case(
        StatusBar,
        {"estate", "topology", "generated_at", "authority", "read_only", "automation",
         "alerts", "last_poll_age", "cut_off", "stale"},
        {
            *AUTHORITY_DETAIL,
            # Alerts are counted by severity and state (muted ones not): their words
            # are the alert pane's.
            "alerts.*.ack", "alerts.*.escalated_from", "alerts.*.escalated_to",
            "alerts.*.flapping", "alerts.*.id", "alerts.*.key", "alerts.*.region",
            "alerts.*.rule", "alerts.*.since", "alerts.*.started_at", "alerts.*.summary",
            "alerts.*.value", "alerts.*.hint",
            "automation.detail",  # the banner says why; the bar shows the mode
        },
    ),
    "banner": case(
        Banner,
        {"cut_off", "cut_off_since", "estate_outage", "stale", "last_poll_age", "authority",
         "notifications_problem", "notifications", "automation", "vantages"},
        {
            "authority.agreeing", "authority.source", "authority.unreadable",
            "vantages.*.last_seen",  # a vantage's silence is said as an age
            # A failing channel says its last answer and what waits, not its history.
            "notifications.*.consecutive_failures", "notifications.*.dropped",
            "notifications.*.kind", "notifications.*.last_failure",
            "notifications.*.last_success",
        },
        # Cut off, stale, split and silent vantages each bring their own line.
        (RICH, CUT_OFF, STALE, SPLIT, VANTAGES),
    ),
    "critical_banner": case(
        lambda: CriticalBanner(pulse=False),
        {"cut_off", "regions", "authority", "alerts", "estate_outage"},
        {
            # `noc check`'s words: each region's id, health and whether it is active,
            # a split, and the data alerts firing; details are the other panes'.
            *AUTHORITY_DETAIL, "authority.active_region",  # said only when unknown
            "regions.*.checks", "regions.*.location", "regions.*.name", "regions.*.role",
            "regions.*.store", "regions.*.dns_records", "regions.*.sending_listed",
            "regions.*.smtp",  # smtp_down says it, among the alerts firing
            "regions.*.votes",  # the list and the map show the vantages' verdicts
            "regions.*.mx_host",  # the mail flow view's
            "alerts.*.ack", "alerts.*.escalated_from", "alerts.*.escalated_to",
            "alerts.*.flapping", "alerts.*.id", "alerts.*.key", "alerts.*.region",
            "alerts.*.since", "alerts.*.started_at", "alerts.*.value", "alerts.*.hint",
            # A maintenance window is the map's and the alert rows' to say.
            "regions.*.maintenance",
        },
    ),
    "alert_pane": case(
        lambda: AlertPane(),
        {"alerts", "generated_at"},
        {
            # Which rule and region are in the summary's words; ids are row keys.
            "alerts.*.id", "alerts.*.key", "alerts.*.region", "alerts.*.rule",
            "alerts.*.started_at", "alerts.*.value",
            "alerts.*.escalated_from", "alerts.*.escalated_to",
            # The rule's own next step: the detail's (and a group row's) to say.
            "alerts.*.hint",
        },
        # The cursor follows its alert: after the first row goes and comes back, it
        # is on the row of the alert it was on.
        stateful=frozenset({"alerts"}),
    ),
    "health_table": case(
        lambda: HealthTable(),
        {"regions", "cut_off"},
        {*CHECK_INTERNALS, *REGION_FIELDS},
        # Probe counts and flapping are drawn for a degraded check.
        (RICH, DEGRADED_CHECK),
        # The cursor is the operator's failover target: when its row goes and comes
        # back, the cursor stays where it went.
        stateful=frozenset({"regions"}),
    ),
    "region_board": case(
        RegionBoard,
        {"regions"},
        {
            *CHECK_INTERNALS, *STORE_DETAIL,
            "regions.*.location",  # a board has no geography
            # Checks are counted as failing or not, with the first one's error.
            "regions.*.checks.*.age_seconds", "regions.*.checks.*.flapping",
            "regions.*.checks.*.health", "regions.*.checks.*.last.latency_ms",
            "regions.*.checks.*.last.status", "regions.*.checks.*.recent_failures",
            "regions.*.checks.*.recent_probes", "regions.*.checks.*.seconds_until_down",
            "regions.*.checks.*.target.failure_threshold", "regions.*.checks.*.target.name",
            "regions.*.checks.*.target.region_id",
            "regions.*.checks.*.last.error$",  # a passing check's error is not shown
            # Not on the board (the list and the map mark them): issue 12 left it so.
            "regions.*.dns_records", "regions.*.sending_listed",
            # SMTP probes are the health table's rows; smtp_down is the alerts' to say.
            "regions.*.smtp",
            "regions.*.votes",  # the list and the map show the vantages' verdicts
            "regions.*.mx_host",  # the mail flow view's, beside the MTA-STS policy
        },
    ),
    "replication_panel": case(
        ReplicationPanel,
        {"replication"},
        {
            *LINK_INTERNALS,
            "replication.*.id",  # the row's key; its name is drawn from the spec
            "replication.*.age_seconds", "replication.*.last.offset_lag_bytes",
            "replication.*.spec.kind", "replication.*.spec.sustain_seconds",  # the detail's
            "replication.*.last.error",  # said instead of a lag only when there is none
        },
    ),
    "lag_detail": case(lambda: LagDetailScreen("suppression:ro>bg"), {"replication"},
                       LINK_INTERNALS),
    "estate_counts": case(
        EstateCounts,
        {"regions"},
        {
            # Regions counted by health; checks counted when failing.
            *(REGION_FIELDS - {"regions.*.health"}),
            "regions.*.checks.*.target", "regions.*.checks.*.last",
            "regions.*.checks.*.age_seconds", "regions.*.checks.*.consecutive_successes",
            "regions.*.checks.*.flapping", "regions.*.checks.*.health",
            "regions.*.checks.*.recent_failures", "regions.*.checks.*.recent_probes",
            "regions.*.checks.*.seconds_until_down",
            "regions.*.checks$",  # the first check is passing: the count stays
            "regions.*.smtp",  # regions are counted by their HTTP health
        },
    ),
    "deliverability_summary": case(
        lambda: DeliverabilitySummary(0.001, 0.003),
        {"deliverability", "authority"},
        {
            *AUTHORITY_DETAIL, "authority.disagreeing",
            # The estate's rates and complaint trend, and the standbys' shares of mail
            # sent: a region's own rates are the detail screen's.
            "deliverability.regions$",  # the first is the active region: no share
            "deliverability.regions.*.complaint_series",
            "deliverability.regions.*.counts.complaint",
            "deliverability.regions.*.counts.delivered",
            "deliverability.regions.*.counts.hard_bounce",
            "deliverability.regions.*.counts.soft_bounce",
            "deliverability.regions.*.error",  # an unread region is named as unread
            "deliverability.window_start",  # the window's length is drawn
        },
    ),
    "dns_summary": case(
        DnsSummary,
        {"consensus", "email_auth", "dnsbl", "authority"},
        {
            *AUTHORITY_DETAIL, "authority.disagreeing",
            "consensus.*.answered", "consensus.*.rtype",  # the share is of those asked
            # Which regions fail authentication or are listed: the reasons are the DNS
            # screen's. The first region of each passes and is clean.
            "email_auth$", "email_auth.*.region", "email_auth.*.spf.reason",
            "email_auth.*.spf.warning", "email_auth.*.dkim.reason",
            "email_auth.*.dkim.warning", "email_auth.*.dmarc.reason",
            "email_auth.*.dmarc.policy", "email_auth.*.ptr.reason", "email_auth.*.ptr.ips",
            "dnsbl$", "dnsbl.*.code", "dnsbl.*.ip", "dnsbl.*.meaning", "dnsbl.*.region",
            "dnsbl.*.zone",
        },
    ),
    "sync_summary": case(
        lambda: SyncSummary(60.0),
        {"suppression"},
        {
            # The worst pair against the SLO, and how many reads failed: counts and
            # scan sizes are the suppression screen's.
            "suppression.counts$", "suppression.counts.*.count", "suppression.counts.*.list",
            "suppression.counts.*.region", "suppression.examined",
            "suppression.lookback_seconds", "suppression.pairs.*.examined",
            "suppression.pairs.*.examples", "suppression.pairs.*.truncated",
            # Said only while a pair is rebuilding; the base pairs are not.
            "suppression.pairs.*.rebuild_progress",
        },
    ),
    "mail_flow": case(
        MailFlowView,
        {"regions", "mta", "mta_sts", "alerts"},
        {
            # A row per region: its id, whether it is active, and whether its MX is in
            # the policy; its health and checks are the other views'.
            "regions.*.name", "regions.*.role", "regions.*.location", "regions.*.health",
            "regions.*.checks", "regions.*.store", "regions.*.dns_records",
            "regions.*.sending_listed", "regions.*.smtp",
            "regions.*.votes",  # the vantages' verdicts: the region list's and the map's
            "regions.*.maintenance",  # the map's, the list's and the board's
            # An alert's next step and maintenance mark: the alert pane's words.
            "alerts.*.hint", "alerts.*.maintenance",
            # DANE is the failover plan's to judge, per target.
            "mta_sts.tlsa",
            # Alerts colour the figures of their rule and region; their words are the
            # alert pane's.
            "alerts.*.id", "alerts.*.key", "alerts.*.summary", "alerts.*.since",
            "alerts.*.started_at", "alerts.*.value", "alerts.*.ack", "alerts.*.flapping",
            "alerts.*.escalated_from", "alerts.*.escalated_to", "alerts.*.silenced_by",
            "alerts.*.inhibited_by",
        },
        (MAIL,),
    ),
    "wall_header": case(WallHeader, {"generated_at", "last_poll_age"}, set()),
    "dns_screen": case(
        DnsScreen,
        {"dns", "email_auth", "dnsbl"},
        {
            "dns.*.sample.cname",  # the answers at the end of the chain are drawn
            "dnsbl.*.code",  # drawn decoded, as its meaning
            "email_auth.*.dmarc.policy",  # in the reason's words ("p=reject")
            "email_auth.*.ptr.ips",  # summed up in the reason
        },
    ),
    "suppression_screen": case(
        lambda: SuppressionScreen(60.0),
        {"suppression"},
        {
            "suppression.counts.*.error",  # said when the count is unknown
            "suppression.examined", "suppression.truncated",  # drawn per pair
            # Said only while a pair is rebuilding; the base pairs are not.
            "suppression.pairs.*.rebuild_progress",
        },
        # Its counts table sizes columns to the longest value ever shown.
        stateful=frozenset({"suppression.counts.*.list", "suppression.counts.*.region"}),
    ),
    "deliverability_screen": case(
        lambda: DeliverabilityScreen(0.001, 0.003),
        {"deliverability", "authority"},
        {
            *AUTHORITY_DETAIL, "authority.disagreeing",
            "deliverability.regions.*.error",  # an unread region reads "? unreadable"
            "deliverability.window_start",  # the window's length is drawn
        },
    ),
})  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
async def test_widget_repaints_on_each_field(name: str) -> None:
    tried, repainted, not_restored, unused = await repaints(CASES[name])
    assert not unused, f"NOT_DRAWN of {name} names fields that do not exist"
    assert not tried - repainted, f"{name} did not repaint when these changed: {tried - repainted}"
    assert not not_restored, f"{name} did not repaint back when these changed back"


# --- the alert pane keeps the root cause in view ---------------------------------


def firing(number: int, severity: Severity, summary: str) -> Alert:
    since = WHEN - timedelta(minutes=number)
    key = f"rule{number}:ro"
    return Alert(f"{key}@{since:%Y-%m-%dT%H:%M:%S}Z", f"rule{number}", severity,
                 AlertState.FIRING, "ro", summary, since, key=key)  # fmt: skip


async def test_alert_pane_keeps_the_most_severe_firing_alert_in_view_at_80x24() -> None:
    """The operator has the cursor on a lower row; then graver alerts fire, sorted
    above it, more than the pane has rows for. The root cause is on screen, and the
    cursor is still on the alert the operator chose."""
    warnings = tuple(firing(n, Severity.WARNING, f"warning number {n}") for n in range(6))
    app = Host(AlertPane)
    async with app.run_test(size=(80, 24)) as pilot:
        app.feed(dataclasses.replace(RICH, alerts=warnings))
        await pilot.pause()
        pane = app.query_one(AlertPane)
        pane.focus()
        for _ in range(4):
            await pilot.press("down")
        await pilot.pause()
        chosen = pane.selected_alert
        assert chosen == warnings[4].id
        graver = tuple(firing(10 + n, Severity.CRITICAL, f"critical number {n}") for n in range(8))
        app.feed(dataclasses.replace(RICH, alerts=(*graver, *warnings)))
        await pilot.pause()
        screen = app.screen_text()
        assert "critical number 0" in screen, "the most severe firing alert scrolled away"
        assert pane.selected_alert == chosen
        assert pane.cursor_row == 12  # its row now, below the view
        # Another change of rows (the chosen alert resolves): the top is still shown.
        app.feed(dataclasses.replace(RICH, alerts=(*graver, *warnings[:4], warnings[5])))
        await pilot.pause()
        assert "critical number 0" in app.screen_text()
