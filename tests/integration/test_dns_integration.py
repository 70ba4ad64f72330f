"""DNS truth end to end: `noc check` against two real BIND servers, one honest and one
answering a value that belongs to no region, with SPF that forgets a region, a
reverse zone and a blocklist."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from named import NamedServer, Zone, named_servers  # noqa: F401

SOA = "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n"
KEY = (  # a whole 1024-bit RSA key: noc loads it as verifiers do
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDNLUbEW45rBZPPlfVHOLFdoNElVKtSOGpsYkyOmY/h"
    "1QQNaCcr4GrYm82sqDUl/30kdNQhmnKbj7eot9MX8ijrLgHfWls8Rn9wSL4DKNIyN6Scz2D7h63r1eyv"
    "5QUy8EOTPIbgz6I3685KJXgU+DdWwZZtLM76usr2t5jG0AO/mwIDAQAB"
)


def domain_zone(smtp_ip: str) -> str:
    return (
        SOA
        + f"smtp 60 A {smtp_ip}\n"
        + "@ 300 MX 10 mx.ro.example.test.\n"
        + "mx.ro A 192.0.2.10\nmx.bg A 198.51.100.10\n"
        # SPF covers ro's sending IP but forgets bg's: a failover to bg would fail SPF.
        + '@ TXT "v=spf1 ip4:192.0.2.20 -all"\n'
        + '_dmarc TXT "v=DMARC1; p=quarantine"\n'
        + f's1._domainkey TXT "v=DKIM1; k=rsa; p={KEY}"\n'
        + "mail-ro A 192.0.2.20\nmail-bg A 198.51.100.20\n"
    )


REVERSE_RO = SOA + "20 PTR mail-ro.example.test.\n"
REVERSE_BG = SOA + "20 PTR mail-bg.example.test.\n"
BLOCKLIST = SOA + "20.100.51.198 A 127.0.0.2\n" + '20.100.51.198 TXT "listed for a test"\n'


@pytest.fixture
def estate(tmp_path: Path, named_servers: Callable[..., NamedServer]) -> Path:  # noqa: F811
    honest = named_servers(
        [
            Zone("example.test", domain_zone("192.0.2.10")),
            Zone("2.0.192.in-addr.arpa", REVERSE_RO),
            Zone("100.51.198.in-addr.arpa", REVERSE_BG),
            Zone("bl.example.test", BLOCKLIST),
        ]
    )
    hijacked = named_servers([Zone("example.test", domain_zone("203.0.113.66"))])
    config = f"""
[estate]
name = "dns-test"
[health]
timeout_seconds = 1
[dns]
resolvers = ["{honest.address}", "{hijacked.address}"]
timeout_seconds = 1
  [[dns.records]]
  name = "smtp.example.test."
  type = "A"
  [[dns.records]]
  name = "example.test."
  type = "MX"
[email]
domain = "example.test"
dkim_selectors = ["s1"]
dnsbl_zones = ["bl.example.test"]
resolver = "{honest.address}"
[[regions]]
id = "ro"
role = "primary"
service_ips = ["192.0.2.10"]
mx_host = "mx.ro.example.test."
sending_ips = ["192.0.2.20"]
[[regions]]
id = "bg"
service_ips = ["198.51.100.10"]
mx_host = "mx.bg.example.test."
sending_ips = ["198.51.100.20"]
"""
    path = tmp_path / "noc.toml"
    path.write_text(config)
    return path


async def check(path: Path) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    env["XDG_STATE_HOME"] = str(path.parent / "state")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "noc", "check", "--json", "--config", str(path),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def test_check_reports_dns_truth_auth_and_blocklists(estate: Path) -> None:
    code, report = await check(estate)
    records = {(r["name"], r["type"], r["resolver"]): r for r in report["dns"]["records"]}
    honest, hijacked = (r["resolver"] for r in report["dns"]["records"][:2])
    smtp_honest = records[("smtp.example.test.", "A", honest)]
    assert smtp_honest["answers"] == ["192.0.2.10"] and smtp_honest["region"] == "ro"
    assert 0 < smtp_honest["ttl"] <= 60
    smtp_hijacked = records[("smtp.example.test.", "A", hijacked)]
    assert smtp_hijacked["region"] is None and smtp_hijacked["unexpected"] == ["203.0.113.66"]
    consensus = {(c["name"], c["type"]): c for c in report["dns"]["consensus"]}
    assert consensus[("smtp.example.test.", "A")] == {
        "name": "smtp.example.test.", "type": "A", "region": "ro", "share": "1/2",
    }  # fmt: skip
    assert consensus[("example.test.", "MX")]["region"] == "ro"
    assert consensus[("example.test.", "MX")]["share"] == "2/2"

    auth = {a["region"]: a for a in report["email_auth"]}
    assert auth["ro"]["spf"]["ok"] is True and auth["ro"]["ptr"]["ok"] is True
    assert auth["bg"]["spf"]["ok"] is False and "198.51.100.20" in auth["bg"]["spf"]["reason"]
    assert auth["bg"]["dmarc"]["policy"] == "quarantine" and auth["ro"]["dkim"]["ok"] is True

    listings = {(d["ip"], d["zone"]): d for d in report["dnsbl"]}
    assert listings[("198.51.100.20", "bl.example.test")]["listed"] is True
    assert listings[("192.0.2.20", "bl.example.test")]["listed"] is False

    firing = {a["rule"]: a for a in report["alerts"] if a["state"] == "firing"}
    assert "203.0.113.66" in firing["dns_hijack"]["summary"]
    assert firing["dns_hijack"]["severity"] == "critical"
    assert firing["email_auth"]["region"] == "bg" and "SPF" in firing["email_auth"]["summary"]
    assert firing["dnsbl_listed"]["region"] == "bg"
    assert "dns_disagree" in firing  # one round: no sustain window
    assert code == 2
    assert report["summary"].startswith("NOC CRITICAL - ")
