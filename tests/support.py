"""Building blocks for tests: an estate config and a way to feed the engine samples.

Samples are the collectors' own types, so a test drives the app exactly as the
scheduler does, under a frozen clock (snapshots need a screen that does not move).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from textual import events
from textual.app import App
from textual.pilot import Pilot

from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.model import (
    AuthCheck,
    CheckSample,
    DeliverabilitySample,
    DmarcCheck,
    DnsblSample,
    DnsRecordSample,
    EmailAuthSample,
    ErrorKind,
    FailoverFlag,
    FailoverRecordType,
    FlagSample,
    LagBasis,
    LinkState,
    MtaSample,
    MtaStsSample,
    ProbeError,
    PtrCheck,
    RegionDeliverability,
    ReplicationSample,
    SuppressionCount,
    SuppressionDivergence,
    SuppressionSample,
)
from noc.model import (
    DeliverabilityCounts as Counts,
)
from noc.simulator import RedisServer

REGIONS = (
    ("ro", "Bucharest", "primary", (44.43, 26.10)),
    ("bg", "Sofia", "secondary", (42.70, 23.32)),
    ("pa", "Panama City", "secondary", (8.98, -79.52)),
)

REFUSED = ProbeError(ErrorKind.REFUSED, "connection refused")
TIMEOUT = ProbeError(ErrorKind.TIMEOUT, "no answer within 2.0 s")
HTTP_503 = ProbeError(ErrorKind.HTTP_STATUS, "503")


def estate_config(
    redis_urls: dict[str, str] | None = None,
    *,
    health: dict[str, Any] | None = None,
    urls: dict[str, str] | None = None,
    **sections: Any,
) -> NocConfig:
    """Three regions, two checks each; `sections` adds top-level sections ([ui], [keys])."""
    regions = []
    for rid, name, role, location in REGIONS:
        region: dict[str, Any] = {
            "id": rid,
            "name": name,
            "role": role,
            "location": list(location),
            "checks": [
                {"url": (urls or {}).get(rid, f"https://{rid}.mail.example.com/health")},
                {"url": f"https://smtp.{rid}.example.com/health", "name": f"smtp.{rid}"},
            ],
        }
        if redis_urls is None:
            region["redis_url"] = f"redis://127.0.0.1:{6390 + len(regions)}/0"
        elif rid in redis_urls:
            region["redis_url"] = redis_urls[rid]
        regions.append(region)
    return parse_config(
        {
            "estate": {"name": "mail-prod", "topology": "active-passive"},
            "health": health or {"interval_seconds": 30, "failure_threshold": 3},
            "regions": regions,
            **sections,
        }
    )


def feed_round(
    engine: Engine, clock: FakeClock, errors: dict[str, ProbeError] | None = None
) -> None:
    """One probe of every check (errors by check id or region id), then 30 s pass."""
    errors = errors or {}
    for target in engine.targets:
        error = errors.get(target.check_id) or errors.get(target.region_id)
        engine.ingest(
            CheckSample(
                check_id=target.check_id,
                region_id=target.region_id,
                at=clock.monotonic(),
                wall=clock.utcnow(),
                ok=error is None,
                status=503 if error is HTTP_503 else (None if error else 200),
                latency_ms=None if error and error is not HTTP_503 else 23.0 + len(target.check_id),
                error=error,
            )
        )
    clock.advance(30)


def feed_flags(
    engine: Engine,
    clock: FakeClock,
    active: str | dict[str, str] | None,
    unreachable: tuple[str, ...] = (),
) -> None:
    """What each store's flag says: one region for all, or a region per store."""
    for rid, *_ in REGIONS:
        says = active.get(rid) if isinstance(active, dict) else active
        flag = (
            FailoverFlag(says, "ro", "op@noc1", "drill", "2026-11-23T02:00:00Z") if says else None
        )
        engine.ingest_flag(
            FlagSample(
                store_region=rid,
                at=clock.monotonic(),
                wall=clock.utcnow(),
                reachable=rid not in unreachable,
                flag=None if rid in unreachable else flag,
                error="connection refused" if rid in unreachable else None,
            )
        )


def with_replication(config: NocConfig) -> NocConfig:
    """The estate plus two replication links of the suppression data class."""
    data = config.model_dump(mode="json")
    data["replication"] = [
        {"data_class": "suppression", "source": "ro", "target": target, "threshold_seconds": 60,
         "sustain_seconds": 60, "url": f"redis://127.0.0.1:{port}/0"}
        for target, port in (("bg", 6401), ("pa", 6402))
    ]  # fmt: skip
    return parse_config(data)


def feed_data(engine: Engine, clock: FakeClock) -> None:
    """An hour of lag history (bg ramps past its threshold; pa's link breaks), then
    suppression that bg lacks beyond the SLO and a complaint spike in pa."""
    bg, pa = (link.spec() for link in engine.config.replication)
    for minute in range(60):
        bg_lag = 5.0 if minute < 40 else 5.0 + (minute - 40) * 6
        pa_link = LinkState.DOWN if minute >= 55 else LinkState.UP
        pa_lag = 2.0 if pa_link is LinkState.UP else 30.0 + (minute - 55) * 60
        for link_id, spec, lag, link in (
            ("suppression:ro>bg", bg, bg_lag, LinkState.UP),
            ("suppression:ro>pa", pa, pa_lag, pa_link),
        ):
            engine.ingest_replication(
                link_id,
                ReplicationSample(
                    spec, clock.monotonic(), clock.utcnow(), link, lag, LagBasis.HEARTBEAT,
                    lag_is_floor=link is LinkState.DOWN, offset_lag_bytes=int(lag * 1200),
                ),
            )  # fmt: skip
        clock.advance(60)
        engine.evaluate_alerts()
    engine.ingest_suppression(
        SuppressionSample(
            clock.monotonic(), clock.utcnow(), 3600,
            tuple(SuppressionCount(r, name, 120_000 - (500 if r == "bg" else 0))
                  for r in ("ro", "bg", "pa") for name in ("unsubscribe", "complaint")),
            (SuppressionDivergence("ro", "bg", "unsubscribe", 37, 95.0, examined=812,
                                   examples=("9f2c…a1", "07be…3d")),
             SuppressionDivergence("ro", "pa", "unsubscribe", 0, None, examined=812),
             SuppressionDivergence("ro", "bg", "complaint", 2, 41.0, examined=64)),
            examined=1688, truncated=False,
        )
    )  # fmt: skip
    spike = tuple([1] * 50 + [9, 14, 22, 30, 31, 28, 35, 40, 38, 41])
    engine.ingest_deliverability(
        DeliverabilitySample(
            clock.monotonic(), clock.utcnow(), 60, clock.utcnow(),
            (RegionDeliverability("ro", Counts(182_000, 178_100, 900, 1_400, 60), (1,) * 60),
             RegionDeliverability("bg", Counts(24_000, 23_500, 110, 160, 9), (0,) * 60),
             RegionDeliverability("pa", Counts(9_000, 8_800, 60, 70, 300), spike)),
            Counts(215_000, 210_400, 1_070, 1_630, 369),
            tuple(a + b for a, b in zip((1,) * 60, spike, strict=True)),
        )
    )  # fmt: skip
    engine.evaluate_alerts()


def with_dns(config: NocConfig) -> NocConfig:
    """The estate plus failover records, three resolvers, a domain and a blocklist."""
    data = config.model_dump(mode="json")
    data["dns"] = {
        "resolvers": ["10.0.0.53", "10.0.1.53", "10.0.2.53"],
        "records": [{"name": "smtp.example.com.", "type": "A"},
                    {"name": "example.com.", "type": "MX"}],
    }  # fmt: skip
    data["email"] = {"domain": "example.com", "dkim_selectors": ["s1"], "dnsbl_zones": ["zen.test"]}
    for region, octet in zip(data["regions"], (10, 20, 30), strict=True):
        region["service_ips"] = [f"192.0.2.{octet}"]
        region["mx_host"] = f"mx.{region['id']}.example.com."
        region["sending_ips"] = [f"198.51.100.{octet}"]
    return parse_config(data)


def feed_dns(engine: Engine, clock: FakeClock) -> None:
    """smtp answered by ro on two resolvers and hijacked on the third; bg's mail would
    fail SPF after a failover, and bg's sending IP is listed."""
    when = (clock.monotonic(), clock.utcnow())
    answers = {
        "A": ("192.0.2.10", "192.0.2.10", "203.0.113.66"),
        "MX": ("10 mx.ro.example.com.",) * 3,
    }
    engine.ingest_dns(
        tuple(
            DnsRecordSample(
                record.name, FailoverRecordType(record.type), resolver, *when, (answer,), 41
            )
            for record in engine.config.dns.records
            for resolver, answer in zip(
                engine.config.dns.resolvers, answers[record.type], strict=True
            )
        )
    )
    ok, dmarc = AuthCheck(True, "pass"), DmarcCheck(True, "p=reject", "reject")
    spf = {"bg": AuthCheck(False, "198.51.100.20 not covered by SPF")}
    ptr = {"pa": PtrCheck(None, "timeout: no answer within 2.0 s")}
    engine.ingest_email_auth(
        tuple(
            EmailAuthSample(
                rid, *when, spf.get(rid, ok), ok, dmarc, ptr.get(rid, PtrCheck(True, "ok"))
            )
            for rid, *_ in REGIONS
        )
    )
    listings = {
        "ro": (False, None, "not listed"),
        "bg": (True, "127.0.0.2", "SBL: Spamhaus block list; listed for a test"),
        "pa": (None, "127.255.255.254", "query refused: public resolver"),
    }
    engine.ingest_dnsbl(
        tuple(
            DnsblSample(f"198.51.100.{octet}", rid, "zen.test", *when, *listings[rid])
            for (rid, *_), octet in zip(REGIONS, (10, 20, 30), strict=True)
        )
    )
    engine.evaluate_alerts()


def with_mail(config: NocConfig) -> NocConfig:
    """The estate plus an MTA exporter per region and the domain's MTA-STS policy."""
    data = with_dns(config).model_dump(mode="json")
    for region in data["regions"]:
        region["mta"] = {
            "metrics_url": f"http://mx.{region['id']}.example.com:9154/metrics",
            "queue_depth_threshold": 500,
            "rejections_per_minute_threshold": 60,
            # Fires on the first read: a snapshot's clock stands still.
            "backlog_sustain_seconds": 0,
        }
    data["email"]["mta_sts"] = True
    return parse_config(data)


def feed_mail(engine: Engine, clock: FakeClock) -> None:
    """ro (active) drains normally; bg holds a growing queue past its threshold and
    rejects a spike of 5xx; pa's exporter does not answer. The policy covers ro and
    bg, not pa: a failover to pa would be refused."""
    when = (clock.monotonic(), clock.utcnow())
    engine.ingest_mta(MtaSample("ro", *when, 2, 7, 0, 1_020.0, True, {"4xx": 1.0, "5xx": 3.0}))
    engine.ingest_mta(
        MtaSample("bg", *when, 1, 420, 380, 5_400.0, True, {"4xx": 58.0, "5xx": 412.0})
    )
    engine.ingest_mta(
        MtaSample(
            "pa", *when, error="GET http://mx.pa.example.com:9154/metrics: connection refused"
        )
    )
    engine.ingest_mta_sts(
        MtaStsSample(
            "example.com",
            *when,
            policy_id="20261203T1",
            mode="enforce",
            mx_patterns=("mx.ro.example.com", "*.bg.example.com"),
            live_mx=("mx.ro.example.com",),
        )
    )
    # Pending at the first evaluation, firing at the next (its sustain is 0).
    engine.evaluate_alerts()
    engine.evaluate_alerts()


def stored_flag(server: RedisServer, key: str = "noc:failover") -> dict[str, str]:
    """The failover flag as one region's store holds it, read directly."""
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        return client.hgetall(key)  # type: ignore[return-value]
    finally:
        client.close()


# A bound on waiting for what must happen (a worker's result, a dialog): wide, so that a
# busy machine cannot fail a test; never a limit on how fast anything is.
WAIT_SECONDS = 60.0


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str = "") -> None:
    """Let the app run until `condition` holds; fail, naming `what`, if it never does."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {WAIT_SECONDS:.0f} s: {what or condition}")
        await pilot.pause(0.02)


def burst(app: App[Any], keys: list[str]) -> None:
    """Keys as a terminal delivers a fast typist's burst: all queued, none awaited."""
    assert app._driver is not None
    characters = {"tab": "\t", "enter": "\r", " ": " "}
    for typed in keys:
        key = "space" if typed == " " else typed
        event = events.Key(key, characters.get(typed, typed if len(typed) == 1 else None))
        event.set_sender(app)
        app._driver.send_message(event)
