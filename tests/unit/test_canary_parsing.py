"""What a canary's headers tell: Authentication-Results (RFC 8601's own examples,
Appendix B), the DKIM selector, the sending IP from Received headers, aioimaplib's
FETCH answer; and the [[canary]] configuration's errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from noc.config import ConfigError, parse_config
from noc.model import AuthVerdict
from noc_collectors.canary import _fetched, auth_verdict, new_token, sending_ip, token_sent_at

# RFC 8601 Appendix B.3: SPF and sender-id results, no DKIM or DMARC.
B3 = "example.com;\n\t spf=pass smtp.mailfrom=example.net\n\tsender-id=pass header.from=example.net"
# RFC 8601 Appendix B.4: two receivers' results, with comments and a version.
B4_TOP = (
    "example.com; auth=pass (cram-md5) smtp.auth=sender@example.net;\n"
    "  spf=pass smtp.mailfrom=example.net"
)
B4_BELOW = "example.com; iprev=pass\n policy.iprev=192.0.2.200"
# RFC 8601 Appendix B.5: DKIM results of two signatures, one failing.
B5 = (
    "example.com;\n  dkim=pass (good signature) header.d=mail-router.example.net;\n"
    "  dkim=fail (bad signature) header.d=newyork.example.com"
)
# RFC 8601 Appendix B.1: a receiver that checked nothing.
B1 = "example.org 1; none"


def test_rfc8601_b3_spf_passes_and_nothing_else_was_checked() -> None:
    verdict = auth_verdict([B3])
    assert verdict == AuthVerdict(spf="pass")
    assert verdict.failed == ("DKIM", "DMARC")  # nothing checked vouches for nothing


def test_rfc8601_b4_only_the_topmost_receivers_header_counts() -> None:
    assert auth_verdict([B4_TOP, B4_BELOW]).spf == "pass"
    # The header below came with the message: it cannot vouch for this hop.
    assert auth_verdict(["example.com; spf=fail smtp.mailfrom=x", B3]).spf == "fail"


def test_rfc8601_b5_a_passing_signature_wins_over_a_failing_one() -> None:
    verdict = auth_verdict([B5])
    assert verdict.dkim == "pass" and verdict.dkim_domain == "mail-router.example.net"


def test_rfc8601_b1_no_results() -> None:
    assert auth_verdict([B1]) == AuthVerdict()


def test_everything_passing_with_the_selector() -> None:
    header = (
        "mx.google.com; dkim=pass header.i=@example.com header.s=s2026 header.b=AbCd;\n"
        "       spf=pass (google.com: domain of bounce@example.com designates 192.0.2.20 "
        "as permitted sender) smtp.mailfrom=bounce@example.com;\n"
        "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com"
    )
    verdict = auth_verdict([header])
    assert (verdict.spf, verdict.dkim, verdict.dmarc) == ("pass", "pass", "pass")
    assert verdict.dkim_selector == "s2026" and verdict.failed == ()


def test_the_selector_from_the_signature_when_the_receiver_names_none() -> None:
    signature = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;\n s=sel1; h=from:to; b=xyz"
    verdict = auth_verdict(["example.com; dkim=pass header.d=example.com"], [signature])
    assert verdict.dkim_selector == "sel1" and verdict.dkim_domain == "example.com"


def test_an_unparsable_header_is_no_verdict_not_an_error() -> None:
    assert auth_verdict(["; ; =;;"]) == AuthVerdict()


RECEIVED = [
    "by mx.google.com with SMTP id x1; Thu, 3 Dec 2026 19:07:51 +0000",
    "from mx1.ro.example.com (mx1.ro.example.com [192.0.2.20])\n\tby mx.google.com "
    "with ESMTPS id y2; Thu, 3 Dec 2026 19:07:51 +0000",
    "from noc.example.com (noc.example.com [198.51.100.7])\n\t(Authenticated sender: "
    "canary@example.com) by mx1.ro.example.com (Postfix); Thu, 3 Dec 2026 19:07:50 +0000",
]


def test_the_sending_ip_is_the_topmost_hop_into_the_receiver() -> None:
    assert sending_ip(RECEIVED) == "192.0.2.20"


def test_a_known_sending_ip_is_preferred_to_an_internal_hop() -> None:
    internal = "from relay.google.internal ([10.1.2.3]) by mx.google.com; Thu, 3 Dec 2026"
    assert sending_ip([internal, *RECEIVED], ["192.0.2.20"]) == "192.0.2.20"
    assert sending_ip([internal, *RECEIVED]) == "10.1.2.3"


def test_ipv6_and_no_ip_at_all() -> None:
    assert sending_ip(["from mx ([IPv6:2001:db8::1]) by r; Thu"]) == "2001:db8::1"
    assert sending_ip(["by r with SMTP; Thu"]) is None


def test_aioimaplibs_fetch_answer() -> None:
    headers = bytearray(
        b"X-Noc-Canary: noc-ro-0123456789abcdef\r\nReceived: from a ([192.0.2.1])\r\n\r\n"
    )
    lines = [
        b'1 FETCH (UID 7 INTERNALDATE " 3-Dec-2026 19:07:51 +0000" BODY[HEADER.FIELDS (X)] {80}',
        headers,
        b")",
        b'2 FETCH (UID 8 INTERNALDATE "03-Dec-2026 19:07:52 +0000" BODY[HEADER.FIELDS (X)] {20}',
        bytearray(b"X-Noc-Canary: other\r\n\r\n"),  # not noc's token: left alone
        b")",
        b"Fetch completed.",
    ]
    (found,) = _fetched(lines)
    assert found.uid == "7" and found.token == "noc-ro-0123456789abcdef"
    assert found.internaldate == datetime(2026, 12, 3, 19, 7, 51, tzinfo=UTC)


def _config(**changes: object) -> dict[str, object]:
    region = {
        "id": "ro",
        "role": "primary",
        "submission": {
            "host": "smtp.ro.example.com",
            "username": "canary@example.com",
            "password_env": "NOC_CANARY_RO",
            "from_address": "canary@example.com",
        },
    }
    seed = {
        "name": "gmail",
        "address": "seed@gmail.example",
        "imap_host": "imap.gmail.example",
        "imap_user": "seed@gmail.example",
        "imap_password_env": "NOC_SEED_GMAIL",
    }
    seed |= changes.pop("seed", {})  # type: ignore[arg-type]
    return {"regions": [region], "canary": [seed], **changes}


def test_a_valid_canary_config_sends_through_every_submitting_region() -> None:
    config = parse_config(_config())
    assert config.canary_regions(config.canary[0]) == ["ro"]
    assert config.regions[0].submission is not None
    assert config.regions[0].submission.port == 587


@pytest.mark.parametrize(
    ("seed", "words"),
    [
        ({"regions": ["bg"]}, "canary[0].regions: no region 'bg'"),
        ({"slow_seconds": 900}, "slow_seconds (900) must be below deadline_seconds (900)"),
        ({"imap_password_env": "not a name"}, "canary[0].imap_password_env"),
        ({"password": "x"}, "canary[0].password: unknown key"),
    ],
)
def test_canary_config_errors_name_the_key_and_the_fix(seed: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_config(seed=seed))
    assert any(words in problem for problem in raised.value.problems), raised.value.problems


def test_canaries_need_a_submission_endpoint() -> None:
    data = _config()
    data["regions"] = [{"id": "ro", "role": "primary"}]
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert "needs a [regions.submission]" in raised.value.problems[0]


def test_a_tokens_age_is_readable_by_any_noc() -> None:
    sent = datetime(2026, 12, 3, 19, 7, 51, tzinfo=UTC)
    token = new_token("eu-west", sent)  # a region id may hold dashes
    assert token.startswith("noc-eu-west-") and token_sent_at(token) == sent.timestamp()
    assert new_token("eu-west", sent) != token
    assert token_sent_at("noc-ro-0123456789abcdef") == float("inf")  # no time: never stale
