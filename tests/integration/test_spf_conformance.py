"""The RFC 7208 test suite against noc's SPF evaluation, on a real named per scenario.

The suite (tests/data/rfc7208-tests.yml, from pyspf's sdist, with its licence) gives
for each test an IP, a MAIL FROM and a HELO name, and the result(s) a receiver may
return. noc asks exactly that question per sending IP, so each test is run through
`SpfEvaluator.check_host` with the test's own sender and HELO, over a named serving
the scenario's zone data as a root zone.

The suite's zone data, as named serves it:
- SPF (type 99) records are published as TXT too unless the name has TXT of its own,
  as the suite's own driver does (RFC 7208 dropped type 99); `TXT: NONE` means none.
- TIMEOUT: a name that must not answer. It gets a zone of its own that named cannot
  load, so named answers SERVFAIL for it: a DNS error, what a timeout is to SPF.
  A name whose TXT is given answers it (the suite's timeout is then for type 99,
  which noc never asks). A TIMEOUT name with other names under it stays absent:
  a broken zone would take its children down too (only `example.com` in "Initial
  processing", which no test asks).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import pytest
import yaml
from named import NamedServer, Zone
from paths import TESTS

from noc_collectors.dns_records import DnsAnswer, ResolverAddress, query
from noc_collectors.spf import SpfEvaluator

SUITE = TESTS / "data" / "rfc7208-tests.yml"


class SuiteNamed(NamedServer):
    """named as tests/named.py starts it, taking the suite's odd owner names."""

    def _config(self) -> str:
        return super()._config().replace("options {", "options {\n  check-names primary ignore;", 1)


@dataclass(frozen=True)
class Case:
    name: str
    host: str
    sender: str
    helo: str
    results: tuple[str, ...]


def scenarios() -> list[dict[str, Any]]:
    with SUITE.open("rb") as stream:
        return list(yaml.safe_load_all(stream))


def _quoted(text: str) -> str:
    """One TXT character-string in zone-file syntax, any byte escaped as \\DDD."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append(char if 0x20 < byte < 0x7F and char not in '"\\;()' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _txt(value: str | list[str]) -> str:
    strings = [value] if isinstance(value, str) else list(value)
    if not strings:
        return '""'
    chunks = []
    for text in strings:
        data = text
        # A character-string holds 255 octets: longer ones are split, as publishers do.
        while len(data.encode("utf-8")) > 255:
            chunks.append(_quoted(data[:200]))
            data = data[200:]
        chunks.append(_quoted(data))
    return " ".join(chunks)


def _owner(name: str) -> str | None:
    """`name` in zone-file syntax (odd characters escaped), None if DNS cannot hold it."""
    try:
        return dns.name.Name([label.encode() for label in name.split(".")] + [b""]).to_text()
    except dns.exception.DNSException:
        return None


def zones_for(zonedata: dict[str, list[Any]]) -> list[Zone]:
    lines = [
        "$TTL 300",
        ". SOA ns.invalid-root. hostmaster.invalid-root. 1 3600 600 86400 300",
        ". NS ns.invalid-root.",
        "ns.invalid-root. A 127.0.0.1",
    ]
    broken: list[Zone] = []
    names = {name.lower().rstrip(".") for name in zonedata}
    for owner, records in zonedata.items():
        name = owner.lower().rstrip(".")
        escaped = _owner(name)
        if escaped is None:
            continue  # longer than DNS allows: no test can reach it through a server
        entries = [r for r in records if isinstance(r, dict)]
        has_txt = any("TXT" in r for r in entries)
        txt_value = any("TXT" in r and r["TXT"] != "NONE" for r in entries)
        if "TIMEOUT" in records and not txt_value:
            if not any(other.endswith("." + name) for other in names):
                broken.append(Zone(name, "this zone does not load\n"))
            continue
        for record in entries:
            for rtype, value in record.items():
                if rtype in ("TXT", "SPF"):
                    if value == "NONE":
                        continue
                    lines.append(f"{escaped} {rtype} {_txt(value)}")
                    if rtype == "SPF" and not has_txt:
                        lines.append(f"{escaped} TXT {_txt(value)}")
                elif rtype == "MX":
                    preference, host = value
                    lines.append(f"{escaped} MX {preference} {host.rstrip('.') or ''}.")
                elif rtype in ("PTR", "CNAME"):
                    lines.append(f"{escaped} {rtype} {value.rstrip('.')}.")
                elif rtype in ("A", "AAAA"):
                    lines.append(f"{escaped} {rtype} {value}")
                else:
                    raise AssertionError(f"zone data type {rtype} not handled")
    return [Zone(".", "\n".join(lines) + "\n"), *broken]


def cases(scenario: dict[str, Any]) -> list[Case]:
    found = []
    for name, test in scenario["tests"].items():
        helo = str(test.get("helo", ""))
        sender = str(test.get("mailfrom", "") or "")
        # §4.3: an empty MAIL FROM is checked as postmaster@<HELO>.
        sender = sender or f"postmaster@{helo}"
        if "@" not in sender:
            sender = f"postmaster@{sender}"
        elif sender.startswith("@"):
            sender = "postmaster" + sender
        expected = test["result"]
        results = tuple(expected) if isinstance(expected, list) else (expected,)
        found.append(Case(name, str(test["host"]), sender, helo, results))
    return found


SCENARIOS = scenarios()


async def run_scenario(server: NamedServer, scenario: dict[str, Any]) -> list[tuple[Case, str]]:
    resolver = ResolverAddress("127.0.0.1", server.port)

    async def lookup(name: str, rdtype: str) -> DnsAnswer:
        return await query(resolver, name, rdtype, 2.0)

    evaluator = SpfEvaluator(lookup)
    outcomes = []
    for case in cases(scenario):
        ip = ipaddress.ip_address(case.host)
        domain = case.sender.rpartition("@")[2]
        outcome = await evaluator.check_host(ip, domain, case.sender, case.helo)
        outcomes.append((case, outcome.result.value))
    return outcomes


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[s["description"].replace(" ", "-") for s in SCENARIOS]
)
async def test_rfc7208_suite_scenario(scenario: dict[str, Any], tmp_path: Path) -> None:
    server = SuiteNamed(tmp_path, zones_for(scenario["zonedata"]))
    server.start()
    try:
        outcomes = await run_scenario(server, scenario)
    finally:
        server.stop()
    wrong = [
        f"{case.name}: noc {result}, suite {'/'.join(case.results)}"
        for case, result in outcomes
        if result not in case.results
    ]
    assert not wrong, "\n".join(wrong)
