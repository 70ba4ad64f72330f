"""SMTP probes in the estate: configuration, the engine's verdicts and alerts
(smtp_down, tls_broken, cert_expiry for SMTP and HTTPS), `noc check` JSON and perf
data, and the scheduler, against real Postfix and real HTTP endpoints."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from postfix import PostfixServer, PostfixTls, postfix_binary

from noc.check import PerfLimits, perf_data, report_json, report_text
from noc.clock import FakeClock, SystemClock
from noc.config import ConfigError, NocConfig, parse_config
from noc.engine import Engine
from noc.model import (
    CheckSample,
    CheckTarget,
    ErrorKind,
    Health,
    ProbeError,
    Severity,
    SmtpSample,
    SmtpTls,
)
from noc.scheduler import Scheduler
from noc.simulator.health_endpoint import HealthEndpoint
from noc_collectors.http import HttpHealthCollector

MX = "mx1.ro.test.example"
BANNER_421 = ProbeError(ErrorKind.SMTP_STATUS, "421 4.3.2 service shutting down (banner)")


def config(
    smtp: dict[str, list[dict[str, Any]]],
    urls: dict[str, str] | None = None,
    health: dict[str, Any] | None = None,
) -> NocConfig:
    regions = []
    for rid, role in (("ro", "primary"), ("bg", "secondary")):
        url = (urls or {}).get(rid, f"http://{rid}.test.example/health")
        regions.append(
            {"id": rid, "role": role, "checks": [{"url": url}], "smtp": smtp.get(rid, [])}
        )
    return parse_config(
        {"health": health or {"failure_threshold": 2}, "regions": regions}, "noc.toml"
    )


# -- configuration ------------------------------------------------------------------


def test_smtp_keys_resolve_with_defaults_and_tuning() -> None:
    loaded = config(
        {"ro": [{"host": "mx1.ro.example.com"}, {"host": "192.0.2.25", "port": 465,
                 "tls": "implicit", "tls_name": "mx1.ro.example.com", "ehlo": "noc.example.com",
                 "interval_seconds": 60, "timeout_seconds": 4}]},
        health={"cert_warn_days": 30, "cert_crit_days": 10, "failure_threshold": 4},
    )  # fmt: skip
    first, second = loaded.smtp_targets()
    assert (first.check_id, first.port, first.tls, first.tls_name) == (
        "ro/smtp0", 25, SmtpTls.STARTTLS, "mx1.ro.example.com",
    )  # fmt: skip
    assert first.failure_threshold == 4
    assert (second.tls, second.tls_name, second.ehlo) == (
        SmtpTls.IMPLICIT, "mx1.ro.example.com", "noc.example.com",
    )  # fmt: skip
    assert (second.interval_seconds, second.timeout_seconds) == (60, 4)
    assert (loaded.health.cert_warn_days, loaded.health.cert_crit_days) == (30, 10)


@pytest.mark.parametrize(
    ("smtp", "health", "key", "words"),
    [
        ({"host": "mx", "tls": "tls"}, {}, "regions[0].smtp[0].tls", "starttls"),
        ({"host": "mx", "port": 465}, {}, "regions[0].smtp[0]", 'tls = "implicit"'),
        ({"host": "mx", "tls": "implicit"}, {}, "regions[0].smtp[0]", "port = 465"),
        ({"host": "mx one"}, {}, "regions[0].smtp[0].host", "without spaces"),
        ({"host": "mx", "ca_file": "/nonexistent/ca.pem"}, {}, "regions[0].smtp[0].ca_file",
         "no such file"),
        ({"host": "mx", "helo": "x"}, {}, "regions[0].smtp[0].helo", "unknown key"),
        ({"host": "mx"}, {"cert_warn_days": 5, "cert_crit_days": 7}, "health", "below"),
    ],
)  # fmt: skip
def test_config_errors_name_file_key_and_fix(
    smtp: dict[str, Any], health: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        config({"ro": [smtp]}, health=health)
    (problem,) = raised.value.problems
    assert problem.startswith(f"noc.toml: {key}:"), problem
    assert words in problem


# -- the engine, rules and `noc check` (samples as the collectors make them) --------


def smtp_sample(engine: Engine, clock: FakeClock, check_id: str, **fields: Any) -> SmtpSample:
    target = next(t for t in engine.smtp_targets if t.check_id == check_id)
    values: dict[str, Any] = {
        "ok": True, "banner_code": 220, "tls_version": "TLSv1.3",
        "cert_not_after": clock.utcnow() + timedelta(days=80), "cert_days_left": 80.0,
        "phase_ms": (("connect", 0.4), ("banner", 3.0), ("ehlo", 0.5), ("starttls", 6.1),
                     ("ehlo", 0.5), ("quit", 0.3)),
    } | fields  # fmt: skip
    return SmtpSample(
        target.check_id, target.region_id, clock.monotonic(), clock.utcnow(), **values
    )


def http_ok(target: CheckTarget, clock: FakeClock, days: float | None = None) -> CheckSample:
    return CheckSample(
        target.check_id, target.region_id, clock.monotonic(), clock.utcnow(), ok=True,
        status=200, latency_ms=12.0, cert_days_left=days,
        cert_not_after=None if days is None else clock.utcnow() + timedelta(days=days),
    )  # fmt: skip


def two_mx() -> NocConfig:
    return config(
        {
            "ro": [{"host": "mx1.ro.example.com"}, {"host": "mx2.ro.example.com"}],
            "bg": [{"host": "mx1.bg.example.com"}],
        },
        urls={"ro": "https://ro.test.example/health"},
    )


def rounds(engine: Engine, clock: FakeClock, count: int, **smtp: dict[str, Any]) -> None:
    for _ in range(count):
        for target in engine.targets:
            engine.ingest(http_ok(target, clock, 90.0 if target.region_id == "ro" else None))
        for target in engine.smtp_targets:
            engine.ingest_smtp(
                smtp_sample(engine, clock, target.check_id, **smtp.get(target.check_id, {}))
            )
        clock.advance(30)


def firing(engine: Engine) -> dict[str, tuple[Severity, str]]:
    engine.evaluate_alerts()
    return {
        a.key: (a.severity, a.summary) for a in engine.alerts.alerts() if a.state.value == "firing"
    }


def test_smtp_down_when_every_probe_of_a_region_fails_while_http_is_fine() -> None:
    clock = FakeClock()
    engine = Engine(two_mx(), clock)
    failing = {"ok": False, "banner_code": 421, "tls_version": None, "cert_days_left": None,
               "cert_not_after": None, "error": BANNER_421}  # fmt: skip
    rounds(engine, clock, 2, **{"ro/smtp0": failing})
    alerts = firing(engine)
    assert "smtp_down:ro" not in alerts  # one of two MX still takes mail
    rounds(engine, clock, 2, **{"ro/smtp0": failing, "ro/smtp1": failing})
    snapshot = engine.snapshot()
    ro = snapshot.regions[0]
    assert ro.health is Health.HEALTHY  # its HTTP checks answer...
    assert [p.health for p in ro.smtp] == [Health.DOWN, Health.DOWN]
    severity, summary = firing(engine)["smtp_down:ro"]  # ...but it takes no mail
    assert severity is Severity.CRITICAL
    assert summary == (
        "ro down for mail: every SMTP probe failing (mx1.ro.example.com:25: "
        "SMTP 421 4.3.2 service shutting down (banner))"
    )
    assert "smtp_down:bg" not in firing(engine)


def test_tls_broken_after_the_failure_threshold() -> None:
    clock = FakeClock()
    engine = Engine(two_mx(), clock)
    broken = {"ok": False, "tls_broken": True, "tls_version": None, "cert_days_left": None,
              "error": ProbeError(ErrorKind.TLS, "STARTTLS not offered")}  # fmt: skip
    rounds(engine, clock, 1, **{"bg/smtp0": broken})
    assert "tls_broken:bg/smtp0" not in firing(engine)  # one failed session is not a page
    rounds(engine, clock, 1, **{"bg/smtp0": broken})
    severity, summary = firing(engine)["tls_broken:bg/smtp0"]
    assert severity is Severity.CRITICAL
    assert summary == (
        "bg TLS broken on mx1.bg.example.com:25 (mx1.bg.example.com): tls: STARTTLS not offered"
    )


def test_cert_expiry_warns_then_is_critical_for_smtp_and_https() -> None:
    clock = FakeClock()
    engine = Engine(two_mx(), clock)
    rounds(engine, clock, 1, **{"ro/smtp0": {"cert_days_left": 12.4},
                                "bg/smtp0": {"cert_days_left": 3.0}})  # fmt: skip
    alerts = firing(engine)
    assert alerts["cert_expiry:ro/smtp0"] == (
        Severity.WARNING,
        "ro certificate of SMTP mx1.ro.example.com:25 expires in 12 days (< 21 days)",
    )
    assert alerts["cert_expiry:bg/smtp0"][0] is Severity.CRITICAL
    assert "cert_expiry:ro/0" not in alerts  # the HTTPS check has 90 days
    target = engine.targets[0]
    engine.ingest(http_ok(target, clock, days=-2.0))
    severity, summary = firing(engine)["cert_expiry:ro/0"]
    assert severity is Severity.CRITICAL
    assert summary == (
        "ro certificate of HTTPS https://ro.test.example/health expired 2 days ago (< 7 days)"
    )


def test_check_json_and_perf_data_carry_smtp_and_days_left() -> None:
    clock = FakeClock()
    engine = Engine(two_mx(), clock)
    rounds(engine, clock, 1)
    snapshot = engine.snapshot()
    report = report_json(snapshot)
    ro, bg = report["regions"]
    assert ro["checks"][0]["cert_days_left"] == 90.0
    assert bg["checks"][0]["cert_days_left"] is None  # plain HTTP
    probe = ro["smtp"][0]
    assert set(probe) == {
        "target", "ok", "health", "banner_code", "tls", "tls_version", "cert_not_after",
        "cert_days_left", "error", "phase_ms",
    }  # fmt: skip
    assert probe["target"] == "mx1.ro.example.com:25"
    assert (probe["ok"], probe["banner_code"], probe["tls"], probe["tls_version"]) == (
        True, 220, "starttls", "TLSv1.3",
    )  # fmt: skip
    assert probe["cert_days_left"] == 80.0 and probe["cert_not_after"].endswith("Z")
    assert probe["phase_ms"]["starttls"] == 6.1
    limits = PerfLimits(60, 0.001, 0.003, 21, 7)
    perf = [str(d) for d in perf_data(snapshot, limits)]
    assert "'ro smtp mx1.ro.example.com:25 cert days'=80;21:;7:" in perf
    assert "'ro ro.test.example/health cert days'=90;21:;7:" in perf
    assert not any("bg.test.example/health cert days" in d for d in perf)  # plain HTTP
    text = report_text(snapshot, limits)
    assert "    smtp mx1.ro.example.com:25  220, TLSv1.3, cert 80 d, 11 ms" in text


# -- HTTPS days left, from the real handshake ----------------------------------------


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_https_checks_report_their_certificate_days_left(
    transport: Any,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
    self_signed_tls: ssl.SSLContext,
) -> None:
    endpoint = await health_endpoint(ssl_context=self_signed_tls)
    collector = HttpHealthCollector(SystemClock(), transport=transport)
    try:
        check = CheckTarget("t/0", "t", "t", endpoint.url, verify_tls=False)
        sample = await collector.probe(check)
        plain = await health_endpoint()
        plain_sample = await collector.probe(CheckTarget("t/1", "t", "t", plain.url))
    finally:
        await collector.aclose()
    assert sample.ok, sample.error
    # The fixture's certificate lives 7 days from its making.
    assert sample.cert_days_left is not None and 6.9 < sample.cert_days_left <= 7.0
    assert plain_sample.ok and plain_sample.cert_days_left is None


# -- the scheduler, against real Postfix ----------------------------------------------


@pytest.fixture
def postfix_421() -> Iterator[PostfixServer]:
    postfix_binary()
    server = PostfixServer(
        main={
            "smtpd_delay_reject": "no",
            "smtpd_client_restrictions": "static:{421 4.3.2 service shutting down}",
        }
    )
    with server:
        yield server


@pytest.fixture
def postfix_tls(tmp_path: Path) -> Iterator[tuple[PostfixServer, str]]:
    postfix_binary()
    ca = trustme.CA()
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    with PostfixServer(tls=PostfixTls.issued(ca.issue_cert(MX)), hostname=MX) as server:
        yield server, str(ca_path)


async def test_noc_check_round_against_real_postfix(
    postfix_421: PostfixServer,
    postfix_tls: tuple[PostfixServer, str],
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    good, ca_path = postfix_tls
    ro, bg = await health_endpoint("ro"), await health_endpoint("bg")
    estate = config(
        {
            "ro": [{"host": "127.0.0.1", "port": postfix_421.port, "tls": "none"}],
            "bg": [{"host": "127.0.0.1", "port": good.port, "tls_name": MX, "ca_file": ca_path}],
        },
        urls={"ro": ro.url, "bg": bg.url},
    )
    scheduler = Scheduler(estate, SystemClock(), single_round=True)
    try:
        await scheduler.collect_once()
        snapshot = scheduler.snapshot()
    finally:
        await scheduler.stop()
    report = report_json(snapshot)
    ro_json, bg_json = report["regions"]
    assert ro_json["health"] == "healthy"  # HTTP answers
    (down,) = ro_json["smtp"]
    assert (down["ok"], down["health"], down["banner_code"]) == (False, "down", 421)
    assert down["error"].startswith("SMTP 421 4.3.2")
    (up,) = bg_json["smtp"]
    assert (up["ok"], up["health"], up["banner_code"]) == (True, "healthy", 220), up
    assert up["tls_version"] in ("TLSv1.2", "TLSv1.3") and up["cert_days_left"] > 21
    rules = {a["rule"] for a in report["alerts"] if a["state"] == "firing"}
    assert "smtp_down" in rules
    assert report["status"] == "CRITICAL" and "ro down for mail" in report["summary"]


async def test_a_slow_smtp_server_never_delays_http_checks(
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    """An SMTP server that accepts and says nothing holds its probe for the whole
    timeout; meanwhile the HTTP checks keep their own pace."""
    held = asyncio.Event()
    release = asyncio.Event()
    five_rounds = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.set()
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = await health_endpoint("ro")
    estate = config(
        {"ro": [{"host": "127.0.0.1", "port": port, "tls": "none", "timeout_seconds": 60}]},
        urls={"ro": endpoint.url},
        health={"interval_seconds": 0.05, "failure_threshold": 2},
    )
    http_samples = 0
    scheduler = Scheduler(estate, SystemClock())
    ingest = scheduler.engine.ingest

    def counting(sample: CheckSample) -> None:
        nonlocal http_samples
        if sample.check_id == "ro/0":
            http_samples += 1
            if http_samples >= 5:
                five_rounds.set()
        ingest(sample)

    scheduler.engine.ingest = counting  # type: ignore[method-assign]
    async with server:
        scheduler.start()
        try:
            await held.wait()
            await five_rounds.wait()
            # Five HTTP rounds came while the SMTP probe is still in its first session.
            (probe,) = scheduler.engine.snapshot().regions[0].smtp
            assert probe.last is None
        finally:
            release.set()
            await scheduler.stop()
