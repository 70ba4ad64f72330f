"""The 3 a.m. screen: 80x24 over SSH with the demo's worst faults at once.

Two regions down (their alerts acked with a long note), the third degraded, a store
unreachable, smtp's A record hijacked on all three resolvers, and three checks on one
loopback host told apart only by their ports. What must hold: the alert pane takes
the rows it needs before the health table keeps blank ones, each alert row leads with
what tells it from the others, and the footer shows every key it offers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import REFUSED, TIMEOUT, estate_config, feed_flags, feed_round
from test_alert_views import screen_text
from test_app_snapshots import make_app

from noc.app import NocApp
from noc.clock import FakeClock
from noc.config import parse_config
from noc.model import Alert, AlertState, DnsRecordSample, FailoverRecordType, Severity
from noc_widgets.alert_pane import AlertPane, summary_cell
from noc_widgets.footer import NocFooter, footer_style
from noc_widgets.health_table import HealthTable, clip_check

SIZE = (80, 24)
RESOLVERS = ("127.0.0.1:5301", "127.0.0.1:5302", "127.0.0.1:5303")
HIJACKED = "198.18.0.66"
NOTE = "ISP ticket 4411, calling the DC now"


def worst_faults(tmp_path: Path, *, more_records: int = 0) -> NocApp:
    """The worst the demo can show at once; `more_records` hijacked records add alerts."""
    ports = {"ro": 38211, "bg": 38212, "pa": 38213}
    data = estate_config(
        urls={rid: f"http://127.0.0.1:{port}/health" for rid, port in ports.items()}
    ).model_dump(mode="json")
    records = ["smtp.demo-mail.test.", *(f"mx{i}.demo-mail.test." for i in range(more_records))]
    data["dns"] = {
        "resolvers": list(RESOLVERS),
        "records": [{"name": r, "type": "A"} for r in records],
    }
    for region, octet in zip(data["regions"], (10, 20, 30), strict=True):
        region["service_ips"] = [f"192.0.2.{octet}"]
    app = NocApp(
        parse_config(data), clock=FakeClock(), start_polling=False, state_path=tmp_path,
        config_path="noc.toml",
    )  # fmt: skip
    clock = app.clock
    assert isinstance(clock, FakeClock)
    engine = app.scheduler.engine
    feed_round(engine, clock)
    feed_flags(engine, clock, "ro", unreachable=("bg",))
    for _ in range(3):
        when = (clock.monotonic(), clock.utcnow())
        engine.ingest_dns(
            tuple(
                DnsRecordSample(name, FailoverRecordType.A, resolver, *when, (HIJACKED,), 41)
                for name in records
                for resolver in RESOLVERS
            )
        )
        feed_round(engine, clock, {"ro": REFUSED, "bg": REFUSED, "pa/1": TIMEOUT})
    engine.evaluate_alerts()
    for alert in engine.alerts.alerts():
        if alert.rule == "region_down":
            engine.alerts.ack(alert.id, "root@vm", NOTE)
    engine.evaluate_alerts()
    return app


def test_the_worst_faults_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(worst_faults(tmp_path), terminal_size=SIZE)


def test_the_worst_faults_with_alerts_cut_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(worst_faults(tmp_path, more_records=2), terminal_size=SIZE)


def rows_of(text: str, marker: str) -> list[str]:
    return [line for line in text.splitlines() if marker in line]


async def test_each_alert_row_leads_with_what_tells_it_apart(tmp_path: Path) -> None:
    app = worst_faults(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        hijacks = rows_of(text, "DNS hijack")
        assert len(hijacks) == len(RESOLVERS)
        for resolver, line in zip(RESOLVERS, hijacks, strict=True):
            assert f"{resolver} answers {HIJACKED}" in line
        # The ack stays on the row, after the summary, which it no longer pushes off.
        for region in ("ro", "bg"):
            (line,) = rows_of(text, f"{region} down: every check failing")
            assert "ACK root@vm" in line
        # Three checks on one host, three ports: three different names.
        checks = [line.split()[1] for line in rows_of(text, "127.0.0.1:")[: len(RESOLVERS)]]
        assert [name.startswith("127.0.0.1:3821") for name in checks] == [True] * 3
        assert len(set(checks)) == 3


async def test_the_alert_pane_grows_before_the_health_table_keeps_blank_rows(
    tmp_path: Path,
) -> None:
    for more_records in (0, 2, 6):
        app = worst_faults(tmp_path / str(more_records), more_records=more_records)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.pause()
            pane, table = app.query_one(AlertPane), app.query_one(HealthTable)
            # border, header, rows: the rows the pane shows against those it has
            shown_rows = pane.size.height - 1
            cut = shown_rows < pane.row_count
            blank = table.size.height - 1 - table.row_count
            assert not (cut and blank > 0), (more_records, shown_rows, pane.row_count, blank)
            if more_records == 6:
                assert cut, "the case where alerts must be cut"
                assert table.size.height >= 4, "the health table keeps its minimum"


async def test_cut_off_verdicts_keep_their_brackets_at_80x24(tmp_path: Path) -> None:
    app = make_app(tmp_path, "cut-off")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "(✓ healthy)" in text or "(✗ down)" in text
        assert "(✓ healthy " not in text and "(✗ down " not in text.replace("(✗ down)", "")


async def test_the_footer_shows_every_key_at_80_columns(tmp_path: Path) -> None:
    app = worst_faults(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        footer_line = screen_text(app).splitlines()[-1]
        for label in ("f Failover", "b Failback", "a Ack", "s Silence", "? Help", "q Quit"):
            assert label in footer_line
        assert app.query_one(NocFooter).compact
    async with worst_faults(tmp_path / "wide").run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        footer = pilot.app.query_one(NocFooter)
        assert not footer.compact and footer.show_command_palette, "room enough: spaced out"


def test_footer_style_gives_up_spacing_then_the_palette_key() -> None:
    keys = [("f", "Failover"), ("b", "Failback"), ("?", "Help"), ("q", "Quit")]
    palette = ("^p", "palette")
    # Spaced, the keys take 40 cells and the palette key 14; compact, 36 and 13.
    assert footer_style(keys, palette, 54) == (False, True)
    assert footer_style(keys, palette, 53) == (True, True)
    assert footer_style(keys, palette, 48) == (True, False)


def test_check_names_keep_host_and_port_and_lose_the_path_first() -> None:
    names = [f"127.0.0.1:3821{i}/health" for i in range(3)]
    for width in (30, 16, 14, 11):
        shown = [clip_check(name, width) for name in names]
        assert all(len(name) <= width for name in shown)
        assert len(set(shown)) == 3, shown
        assert all(name.endswith(("/health", "…", f":3821{i}")) for i, name in enumerate(shown))
    assert clip_check("127.0.0.1:38211/health", 16) == "127.0.0.1:38211…"
    assert clip_check("ro.mail.example.com:8443/health", 14) == "ro.mail…:8443"


def test_config_names_an_unnamed_check_with_its_port() -> None:
    config = estate_config(urls={"ro": "http://op@127.0.0.1:38211/health"})
    names = [target.name for target in config.check_targets() if target.region_id == "ro"]
    assert names[0] == "127.0.0.1:38211/health"


def test_marks_give_way_before_the_summary_does() -> None:
    alert = Alert(
        id="dns_hijack:x@t", rule="dns_hijack", severity=Severity.CRITICAL,
        state=AlertState.FIRING, region=None,
        summary=f"DNS hijack? {RESOLVERS[0]} answers {HIJACKED} for smtp.demo-mail.test. A",
        since=FakeClock().utcnow(),
    )  # fmt: skip
    assert summary_cell(alert, 200).plain == alert.summary
    assert summary_cell(alert, 50).plain == f"DNS hijack? {RESOLVERS[0]} answers {HIJACKED}…"
