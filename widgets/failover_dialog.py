"""The confirmation of an action that moves traffic: rules first, focus on Cancel, typed id.

The operator must type the target region's id and a reason before the confirm
button works. The body (the safety rules, the stores, the blast radius) scrolls,
so at 80x24 the inputs and the buttons stay on screen however long it is. A plan
refused only by rules a break-glass override may bypass offers "Break glass…",
which the app follows with a second confirmation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Input, Label, Static

from noc.model import ActionKind, ActionPlan, Interface, Preflight
from noc_widgets.blast_radius import BlastRadiusView, RowsView, hanging
from noc_widgets.fitted_modal import FittedModal
from noc_widgets.health_style import health_content


@dataclass(frozen=True)
class Confirmation:
    reason: str
    force: bool


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


def verdict(plan: ActionPlan) -> Content:
    if plan.allowed:
        return Content.styled("Rules passed. Type the target id and a reason.", "$success")
    if plan.needs_force:
        return Content.styled(
            "Refused unless you break glass: the override lists every rule it bypasses "
            "and is recorded.",
            "$warning",
        )
    # The failed rules are in the body, each with why; here only their names.
    names = ", ".join(c.name for c in plan.failed if not c.forceable)
    return Content.styled(f"Refused: no override may bypass {names}.", "$error")


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
    FailoverDialog #verdict {
        text-style: bold;
    }
    FailoverDialog #inputs {
        height: auto;
    }
    FailoverDialog #typed {
        width: 26;
    }
    FailoverDialog #reason {
        width: 1fr;
    }
    FailoverDialog #buttons {
        height: auto;
        align-horizontal: right;
    }
    FailoverDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        # The body does not take focus (Tab goes Cancel → typed id → reason), so
        # the keyboard scrolls it from wherever focus is.
    ]

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        confirmable = plan.allowed or plan.needs_force
        with Vertical(id="dialog"):
            yield Label(Content(plan_title(plan)), id="title")
            yield Static(plan_facts(plan), id="facts")
            with VerticalScroll(id="body", can_focus=False):
                yield PreflightView(plan, id="preflight")
                yield BlastRadiusView(plan.blast, plan.actuators, plan.target, id="blast")
            yield Static(verdict(plan), id="verdict")
            if confirmable:
                with Horizontal(id="inputs"):
                    yield Input(placeholder=f"type {plan.target} to confirm", id="typed")
                    yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                if confirmable:
                    label = "Break glass…" if plan.needs_force else plan.kind.value.capitalize()
                    yield Button(label, id="confirm", variant="error", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Input.Changed)
    def _typed(self) -> None:
        self.query_one("#confirm", Button).disabled = not self._confirmable()

    def _confirmable(self) -> bool:
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
        self.dismiss(Confirmation(reason=reason, force=self.plan.needs_force))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
