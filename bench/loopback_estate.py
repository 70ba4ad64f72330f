"""Regions whose /health endpoints answer on loopback, and a noc.toml that watches them.

Shared by bench/paint_latency.py and bench/startup.py. Each endpoint is a plain
aiohttp handler that can be switched to answer 503, and remembers, per client
(the `client` query parameter), when it first answered 503 after the switch:
the moment a probe result exists that noc must paint.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

# Readable in a 200-column table and unique as bytes on the screen ("r07" is in no label).
REGION_ID = "r{:02d}"
# Where mail providers run datacentres (latitude, longitude), Europe's cluster included:
# on a map the labels must find room as they would for a real estate.
LOCATIONS = (
    (39.0, -77.5), (45.6, -121.2), (53.3, -6.3), (50.1, 8.7), (51.5, -0.1), (59.3, 18.1),
    (1.3, 103.8), (35.7, 139.7), (-33.9, 151.2), (19.1, 72.9), (-23.5, -46.6), (45.5, -73.6),
)  # fmt: skip


class Endpoints:
    """One aiohttp server answering GET /r01/health ... /rNN/health."""

    def __init__(self, regions: int) -> None:
        self.region_ids = [REGION_ID.format(number) for number in range(1, regions + 1)]
        self.failing: set[str] = set()
        # (region, client) -> time.monotonic() of the first 503 since the region failed.
        self.first_503: dict[tuple[str, str], float] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{region}/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail(self, region: str) -> None:
        self.failing.add(region)
        for key in [key for key in self.first_503 if key[0] == region]:
            del self.first_503[key]

    def heal(self, region: str) -> None:
        self.failing.discard(region)

    def url(self, region: str, client: str) -> str:
        return f"http://127.0.0.1:{self.port}/{region}/health?client={client}"

    async def _health(self, request: web.Request) -> web.Response:
        region = request.match_info["region"]
        if region in self.failing:
            key = (region, request.query.get("client", ""))
            self.first_503.setdefault(key, time.monotonic())
            return web.json_response({"status": "unavailable"}, status=503)
        return web.json_response({"status": "healthy", "region": region})


def estate(endpoints: Endpoints, client: str, *, interval: float = 1.0) -> dict[str, object]:
    """A configuration (as parsed TOML) with one check per region, down at one failure."""
    return {
        "estate": {"name": "bench"},
        "health": {
            "interval_seconds": interval,
            "failure_threshold": 1,
            "recovery_threshold": 1,
            "timeout_seconds": 1,
        },
        "regions": [
            {
                "id": region,
                "role": "primary" if number == 0 else "secondary",
                "location": list(LOCATIONS[number % len(LOCATIONS)]),
                "checks": [{"name": "health", "url": endpoints.url(region, client)}],
            }
            for number, region in enumerate(endpoints.region_ids)
        ],
    }


def write_toml(config: dict[str, object], path: Path) -> Path:
    """The few shapes estate() produces, as TOML (the standard library only reads it)."""
    lines: list[str] = []

    def value(item: object) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(part) for part in item) + "]"
        return '"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"'

    for section in ("estate", "health"):
        lines.append(f"[{section}]")
        table = config[section]
        assert isinstance(table, dict)
        lines.extend(f"{key} = {value(item)}" for key, item in table.items())
    regions = config["regions"]
    assert isinstance(regions, list)
    for region in regions:
        lines.append("[[regions]]")
        lines.extend(f"{k} = {value(v)}" for k, v in region.items() if k != "checks")
        for check in region["checks"]:
            lines.append("[[regions.checks]]")
            lines.extend(f"{k} = {value(v)}" for k, v in check.items())
    path.write_text("\n".join(lines) + "\n")
    return path
