"""Building blocks for tests: an estate config and a way to feed the engine samples.

Samples are the collectors' own types, so a test drives the app exactly as the
scheduler does, under a frozen clock (snapshots need a screen that does not move).
"""

from __future__ import annotations

from typing import Any

from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.model import CheckSample, ErrorKind, FailoverFlag, FlagSample, ProbeError

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
