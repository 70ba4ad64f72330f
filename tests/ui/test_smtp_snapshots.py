"""The main screen with SMTP probes: a row per probe under its region's HTTP checks
(banner code, session time, TLS and the certificate's days left, or the error), at
80x24 (SSH) and 200x60 (wall screen)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import estate_config, feed_flags, feed_round
from test_app_snapshots import SIZES

from noc.app import NocApp
from noc.clock import FakeClock
from noc.config import parse_config
from noc.model import ErrorKind, ProbeError, SmtpSample

PHASES = (("connect", 0.4), ("banner", 3.2), ("ehlo", 0.6), ("starttls", 7.9), ("ehlo", 0.5),
          ("quit", 0.3))  # fmt: skip


def smtp_app(tmp_path: Path) -> NocApp:
    base = estate_config().model_dump(mode="json")
    base["regions"][0]["smtp"] = [{"host": "mx1.ro.example.com"}]
    base["regions"][1]["smtp"] = [{"host": "mx1.bg.example.com"}, {"host": "mx2.bg.example.com"}]
    config = parse_config(base)
    clock = FakeClock()
    app = NocApp(
        config, clock=clock, start_polling=False, state_path=tmp_path, config_path="noc.toml"
    )
    engine = app.scheduler.engine
    feed_flags(engine, clock, "ro")
    for _ in range(3):
        for target in engine.smtp_targets:
            now, wall = clock.monotonic(), clock.utcnow()
            fields: dict[str, Any]
            if target.check_id == "ro/smtp0":
                error = ProbeError(
                    ErrorKind.SMTP_STATUS, "421 4.3.2 service shutting down (banner)"
                )
                fields = {"ok": False, "banner_code": 421, "error": error}
            else:
                days = 12.4 if target.check_id == "bg/smtp1" else 83.0
                fields = {
                    "ok": True, "banner_code": 220, "tls_version": "TLSv1.3",
                    "cert_not_after": wall + timedelta(days=days), "cert_days_left": days,
                    "phase_ms": PHASES,
                }  # fmt: skip
            engine.ingest_smtp(SmtpSample(target.check_id, target.region_id, now, wall, **fields))
        feed_round(engine, clock)
    engine.evaluate_alerts()
    return app


@pytest.mark.parametrize("size", SIZES)
def test_smtp_rows_in_the_health_table(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int]
) -> None:
    assert snap_compare(smtp_app(tmp_path), terminal_size=size)
