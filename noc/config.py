"""Configuration: a TOML file plus NOC_* environment overrides, validated once.

Precedence, highest first: environment (`NOC_HEALTH__INTERVAL_SECONDS=10`,
nested keys joined by `__`), the TOML file, built-in defaults. The file is the
first of: `--config`, `$NOC_CONFIG`, `./noc.toml`, `<user config dir>/noc.toml`.

Every problem is reported as one line naming the file, the key path
(`regions[1].checks[0].url`) and what to do about it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from noc.model import (
    CheckTarget,
    FailoverRecord,
    FailoverRecordType,
    ReplicationKind,
    ReplicationSpec,
    Role,
    Severity,
    SmtpTarget,
    SmtpTls,
    Topology,
    mask_url,
)
from noc.rules import RULES
from noc.ui_settings import KeyMap, UIConfig
from noc_collectors.dns_names import parse_resolver, split_host_port

APP_NAME = "noc"
ENV_PREFIX = "NOC_"
CONFIG_ENV = "NOC_CONFIG"

# The "tightened" preset of domain.md: 3 checks at 10 s, 30 s detection.
PRESETS: dict[str, dict[str, float | int]] = {
    "standard": {"interval_seconds": 30, "failure_threshold": 3},
    "tightened": {"interval_seconds": 10, "failure_threshold": 3},
}


# A failing (or recovering) check is probed again this soon, not at its next slot.
DEFAULT_RETRY_SECONDS = 2.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EstateConfig(_Strict):
    name: str = "estate"
    topology: Topology = Topology.ACTIVE_PASSIVE
    rpo_seconds: float = Field(default=60, ge=0)
    rto_seconds: float = Field(default=300, ge=0)
    # Where this estate keeps its audit, alert journal, outbox and log; unset:
    # <user state dir>/noc/<name>/ (see noc.audit.estate_paths). "~" is expanded.
    state_dir: str | None = None

    @field_validator("state_dir")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip() or "\x00" in value:
            raise ValueError("must name a directory (or leave it unset for the default)")
        try:
            expanded = Path(value).expanduser()
        except RuntimeError:  # "~someone" with no such user
            raise ValueError(f"{value!r}: no home directory to expand ~ to") from None
        if not expanded.is_absolute():
            # Relative to where noc happens to start, one estate would keep two records.
            raise ValueError(f"{value!r} must be an absolute path (or start with ~/)")
        return value


class CheckTuning(_Strict):
    """Settings a check inherits from [health] and may override one by one."""

    preset: Literal["standard", "tightened"] | None = None
    interval_seconds: float | None = Field(default=None, gt=0)
    failure_threshold: int | None = Field(default=None, ge=1)
    recovery_threshold: int | None = Field(default=None, ge=1)
    retry_interval_seconds: float | None = Field(default=None, gt=0)
    timeout_seconds: float | None = Field(default=None, gt=0)
    verify_tls: bool | None = None


class HealthConfig(_Strict):
    preset: Literal["standard", "tightened"] = "standard"
    interval_seconds: float | None = Field(default=None, gt=0)
    failure_threshold: int | None = Field(default=None, ge=1)
    # Successes needed to recover; defaults to failure_threshold.
    recovery_threshold: int | None = Field(default=None, ge=1)
    # How soon a failing check is probed again while it counts toward its threshold
    # (and a down one while it counts toward recovery); default min(interval, 2 s).
    # Set it to the interval for no faster retries.
    retry_interval_seconds: float | None = Field(default=None, gt=0)
    timeout_seconds: float = Field(default=2, gt=0)
    verify_tls: bool = True
    # Bound on probes in flight at once across the whole estate.
    max_in_flight: int = Field(default=16, ge=1, le=256)
    # A certificate (SMTP or HTTPS) with fewer days left warns, then is critical.
    cert_warn_days: float = Field(default=21, gt=0)
    cert_crit_days: float = Field(default=7, ge=0)
    # With agents ([control]): a region is down only when at least this many vantages
    # that are neither cut off nor stale see it down. 1 is a lone noc's behaviour.
    quorum: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _crit_below_warn(self) -> Self:
        if self.cert_crit_days >= self.cert_warn_days:
            raise ValueError(
                f"cert_crit_days ({self.cert_crit_days:g}) must be below cert_warn_days "
                f"({self.cert_warn_days:g}): critical comes closer to expiry than the warning"
            )
        return self


class CheckConfig(CheckTuning):
    url: str
    name: str | None = None
    expect_status: int = Field(default=200, ge=100, le=599)
    body_contains: str | None = None
    # Optional JSON condition: the dotted field must equal json_equals
    # (compared as text), e.g. json_field = "status", json_equals = "healthy".
    json_field: str | None = None
    json_equals: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @model_validator(mode="after")
    def _json_pair(self) -> Self:
        if (self.json_field is None) != (self.json_equals is None):
            raise ValueError("json_field and json_equals go together: set both or neither")
        return self


def _selector(value: str) -> str:
    """A metric selector checked at load time: name{label="value",...}."""
    from noc_collectors.metrics import parse_selector

    if value:
        parse_selector(value)
    return value


class MtaConfig(_Strict):
    """A region's MTA, read from its Prometheus exporter (postfix_exporter by default).

    The metric names default to postfix_exporter's; another exporter's series are named
    as replication sources name theirs (`name{label="value"}`)."""

    metrics_url: str
    interval_seconds: float = Field(default=30, gt=0)
    timeout_seconds: float = Field(default=2, gt=0)
    queue_active_metric: str = 'postfix_showq_message_size_bytes_count{queue="active"}'
    queue_deferred_metric: str = 'postfix_showq_message_size_bytes_count{queue="deferred"}'
    queue_hold_metric: str = 'postfix_showq_message_size_bytes_count{queue="hold"}'
    # A histogram of message ages (its _bucket, _sum and _count series); or, instead,
    # oldest_deferred_metric: a gauge holding the oldest deferred message's age.
    oldest_deferred_histogram: str = 'postfix_showq_message_age_seconds{queue="deferred"}'
    oldest_deferred_metric: str = ""
    # A counter per SMTP reply code, the code in rejection_code_label.
    rejections_metric: str = "postfix_smtpd_messages_rejected_total"
    rejection_code_label: str = "code"
    # queue_backlog: active + deferred + hold over this, or the oldest deferred
    # message older than this, for backlog_sustain_seconds.
    queue_depth_threshold: int = Field(default=1000, ge=0)
    oldest_deferred_threshold_seconds: float = Field(default=3600, gt=0)
    backlog_sustain_seconds: float = Field(default=300, ge=0)
    # rejections: a code class (4xx or 5xx) over this many a minute.
    rejections_per_minute_threshold: float = Field(default=60, gt=0)
    # A failback to this region waits until its deferred queue is at most this deep:
    # mail it deferred in the outage goes out before it takes new traffic.
    failback_deferred_threshold: int = Field(default=50, ge=0)

    @field_validator("metrics_url")
    @classmethod
    def _metrics_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator(
        "queue_active_metric",
        "queue_deferred_metric",
        "queue_hold_metric",
        "oldest_deferred_histogram",
        "oldest_deferred_metric",
        "rejections_metric",
    )
    @classmethod
    def _selectors(cls, value: str) -> str:
        return _selector(value)


def _ca_file(value: str | None) -> str | None:
    """A CA bundle option: unset (the system's trust store) or a file that exists."""
    if value is not None and not Path(value).expanduser().is_file():
        raise ValueError(f"{value!r}: no such file (a PEM bundle of the CAs to trust)")
    return value


class SmtpConfig(CheckTuning):
    """One SMTP probe of a region ([[regions.smtp]]); tuning as for HTTP checks."""

    host: str = Field(min_length=1)  # a name or an address
    port: int = Field(default=25, ge=1, le=65535)
    tls: SmtpTls = SmtpTls.STARTTLS
    tls_name: str | None = None  # the name the certificate must be valid for; default: host
    ehlo: str = Field(default="noc.invalid", min_length=1)
    # The CA bundle (PEM) the certificate is verified against; unset: the system's.
    ca_file: str | None = None

    @field_validator("host", "tls_name", "ehlo")
    @classmethod
    def _one_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} must be one host name or address, without spaces")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        return _ca_file(value)

    @model_validator(mode="after")
    def _tls_fits_port(self) -> Self:
        if self.tls is SmtpTls.IMPLICIT and self.port in (25, 587):
            raise ValueError(
                f'tls = "implicit" on port {self.port}: ports 25 and 587 start in plain text; '
                'use tls = "starttls" there, or port = 465 for implicit TLS'
            )
        if self.port == 465 and self.tls is not SmtpTls.IMPLICIT:
            raise ValueError(
                f'port 465 speaks TLS from the first byte: set tls = "implicit" '
                f'(not "{self.tls.value}")'
            )
        return self


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class SubmissionConfig(_Strict):
    """A region's submission endpoint, where canaries go in ([regions.submission]):
    SMTP AUTH over TLS. The password comes from the environment variable named by
    password_env, never from this file."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit"] = "starttls"
    tls_name: str | None = None  # the name the certificate must be valid for; default host
    username: str = Field(min_length=1)
    password_env: str = Field(pattern=_ENV_NAME)
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    ca_file: str | None = None  # the CAs to trust (PEM); unset: the system's
    timeout_seconds: float = Field(default=30, gt=0)

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        return _ca_file(value)

    @model_validator(mode="after")
    def _tls_fits_port(self) -> Self:
        if self.tls == "implicit" and self.port == 587:
            raise ValueError('port 587 starts in plain text: use tls = "starttls" there')
        if self.port == 465 and self.tls != "implicit":
            raise ValueError('port 465 speaks TLS from the first byte: set tls = "implicit"')
        return self

    def password(self) -> str | None:
        return os.environ.get(self.password_env) or None


class CanaryConfig(_Strict):
    """One seed mailbox ([[canary]]): every interval a canary goes to it through each
    region's submission endpoint, and the mailbox is read over IMAP (TLS from the
    first byte, port 993) to find it. The password comes from imap_password_env."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    imap_host: str = Field(min_length=1)
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user: str = Field(min_length=1)
    imap_password_env: str = Field(pattern=_ENV_NAME)
    imap_ca_file: str | None = None
    inbox: str = "INBOX"
    # Where the provider files what it takes for spam (Gmail: "[Gmail]/Spam").
    spam_folders: list[str] = Field(default_factory=lambda: ["Junk"])
    # Regions whose submission endpoints send to this seed; empty: every one that has one.
    regions: list[str] = Field(default_factory=list)
    interval_seconds: float = Field(default=300, gt=0)
    # How often the mailbox is read while a canary is awaited.
    poll_seconds: float = Field(default=15, gt=0)
    slow_seconds: float = Field(default=120, gt=0)  # canary_slow over this
    deadline_seconds: float = Field(default=900, gt=0)  # canary_lost past this
    # Bounds: canaries awaited at once per region (no new one is sent past it), and the
    # newest messages examined per folder on each read.
    max_outstanding: int = Field(default=4, ge=1, le=100)
    scan_limit: int = Field(default=200, ge=1, le=5000)
    timeout_seconds: float = Field(default=30, gt=0)
    # `noc check` sends one canary per region and waits at most this for it (then it
    # shows as pending); the dashboard's loop waits up to deadline_seconds.
    check_wait_seconds: float = Field(default=20, gt=0)

    @field_validator("imap_ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        return _ca_file(value)

    @model_validator(mode="after")
    def _deadline_after_slow(self) -> Self:
        if self.slow_seconds >= self.deadline_seconds:
            raise ValueError(
                f"slow_seconds ({self.slow_seconds:g}) must be below deadline_seconds "
                f"({self.deadline_seconds:g}): a canary is slow before it is lost"
            )
        return self

    def password(self) -> str | None:
        return os.environ.get(self.imap_password_env) or None


class RegionConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
    name: str = ""
    role: Role = Role.SECONDARY
    location: tuple[float, float] = (0.0, 0.0)
    redis_url: str | None = None
    checks: list[CheckConfig] = Field(default_factory=list)
    smtp: list[SmtpConfig] = Field(default_factory=list)
    # What the failover records point to when this region is active.
    service_ips: list[IPvAnyAddress] = Field(default_factory=list)
    mx_host: str | None = None
    # The IPs this region sends mail from: SPF, PTR and blocklists are checked for them.
    sending_ips: list[IPvAnyAddress] = Field(default_factory=list)
    mta: MtaConfig | None = None
    # The port the region's MX takes SMTP on (a test estate's loopback port): its
    # certificate is read there, after STARTTLS, to compare with DANE TLSA records.
    mx_port: int = Field(default=25, ge=1, le=65535)
    # Where canary messages are submitted through this region ([[canary]]).
    submission: SubmissionConfig | None = None

    def failover_values(self) -> set[str]:
        """Answers that mean "traffic goes to this region"."""
        values = {str(ip) for ip in self.service_ips}
        if self.mx_host:
            values.add(self.mx_host)
        return values

    @field_validator("location")
    @classmethod
    def _lat_lon(cls, value: tuple[float, float]) -> tuple[float, float]:
        lat, lon = value
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise ValueError("must be [latitude, longitude] with -90..90 and -180..180")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_redis_url(value)


TsigAlgorithm = Literal[
    "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
]
Actuator = Literal["flag", "dns", "hook"]


class FailoverDnsConfig(_Strict):
    """The authoritative server that takes RFC 2136 updates signed with TSIG."""

    server: str = Field(min_length=1)  # "ns1.example.com:53", "192.0.2.53", "[2001:db8::53]:53"
    zone: str = Field(min_length=1)
    key_name: str = Field(min_length=1)
    key_secret: SecretStr
    algorithm: TsigAlgorithm = "hmac-sha256"
    timeout_seconds: float = Field(default=2, gt=0)

    @field_validator("key_secret")
    @classmethod
    def _base64(cls, value: SecretStr) -> SecretStr:
        # A key pasted from named.conf may be wrapped: whitespace is not part of it.
        secret = "".join(value.get_secret_value().split())
        try:
            base64.b64decode(secret, validate=True)
        except ValueError:
            raise ValueError(
                "is not base64 (as in named.conf's key { secret ...; }; tsig-keygen makes one)"
            ) from None
        return SecretStr(secret)

    @field_validator("zone")
    @classmethod
    def _absolute_zone(cls, value: str) -> str:
        return value if value.endswith(".") else value + "."

    def host_port(self) -> tuple[str, int]:
        """The server as (host, port); the host may be a name, resolved when used."""
        return split_host_port(self.server)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        try:
            host, _ = split_host_port(value)
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc} (host, host:port or [IPv6]:port)") from None
        if not host:
            raise ValueError(f"{value!r} names no host (host, host:port or [IPv6]:port)")
        return value


class FailoverHooksConfig(_Strict):
    """Commands run with the plan in NOC_* environment variables (no shell)."""

    pre: str | None = None  # before anything changes; a non-zero exit aborts
    run: str | None = None  # the "hook" actuator, at its place in `actuators`
    undo: str | None = None  # rolls `run` back when a later actuator fails
    post: str | None = None  # after verification; its failure is reported, not undone
    timeout_seconds: float = Field(default=30, gt=0)


class DrillHooksConfig(_Strict):
    """Commands that inject a drill's fault and take it away again (no shell), run with
    NOC_DRILL_MODE, NOC_DRILL_REGION and NOC_DRILL_ID in their environment. Unset: the
    drill asks the operator to inject (or restore) the fault by hand."""

    inject: str | None = None
    restore: str | None = None
    timeout_seconds: float = Field(default=60, gt=0)


class DrillsConfig(_Strict):
    """Failover drills: the playbook they follow, their hooks, limits and schedule."""

    # A TOML playbook replacing the one shipped with noc (noc/playbook.toml); "~" expanded.
    playbook: str | None = None
    hooks: DrillHooksConfig = Field(default_factory=DrillHooksConfig)
    # How long a drill waits for noc to see the injected fault before it says so
    # (a deviation) and stops; and, after routing, for the restore and verification.
    detect_timeout_seconds: float = Field(default=600, gt=0)
    settle_timeout_seconds: float = Field(default=600, gt=0)
    # How often the drill reads the estate while it waits.
    poll_seconds: float = Field(default=1, gt=0)
    # The schedule: quarterly, one mode at a time; the first within 60 days of onboarding.
    # Unset onboarded: the first drill is due now.
    onboarded: date | None = None
    interval_days: int = Field(default=91, ge=1)
    first_within_days: int = Field(default=60, ge=0)
    # Reports kept in the state dir's drills/ folder; the oldest are removed beyond it.
    history_kept: int = Field(default=100, ge=1)


class FailoverConfig(_Strict):
    # The Redis hash holding the STOP flag, in every region's store.
    flag_key: str = "noc:failover"
    store_timeout_seconds: float = Field(default=2, gt=0)
    # How often the flag is read from every store.
    flag_interval_seconds: float = Field(default=10, gt=0)
    # In order; "dns" needs [failover.dns], "hook" needs [failover.hooks] run.
    # Unset: "flag", then "dns" when [failover.dns] is configured.
    actuators: list[Actuator] | None = None
    # Anti-flap: a second failover within this many seconds of the last needs an
    # explicit ack of the cooldown (or a break-glass override).
    cooldown_seconds: float = Field(default=600, ge=0)
    auto: bool = False  # automated failover (STOP pattern); never fails back
    auto_after_seconds: float = Field(default=90, gt=0)
    # The cross-process lock (SET NX with expiry on a majority of stores).
    lock_key: str = "noc:failover:lock"
    lock_ttl_seconds: float = Field(default=120, gt=0)
    # The longest wait for every resolver to serve the new answers, on top of the TTL.
    verify_grace_seconds: float = Field(default=5, ge=0)
    # A switchover waits at most this long for replication to drain before it flips.
    drain_timeout_seconds: float = Field(default=300, gt=0)
    dns: FailoverDnsConfig | None = None
    hooks: FailoverHooksConfig = Field(default_factory=FailoverHooksConfig)

    @model_validator(mode="after")
    def _actuators(self) -> Self:
        # The lock is renewed before each step, so it must outlast the longest one: a hook.
        hooked = any(h is not None for h in (self.hooks.pre, self.hooks.run, self.hooks.undo))
        if hooked and self.lock_ttl_seconds <= self.hooks.timeout_seconds:
            raise ValueError(
                f"lock_ttl_seconds ({self.lock_ttl_seconds:g}) must outlast one hook "
                f"(hooks.timeout_seconds {self.hooks.timeout_seconds:g})"
            )
        chosen = self.actuators
        if chosen is None:
            return self
        repeated = sorted({a for a in chosen if chosen.count(a) > 1})
        if repeated:
            raise ValueError(f"actuators: {', '.join(repeated)} listed twice")
        if "dns" in chosen and self.dns is None:
            raise ValueError('actuators includes "dns": add [failover.dns] server, zone, key_name')
        if "hook" in chosen and not self.hooks.run:
            raise ValueError('actuators includes "hook": set [failover.hooks] run = "command"')
        return self

    @property
    def chain(self) -> tuple[Actuator, ...]:
        """The actuators in order, defaults filled in."""
        if self.actuators is not None:
            return tuple(self.actuators)
        return ("flag", "dns") if self.dns is not None else ("flag",)


class ReplicationConfig(_Strict):
    """One replication link of one data class, from a source region to a target."""

    data_class: str = Field(min_length=1)  # suppression, subscribers, bounces, analytics, ...
    source: str
    target: str
    kind: Literal["redis", "prometheus", "json"] = "redis"
    url: str  # redis: the replica; prometheus/json: the metrics URL
    metric: str = ""  # prometheus: name{labels}; json: dotted path to seconds
    # prometheus: a series that is 1 while the link is up and 0 when it is down. For
    # redis_exporter's redis_master_* series it defaults to redis_master_link_up.
    link_metric: str = ""
    threshold_seconds: float = Field(default=60, gt=0)
    sustain_seconds: float = Field(default=60, ge=0)
    interval_seconds: float = Field(default=10, gt=0)
    timeout_seconds: float = Field(default=2, gt=0)
    # The data loss this class accepts on failover; unset: [estate] rpo_seconds.
    rpo_seconds: float | None = Field(default=None, ge=0)
    # redis: noc writes a timestamp here on the source and reads it on the replica
    # (lag in seconds, pt-heartbeat style); "" for read-only deployments.
    heartbeat_key: str = "noc:heartbeat"

    @model_validator(mode="after")
    def _metric_for_metrics(self) -> Self:
        if self.kind != "redis" and not self.metric:
            raise ValueError(f'kind = "{self.kind}" needs metric (the series or path holding lag)')
        if self.link_metric and self.kind != "prometheus":
            raise ValueError('link_metric is read from Prometheus text: needs kind = "prometheus"')
        if self.kind == "redis":
            _check_redis_url(self.url)
        else:
            _check_http_url(self.url)
        return self

    @property
    def link_id(self) -> str:
        return f"{self.data_class}:{self.source}>{self.target}"

    def spec(self) -> ReplicationSpec:
        return ReplicationSpec(
            data_class=self.data_class,
            source=self.source,
            target=self.target,
            kind=ReplicationKind(self.kind),
            url=self.url,
            metric=self.metric or None,
            link_metric=self.link_metric or None,
            threshold_seconds=self.threshold_seconds,
            sustain_seconds=self.sustain_seconds,
        )


def _check_url(value: str, schemes: tuple[str, ...], *, host: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or (host and not parts.hostname):
        *first, last = (f"{scheme}://" for scheme in schemes)
        names = f"{', '.join(first)} or {last}"
        raise ValueError(
            f"must be a URL starting with {names}" + (" and naming a host" if host else "")
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {exc}") from None
    return value


def _check_redis_url(value: str) -> str:
    return _check_url(value, ("redis", "rediss", "unix"), host=False)


def _check_http_url(value: str) -> str:
    return _check_url(value, ("http", "https"), host=True)


def _check_pattern(value: str, *placeholders: str) -> str:
    missing = [p for p in placeholders if "{" + p + "}" not in value]
    if missing:
        raise ValueError(f"must contain {', '.join('{' + p + '}' for p in missing)}")
    return value


def _resolver(text: str) -> str:
    try:
        return str(parse_resolver(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a resolver address (host or host:port): {exc}") from None


class DnsRecordConfig(_Strict):
    name: str = Field(min_length=1)
    type: Literal["A", "AAAA", "CNAME", "MX"] = "A"

    def record(self) -> FailoverRecord:
        return FailoverRecord(self.name, FailoverRecordType(self.type))


class DnsConfig(_Strict):
    """Where traffic really goes: every failover record asked of every resolver."""

    resolvers: list[str] = Field(default_factory=list)
    interval_seconds: float = Field(default=30, gt=0)
    timeout_seconds: float = Field(default=2, gt=0)
    records: list[DnsRecordConfig] = Field(default_factory=list)
    # Resolvers that keep disagreeing beyond the record's TTL warn after this.
    disagree_sustain_seconds: float = Field(default=300, ge=0)

    @field_validator("resolvers")
    @classmethod
    def _resolvers(cls, value: list[str]) -> list[str]:
        return [_resolver(text) for text in value]


class EmailConfig(_Strict):
    """The sending domain, checked as receivers would after a failover."""

    domain: str = ""
    dkim_selectors: list[str] = Field(default_factory=list)
    dnsbl_zones: list[str] = Field(default_factory=list)
    # The resolver for SPF/DKIM/DMARC/PTR and blocklists; default: the first [dns] one.
    # Spamhaus refuses queries through public resolvers: use one of your own.
    resolver: str = ""
    interval_seconds: float = Field(default=300, gt=0)
    # MTA-STS (RFC 8461) and DANE (RFC 7672): the domain's policy and each MX's TLSA
    # records are read, and a failover to an MX they do not cover is refused.
    mta_sts: bool = False
    # Where the policy file is; default https://mta-sts.<domain>/.well-known/mta-sts.txt.
    mta_sts_policy_url: str = ""
    # A CA bundle (PEM) the policy's HTTPS server is verified against, besides none:
    # for a private CA; unset, the system's trust store.
    mta_sts_ca_file: str = ""

    @field_validator("mta_sts_policy_url")
    @classmethod
    def _policy_url(cls, value: str) -> str:
        return _check_http_url(value) if value else value

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str) -> str:
        return _resolver(value) if value else value


class SuppressionConfig(_Strict):
    """Suppression lists in every region's store, compared pairwise."""

    enabled: bool = True
    key_pattern: str = "suppression:{list}"

    @field_validator("key_pattern")
    @classmethod
    def _list_placeholder(cls, value: str) -> str:
        return _check_pattern(value, "list")

    lists: list[str] = Field(default_factory=lambda: ["unsubscribe", "hard_bounce", "complaint"])
    lookback_seconds: float = Field(default=3600, gt=0)
    slo_seconds: float = Field(default=60, gt=0)  # honoured in every region within this
    interval_seconds: float = Field(default=30, gt=0)
    max_examined: int = Field(default=100_000, ge=1000)
    # The score bucket the incremental poll counts (one ZCOUNT each a poll) and re-reads
    # when its count moves; default: a sixtieth of the lookback (one minute).
    bucket_seconds: float | None = Field(default=None, gt=0)
    # Unchanged buckets re-read whole a poll, round robin: catches a change that kept
    # a bucket's count (an add and a removal in one bucket between two polls).
    verify_buckets: int = Field(default=2, ge=0, le=1000)

    @model_validator(mode="after")
    def _bucket_count(self) -> SuppressionConfig:
        if self.bucket_seconds is not None and self.lookback_seconds / self.bucket_seconds > 1440:
            raise ValueError(
                f"bucket_seconds = {self.bucket_seconds:g} makes"
                f" {self.lookback_seconds / self.bucket_seconds:,.0f} buckets in the"
                f" {self.lookback_seconds:g} s lookback (at most 1440: every poll counts each);"
                f" raise bucket_seconds to at least {self.lookback_seconds / 1440:g}"
            )
        return self


class DeliverabilityConfig(_Strict):
    enabled: bool = True
    key_pattern: str = "deliverability:{event}:{minute}"
    window_minutes: int = Field(default=60, ge=1, le=1440)
    interval_seconds: float = Field(default=60, gt=0)
    # Gmail's bulk-sender limits: keep complaints below 0.1 %, never reach 0.3 %.
    complaint_warn_rate: float = Field(default=0.001, gt=0, lt=1)
    complaint_critical_rate: float = Field(default=0.003, gt=0, lt=1)

    @field_validator("key_pattern")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _check_pattern(value, "event", "minute")

    @model_validator(mode="after")
    def _warn_below_critical(self) -> Self:
        if self.complaint_warn_rate >= self.complaint_critical_rate:
            raise ValueError("complaint_warn_rate must be below complaint_critical_rate")
        return self


class RuleOverride(_Strict):
    """Change a built-in rule: its severity, sustain window, or switch it off."""

    rule: str
    severity: Severity | None = None
    for_seconds: float | None = Field(default=None, ge=0)
    enabled: bool = True
    # The estate's own next step for this rule (a runbook line, a URL): shown in the
    # alert detail, in pages and in `noc check --json` instead of the built-in one.
    hint: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("rule")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RULES:
            raise ValueError(f"no built-in rule {value!r} (rules: {', '.join(RULES)})")
        return value


class AlertsConfig(_Strict):
    # A firing alert resolves only after its condition has been false this long.
    keep_firing_seconds: float = Field(default=0, ge=0)
    flap_window_seconds: float = Field(default=600, gt=0)
    flap_transitions: int = Field(default=4, ge=2)
    bell: bool = False  # ring the terminal bell when a new critical alert fires
    rules: list[RuleOverride] = Field(default_factory=list)
    # Alertmanager's group_by: alerts with the same values of these labels are one
    # group (one page with its members, one row in the pane). Empty: one per alert.
    group_by: list[Literal["region", "rule", "subject"]] = Field(default_factory=list)
    # A new group is paged once its first member has fired this long (the rest of a
    # stalled region's alerts arrive meanwhile); members joining an announced group
    # are told at most once per group_interval. Alertmanager's defaults.
    group_wait_seconds: float = Field(default=30, ge=0)
    group_interval_seconds: float = Field(default=300, ge=0)

    def override(self, rule: str) -> RuleOverride | None:
        return next((r for r in self.rules if r.rule == rule), None)


class NotifyConfig(_Strict):
    """One notification channel. Secrets come from the environment, never the file:
    `secret_env` names the variable holding the Slack/webhook URL, the Telegram bot
    token or the PagerDuty routing key."""

    kind: Literal["slack", "telegram", "pagerduty", "webhook"]
    name: str | None = None
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    chat_id: str | None = None  # telegram
    # Where to send, for a regional API endpoint or a proxy; each kind has a default.
    api_url: str | None = None
    min_severity: Severity = Severity.WARNING
    repeat_seconds: float = Field(default=3600, ge=0)  # 0: never repeat
    send_resolved: bool = True
    timeout_seconds: float = Field(default=5, gt=0)

    @model_validator(mode="after")
    def _telegram_chat(self) -> Self:
        if self.kind == "telegram" and not self.chat_id:
            raise ValueError('kind = "telegram" needs chat_id')
        if self.api_url is not None and urlsplit(self.api_url).scheme not in ("http", "https"):
            raise ValueError("api_url must be an http:// or https:// URL")
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind

    def secret(self) -> SecretStr | None:
        value = os.environ.get(self.secret_env)
        return SecretStr(value) if value else None


class ServeConfig(_Strict):
    # The secret a browser must present (the page opened as /?token=...) for its
    # dashboard to take actions under `noc serve --allow-actions`; without one
    # configured, noc serve makes one up at each start and prints it.
    token: SecretStr | None = None


class ControlConfig(_Strict):
    """The control plane: agents (`noc agent`) publish into this Redis, screens and
    `noc check` read from it instead of polling: a primary's `redis_url`, or
    `sentinels` (host:port of Redis Sentinels) with the `service_name` they watch, so
    that a primary lost with its region is replaced by the replica Sentinel promotes."""

    redis_url: str | None = None
    sentinels: tuple[str, ...] = ()
    service_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # With Sentinel: the database, and the password of the primary (not the Sentinels').
    db: int = Field(default=0, ge=0, le=15)
    password: SecretStr | None = None
    # Every key noc writes starts with this (one Redis may serve several estates).
    key_prefix: str = Field(default="noc", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # The observation stream is trimmed to about this many entries (XADD MAXLEN ~).
    stream_max_entries: int = Field(default=100_000, ge=1_000, le=10_000_000)
    # How often each agent publishes its verdicts and heartbeat; a vantage silent for
    # two of these is stale and does not vote.
    report_interval_seconds: float = Field(default=5, gt=0, le=3600)
    # Observations waiting for the control plane, per agent; beyond it the oldest go.
    buffer_max_entries: int = Field(default=10_000, ge=100, le=1_000_000)
    timeout_seconds: float = Field(default=2, gt=0)
    # The leader's lease (noc.lease): a standby takes over at most this long after the
    # leader dies; the leader renews every third of it.
    lease_seconds: float = Field(default=15, ge=0.5, le=600)

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        return None if value is None else _check_redis_url(value)

    @field_validator("sentinels")
    @classmethod
    def _sentinels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{address!r}: a Sentinel is host:port")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        if (self.redis_url is None) == (not self.sentinels):
            raise ValueError("give either redis_url or sentinels (with service_name)")
        if self.sentinels and not self.service_name:
            raise ValueError("sentinels need service_name: the primary they watch")
        return self

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [
            (a.rpartition(":")[0].strip("[]"), int(a.rpartition(":")[2])) for a in self.sentinels
        ]

    def describe(self) -> str:
        """Where the control plane is, secrets masked, for messages."""
        if self.redis_url is not None:
            return mask_url(self.redis_url)
        return f"Sentinel service {self.service_name} via {', '.join(self.sentinels)}"


class NocConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    estate: EstateConfig = Field(default_factory=EstateConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    regions: list[RegionConfig] = Field(min_length=1)
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
    drills: DrillsConfig = Field(default_factory=DrillsConfig)
    replication: list[ReplicationConfig] = Field(default_factory=list)
    suppression: SuppressionConfig = Field(default_factory=SuppressionConfig)
    deliverability: DeliverabilityConfig = Field(default_factory=DeliverabilityConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    notify: list[NotifyConfig] = Field(default_factory=list)
    canary: list[CanaryConfig] = Field(default_factory=list)
    ui: UIConfig = Field(default_factory=UIConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    # Unset: no agents, no shared state; every noc polls by itself (as before).
    control: ControlConfig | None = None
    keys: KeyMap = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init arguments; the environment wins over them.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _estate_rules(self) -> Self:
        ids = [r.id for r in self.regions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"region ids must be unique; repeated: {', '.join(duplicates)}")
        for index, link in enumerate(self.replication):
            for end in ("source", "target"):
                if getattr(link, end) not in ids:
                    raise ValueError(
                        f"replication[{index}].{end}: no region {getattr(link, end)!r} "
                        f"(regions: {', '.join(ids)})"
                    )
        if self.dns.records and not self.dns.resolvers:
            raise ValueError("dns.records needs at least one resolver in dns.resolvers")
        if "dns" in self.failover.chain:
            self._check_dns_actuator()
        if (self.email.domain or self.email.dnsbl_zones) and not self.email_resolver:
            raise ValueError("[email] checks need a resolver: set email.resolver or dns.resolvers")
        labels = [n.label for n in self.notify]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(
                f"notify channels need distinct names; repeated: {', '.join(repeated)} "
                '(set name = "..." on each [[notify]] of the same kind)'
            )
        self._check_canaries(ids)
        primaries = [r.id for r in self.regions if r.role is Role.PRIMARY]
        if self.estate.topology is Topology.ACTIVE_PASSIVE and len(primaries) != 1:
            raise ValueError(
                'active-passive needs exactly one region with role = "primary"; '
                f"found {len(primaries)}"
            )
        return self

    def _check_canaries(self, ids: list[str]) -> None:
        names = [c.name for c in self.canary]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"canary names must be unique; repeated: {', '.join(repeated)}")
        submitting = [r.id for r in self.regions if r.submission is not None]
        for index, seed in enumerate(self.canary):
            for region in seed.regions:
                if region not in ids:
                    raise ValueError(
                        f"canary[{index}].regions: no region {region!r} (regions: {', '.join(ids)})"
                    )
                if region not in submitting:
                    raise ValueError(
                        f"canary[{index}].regions: region {region!r} has no "
                        "[regions.submission] to send canaries through"
                    )
        if self.canary and not submitting:
            raise ValueError(
                "[[canary]] needs a [regions.submission] in at least one region "
                "(the endpoint canaries are sent through)"
            )

    def canary_regions(self, seed: CanaryConfig) -> list[str]:
        """The regions that send canaries to `seed`."""
        submitting = [r.id for r in self.regions if r.submission is not None]
        return [r for r in submitting if not seed.regions or r in seed.regions]

    def _check_dns_actuator(self) -> None:
        assert self.failover.dns is not None  # FailoverConfig guarantees it
        zone = self.failover.dns.zone.lower()
        if not self.dns.records:
            raise ValueError(
                "the dns actuator rewrites [[dns.records]]: add the failover records "
                "(and dns.resolvers to verify them)"
            )
        for index, record in enumerate(self.dns.records):
            name = record.name.lower().rstrip(".") + "."
            if record.type == "CNAME":
                raise ValueError(
                    f"dns.records[{index}]: the dns actuator rewrites A, AAAA and MX records, "
                    f"not CNAME; list the name {record.name} points to instead"
                )
            if not (name == zone or name.endswith("." + zone)):
                raise ValueError(
                    f"dns.records[{index}]: {record.name} is outside failover.dns.zone "
                    f"{self.failover.dns.zone}"
                )

    @property
    def email_resolver(self) -> str:
        return self.email.resolver or (self.dns.resolvers[0] if self.dns.resolvers else "")

    def sending_ips(self) -> dict[str, list[str]]:
        return {r.id: [str(ip) for ip in r.sending_ips] for r in self.regions if r.sending_ips}

    @property
    def primary(self) -> RegionConfig:
        return next((r for r in self.regions if r.role is Role.PRIMARY), self.regions[0])

    def region(self, region_id: str) -> RegionConfig | None:
        return next((r for r in self.regions if r.id == region_id), None)

    def check_targets(self) -> list[CheckTarget]:
        return [
            self._target(region, index, check)
            for region in self.regions
            for index, check in enumerate(region.checks)
        ]

    def smtp_targets(self) -> list[SmtpTarget]:
        targets = []
        for region in self.regions:
            for index, probe in enumerate(region.smtp):
                tuned = self._target(region, index, probe)
                targets.append(
                    SmtpTarget(
                        check_id=f"{region.id}/smtp{index}",
                        region_id=region.id,
                        host=probe.host,
                        port=probe.port,
                        tls=probe.tls,
                        tls_name=probe.tls_name or probe.host,
                        ehlo=probe.ehlo,
                        timeout_seconds=tuned.timeout_seconds,
                        interval_seconds=tuned.interval_seconds,
                        failure_threshold=tuned.failure_threshold,
                        recovery_threshold=tuned.recovery_threshold,
                        retry_interval_seconds=tuned.retry_interval_seconds,
                        ca_file=str(Path(probe.ca_file).expanduser()) if probe.ca_file else None,
                    )
                )
        return targets

    def _target(
        self, region: RegionConfig, index: int, check: CheckConfig | SmtpConfig
    ) -> CheckTarget:
        health = self.health
        preset = PRESETS[check.preset or health.preset]
        interval = check.interval_seconds or (
            health.interval_seconds if check.preset is None else None
        )
        threshold = check.failure_threshold or (
            health.failure_threshold if check.preset is None else None
        )
        failure_threshold = int(threshold or preset["failure_threshold"])
        interval_seconds = float(interval or preset["interval_seconds"])
        retry = check.retry_interval_seconds or health.retry_interval_seconds
        # An SMTP probe brings its tuning alone: it has no URL or body to judge.
        http = CheckConfig(url="http://smtp.invalid/") if isinstance(check, SmtpConfig) else check
        return CheckTarget(
            check_id=f"{region.id}/{index}",
            region_id=region.id,
            name=http.name or _short_name(http.url),
            url=http.url,
            expect_status=http.expect_status,
            body_contains=http.body_contains,
            json_field=http.json_field,
            json_equals=http.json_equals,
            timeout_seconds=check.timeout_seconds or health.timeout_seconds,
            interval_seconds=interval_seconds,
            failure_threshold=failure_threshold,
            recovery_threshold=(
                check.recovery_threshold or health.recovery_threshold or failure_threshold
            ),
            verify_tls=health.verify_tls if check.verify_tls is None else check.verify_tls,
            # Never slower than the schedule itself: a retry is an extra, earlier probe.
            retry_interval_seconds=min(
                interval_seconds, retry if retry is not None else DEFAULT_RETRY_SECONDS
            ),
        )


def _short_name(url: str) -> str:
    """`https://user@host:8443/health` -> `host:8443/health`. The port stays: three
    checks of one host on three ports must read as three checks, not one."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or url
    return f"{host}{parts.path}" if parts.path not in ("", "/") else host


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per issue."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LoadedConfig:
    config: NocConfig
    path: Path
    file_data: Mapping[str, Any]
    env: Mapping[str, str]


def candidate_paths(explicit: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """Where noc looks for its file, in order, with why each place is looked at."""
    found: list[tuple[Path, str]] = []
    if explicit:
        found.append((Path(explicit), "--config"))
    if os.environ.get(CONFIG_ENV):
        found.append((Path(os.environ[CONFIG_ENV]), f"${CONFIG_ENV}"))
    found.append((Path.cwd() / "noc.toml", "current directory"))
    found.append((Path(platformdirs.user_config_dir(APP_NAME)) / "noc.toml", "user config dir"))
    return found


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    candidates = candidate_paths(explicit)
    # An explicitly named file must exist; the fallbacks are tried in turn.
    if explicit or os.environ.get(CONFIG_ENV):
        path, why = candidates[0]
        if not path.is_file():
            raise ConfigError([f"{path}: no such file (named by {why})"])
        return path
    for path, _ in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p, _ in candidates)
    raise ConfigError(
        [
            f"no configuration found (looked at {looked}); "
            "create one with `noc config example > noc.toml`, or try `noc demo`"
        ]
    )


def load_config(explicit: str | os.PathLike[str] | None = None) -> LoadedConfig:
    path = find_config(explicit)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([_not_utf8(path, raw, exc)]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    except RecursionError as exc:  # tomllib recurses on nested inline arrays
        raise ConfigError([f"{path}: not valid TOML: nested too deeply"]) from exc
    return LoadedConfig(config=parse_config(data, path), path=path, file_data=data, env=_noc_env())


def _not_utf8(path: Path, raw: bytes, exc: UnicodeDecodeError) -> str:
    before = raw[: exc.start]
    line = before.count(b"\n") + 1
    column = exc.start - (before.rfind(b"\n") + 1) + 1
    return (
        f"{path}: line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8 "
        "(a TOML file is UTF-8 text: re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`)"
    )


def parse_config(data: Mapping[str, Any], path: Path | str = "<config>") -> NocConfig:
    try:
        return NocConfig(**data)
    except ValidationError as exc:
        raise ConfigError([_describe(path, error) for error in exc.errors()]) from exc
    except SettingsError as exc:
        # pydantic-settings could not decode a NOC_* variable (a section or a list
        # must be JSON): say which variable and what it should hold.
        raise ConfigError(_env_not_json(str(exc))) from exc


_SETTINGS_FIELD = re.compile(r'field "(?P<field>[^"]+)"')


def _env_not_json(message: str) -> list[str]:
    match = _SETTINGS_FIELD.search(message)
    field = match["field"] if match else ""
    prefix = ENV_PREFIX + field.upper()
    candidates = sorted(
        name
        for name in _noc_env()
        if field and (name.upper() == prefix or name.upper().startswith(prefix + "__"))
    )
    problems: list[str] = []
    for name in candidates:
        value = os.environ[name]
        try:
            json.loads(value)
        except ValueError as exc:
            problems.append(
                f"${name}: {_env_key(name)}: not valid JSON ({exc}); a section or a list set "
                f"from the environment is JSON, e.g. {ENV_PREFIX}HEALTH="
                "'{\"interval_seconds\": 10}' or "
                f"{ENV_PREFIX}DNS__RESOLVERS='[\"127.0.0.1\"]'"
            )
    if problems:
        return problems
    names = ", ".join(f"${n}" for n in candidates) or f"${prefix}"
    return [f"{names}: {field or '(top level)'}: cannot be read ({message})"]


def _env_key(name: str) -> str:
    """NOC_FAILOVER__DNS__KEY_SECRET -> failover.dns.key_secret."""
    return name.removeprefix(ENV_PREFIX).lower().replace("__", ".")


def _describe(path: Path | str, error: Any) -> str:
    key = key_path(error["loc"]) or "(top level)"
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        fix = "add this key"
    elif kind == "extra_forbidden":
        fix = "remove it or check its spelling (`noc config example` lists every key)"
        message = "unknown key"
    else:
        received = error.get("input")
        shown = received if not isinstance(received, dict | list) else None
        fix = f"got {_safe_repr(key, shown)}" if shown is not None else ""
    return f"{_source(path, key)}: {key}: {message}" + (f" ({fix})" if fix else "")


def _source(path: Path | str, key: str) -> str:
    """Where a bad value came from: an environment override wins over the file. The
    variable may set the key itself, a section holding it (NOC_HEALTH='{...}' for
    health.interval_seconds), or a key below it (NOC_HEALTH__X__Y for health.x)."""
    parts = [p for p in re.sub(r"\[\d+\]", "", key).split(".") if p]
    names = {name.upper(): name for name in _noc_env()}
    for end in range(len(parts), 0, -1):
        variable = ENV_PREFIX + "__".join(parts[:end]).upper()
        if variable in names:
            return f"{path} (overridden by ${names[variable]})"
    if parts:
        below = ENV_PREFIX + "__".join(parts).upper() + "__"
        for upper, name in sorted(names.items()):
            if upper.startswith(below):
                return f"{path} (overridden by ${name})"
    return str(path)


def _safe_repr(key: str, value: Any) -> str:
    if "secret" in key or "password" in key:
        return "(hidden: it is a secret)"
    text = repr(value)
    return mask_url(text) if "url" in key else text


def key_path(loc: tuple[str | int, ...]) -> str:
    """('regions', 1, 'checks', 0, 'url') -> 'regions[1].checks[0].url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _noc_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) and k != CONFIG_ENV}


def effective_values(loaded: LoadedConfig) -> Iterator[tuple[str, Any, str]]:
    """(key path, value, where it came from) for every setting, secrets masked."""
    env_keys = {k.removeprefix(ENV_PREFIX).lower().replace("__", "."): k for k in loaded.env}
    dumped = loaded.config.model_dump(mode="json")
    for path, value in _flatten(dumped, ()):
        dotted = key_path(path)
        plain = ".".join(str(p) for p in path if not isinstance(p, int))
        if plain in env_keys or dotted in env_keys:
            source = f"env {env_keys.get(dotted) or env_keys[plain]}"
        elif _present(loaded.file_data, path):
            source = str(loaded.path)
        else:
            source = "default"
        if isinstance(value, str) and ("url" in dotted or "secret" in dotted):
            value = mask_url(value)
        yield dotted, value, source


def preset_overrides(loaded: LoadedConfig) -> list[str]:
    """Where an explicit interval or threshold silently beats a preset that was set
    on purpose: one line each, for `noc config show`."""
    notes: list[str] = []
    health = loaded.config.health
    preset = PRESETS[health.preset]
    if _present(loaded.file_data, ("health", "preset")) or "NOC_HEALTH__PRESET" in loaded.env:
        for key in ("interval_seconds", "failure_threshold"):
            value = getattr(health, key)
            if value is not None and value != preset[key]:
                notes.append(
                    f"health.{key} = {value:g} overrides preset {health.preset!r} "
                    f"({key} {preset[key]:g}): unset it for the preset to decide"
                )
    return notes


def _flatten(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, (*path, key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, (*path, index))
    else:
        yield path, value


def _present(data: Any, path: tuple[str | int, ...]) -> bool:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return False
        elif not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


EXAMPLE = """\
# noc configuration. Every key below shows its default or an example value.
# Environment variables override this file: NOC_<SECTION>__<KEY>, for example
#   NOC_HEALTH__INTERVAL_SECONDS=10 noc
# Lookup order: --config, $NOC_CONFIG, ./noc.toml, the user config dir.

[estate]
name = "mail-prod"
topology = "active-passive"          # or "active-active"
rpo_seconds = 60                     # data loss you accept on failover
rto_seconds = 300                    # time to recover you promise

[health]                              # defaults for every check
preset = "standard"                  # "standard" (30 s x 3 = 90 s) or "tightened" (10 s x 3 = 30 s)
# interval_seconds = 30              # set, it wins over the preset's interval (and
# failure_threshold = 3              #   this over its threshold): leave both unset
#                                    #   for the preset to decide detection time
# recovery_threshold = 3             # consecutive successes to recover (default: failure_threshold)
# retry_interval_seconds = 2         # a failing check is probed again this soon until it is
#                                    #   down or passes (a down one until it recovers):
#                                    #   30 s x 3 detects in ~interval/2 + 4 s, not 60-90 s.
#                                    #   Default min(interval, 2); = interval turns it off
timeout_seconds = 2                  # a slower answer is a failed check
verify_tls = true
max_in_flight = 16                   # probes running at once, across the estate
cert_warn_days = 21                  # an SMTP or HTTPS certificate closer to expiry warns,
cert_crit_days = 7                   #   and this close is critical
quorum = 1                           # with agents ([control]): vantages that must see a
#                                    #   region down (not cut off, not stale) for it to be down

[failover]
flag_key = "noc:failover"            # the Redis hash holding the STOP flag in every region
store_timeout_seconds = 2
flag_interval_seconds = 10
# actuators = ["flag", "dns"]        # in order (default: flag, then dns when [failover.dns]
#                                    # is set); "hook" runs [failover.hooks] run
cooldown_seconds = 600               # anti-flap: another failover within this needs an ack
auto = false                         # automated failover after auto_after_seconds down
auto_after_seconds = 90              # (STOP pattern: never fails back by itself)
lock_ttl_seconds = 120               # the cross-process lock on a majority of stores
lock_key = "noc:failover:lock"
verify_grace_seconds = 5             # watch resolvers this long past the record's TTL
drain_timeout_seconds = 300          # a switchover waits at most this for lag to drain
# The DNS actuator: an RFC 2136 update signed with TSIG replaces, in each [[dns.records]]
# RRset, the source region's service_ips (A/AAAA) or mx_host (MX) with the target's,
# keeping every other record (a backup MX, a third party's address) and the TTL.
#   [failover.dns]
#   server = "ns1.example.com:53"     # the primary authoritative server
#   zone = "example.com."
#   key_name = "noc."
#   key_secret = "..."                # base64; better: NOC_FAILOVER__DNS__KEY_SECRET
#   algorithm = "hmac-sha256"
# Commands get NOC_ACTION, NOC_FROM, NOC_TO, NOC_REASON, NOC_OPERATOR, NOC_ACTION_ID.
#   [failover.hooks]
#   pre = "/usr/local/bin/pre-failover"     # a non-zero exit aborts, its output shown
#   run = "/usr/local/bin/move-traffic"     # the "hook" actuator
#   undo = "/usr/local/bin/unmove-traffic"  # rolls "run" back if a later actuator fails
#   post = "/usr/local/bin/post-failover"   # after verification
#   timeout_seconds = 30

# Where traffic really goes, and whether answers can be trusted: every record is
# asked of every resolver, fresh each time.
# [dns]
# resolvers = ["1.1.1.1", "8.8.8.8", "127.0.0.1:5353"]   # host or host:port
# interval_seconds = 30
#   [[dns.records]]
#   name = "smtp.example.com."
#   type = "A"                       # A, AAAA, CNAME or MX

# Would mail from each region pass SPF, DKIM, DMARC and PTR, and is it blocklisted?
# [email]
# domain = "example.com"
# dkim_selectors = ["s1", "s2"]
# dnsbl_zones = ["zen.spamhaus.org"]
# resolver = ""                      # default: the first [dns] resolver; Spamhaus needs your own
# mta_sts = false                    # read the MTA-STS policy and the MX hosts' DANE TLSA
# mta_sts_policy_url = ""            # default https://mta-sts.<domain>/.well-known/mta-sts.txt
# mta_sts_ca_file = ""               # a private CA for the policy's HTTPS server
# Per region (in [[regions]]): service_ips = ["192.0.2.10"], mx_host = "mx.ro.example.com.",
# sending_ips = ["192.0.2.20", "192.0.2.21"], mx_port = 25 (where its certificate is read)

# A region's mail queues and rejections, from its MTA exporter (postfix_exporter's
# metric names by default; *_metric keys name another exporter's series).
#   [regions.mta]
#   metrics_url = "http://mx1.ro.example.com:9154/metrics"
#   queue_depth_threshold = 1000     # queue_backlog: active + deferred + hold over this,
#   oldest_deferred_threshold_seconds = 3600   # or the oldest deferred older than this,
#   backlog_sustain_seconds = 300    # for this long
#   rejections_per_minute_threshold = 60       # rejections: a 4xx or 5xx rate over this
#   failback_deferred_threshold = 50 # a failback here waits for deferred <= this
# Where canary messages go in ([[canary]] below): SMTP AUTH over TLS.
#   [regions.submission]
#   host = "smtp.ro.example.com"
#   port = 587                       # 587 (tls = "starttls") or 465 (tls = "implicit")
#   tls = "starttls"
#   username = "canary@example.com"
#   password_env = "NOC_CANARY_RO_PASSWORD"   # the password's variable, never the password
#   from_address = "canary@example.com"
#   # tls_name, ca_file, timeout_seconds = 30

# Canary messages: one through each region's [regions.submission] to each seed
# mailbox every interval, found over IMAP (TLS, port 993) by its token and deleted.
# [[canary]]
# name = "gmail"
# address = "noc-seed@gmail.com"
# imap_host = "imap.gmail.com"
# imap_user = "noc-seed@gmail.com"
# imap_password_env = "NOC_SEED_GMAIL_PASSWORD"
# spam_folders = ["[Gmail]/Spam"]   # default ["Junk"]
# regions = []                       # default: every region with a submission endpoint
# interval_seconds = 300
# poll_seconds = 15                  # the seed is read this often while a canary is awaited
# slow_seconds = 120                 # canary_slow over this
# deadline_seconds = 900             # canary_lost past this
# max_outstanding = 4                # canaries awaited per region; no new one past it
# scan_limit = 200                   # newest messages examined per folder and read
# check_wait_seconds = 20            # noc check waits this for its canaries (keep < -t)

# Replication lag per data class and link. kind: "redis" (url = the replica; lag in
# seconds from a heartbeat noc writes on the source), "prometheus" or "json" (url =
# the metrics endpoint, metric = name{labels} or a dotted path to seconds).
# [[replication]]
# data_class = "suppression"
# source = "ro"
# target = "bg"
# kind = "redis"
# url = "redis://bg-replica:6379/0"
# metric = ""
# link_metric = ""                    # prometheus: a series that is 1 while the link is up,
#                                     # 0 when down (redis_exporter: redis_master_link_up,
#                                     # the default for its redis_master_* series)
# threshold_seconds = 60
# sustain_seconds = 60                # lag must stay over the threshold this long to fire
# rpo_seconds = 30                    # failover refuses (break glass aside) over this lag;
#                                     # default: [estate] rpo_seconds
# heartbeat_key = "noc:heartbeat"     # "" when noc may not write to the source

# Failover drills (`noc drill run|report|schedule`): one playbook mode a quarter.
# [drills]
# playbook = "~/noc/playbook.toml"    # replaces the six modes shipped with noc
# onboarded = 2026-01-15              # the first drill is due within 60 days of it; with
#                                     # it (or a first drill) the status bar shows the next
# interval_days = 91
# first_within_days = 60
# detect_timeout_seconds = 600        # the fault unseen this long: the drill stops
# settle_timeout_seconds = 600        # restore / validation / failback waits
# poll_seconds = 1
# history_kept = 100                  # reports kept in <state dir>/drills/
# [drills.hooks]                      # run with NOC_DRILL_MODE, NOC_DRILL_REGION, NOC_DRILL_ID;
# inject = "/usr/local/bin/drill-fault inject"   # unset: the drill asks you to
# restore = "/usr/local/bin/drill-fault restore"
# timeout_seconds = 60

[suppression]                        # one sorted set per list in every region's store
key_pattern = "suppression:{list}"
lists = ["unsubscribe", "hard_bounce", "complaint"]
lookback_seconds = 3600
slo_seconds = 60                     # an entry must reach every region within this
# bucket_seconds = 60                # the unit a poll counts and re-reads; default lookback/60
# verify_buckets = 2                 # unchanged buckets re-read whole a poll, round robin

[deliverability]                     # per-minute counters: deliverability:{event}:{yyyymmddHHMM}
window_minutes = 60
complaint_warn_rate = 0.001          # 0.1 %
complaint_critical_rate = 0.003      # 0.3 %: Gmail's limit

[alerts]
keep_firing_seconds = 0              # resolve only after the condition is false this long
flap_window_seconds = 600            # flap_transitions changes within this window:
flap_transitions = 4                 #   the alert is marked flapping
bell = false                         # terminal bell on a new critical alert
group_by = []                        # e.g. ["region"]: alerts sharing these labels (region,
#                                    #   rule, subject) are one group: one page with its
#                                    #   members, shown first in the alert pane
group_wait_seconds = 30              # a new group pages once it has fired this long
group_interval_seconds = 300         # members joining it are told at most this often
# [[alerts.rules]]                   # change a built-in rule (see README: Alerts)
# rule = "source_unreachable"
# severity = "critical"
# for_seconds = 60
# enabled = true
# hint = "runbook: https://wiki.example.com/noc/stores"   # the next step, instead of noc's

# Notifications: sent when an alert fires, repeats and resolves; an outbox on disk
# keeps every one until it is delivered. Secrets come from the environment.
# [[notify]]
# name = "noc-slack"                 # required when two channels share a kind
# kind = "slack"                     # "slack", "telegram", "pagerduty" or "webhook"
# secret_env = "NOC_SLACK_WEBHOOK"   # env var with the webhook URL, bot token or routing key
# min_severity = "warning"
# repeat_seconds = 3600              # 0: never repeat
# send_resolved = true
# chat_id = "-100123"                # telegram only
# api_url = "https://events.eu.pagerduty.com/v2/enqueue"   # optional override

[ui]
theme = "dark"                       # dark, light, wall, ansi, colorblind, or your theme's name
mode = "normal"                      # "wall": read-only, no footer, views rotate (or `noc --wall`)
refresh_hz = 4                       # at most this many repaints a second
rotate_seconds = 20                  # wall mode: how long each view stays up
low_bandwidth = false                # no animation, 1 repaint a second, no seconds on clocks
# theme_file = "~/.config/noc/theme.toml"   # your own theme (this is the default place)

[serve]                               # noc serve (browsers)
# With --allow-actions a browser acts only if it opened /?token=<this>; unset:
# noc serve makes one up at each start and prints it. Or NOC_SERVE__TOKEN.
# token = "a long random secret"

# Agents and the control plane: `noc agent --vantage NAME` polls and publishes here;
# `noc check` then reads the shared verdicts (`--standalone` polls by itself again).
# [control]
# redis_url = "redis://noc-control.example.com:6379/0"
# or, with Redis Sentinel (the primary is the one they say; a lost one is replaced):
# sentinels = ["sentinel-ro.example.com:26379", "sentinel-bg.example.com:26379"]
# service_name = "noc-control"
# lease_seconds = 15                 # the leader's lease: a standby takes over within it
# key_prefix = "noc"
# stream_max_entries = 100000        # observation stream, trimmed (XADD MAXLEN ~)
# report_interval_seconds = 5        # a vantage silent for two of these is stale
# buffer_max_entries = 10000         # observations held while the control plane is away
# timeout_seconds = 2

[keys]                                # binding id = key(s); `?` in noc lists every id
# refresh = "ctrl+r"
# failover = "F,f9"

[[regions]]
id = "ro"
name = "Bucharest"
role = "primary"                      # "primary" or "secondary"
location = [44.43, 26.10]             # latitude, longitude
redis_url = "redis://127.0.0.1:6379/0"   # a password here is masked everywhere

  [[regions.checks]]
  url = "https://ro.mail.example.com/health"
  expect_status = 200
  body_contains = "ok"                # optional
  # json_field = "status"             # optional JSON condition on a dotted field
  # json_equals = "healthy"
  # interval_seconds, failure_threshold, recovery_threshold, retry_interval_seconds,
  # timeout_seconds, verify_tls and preset may be set per check too.

  # Mail flow, judged beside the HTTP checks: banner, EHLO, STARTTLS, certificate, QUIT.
  # [[regions.smtp]]
  # host = "mx1.ro.example.com"      # a name or an address
  # port = 25                        # 25, 587 or 465
  # tls = "starttls"                 # "starttls" (required), "optional", "implicit" (465), "none"
  # tls_name = "mx1.ro.example.com"  # the name the certificate must be valid for (default: host)
  # ehlo = "noc.example.com"
  # ca_file = "/etc/noc/ca.pem"      # the CAs to trust (default: the system's)
  # interval_seconds, failure_threshold, timeout_seconds as for HTTP checks

[[regions]]
id = "bg"
name = "Sofia"
role = "secondary"
location = [42.70, 23.32]
redis_url = "redis://127.0.0.1:6380/0"

  [[regions.checks]]
  url = "https://bg.mail.example.com/health"
"""
