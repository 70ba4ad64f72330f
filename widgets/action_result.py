"""What an action did: the flag per store, each actuator's step, DNS moving, the timeline.

The app shows this screen as soon as the actuators have run and calls
`show_result()` while it watches DNS propagate: first with no propagation yet
("watching DNS"), then with each progress report, then with the final result.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Label

from noc.model import ActionResult, ActuatorStep, StoreOutcome
from noc_widgets.blast_radius import RowsView, hanging
from noc_widgets.failover_dialog import plan_title
from noc_widgets.fitted_modal import FittedModal

OUTCOME_STYLE = {
    StoreOutcome.VERIFIED: ("✓", "$success"),
    StoreOutcome.WRITTEN: ("▲", "$warning"),
    StoreOutcome.UNREACHABLE: ("✗", "$error"),
    StoreOutcome.CONFLICT: ("✗", "$error"),
}

LABEL_WIDTH = 13  # "✓ post hook" and two spaces

Row = tuple[Content, Content]


def result_verdict(result: ActionResult, watching: bool = False) -> str:
    if result.aborted is not None:
        return "ABORTED, ROLLBACK FAILED" if result.rollback_failed else "ABORTED: nothing changed"
    if watching:
        # Without a DNS actuator there is nothing to watch, only the post hook to run.
        return "WATCHING DNS" if "dns" in result.plan.actuators else "VERIFYING"
    return "VERIFIED" if result.success else "FAILED OR PARTIAL"


def recovery_seconds(result: ActionResult) -> float | None:
    """The measured RTO: seconds from confirmation until every DNS server answered
    the new values (or, with no DNS to move, until the last step); None while unknown
    or when the servers did not all move."""
    marks = dict(result.timeline)
    if "all_moved" in marks:
        return marks["all_moved"]
    if "dns" in result.plan.actuators or not result.success or not result.timeline:
        return None
    return max(seconds for _, seconds in result.timeline)


def outcome_words(result: ActionResult, watching: bool = False) -> str:
    """One line for a banner: the verdict and, once measured, the RTO."""
    verdict = result_verdict(result, watching)
    if result.aborted is not None:
        return f"{verdict} ({result.aborted})"
    if watching:
        progress = result.propagation
        moved = f" {len(progress.moved)}/{progress.asked} moved" if progress else ""
        return f"{verdict}{moved}…"
    rto = recovery_seconds(result)
    return f"{verdict}, RTO {rto:.1f} s" if rto is not None else verdict


def step_row(step: ActuatorStep) -> Row:
    detail = step.detail.removeprefix("rollback: ")
    if step.rolled_back and step.ok:
        return Content.styled(f"↶ {step.actuator}", "$warning"), Content(f"rolled back: {detail}")
    if step.rolled_back:
        return (
            Content.styled(f"✗ {step.actuator}", "bold $error"),
            Content.styled(f"rollback FAILED, still changed: {detail}", "bold $error"),
        )
    if step.ok:
        return Content.styled(f"✓ {step.actuator}", "$success"), Content(detail)
    return Content.styled(f"✗ {step.actuator}", "bold $error"), Content.styled(detail, "$error")


def store_rows(result: ActionResult) -> list[Row]:
    if "flag" not in result.plan.actuators or not result.stores:
        return []
    rolled_back = any(s.actuator == "flag" and s.rolled_back and s.ok for s in result.steps)
    heading = "Flag stores, before the rollback" if rolled_back else "Flag stores"
    rows: list[Row] = [(Content.styled(heading, "bold"), Content(""))]
    for store in result.stores:
        glyph, style = OUTCOME_STYLE[store.outcome]
        rows.append(
            (
                Content.styled(f"{glyph} {store.region_id}", style),
                Content.assemble(
                    (store.outcome.value, style), f"  {store.detail}" if store.detail else ""
                ),
            )
        )
    return rows


def propagation_rows(result: ActionResult, watching: bool) -> list[Row]:
    progress = result.propagation
    label = Content.styled("DNS", "bold")
    if progress is None:
        if watching and result.aborted is None and "dns" in result.plan.actuators:
            text = "watching DNS: asking the authoritative server and every resolver…"
            return [(label, Content.styled(text, "$warning"))]
        return []
    # The servers behind get a row each below, so the headline stays short.
    text = (result.propagation_text or "").partition("; behind: ")[0]
    if not progress.done:
        text += ", watching…"
    all_moved = progress.done and not progress.waiting
    rows: list[Row] = [(label, Content.styled(text, "$success" if all_moved else "$warning"))]
    rows += [
        (Content(""), Content.styled(f"{server} {why}", "$warning"))
        for server, why in progress.waiting
    ]
    return rows


def timeline_text(result: ActionResult) -> Content:
    return Content(
        " · ".join(
            f"{event.replace('_', ' ')} {seconds:.1f} s" for event, seconds in result.timeline
        )
    )


def result_rows(result: ActionResult, watching: bool = False) -> list[Row]:
    # No blank rows between sections: at 80x24 every row counts; bold headings separate.
    rows = store_rows(result)
    if result.steps:
        rows.append((Content.styled("Steps", "bold"), Content("")))
        rows += [step_row(s) for s in result.steps]
    if result.aborted is not None:
        undone = not result.rollback_failed
        words = "nothing left changed" if undone else "NOT everything was put back"
        rows.append(
            (
                Content.styled("✗ Aborted", "bold $error"),
                Content.styled(f"{words}: {result.aborted}", "bold $error"),
            )
        )
    rows += propagation_rows(result, watching)
    if result.timeline:
        rows.append((Content.styled("Timeline", "bold"), timeline_text(result)))
    if result.plan.overridden:
        rows.append(
            (
                Content.styled("Break glass", "bold $warning"),
                Content.styled(f"bypassed {', '.join(result.plan.overridden)}", "$warning"),
            )
        )
    return rows


def result_body(result: ActionResult, watching: bool = False, width: int | None = None) -> Content:
    return Content("\n").join(hanging(result_rows(result, watching), LABEL_WIDTH, width))


class ResultBody(RowsView):
    """The rows of a result; a long detail wraps under its own column."""

    def __init__(
        self, result: ActionResult, watching: bool = False, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.result = result
        self.watching = watching

    def show(self, result: ActionResult, watching: bool = False) -> None:
        self.result, self.watching = result, watching
        self.refresh(layout=True)

    def lines(self, width: int) -> Content:
        return result_body(self.result, self.watching, width)


class ActionResultScreen(FittedModal[None]):
    DEFAULT_CSS = """
    ActionResultScreen {
        align: center middle;
        background: $background 60%;
    }
    ActionResultScreen > #dialog {
        width: 110;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $success;
        background: $surface;
        padding: 0 1;
    }
    ActionResultScreen.-watching > #dialog {
        border: thick $warning;
    }
    ActionResultScreen.-failed > #dialog {
        border: thick $error;
    }
    ActionResultScreen #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
        background: $success-muted;
    }
    ActionResultScreen.-watching #title {
        background: $warning-muted;
    }
    ActionResultScreen.-failed #title {
        background: $error-muted;
    }
    ActionResultScreen #body {
        height: auto;
        margin: 1 0;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="dialog.close"),
    ]

    def __init__(self, result: ActionResult, *, watching: bool = False) -> None:
        super().__init__()
        self.result = result
        self.watching = watching
        self._set_classes()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self._title(), id="title")
            with VerticalScroll(id="body", can_focus=False):
                yield ResultBody(self.result, self.watching, id="outcome")
            yield Button("Close", id="close", variant="primary")

    def show_result(self, result: ActionResult, *, watching: bool = False) -> None:
        """Re-render in place: `watching` while DNS propagation is still being watched."""
        self.result = result
        self.watching = watching
        self._set_classes()
        # The operator may have closed the screen while the app still watches DNS.
        for title in self.query("#title").results(Label):
            title.update(self._title())
        for body in self.query("#outcome").results(ResultBody):
            body.show(result, watching)
            self.call_after_refresh(self._fit)  # the "more" hint follows the new length

    def _title(self) -> Content:
        verdict = result_verdict(self.result, self.watching)
        return Content(f"{plan_title(self.result.plan)} — {verdict}")

    def _set_classes(self) -> None:
        watching = self.watching and self.result.aborted is None
        self.set_class(watching, "-watching")
        self.set_class(not watching and not self.result.success, "-failed")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
