"""The failover/failback confirmation: preflight first, focus on Cancel, typed id.

The operator must type the target region's id and a reason before the confirm
button works. A plan refused only because the target is not healthy (or noc is
cut off) offers "Force…", which the app follows with a second confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from noc.model import ActionPlan, Preflight
from widgets.health_style import health_content


@dataclass(frozen=True)
class Confirmation:
    reason: str
    force: bool


def preflight_line(check: Preflight) -> Content:
    if check.ok:
        mark = Content.styled("✓ ok  ", "$success")
    elif not check.blocking:
        mark = Content.styled("▲ warn", "$warning")
    elif check.forceable:
        mark = Content.styled("✗ FAIL", "bold $warning")
    else:
        mark = Content.styled("✗ FAIL", "bold $error")
    return Content.assemble(mark, " ", Content.styled(check.name, "bold"), ": ", check.detail)


def plan_body(plan: ActionPlan) -> Content:
    lines = [preflight_line(c) for c in plan.checks]
    stores = ", ".join(
        f"{s.region_id} ({'reachable' if s.reachable else 'unreachable'})" for s in plan.stores
    )
    lines.append(Content.assemble(Content.styled("Flag written to: ", "bold"), stores or "none"))
    return Content("\n").join(lines)


class FailoverDialog(ModalScreen[Confirmation | None]):
    DEFAULT_CSS = """
    FailoverDialog {
        align: center middle;
        background: $background 60%;
    }
    FailoverDialog > Vertical {
        width: 90;
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
    FailoverDialog #preflight {
        margin: 1 0;
    }
    FailoverDialog #verdict {
        text-style: bold;
    }
    FailoverDialog #buttons {
        height: auto;
        align-horizontal: right;
    }
    FailoverDialog Button {
        margin-left: 2;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        verb = plan.kind.value.upper()
        with Vertical():
            yield Label(Content(f"{verb}  {plan.source or '?'} → {plan.target}"), id="title")
            yield Static(
                Content.assemble("Target health: ", health_content(plan.target_health, bold=True)),
            )
            yield Static(plan_body(plan), id="preflight")
            yield Static(self._verdict(), id="verdict")
            if plan.allowed or plan.needs_force:
                yield Input(placeholder=f"type {plan.target} to confirm", id="typed")
                yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                if plan.allowed or plan.needs_force:
                    label = "Force…" if plan.needs_force else verb.capitalize()
                    yield Button(label, id="confirm", variant="error", disabled=True)

    def _verdict(self) -> Content:
        plan = self.plan
        if plan.allowed:
            return Content.styled("Preflight passed. Type the target id and a reason.", "$success")
        if plan.needs_force:
            return Content.styled(
                "Refused unless forced: a forced action is recorded as such.", "$warning"
            )
        return Content.styled(f"Refused: {plan.refusal}", "$error")

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
