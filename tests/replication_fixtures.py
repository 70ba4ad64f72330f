"""A real Redis source and its replica on loopback, linked with REPLICAOF.

- `replicated_pair`: a started `ReplicatedPair` whose link is up.
- `wait_for_link(replica, status)`: block until the replica reports that link status.

The servers come from noc.simulator's RedisServer, which already starts every
server with `--repl-diskless-sync-delay 0`: without it the first sync waits ~5 s.

Import the fixture into a test module, as tests/named.py's are:
`from replication_fixtures import replicated_pair_fixture  # noqa: F401`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from noc.simulator import RedisServer

LINK_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ReplicatedPair:
    source: RedisServer
    replica: RedisServer


def replication_info(server: RedisServer) -> dict[str, object]:
    with redis.Redis(port=server.port, socket_timeout=2, decode_responses=True) as client:
        info: dict[str, object] = client.info("replication")
        return info


def wait_for_link(replica: RedisServer, status: str, timeout: float = LINK_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = replication_info(replica)
        if info.get("master_link_status") == status:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"replica link never became {status}: {info}")
        time.sleep(0.01)


# Named apart from its function, so a module importing it can take it as a parameter
# without shadowing the import.
@pytest.fixture(name="replicated_pair")
def replicated_pair_fixture() -> Iterator[ReplicatedPair]:
    source = RedisServer()
    replica: RedisServer | None = None
    try:
        source.start()
        replica = RedisServer(["--replicaof", "127.0.0.1", str(source.port)])
        replica.start()
        wait_for_link(replica, "up")
        yield ReplicatedPair(source, replica)
    finally:
        if replica is not None:
            replica.stop()
        source.stop()
