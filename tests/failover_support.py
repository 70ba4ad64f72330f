"""What the failover tests share: a zone on a real BIND with TSIG, an estate config
whose DNS actuator points at it, and an Estate that plans and runs actions through
the real actuators. The fixtures (`dns_primary`, `region_stores`) are in conftest.py."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from named import NamedServer, TsigKey
from support import estate_config, feed_round, stored_flag, until  # noqa: F401 (re-exported)

from noc.app import NocApp
from noc.audit import JsonlLog, read_jsonl
from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.failover import execute, gather_facts, plan_action, verify
from noc.model import ActionKind, ActionPlan, ActionResult
from noc.recovery import STEP_EVENTS
from noc.scheduler import Scheduler
from noc.simulator import RedisServer
from noc_collectors.dns_records import parse_resolver, query
from noc_collectors.dns_update import DnsUpdater

KEY = TsigKey("noc-failover", base64.b64encode(secrets.token_bytes(32)).decode())
DOMAIN = "mail.test"
SMTP = f"smtp.{DOMAIN}"
ZONE_TEXT = (
    "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
    "smtp 60 A 192.0.2.10\n"
    f"@ 300 MX 10 mx.ro.{DOMAIN}.\n"
    "mx.ro A 192.0.2.10\nmx.bg A 192.0.2.20\nmx.pa A 192.0.2.30\n"
)
OPERATOR = {"operator": "op@test"}
FLAG_KEY = "noc:failover"
LOCK_KEY = "noc:failover:lock"


def failover_config(
    named: NamedServer, stores: dict[str, RedisServer], *, secret: str = KEY.secret, **extra: Any
) -> NocConfig:
    data = estate_config({rid: s.url for rid, s in stores.items()}).model_dump(mode="json")
    data["dns"] = {
        "resolvers": [named.address],
        "records": [{"name": SMTP, "type": "A"}, {"name": DOMAIN, "type": "MX"}],
    }
    for region, octet in zip(data["regions"], (10, 20, 30), strict=True):
        region["service_ips"] = [f"192.0.2.{octet}"]
        region["mx_host"] = f"mx.{region['id']}.{DOMAIN}."
    dns = {"server": named.address, "zone": DOMAIN, "key_name": KEY.name, "key_secret": secret}
    data["failover"] = {"store_timeout_seconds": 1, "dns": dns, **extra.pop("failover", {})}
    return parse_config({**data, **extra})


@dataclass
class Estate:
    config: NocConfig
    scheduler: Scheduler
    clock: FakeClock
    audit: JsonlLog
    named: NamedServer
    stores: dict[str, RedisServer]

    async def plan(
        self, kind: ActionKind = ActionKind.FAILOVER, target: str = "bg", *, force: bool = False
    ) -> ActionPlan:
        await self.scheduler.read_flags()
        facts = await gather_facts(self.config, self.scheduler.actuators, kind)
        snapshot = self.scheduler.snapshot()
        return plan_action(
            snapshot,
            self.config,
            kind,
            target,
            OPERATOR,
            facts,
            force=force,
            now=self.clock.utcnow(),
        )

    async def run(self, plan: ActionPlan, reason: str = "drill") -> ActionResult:
        at = self.clock.monotonic()
        actuators = self.scheduler.actuators
        result = await execute(plan, reason, actuators, self.audit, self.clock, confirmed_at=at)
        return await verify(
            result, actuators, self.audit, self.clock, reason=reason, confirmed_at=at
        )

    def updater(self) -> DnsUpdater:
        """Someone else's hand on the zone: changes made behind noc's back."""
        return DnsUpdater(parse_resolver(self.named.address), DOMAIN, KEY.name, KEY.secret)

    def flag(self, region: str) -> dict[str, str]:
        return stored_flag(self.stores[region])

    def lock(self, region: str) -> str | None:
        client = redis.Redis.from_url(self.stores[region].url, decode_responses=True)
        try:
            return client.get(LOCK_KEY)  # type: ignore[return-value]
        finally:
            client.close()

    async def records(self) -> dict[str, tuple[tuple[str, ...], int | None]]:
        found = {}
        for name, rtype in ((SMTP, "A"), (DOMAIN, "MX")):
            answer = await query(parse_resolver(self.named.address), name, rtype, 2.0)
            values = tuple(sorted(r.to_text().rstrip(".") for r in answer.records))
            found[rtype] = (values, answer.ttl)
        return found

    def events(self) -> list[str]:
        return [
            r["event"] for r in read_jsonl(self.audit.path).records if r["event"] not in STEP_EVENTS
        ]


ORIGINAL = {"A": (("192.0.2.10",), 60), "MX": ((f"10 mx.ro.{DOMAIN}",), 300)}
MOVED = {"A": (("192.0.2.20",), 60), "MX": ((f"10 mx.bg.{DOMAIN}",), 300)}


def make_failover_app(
    tmp_path: Path, named: NamedServer, stores: dict[str, RedisServer], **options: Any
) -> tuple[NocApp, FakeClock, Estate]:
    """The dashboard on the failover estate, its engine fed one healthy round."""
    config = failover_config(named, stores, **options)
    clock = FakeClock()
    app = NocApp(config, clock=clock, start_polling=False, state_path=tmp_path)
    feed_round(app.scheduler.engine, clock)
    return app, clock, Estate(config, app.scheduler, clock, app.audit, named, stores)


def audit_events(path: Path) -> list[str]:
    records = read_jsonl(path / "audit.jsonl").records
    return [r["event"] for r in records if r["event"] not in STEP_EVENTS]
