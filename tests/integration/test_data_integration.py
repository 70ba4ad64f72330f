"""Replication, suppression and deliverability, from collectors through rules to the
verdict: rules under a fake clock, then `noc check` and `noc sync` against real
redis-servers (a replicated pair for the link, one store per region)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from replication_fixtures import ReplicatedPair, replicated_pair_fixture  # noqa: F401
from support import REFUSED, REGIONS, estate_config, feed_round

from noc.audit import read_jsonl
from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.model import (
    AlertState,
    DeliverabilityCounts,
    DeliverabilitySample,
    LagBasis,
    LinkState,
    RegionDeliverability,
    ReplicationSample,
    Severity,
    SuppressionDivergence,
    SuppressionSample,
)
from noc.simulator import RedisServer
from noc_collectors.deliverability import minute_key
from noc_collectors.replication import RedisReplicationCollector


def with_data(config: NocConfig) -> NocConfig:
    data = config.model_dump(mode="json")
    data["replication"] = [
        {"data_class": "suppression", "source": "ro", "target": "bg", "url": "redis://127.0.0.1:1/0",
         "threshold_seconds": 60, "sustain_seconds": 60},
    ]  # fmt: skip
    return parse_config(data)


def lag(
    engine: Engine, clock: FakeClock, seconds: float | None, link: LinkState = LinkState.UP
) -> None:
    spec = engine.config.replication[0].spec()
    engine.ingest_replication(
        "suppression:ro>bg",
        ReplicationSample(
            spec, clock.monotonic(), clock.utcnow(), link, seconds, LagBasis.HEARTBEAT,
            lag_is_floor=link is LinkState.DOWN,
        ),
    )  # fmt: skip


def firing(engine: Engine) -> dict[str, Severity]:
    engine.evaluate_alerts()
    return {a.key: a.severity for a in engine.snapshot().alerts if a.state is AlertState.FIRING}


def test_lag_over_threshold_fires_only_after_the_sustain_window() -> None:
    clock = FakeClock()
    engine = Engine(with_data(estate_config()), clock)
    feed_round(engine, clock)  # alerts are judged once every check has answered
    for _ in range(6):
        lag(engine, clock, 95)
        assert "replication_lag:suppression:ro>bg" not in firing(engine)
        clock.advance(10)
    lag(engine, clock, 95)
    assert firing(engine)["replication_lag:suppression:ro>bg"] is Severity.WARNING
    history = engine.snapshot().replication[0].history
    assert [p.lag_seconds for p in history] == [95.0] * 7


def test_a_down_link_is_critical_and_says_lag_is_a_lower_bound() -> None:
    clock = FakeClock()
    engine = Engine(with_data(estate_config()), clock, single_round=True)
    feed_round(engine, clock)  # alerts are judged once every check has answered
    lag(engine, clock, 42, LinkState.DOWN)
    engine.evaluate_alerts()
    alert = next(a for a in engine.snapshot().alerts if a.rule == "replication_link_down")
    assert alert.severity is Severity.CRITICAL
    assert "lag at least 42 s and growing" in alert.summary


def test_unsynced_suppression_older_than_the_slo_and_complaints() -> None:
    clock = FakeClock()
    engine = Engine(estate_config(), clock, single_round=True)
    feed_round(engine, clock)  # alerts are judged once every check has answered
    engine.ingest_suppression(
        SuppressionSample(
            clock.monotonic(), clock.utcnow(), 3600, (),
            (SuppressionDivergence("ro", "bg", "unsubscribe", 12, 95.0),
             SuppressionDivergence("ro", "pa", "unsubscribe", 3, 20.0)),
            examined=100, truncated=False,
        )
    )  # fmt: skip
    engine.ingest_deliverability(
        DeliverabilitySample(
            clock.monotonic(), clock.utcnow(), 60, clock.utcnow(),
            (RegionDeliverability("ro", DeliverabilityCounts(10000, 9800, 50, 20, 5)),
             RegionDeliverability("pa", DeliverabilityCounts(1000, 980, 5, 2, 4))),
            DeliverabilityCounts(11000, 10780, 55, 22, 9), (),
        )
    )  # fmt: skip
    alerts = firing(engine)
    assert alerts["suppression_unsynced:unsubscribe:ro>bg"] is Severity.CRITICAL
    assert "suppression_unsynced:unsubscribe:ro>pa" not in alerts  # 20 s is within the SLO
    assert alerts["complaint_rate:pa"] is Severity.CRITICAL  # 4/980 = 0.41 %
    assert "complaint_rate:ro" not in alerts  # 5/9800 = 0.05 %
    assert "complaint_rate:estate" not in alerts  # 9/10780 = 0.08 %


def test_a_down_region_inhibits_its_own_sync_alert() -> None:
    clock = FakeClock()
    engine = Engine(estate_config(), clock, single_round=True)
    feed_round(engine, clock)  # alerts are judged once every check has answered
    feed_round(engine, clock, {"bg": REFUSED})
    engine.ingest_suppression(
        SuppressionSample(
            clock.monotonic(), clock.utcnow(), 3600, (),
            (SuppressionDivergence("ro", "bg", "unsubscribe", 12, 95.0),), 100, False,
        )
    )  # fmt: skip
    engine.evaluate_alerts()
    sync = next(a for a in engine.snapshot().alerts if a.rule == "suppression_unsynced")
    assert sync.inhibited_by == "region_down:bg"


# --- against real servers -------------------------------------------------------


@pytest.fixture
def estate(
    tmp_path: Path,
    replicated_pair: ReplicatedPair,
    redis_servers: Callable[..., list[RedisServer]],
) -> dict[str, Any]:
    bg, pa = redis_servers(2)
    stores = {"ro": replicated_pair.source.url, "bg": bg.url, "pa": pa.url}
    lines = ['[estate]\nname = "data-test"\n', "[health]\ntimeout_seconds = 1\n"]
    for rid, name, role, location in REGIONS:
        lines.append(
            f'[[regions]]\nid = "{rid}"\nname = "{name}"\nrole = "{role}"\n'
            f'location = [{location[0]}, {location[1]}]\nredis_url = "{stores[rid]}"\n'
        )
    lines.append(
        '[[replication]]\ndata_class = "suppression"\nsource = "ro"\ntarget = "bg"\n'
        f'url = "{replicated_pair.replica.url}"\nthreshold_seconds = 30\n'
    )
    path = tmp_path / "noc.toml"
    path.write_text("\n".join(lines))
    return {"path": path, "stores": stores, "pair": replicated_pair, "state": tmp_path / "state"}


def seed(stores: dict[str, str]) -> None:
    now = time.time()
    ro = redis.Redis.from_url(stores["ro"])
    ro.zadd("suppression:unsubscribe", {f"h{i}": now - 100 - i for i in range(5)})
    ro.zadd("suppression:complaint", {"c1": now - 10})
    minute = minute_key("deliverability:{event}:{minute}", "sent", datetime.now(UTC))
    for region, (sent, delivered, complaint) in {
        "ro": (10000, 9800, 3),
        "pa": (500, 490, 5),
    }.items():
        client = redis.Redis.from_url(stores[region])
        for event, count in (("sent", sent), ("delivered", delivered), ("complaint", complaint)):
            client.set(minute.replace(":sent:", f":{event}:"), count)


async def noc(estate: dict[str, Any], *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    env["XDG_STATE_HOME"] = str(estate["state"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", *args, "--config", str(estate["path"]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_json_reports_lag_sync_and_deliverability(estate: dict[str, Any]) -> None:
    seed(estate["stores"])
    code, out, err = await noc(estate, "check", "--json")
    report = json.loads(out)
    link = report["replication"][0]
    assert link["link"] == "up" and link["data_class"] == "suppression"
    assert link["lag_seconds"] is not None and link["lag_seconds"] < 30
    assert link["offset_lag_bytes"] is not None and link["threshold_seconds"] == 30
    unsynced = {(p["source"], p["target"], p["list"]): p for p in report["suppression"]}
    assert unsynced[("ro", "bg", "unsubscribe")]["unsynced"] == 5
    assert unsynced[("ro", "bg", "unsubscribe")]["oldest_unsynced_age_seconds"] > 100
    regions = {r["id"]: r for r in report["deliverability"]["regions"]}
    assert regions["pa"]["complaint_rate"] == pytest.approx(5 / 490)
    assert report["deliverability"]["window_minutes"] == 60
    rules = {a["rule"] for a in report["alerts"] if a["state"] == "firing"}
    assert {"suppression_unsynced", "complaint_rate"} <= rules
    assert {"id", "rule", "severity", "state", "region", "summary", "since"} <= report["alerts"][
        0
    ].keys()
    assert code == 2, out + err


async def test_sync_now_copies_what_is_missing_and_is_audited(estate: dict[str, Any]) -> None:
    seed(estate["stores"])
    code, out, _ = await noc(estate, "sync", "--from", "ro", "--to", "bg")
    assert code == 0, out
    assert "5 entries copied" in out or "6 entries copied" in out
    bg = redis.Redis.from_url(estate["stores"]["bg"])
    ro = redis.Redis.from_url(estate["stores"]["ro"])
    assert bg.zrange("suppression:unsubscribe", 0, -1, withscores=True) == ro.zrange(
        "suppression:unsubscribe", 0, -1, withscores=True
    )
    again_code, again, _ = await noc(estate, "sync", "--from", "ro", "--to", "bg")
    assert again_code == 0 and "0 entries copied" in again
    every = read_jsonl(estate["state"] / "noc" / "data-test" / "audit.jsonl").records
    # Each copy announces itself first (sync_intent), then says what it copied.
    assert [r["event"] for r in every] == ["sync_intent", "sync", "sync_intent", "sync"]
    records = [r for r in every if r["event"] == "sync"]
    assert records[0]["lists"]["unsubscribe"]["copied"] == 5
    code, out, _ = await noc(estate, "check", "--json")
    pairs = {(p["source"], p["target"], p["list"]): p for p in json.loads(out)["suppression"]}
    assert pairs[("ro", "bg", "unsubscribe")]["unsynced"] == 0
    bad, _, err = await noc(estate, "sync", "--from", "ro", "--to", "xx")
    assert bad == 3 and "no region 'xx'" in err


async def test_a_broken_link_is_reported_down_and_critical(estate: dict[str, Any]) -> None:
    estate["pair"].source.stop()
    code, out, _ = await noc(estate, "check", "--json")
    report = json.loads(out)
    assert report["replication"][0]["link"] == "down"
    assert any(a["rule"] == "replication_link_down" for a in report["alerts"])
    assert code == 2


async def test_a_cut_link_goes_pending_then_fires_after_the_window(
    replicated_pair: ReplicatedPair,
) -> None:
    """Real servers at the edge, the engine on a fake clock: stop the master, and the
    link-down alert is pending until the sustain window has passed, then fires."""
    clock = FakeClock()
    data = with_data(estate_config()).model_dump(mode="json")
    data["replication"][0]["url"] = replicated_pair.replica.url
    data["regions"][0]["redis_url"] = replicated_pair.source.url
    config = parse_config(data)
    engine = Engine(config, clock)
    feed_round(engine, clock)  # alerts are judged once every check has answered
    link = config.replication[0]
    collector = RedisReplicationCollector(
        link.spec(), source_url=replicated_pair.source.url, clock=clock
    )
    try:
        engine.ingest_replication(link.link_id, await collector.poll())
        assert engine.snapshot().replication[0].last.link is LinkState.UP  # type: ignore[union-attr]
        replicated_pair.source.stop()
        states = []
        for _ in range(4):
            clock.advance(20)
            engine.ingest_replication(link.link_id, await collector.poll())
            engine.evaluate_alerts()
            alert = next(a for a in engine.snapshot().alerts if a.rule == "replication_link_down")
            states.append(alert.state)
        # The window starts when noc first sees the link down (the poll 20 s after the
        # cut): pending at 20, 40 and 60 s; 60 s later, at 80 s, it fires.
        assert states == [AlertState.PENDING] * 3 + [AlertState.FIRING]
    finally:
        await collector.aclose()
