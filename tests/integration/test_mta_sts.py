"""MTA-STS and DANE before a failover, against real servers.

A real named serves the domain's MX set, its `_mta-sts` TXT record and the MX hosts'
TLSA records; a real HTTPS server on loopback, with a certificate from a trustme test
CA, serves the policy file; a real Postfix offers STARTTLS with a certificate of the
same CA, which the TLSA records are compared with.

The estate: ro (active) and bg are in the policy (bg through `*.bg.example.test`) and
bg's TLSA record matches its certificate; pa's MX is outside the policy and its TLSA
record matches nothing. The live MX set names pa too: mta_sts_mismatch.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from named import NamedServer, Zone, named_servers  # noqa: F401
from postfix import PostfixServer, PostfixTls, free_port
from support import feed_flags

from noc.check import report_json
from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.failover import plan_action
from noc.model import ActionKind, AlertState, Severity, mx_matches
from noc.scheduler import Scheduler
from noc_collectors.mta_sts import parse_policy, parse_sts_txt, tlsa_matches

DOMAIN = "example.test"
OPERATOR = {"user": "op", "host": "noc1"}
POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mx.ro.example.test\r\n"
    "mx: *.bg.example.test\r\nmax_age: 86400\r\n"
)


def test_mx_patterns_follow_rfc_8461() -> None:
    assert mx_matches("mx.example.com", "MX.Example.com.")
    assert mx_matches("*.example.com", "mx1.example.com")
    # A wildcard stands for exactly one label, never none nor two.
    assert not mx_matches("*.example.com", "example.com")
    assert not mx_matches("*.example.com", "a.b.example.com")
    assert not mx_matches("*.example.com", "mx1.example.org")
    assert not mx_matches("", "mx.example.com")


@given(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True))
def test_a_wildcard_covers_every_single_label(label: str) -> None:
    assert mx_matches("*.bg.example.test", f"{label}.bg.example.test")
    assert not mx_matches("*.bg.example.test", f"{label}.x.bg.example.test")


def test_policy_and_txt_parsing() -> None:
    policy = parse_policy(POLICY)
    assert (policy.mode, policy.mx, policy.max_age) == (
        "enforce",
        ("mx.ro.example.test", "*.bg.example.test"),
        86400,
    )
    assert parse_sts_txt(["v=spf1 -all", "v=STSv1; id=20261203T1"]) == "20261203T1"
    assert parse_sts_txt(["v=spf1 -all"]) is None
    with pytest.raises(ValueError, match="2 v=STSv1"):
        parse_sts_txt(["v=STSv1; id=a", "v=STSv1; id=b"])
    with pytest.raises(ValueError, match="mode"):
        parse_policy("version: STSv1\nmode: strict\nmx: a\n")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def mx_cert(ca: trustme.CA) -> trustme.LeafCert:
    # Valid for bg's MX only: pa's SMTP probe of its own MX name finds the wrong name.
    return ca.issue_cert("mx.bg.example.test")


def spki_sha256(cert: trustme.LeafCert) -> str:
    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def test_tlsa_compares_with_the_certificate_as_dane_does(mx_cert: trustme.LeafCert) -> None:
    leaf = x509.load_pem_x509_certificate(mx_cert.cert_chain_pems[0].bytes())
    der = leaf.public_bytes(Encoding.DER)
    assert tlsa_matches([f"3 1 1 {spki_sha256(mx_cert)}"], [der])[0]
    assert tlsa_matches([f"3 0 1 {hashlib.sha256(der).hexdigest()}"], [der])[0]
    matches, reason = tlsa_matches(["3 1 1 " + "00" * 32], [der])
    assert matches is False and "no TLSA record matches" in reason


def test_a_dane_ta_record_is_judged_only_with_the_chain_above_the_leaf(
    ca: trustme.CA, mx_cert: trustme.LeafCert
) -> None:
    """DANE-TA (2) pins the issuing CA: with the leaf alone it can be neither matched
    nor refuted, and an unknown must not refuse a failover as a mismatch would."""
    leaf = x509.load_pem_x509_certificate(mx_cert.cert_chain_pems[0].bytes())
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    leaf_der, issuer_der = leaf.public_bytes(Encoding.DER), issuer.public_bytes(Encoding.DER)
    pin = hashlib.sha256(
        issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).hexdigest()
    assert tlsa_matches([f"2 1 1 {pin}"], [leaf_der, issuer_der])[0] is True
    matches, reason = tlsa_matches([f"2 1 1 {pin}"], [leaf_der])
    assert matches is None and "only the leaf" in reason
    # An end-entity pin is judged on the leaf alone, as before.
    assert tlsa_matches(["3 1 1 " + "00" * 32, f"2 1 1 {pin}"], [leaf_der])[0] is None
    assert tlsa_matches(["3 1 1 " + "00" * 32], [leaf_der])[0] is False


@pytest.fixture(scope="module")
def postfix(mx_cert: trustme.LeafCert) -> Iterator[PostfixServer]:
    with PostfixServer(tls=PostfixTls.issued(mx_cert)) as server:
        yield server


@pytest.fixture
async def policy_server(ca: trustme.CA) -> AsyncIterator[str]:
    """The policy over HTTPS on loopback; the URL noc is configured with."""

    async def policy(_: web.Request) -> web.Response:
        return web.Response(text=POLICY, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/mta-sts.txt", policy)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", f"mta-sts.{DOMAIN}").configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}/.well-known/mta-sts.txt"
    finally:
        await runner.cleanup()


def zone(mx_cert: trustme.LeafCert) -> Zone:
    return Zone(
        f"{DOMAIN}.",
        f"""$ORIGIN {DOMAIN}.
$TTL 60
@ SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 60 60 600 60
@ NS ns
ns A 127.0.0.1
@ MX 10 mx.ro
@ MX 20 mx.pa
_mta-sts TXT "v=STSv1; id=20261203"
mx.ro A 127.0.0.1
mx.bg A 127.0.0.1
mx.pa A 127.0.0.1
_25._tcp.mx.bg TLSA 3 1 1 {spki_sha256(mx_cert)}
_25._tcp.mx.pa TLSA 3 1 1 {"ab" * 32}
""",
    )


def estate(named: NamedServer, policy_url: str, ca_file: Path, mx_port: int) -> NocConfig:
    regions: list[dict[str, Any]] = [
        {
            "id": rid, "role": role, "mx_host": f"mx.{rid}.{DOMAIN}", "mx_port": mx_port,
            # Each region probes its MX under its MX name: the probe validates the
            # certificate's chain and name, as senders that apply MTA-STS do.
            "smtp": [{
                "host": "127.0.0.1", "port": mx_port, "tls": "starttls",
                "tls_name": f"mx.{rid}.{DOMAIN}", "ca_file": str(ca_file),
            }],
        }
        for rid, role in (("ro", "primary"), ("bg", "secondary"), ("pa", "secondary"))
    ]  # fmt: skip
    email = {
        "domain": DOMAIN,
        "resolver": named.address,
        "mta_sts": True,
        "mta_sts_policy_url": policy_url,
        "mta_sts_ca_file": str(ca_file),
    }
    return parse_config({"regions": regions, "email": email})


async def test_a_failover_to_an_mx_outside_the_policy_or_its_tlsa_is_refused(
    named_servers: Any,  # noqa: F811
    postfix: PostfixServer,
    policy_server: str,
    ca: trustme.CA,
    mx_cert: trustme.LeafCert,
    tmp_path: Path,
) -> None:
    named = named_servers([zone(mx_cert)])
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    config = estate(named, policy_server, ca_file, postfix.port)
    clock = FakeClock()
    scheduler = Scheduler(config, clock, single_round=True)
    try:
        await scheduler.collect_once()
        feed_flags(scheduler.engine, clock, "ro")
        snapshot = scheduler.snapshot()
    finally:
        await scheduler.stop()

    sample = snapshot.mta_sts
    assert sample is not None and sample.error is None
    assert (sample.policy_id, sample.mode) == ("20261203", "enforce")
    assert sample.live_mx == ("mx.pa.example.test", "mx.ro.example.test")
    bg_tlsa = sample.tlsa_for("mx.bg.example.test")
    assert bg_tlsa is not None and bg_tlsa.matches is True
    pa_tlsa = sample.tlsa_for("mx.pa.example.test")
    assert pa_tlsa is not None and pa_tlsa.matches is False

    # The live MX set names pa, which the enforced policy does not cover.
    mismatch = [a for a in snapshot.alerts if a.rule == "mta_sts_mismatch"]
    assert len(mismatch) == 1 and mismatch[0].state is AlertState.FIRING
    assert mismatch[0].severity is Severity.CRITICAL
    assert "mx.pa.example.test" in mismatch[0].summary
    assert report_json(snapshot)["mta_sts"]["mode"] == "enforce"

    to_bg = plan_action(snapshot, config, ActionKind.FAILOVER, "bg", OPERATOR)
    rules = {c.name: c for c in to_bg.checks}
    assert rules["MX in the MTA-STS policy"].ok
    assert rules["MX certificate matches DANE TLSA"].ok
    assert rules["MX certificate valid for its name"].ok, rules["MX certificate valid for its name"]

    to_pa = plan_action(snapshot, config, ActionKind.FAILOVER, "pa", OPERATOR)
    refused = {c.name: c for c in to_pa.failed}
    assert "MX in the MTA-STS policy" in refused
    assert "senders that enforce MTA-STS will refuse" in refused["MX in the MTA-STS policy"].detail
    assert "MX certificate matches DANE TLSA" in refused
    # Refused, and a break-glass override may bypass both (this estate has no flag
    # stores, whose own rule no override bypasses, so the plan stays refused here).
    assert refused["MX in the MTA-STS policy"].forceable
    assert refused["MX certificate matches DANE TLSA"].forceable
    # pa's MX presents a certificate for another name: MTA-STS senders refuse it too.
    wrong_name = refused["MX certificate valid for its name"]
    assert wrong_name.forceable and "mx.pa.example.test" in wrong_name.detail
    assert not to_pa.allowed
