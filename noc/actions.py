"""Every action of the dashboard, declared once.

The app derives from `ACTIONS` its key bindings (and their ids, which `[keys]`
remaps), the footer, the command palette, the help screen's read-only note and
`check_action`. An action added here is keyed, shown, offered and guarded in one
step; before this table each action was described in four places and the palette
had quietly lost three keyed actions.

Free of Textual: the table is data, read by the app and by tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Who(Enum):
    """Who may run an action."""

    ANYONE = "anyone"  # it only shows: read-only keeps it
    # It changes the estate or the record (a failover, an ack): read-only removes it,
    # and it waits while another operator action runs.
    OPERATOR = "operator"


class Where(Enum):
    """From where an action may start."""

    # Only from the dashboard's own screen with nothing over it: app bindings stay
    # live under a dialog or detail view, and a stray key typed there must never
    # start (or, its worker being exclusive, replace) another action.
    MAIN = "main"
    ANYWHERE = "anywhere"


class Need(Enum):
    """What the estate or the session must have for an action to mean anything."""

    ACTIVE_ACTIVE = "active-active topology"  # drain and restore take a region out of DNS
    AUTOMATION = "[failover] auto"  # the automation's pause switch
    DEMO_FAULTS = "the demo's fault injector"
    INTERRUPTED = "an interrupted action in the record"


@dataclass(frozen=True)
class ActionSpec:
    """One action: its key, its words in the footer, help and palette, and its rules."""

    id: str  # the binding id `[keys]` remaps (public: never renamed)
    action: str  # the Textual action, "failover" or "select_region(-1)"
    keys: str | None  # default keys, "f" or "r,f5"; None: offered in the palette only
    label: str  # footer and help screen: "Failover"
    title: str  # command palette: "Fail over"
    help: str  # command palette, under the title
    who: Who = Who.ANYONE
    where: Where = Where.MAIN
    # In the palette, from where it is offered; None: the same as `where`. Views and
    # the automation's pause switch are offered over a dialog or detail view too (the
    # pause switch because while an action runs is when it matters most), though
    # their keys are not live there.
    palette_where: Where | None = None
    footer: bool = False  # shown in the footer (the rest are in `?` and the palette)
    needs: frozenset[Need] = frozenset()
    # An operator action that may start while another runs (the pause switch).
    while_busy: bool = False

    @property
    def name(self) -> str:
        """The action's name without its arguments: what `check_action` is asked about."""
        return self.action.partition("(")[0]

    @property
    def offered_from(self) -> Where:
        return self.palette_where or self.where


_OPERATOR = Who.OPERATOR
_AA = frozenset({Need.ACTIVE_ACTIVE})
_ANY = Where.ANYWHERE

# In footer order: the footer shows the `footer=True` ones left to right.
ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("failover", "failover", "f", "Failover", "Fail over",
               "Fail over to the selected region (STOP pattern)", _OPERATOR, footer=True),
    ActionSpec("failback", "failback", "b", "Failback", "Fail back",
               "Fail back to the primary region", _OPERATOR, footer=True),
    ActionSpec("switchover", "switchover", "w", "Switchover", "Switchover",
               "Planned: wait for replication to drain, then move to the selected region",
               _OPERATOR),
    ActionSpec("drain", "drain", "D", "Drain region", "Drain region",
               "Take the selected region out of the DNS records", _OPERATOR, needs=_AA),
    ActionSpec("restore", "restore", "R", "Restore region", "Restore region",
               "Put the selected region back in the DNS records", _OPERATOR, needs=_AA),
    ActionSpec("ack_cooldown", "ack_cooldown", "c", "Ack cooldown", "Ack failover cooldown",
               "Clear the anti-flap cooldown of the last failover (recorded)", _OPERATOR),
    ActionSpec("toggle_auto", "toggle_auto", "P", "Auto pause", "Pause automated failover",
               "The automation's pause switch (recorded)", _OPERATOR,
               palette_where=_ANY, needs=frozenset({Need.AUTOMATION}),
               while_busy=True),
    ActionSpec("maintenance", "maintenance", "M", "Maintenance", "Maintenance window",
               "Open a window on the selected region (its alerts page no one), or end it",
               _OPERATOR),
    ActionSpec("lag_detail", "lag_detail", "l", "Lag", "Replication lag",
               "Chart of a link's last hour", palette_where=_ANY, footer=True),
    ActionSpec("sync_detail", "sync_detail", "u", "Sync", "Suppression sync",
               "What each region still lacks", palette_where=_ANY),
    ActionSpec("deliverability_detail", "deliverability_detail", "d", "Mail", "Deliverability",
               "Bounces and complaints, estate and regions", palette_where=_ANY),
    ActionSpec("sync_now", "sync_now", "y", "Sync now", "Sync suppression now",
               "Copy the suppressions one region lacks from another (recorded)", _OPERATOR),
    ActionSpec("dns_detail", "dns_detail", "n", "DNS", "DNS",
               "Every record from every resolver, mail authentication, blocklists",
               palette_where=_ANY),
    ActionSpec("ack", "ack", "a", "Ack", "Ack alert",
               "Acknowledge the selected firing alert", _OPERATOR, footer=True),
    ActionSpec("silence", "silence", "s", "Silence", "Silence alerts",
               "Mute alerts by rule and region", _OPERATOR, footer=True),
    ActionSpec("filter_alerts", "filter_alerts", "slash", "Filter alerts", "Filter alerts",
               "Show only the alerts matching what you type (/); Esc clears"),
    ActionSpec("alert_history", "alert_history", "h", "Alert history", "Alert history",
               "Past alert episodes, newest first; Enter opens one"),
    ActionSpec("alert_detail", "alert_detail", None, "Alert detail", "Alert detail",
               "The selected alert: labels, value, acks, silences, its record, the next step"),
    # The automated failover's result is a banner, not a dialog: this opens it.
    ActionSpec("last_result", "last_result", "t", "Last result", "Last action's result",
               "The last failover's result: flag, steps, DNS, timeline (the automated one's too)"),
    ActionSpec("refresh", "refresh", "r", "Refresh", "Refresh now",
               "Poll every source immediately", palette_where=_ANY),
    ActionSpec("prev_region", "select_region(-1)", "left_square_bracket", "Prev region",
               "Previous region", "Select the previous region", palette_where=_ANY),
    ActionSpec("next_region", "select_region(1)", "right_square_bracket", "Next region",
               "Next region", "Select the next region", palette_where=_ANY),
    ActionSpec("next_view", "next_view", "v", "Next view", "Next view",
               "Show the next view: the overview, the region board, then mail flow "
               "(queues, rejections, MTA-STS)", footer=True),
    ActionSpec("faults", "faults", "x", "Faults", "Demo faults",
               "Inject a fault into the demo estate", palette_where=_ANY, footer=True,
               needs=frozenset({Need.DEMO_FAULTS})),
    ActionSpec("help", "help", "question_mark", "Help", "Help", "Show every key",
               palette_where=_ANY, footer=True),
    ActionSpec("quit", "quit", "q", "Quit", "Quit",
               "Quit noc (once a change being applied has been audited)",
               where=Where.ANYWHERE, footer=True),
    # Offered in the palette only: rare, and each asks for a typed note.
    ActionSpec("recover_complete", "recover('complete')", None, "Recover: complete",
               "Recover interrupted action: complete",
               "Finish the interrupted action toward its target (recorded)", _OPERATOR,
               needs=frozenset({Need.INTERRUPTED})),
    ActionSpec("recover_roll_back", "recover('roll_back')", None, "Recover: roll back",
               "Recover interrupted action: roll back",
               "Put back what the interrupted action changed (recorded)", _OPERATOR,
               needs=frozenset({Need.INTERRUPTED})),
    ActionSpec("reassert_flag", "reassert_flag", None, "Re-assert flag",
               "Re-assert the failover flag",
               "Write the majority's flag onto stores that lost it (recorded)", _OPERATOR),
)  # fmt: skip

ACTIONS_BY_ID: dict[str, ActionSpec] = {spec.id: spec for spec in ACTIONS}
# By action name, for check_action; actions sharing a name (select_region) share rules.
ACTIONS_BY_NAME: dict[str, ActionSpec] = {spec.name: spec for spec in ACTIONS}
KEYED_ACTIONS: tuple[ActionSpec, ...] = tuple(spec for spec in ACTIONS if spec.keys)
