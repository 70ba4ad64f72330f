"""The break-glass override: the second confirmation of an action the rules refuse.

It names every rule it bypasses (each one, with why it failed) and says it is
recorded; the operator types FORCE to go on. Only rules marked forceable can get
here: the lock, the DNS key and "never zero active" are never bypassed.

Live, like the failover dialog: the app sets `plan` from each new snapshot. A rule
that passes since (the cooldown ran out) leaves the list; when none is left to
bypass, the act goes on without an override (nothing is recorded as bypassed);
when a rule no override may bypass fails, it cannot go on at all.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, Static

from noc.model import ActionPlan
from noc_widgets.failover_dialog import NO_PLAN, PreflightView, plan_title
from noc_widgets.fitted_modal import FittedModal

FORCE_WORD = "FORCE"


class ForceDialog(FittedModal[bool]):
    BODY_ID = "rules"

    DEFAULT_CSS = """
    ForceDialog {
        align: center middle;
        background: $background 60%;
    }
    ForceDialog > #dialog {
        width: 96;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $error;
        background: $surface;
        padding: 0 1;
    }
    ForceDialog #title {
        margin: 0;
        text-style: bold;
        width: 100%;
        content-align: center middle;
        background: $error;
        color: $text;
    }
    ForceDialog Static, ForceDialog Input {
        margin: 1 0 0 0;
    }
    ForceDialog #rules {
        height: auto;
    }
    ForceDialog #buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    ForceDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
    ]

    # The plan as the rules judge it now: the app sets it from each new snapshot.
    plan: reactive[ActionPlan] = reactive(lambda: NO_PLAN, init=False, layout=True)

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.set_reactive(ForceDialog.plan, plan)

    def compose(self) -> ComposeResult:
        plan = self.plan
        with Vertical(id="dialog"):
            yield Label(Content(f"Break-glass override: {plan_title(plan)}"), id="title")
            yield Static(bypass_text(plan), id="bypasses")
            with VerticalScroll(id="rules", can_focus=False):
                yield PreflightView(plan, plan.failed)
            yield Static(
                "The audit log records the override, every rule it bypassed, you and your reason."
            )
            yield Input(placeholder=f"type {FORCE_WORD} to break glass", id="force")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Break glass", id="confirm", variant="error", disabled=True)

    def on_mount(self) -> None:
        self._show(self.plan)
        self.query_one("#cancel", Button).focus()

    def watch_plan(self, plan: ActionPlan) -> None:
        self._show(plan)

    def _show(self, plan: ActionPlan) -> None:
        """Drawn again from `plan`, in place: what is typed and the focus stay."""
        self.query_one("#bypasses", Static).update(bypass_text(plan))
        rules = self.query_one(PreflightView)
        rules.plan, rules.checks = plan, plan.failed
        rules.display = bool(plan.failed)
        rules.refresh(layout=True)
        self.query_one("#force", Input).display = plan.needs_force
        confirm = self.query_one("#confirm", Button)
        confirm.label = "Break glass" if plan.needs_force else plan.kind.value.capitalize()
        confirm.disabled = not self._confirmable()
        if confirm.disabled and self.focused is confirm:
            self.query_one("#cancel", Button).focus()
        self.call_after_refresh(self._fit)  # the list may have grown or shrunk

    def _confirmable(self) -> bool:
        plan = self.plan
        if plan.allowed:  # nothing left to bypass: no override, no FORCE to type
            return True
        return plan.needs_force and self.query_one("#force", Input).value.strip() == FORCE_WORD

    @on(Input.Changed)
    def _typed(self) -> None:
        self.query_one("#confirm", Button).disabled = not self._confirmable()

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        if self._confirmable():
            self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


def bypass_text(plan: ActionPlan) -> Content:
    if plan.allowed:
        return Content.styled(
            "Every rule passes now: nothing to bypass, no override is recorded.", "$success"
        )
    if not plan.needs_force:
        names = ", ".join(c.name for c in plan.failed if not c.forceable)
        return Content.styled(f"Refused now: no override may bypass {names}.", "bold $error")
    count = len(plan.failed)
    rules = f"{count} safety rule{'s' if count != 1 else ''}"
    return Content.assemble("This bypasses ", (rules, "bold"), ":")
