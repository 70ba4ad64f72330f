"""The demo estate: three regions of real loopback servers, and a fault panel's hooks.

Each region has a /health endpoint (aiohttp) and a Redis store (redis-server).
Checks run every 2 s with a threshold of 3, so an injected fault turns a region
down in about 6 s: slow enough to watch, fast enough for a demo.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from noc.config import NocConfig, parse_config
from noc.model import Fault, Role
from noc.simulator.health_endpoint import EndpointMode, HealthEndpoint
from noc.simulator.redis_server import RedisServer, find_redis_server

__all__ = ["DEMO_REGIONS", "DemoEstate", "DemoRegion"]


@dataclass(frozen=True, slots=True)
class DemoRegion:
    id: str
    name: str
    role: Role
    location: tuple[float, float]


DEMO_REGIONS = (
    DemoRegion("ro", "Bucharest", Role.PRIMARY, (44.43, 26.10)),
    DemoRegion("bg", "Sofia", Role.SECONDARY, (42.70, 23.32)),
    DemoRegion("pa", "Panama City", Role.SECONDARY, (8.98, -79.52)),
)

_MODE_FOR_FAULT = {
    Fault.DOWN: EndpointMode.DOWN,
    Fault.SLOW: EndpointMode.SLOW,
    Fault.FLAP: EndpointMode.FLAP,
    Fault.GARBAGE: EndpointMode.GARBAGE,
    Fault.RESTORE: EndpointMode.HEALTHY,
}


class DemoEstate:
    """Starts the demo's servers and injects faults into them (a `FaultInjector`)."""

    def __init__(self, regions: Sequence[DemoRegion] = DEMO_REGIONS) -> None:
        self._regions = tuple(regions)
        self._endpoints: dict[str, HealthEndpoint] = {}
        self._stores: dict[str, RedisServer] = {}
        self._faults: dict[str, Fault] = {}
        self._config: NocConfig | None = None

    async def start(self) -> NocConfig:
        """Start every region's servers; raises RedisUnavailable if there is no redis-server."""
        if self._config is not None:
            return self._config
        # Fails fast, with the install hint, before anything is started.
        executable = await asyncio.to_thread(find_redis_server)
        for region in self._regions:
            self._endpoints[region.id] = HealthEndpoint(region.id)
            self._stores[region.id] = RedisServer(executable=executable)
        # Every start runs to its end before a failure is handled, so stop() below
        # finds nothing half-started.
        outcomes = await asyncio.gather(
            *(endpoint.start() for endpoint in self._endpoints.values()),
            *(store.astart() for store in self._stores.values()),
            return_exceptions=True,
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]
        self._config = parse_config(self._config_data(), "demo estate")
        return self._config

    async def stop(self) -> None:
        """Stop every server; idempotent."""
        endpoints, self._endpoints = self._endpoints, {}
        stores, self._stores = self._stores, {}
        self._faults.clear()
        self._config = None
        await asyncio.gather(
            *(endpoint.stop() for endpoint in endpoints.values()),
            *(store.astop() for store in stores.values()),
        )

    def region_ids(self) -> Sequence[str]:
        return [region.id for region in self._regions]

    def current_fault(self, region_id: str) -> Fault | None:
        return self._faults.get(region_id)

    async def inject(self, region_id: str, fault: Fault) -> None:
        await self.endpoint(region_id).set_mode(_MODE_FOR_FAULT[fault])
        if fault is Fault.RESTORE:
            self._faults.pop(region_id, None)
        else:
            self._faults[region_id] = fault

    def endpoint(self, region_id: str) -> HealthEndpoint:
        try:
            return self._endpoints[region_id]
        except KeyError:
            raise KeyError(f"no running demo region {region_id!r}") from None

    def store(self, region_id: str) -> RedisServer:
        try:
            return self._stores[region_id]
        except KeyError:
            raise KeyError(f"no running demo region {region_id!r}") from None

    def _config_data(self) -> dict[str, Any]:
        return {
            "estate": {"name": "demo-mail", "topology": "active-passive"},
            "health": {"interval_seconds": 2, "failure_threshold": 3, "timeout_seconds": 1},
            "regions": [
                {
                    "id": region.id,
                    "name": region.name,
                    "role": region.role.value,
                    "location": list(region.location),
                    "redis_url": self._stores[region.id].url,
                    "checks": [
                        {
                            "name": f"api.{region.id}.demo-mail /health",
                            "url": self._endpoints[region.id].url,
                            "body_contains": "healthy",
                        }
                    ],
                }
                for region in self._regions
            ],
        }
