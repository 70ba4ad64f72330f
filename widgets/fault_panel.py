"""The demo's fault panel: pick a region and a fault to inject into the simulator.

It sees only the FaultInjector protocol, never the simulator itself.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from noc.model import Fault, FaultInjector

FAULT_TEXT = {
    Fault.DOWN: "take the health endpoint down (connection refused)",
    Fault.SLOW: "answer slower than the timeout",
    Fault.FLAP: "flap: alternate healthy and 503",
    Fault.GARBAGE: "answer garbage (200, wrong body)",
    Fault.RESTORE: "restore to healthy",
}


class FaultPanel(ModalScreen[tuple[str, Fault] | None]):
    DEFAULT_CSS = """
    FaultPanel {
        align: center middle;
        background: $background 60%;
    }
    FaultPanel > Vertical {
        width: 70;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $warning;
        background: $surface;
    }
    FaultPanel #title {
        text-style: bold;
        width: 100%;
        content-align: center middle;
    }
    FaultPanel OptionList {
        height: auto;
        max-height: 30;
    }
    """

    BINDINGS = [Binding("escape", "close", "Close", id="dialog.close")]

    def __init__(self, injector: FaultInjector) -> None:
        super().__init__()
        self.injector = injector

    def compose(self) -> ComposeResult:
        options: list[Option | None] = []
        for region in self.injector.region_ids():
            current = self.injector.current_fault(region)
            now = (
                f"now: {current.value}"
                if current and current is not Fault.RESTORE
                else "now: healthy"
            )
            for fault, text in FAULT_TEXT.items():
                options.append(Option(f"{region:<4} {text}", id=f"{region}:{fault.value}"))
            options.append(Option(f"     ({region} {now})", disabled=True))
            options.append(None)
        with Vertical():
            yield Label("Demo fault panel: inject a fault into a simulated region", id="title")
            yield OptionList(*options[:-1])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        region, fault = (event.option_id or ":").split(":")
        self.dismiss((region, Fault(fault)))

    def action_close(self) -> None:
        self.dismiss(None)
