"""The demo's fault panel: pick a region and a fault to inject into the simulator.

It sees only the FaultInjector protocol, never the simulator itself. Several
faults can be active in a region at once (one health fault, plus any data
faults); an injector that can list them (`ListsFaults`) has them all shown,
any other shows its current one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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
    Fault.BREAK_REPLICATION: "partition replication (on the primary: every link)",
    Fault.STALL_SYNC: "stall suppression sync into this region",
    Fault.COMPLAINT_SPIKE: "spam complaint spike (over 0.3 %)",
    Fault.DNS_HIJACK: "hijack DNS: smtp answers an address of no region",
    Fault.BLOCKLIST: "list this region's sending IP on the blocklist",
    Fault.SMTP_421: "SMTP: 421 banner (service shutting down)",
    Fault.NO_STARTTLS: "SMTP: STARTTLS not offered",
    Fault.TLS_HANDSHAKE: "SMTP: TLS handshake fails",
    Fault.CERT_EXPIRING: "SMTP: certificate expiring in 5 days",
    Fault.CERT_WRONG_NAME: "SMTP: certificate for the wrong name",
    Fault.QUEUE_HELD: "MTA: queue held and growing",
    Fault.REJECTION_SPIKE: "MTA: rejection spike (hundreds a minute)",
    Fault.MX_OUTSIDE_POLICY: "MTA-STS: this region's MX outside the policy",
    Fault.RESTORE: "restore: clear every fault",
}


@runtime_checkable
class ListsFaults(Protocol):
    """An injector that can say every fault active in a region, not just the last."""

    def active_faults(self, region_id: str) -> Sequence[Fault]: ...


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
            active = ", ".join(fault.value for fault in self._active(region))
            # Above its options, so each region's state is in view as the list scrolls.
            options.append(Option(f"{region} now: {active or 'healthy'}", disabled=True))
            for fault, text in FAULT_TEXT.items():
                options.append(Option(f"{region:<4} {text}", id=f"{region}:{fault.value}"))
            options.append(None)
        with Vertical():
            yield Label("Demo fault panel: inject a fault into a simulated region", id="title")
            yield OptionList(*options[:-1])

    def _active(self, region: str) -> Sequence[Fault]:
        if isinstance(self.injector, ListsFaults):
            return self.injector.active_faults(region)
        current = self.injector.current_fault(region)
        return [current] if current and current is not Fault.RESTORE else []

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        region, fault = (event.option_id or ":").split(":")
        self.dismiss((region, Fault(fault)))

    def action_close(self) -> None:
        self.dismiss(None)
