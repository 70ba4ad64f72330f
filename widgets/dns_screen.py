"""DNS truth in detail: every record from every resolver with its region and TTL,
authentication alignment per region, and every blocklist answer."""

from __future__ import annotations

from noc_widgets.snapshot_screen import SnapshotScreen
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Footer, Label

from noc.model import AuthCheck, DmarcCheck, EstateSnapshot, PtrCheck

LISTED_STYLE: dict[bool | None, tuple[str, str]] = {
    True: ("✗ LISTED", "bold $error"),
    False: ("✓ clean", "$success"),
    None: ("? unknown", "$warning"),
}


def verdict(check: AuthCheck | DmarcCheck | PtrCheck) -> Content:
    if check.ok is None:
        return Content.styled(f"? {check.reason}", "$warning")
    if check.ok:
        return Content.styled(f"✓ {check.reason}", "$success")
    return Content.styled(f"✗ {check.reason}", "bold $error")


class DnsScreen(SnapshotScreen):
    DEFAULT_CSS = """
    DnsScreen Label {
        text-style: bold;
        padding: 0 1;
        background: $panel;
        width: 100%;
    }
    DnsScreen DataTable {
        height: auto;
        margin-bottom: 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Failover records, asked fresh of every resolver")
            yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
            yield Label("Would mail from each region pass? (after a failover, it must)")
            yield DataTable(id="auth", cursor_type="row", zebra_stripes=True)
            yield Label("Blocklists: every sending IP in every zone")
            yield DataTable(id="dnsbl", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def prepare(self) -> None:
        # Explicit widths: DataTable under-measures styled cells.
        columns = {
            # The verdict (region) before the detail: at 80 columns the answers may
            # scroll out of sight, the verdict must not.
            "records": (
                ("Record", 22),
                ("Region", 26),
                ("Resolver", 16),
                ("TTL", 5),
                ("Answers", 30),
            ),
            "auth": (("Region", 6), ("SPF", 34), ("DKIM", 24), ("DMARC", 24), ("PTR", 28)),
            "dnsbl": (("IP", 16), ("Region", 6), ("Zone", 22), ("Listed", 10), ("Meaning", 48)),
        }
        for table_id, specs in columns.items():
            table = self.query_one(f"#{table_id}", DataTable)
            for label, width in specs:
                table.add_column(label, width=width)

    def draw(self, snapshot: EstateSnapshot) -> None:
        records = self.query_one("#records", DataTable)
        records.clear()
        for view in snapshot.dns:
            sample = view.sample
            if sample.error is not None:
                region = Content.styled(f"? {sample.error}", "$warning")
            elif view.unexpected:
                region = Content.styled(f"✗ no region: {', '.join(view.unexpected)}", "bold $error")
            elif view.region is None:
                region = Content.styled("▲ spans regions", "$warning")
            else:
                region = Content.styled(f"✓ {view.region}", "$success")
            records.add_row(
                Content(f"{sample.name} {sample.rtype.value}"),
                region,
                Content(sample.resolver),
                "—" if sample.ttl is None else f"{sample.ttl}s",
                Content(", ".join(sample.answers) or "—"),
            )
        auth = self.query_one("#auth", DataTable)
        auth.clear()
        for alignment in snapshot.email_auth:
            auth.add_row(
                alignment.region, verdict(alignment.spf), verdict(alignment.dkim),
                verdict(alignment.dmarc), verdict(alignment.ptr),
            )  # fmt: skip
        dnsbl = self.query_one("#dnsbl", DataTable)
        dnsbl.clear()
        for listing in snapshot.dnsbl:
            listed = LISTED_STYLE[listing.listed]
            dnsbl.add_row(
                listing.ip, listing.region, Content(listing.zone),
                Content.styled(*listed), Content(listing.meaning),
            )  # fmt: skip
