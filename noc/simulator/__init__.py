"""The demo estate: simulated regions on loopback. Only `noc demo` and tests use this.

Product code never imports it (an import-linter contract says so); the app sees
the estate only through `noc.model.FaultInjector`.
"""

from noc.simulator.estate import DemoEstate
from noc.simulator.health_endpoint import EndpointMode, HealthEndpoint
from noc.simulator.redis_server import (
    RedisServer,
    RedisStartError,
    RedisUnavailable,
    find_redis_server,
)
from noc.simulator.relay import TcpRelay
from noc.simulator.traffic import TrafficTuning

__all__ = [
    "DemoEstate",
    "EndpointMode",
    "HealthEndpoint",
    "RedisServer",
    "RedisStartError",
    "RedisUnavailable",
    "TcpRelay",
    "TrafficTuning",
    "find_redis_server",
]
