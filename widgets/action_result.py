"""What a failover or failback did, store by store: written, verified, unreachable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from noc.model import ActionResult, StoreOutcome

OUTCOME_STYLE = {
    StoreOutcome.VERIFIED: ("✓", "$success"),
    StoreOutcome.WRITTEN: ("▲", "$warning"),
    StoreOutcome.UNREACHABLE: ("✗", "$error"),
}


def result_body(result: ActionResult) -> Content:
    lines = []
    for store in result.stores:
        glyph, style = OUTCOME_STYLE[store.outcome]
        lines.append(
            Content.assemble(
                Content.styled(f"{glyph} {store.region_id:<6} {store.outcome.value}", style),
                f"  {store.detail}" if store.detail else "",
            )
        )
    lines.append(Content(""))
    lines.append(Content.styled(result.summary, "bold"))
    if result.plan.overridden:
        lines.append(
            Content.styled(f"forced: overrode {', '.join(result.plan.overridden)}", "$warning")
        )
    return Content("\n").join(lines)


class ActionResultScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ActionResultScreen {
        align: center middle;
        background: $background 60%;
    }
    ActionResultScreen > Vertical {
        width: 90;
        max-width: 100%;
        height: auto;
        border: thick $success;
        background: $surface;
        padding: 0 1;
    }
    ActionResultScreen.-failed > Vertical {
        border: thick $error;
    }
    ActionResultScreen #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    ActionResultScreen Static {
        margin: 1 0;
    }
    """

    BINDINGS = [Binding("escape", "close", "Close", id="dialog.close")]

    def __init__(self, result: ActionResult) -> None:
        super().__init__(classes="" if result.success else "-failed")
        self.result = result

    def compose(self) -> ComposeResult:
        verdict = "VERIFIED" if self.result.success else "FAILED OR PARTIAL"
        plan = self.result.plan
        with Vertical():
            yield Label(
                Content(f"{plan.kind.value.upper()} to {plan.target}: {verdict}"), id="title"
            )
            yield Static(result_body(self.result))
            yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
