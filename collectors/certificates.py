"""A server certificate's expiry, for the days-left of SMTP and HTTPS probes."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

SECONDS_PER_DAY = 86400.0


@lru_cache(maxsize=256)
def certificate_not_after(der: bytes) -> datetime | None:
    """A DER certificate's not-after (UTC). Cached: a server shows the same certificate
    probe after probe, and parsing it each time would be most of a probe's CPU."""
    # Imported on the first HTTPS or TLS answer: cryptography takes ~140 ms to import,
    # which `noc check` of a plain-HTTP estate should not pay.
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc
    except ValueError:
        return None


def days_left(not_after: datetime, now: datetime) -> float:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return round((not_after - now).total_seconds() / SECONDS_PER_DAY, 2)
