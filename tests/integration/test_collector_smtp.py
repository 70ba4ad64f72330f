"""The SMTP probe against real Postfix instances (tests/postfix.py), with certificates
from a test CA (trustme): a good session, and each fault the issue names."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from postfix import PostfixServer, PostfixTls, postfix_binary

from noc.clock import SystemClock
from noc.model import ErrorKind, SmtpTarget, SmtpTls
from noc_collectors.smtp import SmtpCollector

MX = "mx1.ro.test.example"

StartPostfix = Callable[..., PostfixServer]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def start_postfix() -> Iterator[StartPostfix]:
    postfix_binary()
    started: list[PostfixServer] = []

    def start(
        main: Mapping[str, str] | None = None, tls: PostfixTls | None = None
    ) -> PostfixServer:
        server = PostfixServer(None, dict(main or {}), tls, MX)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def leaf(ca: trustme.CA, *names: str, not_after: datetime | None = None) -> PostfixTls:
    cert = ca.issue_cert(
        *(names or (MX,)),
        not_before=datetime.now(UTC) - timedelta(days=30) if not_after else None,
        not_after=not_after,
    )
    return PostfixTls.issued(cert)


def ca_file(ca: trustme.CA, directory: Path) -> str:
    path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def target(server: PostfixServer, tls: SmtpTls, ca_path: str | None, **kw: object) -> SmtpTarget:
    base = SmtpTarget(
        check_id="ro/smtp0",
        region_id="ro",
        host="127.0.0.1",
        port=server.port,
        tls=tls,
        tls_name=MX,
        ehlo="noc.test.example",
        timeout_seconds=5.0,
        ca_file=ca_path,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


async def test_starttls_session_reports_version_certificate_and_phases(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    server = start_postfix(tls=leaf(ca))
    sample = await SmtpCollector().probe(target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path)))
    assert sample.ok, sample.error
    assert sample.banner_code == 220
    assert sample.tls_version in ("TLSv1.2", "TLSv1.3")
    assert not sample.tls_broken
    assert sample.cert_not_after is not None and sample.cert_days_left is not None
    assert sample.cert_days_left > 30  # trustme's default leaf lives for years
    assert [phase for phase, _ in sample.phase_ms] == [
        "connect", "banner", "ehlo", "starttls", "ehlo", "quit",
    ]  # fmt: skip
    assert all(ms >= 0 for _, ms in sample.phase_ms)
    # The session ended with QUIT, as Postfix saw it.
    await asyncio.sleep(0.2)
    assert "quit=1" in server.log()


async def test_probe_after_probe_over_starttls(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    """One collector, sessions back to back: each TLS transport closes on its own
    time, and the next probe's socket must not be refused for the descriptor it
    reuses (closing the socket under a live transport did exactly that)."""
    server = start_postfix(tls=leaf(ca))
    collector = SmtpCollector()
    probe = target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path))
    samples = [await collector.probe(probe) for _ in range(40)]
    assert all(sample.ok for sample in samples), [s.error for s in samples]


async def test_a_421_banner_is_a_failure_with_its_code_and_text(
    start_postfix: StartPostfix,
) -> None:
    server = start_postfix(
        main={
            "smtpd_delay_reject": "no",
            "smtpd_client_restrictions": "static:{421 4.3.2 service shutting down}",
        }
    )
    sample = await SmtpCollector().probe(target(server, SmtpTls.NONE, None))
    assert not sample.ok
    assert sample.banner_code == 421
    assert sample.error is not None and sample.error.kind is ErrorKind.SMTP_STATUS
    assert str(sample.error).startswith("SMTP 421 4.3.2")
    assert "service shutting down" in str(sample.error)
    assert not sample.tls_broken
    assert not sample.error.unreachable  # the server answered: it is down, not unreachable


async def test_starttls_not_offered_is_tls_broken_when_required_only(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    server = start_postfix(main={"smtpd_tls_security_level": "none"})
    collector = SmtpCollector()
    required = await collector.probe(target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path)))
    assert not required.ok and required.tls_broken
    assert str(required.error) == "tls: STARTTLS not offered"
    assert required.banner_code == 220

    optional = await collector.probe(target(server, SmtpTls.OPTIONAL, ca_file(ca, tmp_path)))
    assert optional.ok, optional.error
    assert optional.tls_version is None and optional.cert_days_left is None


async def test_an_untrusted_chain_fails_the_handshake(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    server = start_postfix(tls=leaf(ca))
    stranger = trustme.CA()  # the probe trusts another CA than the server's
    sample = await SmtpCollector().probe(
        target(server, SmtpTls.STARTTLS, ca_file(stranger, tmp_path))
    )
    assert not sample.ok and sample.tls_broken
    assert sample.error is not None and sample.error.kind is ErrorKind.TLS
    assert "certificate verify failed" in sample.error.detail


async def test_a_handshake_the_server_cannot_complete_is_tls_broken(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    # Postfix offers STARTTLS but may only speak TLS 1.0, which the probe refuses.
    server = start_postfix(
        tls=leaf(ca),
        main={"smtpd_tls_protocols": ">=TLSv1, <=TLSv1", "smtpd_tls_mandatory_protocols": ""},
    )
    sample = await SmtpCollector().probe(target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path)))
    assert not sample.ok and sample.tls_broken, sample
    assert sample.error is not None and sample.error.kind in (ErrorKind.TLS, ErrorKind.PROTOCOL)


async def test_a_certificate_for_another_name_fails(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    server = start_postfix(tls=leaf(ca, "mx9.elsewhere.example"))
    sample = await SmtpCollector().probe(target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path)))
    assert not sample.ok and sample.tls_broken
    assert sample.error is not None
    assert "certificate verify failed" in sample.error.detail
    assert MX in sample.error.detail or "mismatch" in sample.error.detail.lower()


async def test_an_expired_certificate_fails(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    expired = datetime.now(UTC) - timedelta(days=2)
    server = start_postfix(tls=leaf(ca, not_after=expired))
    sample = await SmtpCollector().probe(target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path)))
    assert not sample.ok and sample.tls_broken
    assert sample.error is not None and "expired" in sample.error.detail
    # Read by a second, unverified look: by how much it expired.
    assert sample.cert_not_after is not None
    assert sample.cert_days_left is not None and -2.05 <= sample.cert_days_left <= -1.95


async def test_an_expiring_certificate_reports_its_days_left(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5, hours=1)
    server = start_postfix(tls=leaf(ca, not_after=soon))
    sample = await SmtpCollector(SystemClock()).probe(
        target(server, SmtpTls.STARTTLS, ca_file(ca, tmp_path))
    )
    assert sample.ok, sample.error
    assert sample.cert_not_after == soon
    assert sample.cert_days_left is not None and 5.0 <= sample.cert_days_left <= 5.05


async def test_implicit_tls_is_verified_against_tls_name(
    start_postfix: StartPostfix, ca: trustme.CA, tmp_path: Path
) -> None:
    tls = replace(leaf(ca), implicit=True)
    server = start_postfix(tls=tls)
    sample = await SmtpCollector().probe(target(server, SmtpTls.IMPLICIT, ca_file(ca, tmp_path)))
    assert sample.ok, sample.error
    assert sample.tls_version is not None and sample.cert_days_left is not None
    assert [phase for phase, _ in sample.phase_ms][:2] == ["connect", "tls+banner"]


async def test_a_closed_port_is_refused_and_unreachable() -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    probe = SmtpTarget("ro/smtp0", "ro", "127.0.0.1", port, SmtpTls.NONE, MX, "noc")
    sample = await SmtpCollector().probe(probe)
    assert sample.error is not None and sample.error.kind is ErrorKind.REFUSED
    assert sample.error.unreachable


async def test_a_silent_server_times_out_within_the_probe_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        probe = SmtpTarget(
            "ro/smtp0", "ro", "127.0.0.1", port, SmtpTls.NONE, MX, "noc", timeout_seconds=0.3
        )
        sample = await SmtpCollector().probe(probe)
    assert sample.error is not None and sample.error.kind is ErrorKind.TIMEOUT
    assert sample.error.detail == "no answer to banner within 0.3 s"


async def test_probes_of_one_host_never_overlap() -> None:
    """Two targets on the same host (25 and 587, say) take turns; each session is
    seen whole by the server before the next one opens."""
    open_sessions = 0
    most = 0

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_sessions, most
        open_sessions += 1
        most = max(most, open_sessions)
        try:
            writer.write(b"220 slow ESMTP\r\n")
            await asyncio.sleep(0.05)
            while line := await reader.readline():
                verb = line[:4].upper()
                writer.write(b"250 ok\r\n" if verb != b"QUIT" else b"221 bye\r\n")
                await writer.drain()
                if verb == b"QUIT":
                    break
        finally:
            open_sessions -= 1
            writer.close()

    server = await asyncio.start_server(smtp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        collector = SmtpCollector()
        probes = [
            SmtpTarget(f"ro/smtp{i}", "ro", "127.0.0.1", port, SmtpTls.NONE, MX, "noc")
            for i in range(4)
        ]
        samples = await asyncio.gather(*(collector.probe(p) for p in probes))
    assert all(s.ok for s in samples), samples
    assert most == 1
