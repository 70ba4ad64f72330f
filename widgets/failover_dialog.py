"""The confirmation of an action that moves traffic: rules first, focus on Cancel, typed id.

The operator must type the target region's id and a reason before the confirm
button works. A plan refused only by rules a break-glass override may bypass
offers "Break glass…", which the app follows with a second confirmation.

The dialog is live: the app hands it the plan re-evaluated on each new snapshot
(`plan` is reactive), so a cooldown that runs out while it is open stops refusing,
and a rule that starts failing refuses. What the operator confirms carries the
plan on screen at that moment.

Rules and blast radius are read without scrolling: at full size every rule with its
whole detail and the full blast radius; when that does not fit (80x24) the dialog
condenses to one line per rule, failing rules first, and a blast radius summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static

from noc.model import ActionKind, ActionPlan, BlastRadius, Health, Interface, Preflight
from noc_widgets.blast_radius import (
    LABEL_WIDTH,
    BlastRadiusView,
    RowsView,
    blast_rows,
    hanging,
    is_empty,
    only_flag_line,
)
from noc_widgets.fitted_modal import FittedModal, fit_scroll_body
from noc_widgets.health_style import health_content
from noc_widgets.typeahead import Field


@dataclass(frozen=True)
class Confirmation:
    reason: str
    force: bool
    # The plan on screen when the operator confirmed: the one the act is decided on.
    plan: ActionPlan | None = None


MARK_WIDTH = 7  # "✗ FAIL" and a space


def preflight_mark(check: Preflight) -> Content:
    if check.ok:
        return Content.styled("✓ ok", "$success")
    if not check.blocking:
        return Content.styled("▲ warn", "$warning")
    # Amber when a break-glass override may bypass it, red when nothing can.
    return Content.styled("✗ FAIL", "bold $warning" if check.forceable else "bold $error")


def preflight_line(check: Preflight) -> Content:
    return Content.assemble(
        Content.styled(check.name, "bold"), ": ", check.said_for(Interface.DASHBOARD)
    )


def ordered_checks(plan: ActionPlan) -> list[Preflight]:
    """What refuses the action first, then warnings, then what passed: at 80x24 the
    body scrolls, and the rules that matter must not be the ones below the fold."""
    return sorted(plan.checks, key=lambda c: 2 if c.ok else (1 if not c.blocking else 0))


def stores_line(plan: ActionPlan) -> Content | None:
    if "flag" not in plan.actuators:
        return None
    stores = ", ".join(
        f"{s.region_id} ({'reachable' if s.reachable else 'unreachable'})" for s in plan.stores
    )
    return Content.assemble(Content.styled("Flag written to: ", "bold"), stores or "none")


def checks_body(checks: Sequence[Preflight], width: int | None = None) -> list[Content]:
    return hanging([(preflight_mark(c), preflight_line(c)) for c in checks], MARK_WIDTH, width)


def plan_body(plan: ActionPlan, width: int | None = None) -> Content:
    """The rules, worst first, and where the flag is written; wrapped at `width`."""
    lines = checks_body(ordered_checks(plan), width)
    stores = stores_line(plan)
    if stores is not None:
        lines += [stores] if width is None else stores.wrap(width)
    return Content("\n").join(lines)


def one_line(content: Content, width: int) -> Content:
    """`content` cut to `width` cells, an ellipsis saying it was cut."""
    if content.cell_length <= width:
        return content
    return content.truncate(max(1, width - 1)) + Content("…")


def condensed_rules(checks: Sequence[Preflight], width: int, room: int) -> list[Content]:
    """One line per rule, worst first. With rows to spare, a failing rule wraps (its
    tail says what clears it); with fewer rows than rules, the rules that passed share
    one line (what refuses is never the one left out)."""
    lines = [one_line(_marked(c), width) for c in checks]
    failing = [c for c in checks if not c.ok]
    wrapped = [line for c in failing for line in checks_body([c], width)]
    if len(lines) - len(failing) + len(wrapped) <= room:
        return wrapped + lines[len(failing) :]
    passed = [c for c in checks if c.ok]
    if len(lines) <= room or len(passed) < 2:
        return lines
    summary = Content.assemble(
        preflight_mark(passed[0]).pad_right(MARK_WIDTH - 4),
        (f"{len(passed)} more pass: ", "bold"),
        ", ".join(c.name for c in passed),
    )
    return [*lines[: len(failing)], one_line(summary, width)]


def _marked(check: Preflight) -> Content:
    mark = preflight_mark(check)
    return mark.pad_right(MARK_WIDTH - mark.cell_length) + preflight_line(check)


def blast_summary(
    blast: BlastRadius, actuators: Sequence[str], target: str | None, width: int
) -> list[Content]:
    """The blast radius, a line per kind of effect: the record changes named in one
    line (with how long clients keep the old answer), the rest cut to one line each."""
    heading = Content.styled("Blast radius", "bold")
    if is_empty(blast) and "dns" not in actuators:
        return [one_line(heading + Content(": ") + only_flag_line(actuators), width)]
    rows: list[tuple[str, Content]] = []
    changed = [c for c in blast.changes if c.changed]
    for label, value in blast_rows(blast, actuators, target):
        if label == "DNS" and changed:
            names = ", ".join(f"{c.name.rstrip('.')} {c.rtype.value}" for c in changed)
            waits = [c.remaining_ttl if c.remaining_ttl is not None else c.ttl for c in changed]
            known = [w for w in waits if w is not None]
            within = f" within {max(known)} s" if known else ""
            value = Content.assemble(
                (f"{len(changed)} record{'s' if len(changed) != 1 else ''} move{within}: ", "bold"),
                names,
            )
        elif not label:
            continue  # a second record or data class: counted in the line above
        rows.append((label, value))
    lines = [heading]
    lines += [one_line(Content(label).pad_right(LABEL_WIDTH - len(label)) + value, width)
              for label, value in rows]  # fmt: skip
    return lines


class PreflightView(RowsView):
    """The plan's rules (or only `checks`); a long detail wraps under the rule's name."""

    def __init__(
        self,
        plan: ActionPlan,
        checks: Sequence[Preflight] | None = None,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.plan = plan
        self.checks = checks

    def lines(self, width: int) -> Content:
        if self.checks is not None:
            return Content("\n").join(checks_body(self.checks, width))
        return plan_body(self.plan, width)


def plan_title(plan: ActionPlan) -> str:
    verb = plan.kind.value.upper()
    if plan.kind in (ActionKind.DRAIN, ActionKind.RESTORE):
        # Active-active: the region leaves (or rejoins) the records; nothing moves "to" it.
        return f"{verb} {plan.target}"
    return f"{verb} {plan.source or '?'} → {plan.target}"


def plan_facts(plan: ActionPlan) -> Content:
    return Content.assemble(
        "Target ",
        health_content(plan.target_health, bold=True),
        "   Actuators: ",
        Content.styled(" → ".join(plan.actuators) or "none", "bold"),
    )


def verdict(plan: ActionPlan, *, can_act: bool = True, condensed: bool = False) -> Content:
    if plan.allowed:
        if not can_act:
            # Shown as refused; the rules pass since: this dialog cannot act on it.
            return Content.styled(
                f"The rules pass now: close this and start the {plan.kind.value} again.",
                "$success",
            )
        return Content.styled("Rules passed. Type the target id and a reason.", "$success")
    if plan.needs_force and can_act:
        if condensed:
            return Content.styled("Refused unless you break glass (recorded).", "$warning")
        return Content.styled(
            "Refused unless you break glass: the override lists every rule it bypasses "
            "and is recorded.",
            "$warning",
        )
    # The failed rules are in the body, each with why; here only their names.
    names = ", ".join(c.name for c in plan.failed if not c.forceable)
    return Content.styled(f"Refused: no override may bypass {names}.", "$error")


# Never shown: the reactive's default before __init__ sets the real plan.
NO_PLAN = ActionPlan("", ActionKind.FAILOVER, None, "", Health.UNKNOWN, {}, False, (), ())


class CondensedBody(RowsView):
    """The rules and the blast radius in as many rows as the screen leaves (`room`)."""

    def __init__(self, plan: ActionPlan, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.plan = plan
        self.room = 0

    def lines(self, width: int) -> Content:
        plan = self.plan
        blast = blast_summary(plan.blast, plan.actuators, plan.target, width)
        rules = condensed_rules(ordered_checks(plan), width, max(1, self.room - len(blast)))
        return Content("\n").join([*rules, *blast])


# A body that still scrolls is measured again after this many refreshes at most.
MAX_REFITS = 3


class FailoverDialog(FittedModal[Confirmation | None]):
    DEFAULT_CSS = """
    FailoverDialog {
        align: center middle;
        background: $background 60%;
    }
    FailoverDialog > #dialog {
        width: 128;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    FailoverDialog #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
        background: $error-muted;
    }
    FailoverDialog #body {
        height: auto;
        margin: 1 0;
    }
    FailoverDialog #blast {
        margin-top: 1;
    }
    FailoverDialog #condensed {
        display: none;
    }
    FailoverDialog.-condensed #condensed {
        display: block;
    }
    FailoverDialog.-condensed #preflight, FailoverDialog.-condensed #blast,
    FailoverDialog.-condensed #facts {
        display: none;
    }
    FailoverDialog.-condensed #body {
        margin: 0;
    }
    FailoverDialog #verdict {
        text-style: bold;
    }
    FailoverDialog #controls {
        height: auto;
    }
    FailoverDialog #typed {
        width: 26;
    }
    FailoverDialog.-condensed #typed {
        width: 20;
        margin-right: 1;
    }
    FailoverDialog #reason {
        width: 1fr;
    }
    FailoverDialog Button {
        margin-left: 2;
    }
    FailoverDialog.-condensed Button {
        margin-left: 1;
    }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        # The body does not take focus (Tab goes Cancel → typed id → reason), so
        # the keyboard scrolls it from wherever focus is.
    ]

    # The plan as the rules judge it now: the app sets it from each new snapshot.
    plan: reactive[ActionPlan] = reactive(lambda: NO_PLAN, init=False, layout=True)
    # One line per rule and a blast radius summary: set when the full text does not fit.
    condensed: reactive[bool] = reactive(False, init=False)

    def __init__(self, plan: ActionPlan, *, can_act: bool = True) -> None:
        """`can_act`: the plan may be confirmed here; False shows a refused plan only
        (the act already ended), whatever the rules say later."""
        super().__init__()
        self.set_reactive(FailoverDialog.plan, plan)
        self.can_act = can_act

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(id="dialog"):
            yield Label(Content(plan_title(plan)), id="title")
            yield Static(plan_facts(plan), id="facts")
            with VerticalScroll(id="body", can_focus=False):
                yield PreflightView(plan, id="preflight")
                yield BlastRadiusView(plan.blast, plan.actuators, plan.target, id="blast")
                yield CondensedBody(plan, id="condensed")
            yield Static(verdict(plan, can_act=self.can_act), id="verdict")
            # Typed id, reason and buttons on one row: Tab goes Cancel → id → reason.
            with Horizontal(id="controls"):
                yield Field(placeholder=f"type {plan.target} to confirm", id="typed")
                yield Field(placeholder="reason (recorded in the audit log)", id="reason")
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self._confirm_label(plan), id="confirm", variant="error",
                             disabled=True)  # fmt: skip

    def on_mount(self) -> None:
        self._show(self.plan)
        self.query_one("#cancel", Button).focus()

    def _confirmable_plan(self, plan: ActionPlan) -> bool:
        return self.can_act and (plan.allowed or plan.needs_force)

    @staticmethod
    def _confirm_label(plan: ActionPlan) -> str:
        return "Break glass…" if plan.needs_force else plan.kind.value.capitalize()

    def watch_plan(self, plan: ActionPlan) -> None:
        self._show(plan)

    def watch_condensed(self, condensed: bool) -> None:
        self.set_class(condensed, "-condensed")
        for widget in (*self.query(Input), *self.query(Button)):
            widget.compact = condensed
        self.query_one("#verdict", Static).update(
            verdict(self.plan, can_act=self.can_act, condensed=condensed)
        )
        self._show_title(self.plan)
        self.call_after_refresh(self._fit)

    def _show(self, plan: ActionPlan) -> None:
        """Every part drawn from `plan`, in place: what is typed and the focus stay."""
        self._show_title(plan)
        self.query_one("#facts", Static).update(plan_facts(plan))
        preflight = self.query_one(PreflightView)
        preflight.plan = plan
        preflight.refresh(layout=True)
        self.query_one(BlastRadiusView).show(plan.blast, plan.actuators, plan.target)
        condensed = self.query_one(CondensedBody)
        condensed.plan = plan
        condensed.refresh(layout=True)
        self.query_one("#verdict", Static).update(
            verdict(plan, can_act=self.can_act, condensed=self.condensed)
        )
        confirmable = self._confirmable_plan(plan)
        for field in self.query(Input):
            field.display = confirmable
        confirm = self.query_one("#confirm", Button)
        confirm.display = confirmable
        confirm.label = self._confirm_label(plan)
        confirm.disabled = not self._confirmable()
        if not confirmable and self.focused is not None and self.focused.id != "cancel":
            self.query_one("#cancel", Button).focus()
        self._refits = 0
        self.call_after_refresh(self._fit)

    def _show_title(self, plan: ActionPlan) -> None:
        title = Content(plan_title(plan))
        if self.condensed:  # the facts join the title: a row more for the rules
            title = Content.assemble(title, "   ", plan_facts(plan))
        self.query_one("#title", Label).update(title)

    def _fit(self) -> None:
        # Called after a refresh: a dialog answered in one burst of keys (a paste, a
        # fast typist) can be gone, its children with it, by the time this runs.
        if not self.is_attached or not self.query(CondensedBody):
            return
        dialog, body = self.query_one("#dialog"), self.query_one("#body")
        if not self.condensed and body.virtual_size.height > self._room(dialog, body):
            self.condensed = True  # re-fits once laid out again (watch_condensed)
            return
        condensed = self.query_one(CondensedBody)
        room = self._room(dialog, body)
        if self.condensed and condensed.room != room:
            condensed.room = room
            condensed.refresh(layout=True)
        fit_scroll_body(dialog, body, self.size.height)
        if dialog.border_subtitle and self._refits < MAX_REFITS:
            # The body may not be laid out in its new room yet (it still measures
            # the full text's height): measured again after the next refresh, so
            # "PgUp/PgDn: more" does not stay on a body that fits.
            self._refits += 1
            self.call_after_refresh(self._fit)

    def _room(self, dialog: Widget, body: Widget) -> int:
        fixed = dialog.outer_size.height - dialog.size.height
        for child in dialog.children:
            margin = child.styles.margin
            fixed += margin.top + margin.bottom
            if child is not body and child.display:
                fixed += child.outer_size.height
        return max(3, self.size.height - fixed)

    _refits = 0  # fits again after one that found more to scroll, up to MAX_REFITS

    def on_resize(self) -> None:
        # A larger screen may hold the full text again: decide afresh once laid out.
        self._refits = 0
        self.condensed = False
        self.call_after_refresh(self._fit)

    @on(Input.Changed)
    def _typed(self) -> None:
        self.query_one("#confirm", Button).disabled = not self._confirmable()

    def _confirmable(self) -> bool:
        if not self._confirmable_plan(self.plan):
            return False
        typed = self.query_one("#typed", Input).value.strip()
        reason = self.query_one("#reason", Input).value.strip()
        return typed == self.plan.target and bool(reason)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        if self._confirmable():
            self._confirm()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if not self._confirmable():
            return
        reason = self.query_one("#reason", Input).value.strip()
        plan = self.plan
        self.dismiss(Confirmation(reason=reason, force=plan.needs_force, plan=plan))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
