"""Replication lag that another system already measures: Prometheus text or JSON over HTTP.

- prometheus: the exposition text is parsed with prometheus_client's parser and one
  series is selected by `name{label="value",...}`. Labels not named in the selector
  may take any value, but exactly one series must match: two matches mean the
  selector is ambiguous, which is reported, never resolved by picking one.
- json: a dotted path (`a.b.0.c`, digits index into arrays) to a number of seconds.

The value must be a finite, non-negative number of seconds. Every failure (refused,
timeout, HTTP status, a body over the limit, garbage text, a missing series) is the
sample's error; `poll()` never raises.

The link itself, from Prometheus text (JSON sources say nothing about it, so their
link state is always unknown):
- `link_metric` names a series that is 1 while the link is up and 0 when it is down;
- redis_exporter's conventions, for its `redis_master_*` series: `redis_master_link_up`
  is the link series by default, `redis_master_last_io_seconds_ago -1` means the link
  is down (not a negative lag), and `redis_up 0` means the exporter cannot reach the
  replica at all: replication into that region has stopped, which is a link down;
- a series that was published and has vanished from a page that still parses means
  the link is gone (an exporter drops a link's series when the link goes away).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from noc.clock import Clock, SystemClock
from noc.model import LagBasis, LinkState, ReplicationKind, ReplicationSample, ReplicationSpec

__all__ = [
    "JSON_BODY_LIMIT",
    "PROMETHEUS_BODY_LIMIT",
    "MetricError",
    "MetricSelector",
    "MetricsLagCollector",
    "PrometheusReading",
    "SeriesMissing",
    "json_seconds",
    "link_selector_for",
    "parse_selector",
    "prometheus_reading",
    "prometheus_seconds",
]

# A busy exporter's page runs to a few hundred KiB; beyond these, the source is
# broken or the URL is wrong, and parsing it would only burn the CPU the UI shares.
PROMETHEUS_BODY_LIMIT = 4 * 1024 * 1024
JSON_BODY_LIMIT = 1024 * 1024
_ACCEPT = {
    ReplicationKind.PROMETHEUS: "text/plain;version=0.0.4",
    ReplicationKind.JSON: "application/json",
}
_DETAIL_LIMIT = 120


# redis_exporter (oliver006/redis_exporter) publishes the replica's view of its link
# as redis_master_* series; these are its documented conventions.
REDIS_EXPORTER_PREFIX = "redis_master_"
REDIS_EXPORTER_LINK_UP = "redis_master_link_up"
REDIS_EXPORTER_UP = "redis_up"
REDIS_EXPORTER_LINK_DOWN_VALUE = -1.0


class MetricError(ValueError):
    """Why a body yields no lag: its text is the sample's error."""


class SeriesMissing(MetricError):
    """The page parsed, but the selected series is not on it."""


@dataclass(frozen=True, slots=True)
class MetricSelector:
    name: str
    labels: Mapping[str, str]

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        pairs = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{pairs}}}"


def parse_selector(text: str) -> MetricSelector:
    """`name{a="b",c="d"}` -> MetricSelector; ValueError when it is not one series' name.

    The selector is written as an exposition line without its value, so the same
    parser reads it: quoting and escaping follow the format exactly.
    """
    try:
        families = list(text_string_to_metric_families(f"{text.strip()} 0\n"))
    except Exception as exc:  # the parser raises ValueError and, on some input, IndexError
        raise ValueError(f"metric selector {text!r}: {exc or 'not name{label=value}'}") from None
    samples = [s for family in families for s in family.samples]
    if len(samples) != 1 or not text.strip() or text.strip().startswith("#"):
        raise ValueError(f'metric selector {text!r}: expected name{{label="value",...}}')
    return MetricSelector(samples[0].name, dict(samples[0].labels))


@dataclass(frozen=True, slots=True)
class PrometheusReading:
    """One page's answer for one link: the lag, or why the link is down."""

    lag_seconds: float | None
    link: LinkState
    down_because: str | None = None


def link_selector_for(selector: MetricSelector, configured: str | None) -> MetricSelector | None:
    """The series that says whether the link is up: the configured one, else
    redis_exporter's redis_master_link_up beside its redis_master_* series."""
    if configured:
        return parse_selector(configured)
    if selector.name.startswith(REDIS_EXPORTER_PREFIX) and selector.name != REDIS_EXPORTER_LINK_UP:
        return MetricSelector(REDIS_EXPORTER_LINK_UP, selector.labels)
    return None


def _values(text: str, selectors: tuple[MetricSelector, ...]) -> list[list[float]]:
    """Each selector's matching values, from one parse of the page."""
    found: list[list[float]] = [[] for _ in selectors]
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for index, selector in enumerate(selectors):
                    if sample.name == selector.name and all(
                        sample.labels.get(k) == v for k, v in selector.labels.items()
                    ):
                        found[index].append(sample.value)
    except Exception as exc:  # untrusted text: fuzzing the parser raised IndexError too
        raise MetricError(_tidy(f"not Prometheus text: {exc or type(exc).__name__}")) from None
    return found


def _one(values: list[float], selector: MetricSelector) -> float | None:
    if len(values) > 1:
        raise MetricError(_tidy(f"{len(values)} series match {selector}: name more labels"))
    return values[0] if values else None


def prometheus_reading(
    text: str, selector: MetricSelector, link_selector: MetricSelector | None = None
) -> PrometheusReading:
    """The lag of the one series matching `selector`, and the link's state.

    MetricError says why there is neither (SeriesMissing: the page has no such series).
    """
    redis_exporter = selector.name.startswith(REDIS_EXPORTER_PREFIX)
    up_selector = MetricSelector(REDIS_EXPORTER_UP, {})
    lag_values, link_values, up_values = _values(
        text, (selector, link_selector or selector, up_selector)
    )
    if redis_exporter and up_values == [0.0]:
        return PrometheusReading(
            None, LinkState.DOWN, "redis_exporter cannot reach the replica (redis_up 0)"
        )
    link_value = _one(link_values, link_selector) if link_selector is not None else None
    if link_selector is not None and link_value is not None and link_value == 0:
        return PrometheusReading(None, LinkState.DOWN, f"{link_selector} is 0")
    lag = _one(lag_values, selector)
    if lag is None:
        raise SeriesMissing(_tidy(f"no series {selector}"))
    if redis_exporter and lag == REDIS_EXPORTER_LINK_DOWN_VALUE:
        return PrometheusReading(None, LinkState.DOWN, f"{selector} is -1")
    link = LinkState.UNKNOWN if link_value is None else LinkState.UP
    return PrometheusReading(_seconds(lag, str(selector)), link)


def prometheus_seconds(text: str, selector: MetricSelector) -> float:
    """The value of the one series matching `selector`; MetricError says why there is none."""
    values = _one(_values(text, (selector,))[0], selector)
    if values is None:
        raise SeriesMissing(_tidy(f"no series {selector}"))
    return _seconds(values, str(selector))


def json_seconds(document: Any, path: str) -> float:
    """The number of seconds at `a.b.0.c` in a decoded JSON document."""
    node = document
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise MetricError(_tidy(f"{path} missing (at {key!r})"))
    # JSON true is a Python int: a flag is not a number of seconds.
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise MetricError(_tidy(f"{path} is {json.dumps(node)[:40]}, not a number of seconds"))
    return _seconds(float(node), path)


def _seconds(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise MetricError(_tidy(f"{what} is {value}, not a number of seconds"))
    if value < 0:
        # A lag below zero is a skewed clock at the source, not a fast replica.
        raise MetricError(_tidy(f"{what} is negative ({value:g} s): clock skew at the source?"))
    return value


class MetricsLagCollector:
    """Reads one link's lag from a metrics URL (spec.kind prometheus or json).

    One httpx client per collector, reused across polls; timeout_seconds bounds the
    whole poll (connect, a trickling body, parsing).
    """

    def __init__(
        self,
        spec: ReplicationSpec,
        *,
        timeout_seconds: float = 2.0,
        body_limit: int | None = None,
        verify_tls: bool = True,
        clock: Clock | None = None,
    ) -> None:
        if spec.kind not in _ACCEPT:
            raise ValueError(f"{spec.data_class}: kind {spec.kind.value!r} is not a metrics kind")
        if not spec.metric:
            raise ValueError(f"{spec.data_class}: a {spec.kind.value} source needs a metric")
        self.spec = spec
        self._selector = (
            parse_selector(spec.metric) if spec.kind is ReplicationKind.PROMETHEUS else None
        )
        self._link_selector = (
            link_selector_for(self._selector, spec.link_metric) if self._selector else None
        )
        # Once the series has been seen, its vanishing from a good page is news.
        self._series_seen = False
        self._path = spec.metric
        self._timeout = timeout_seconds
        default_limit = (
            PROMETHEUS_BODY_LIMIT if spec.kind is ReplicationKind.PROMETHEUS else JSON_BODY_LIMIT
        )
        self._body_limit = body_limit or default_limit
        self._verify_tls = verify_tls
        self._clock = clock or SystemClock()
        self._client: httpx.AsyncClient | None = None

    async def poll(self) -> ReplicationSample:
        reading, error = PrometheusReading(None, LinkState.UNKNOWN), None
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._fetch()
                # Parsing a few MiB takes a while: off the event loop the UI shares.
                reading = await asyncio.to_thread(self._read, body)
            self._series_seen = True
        except SeriesMissing as exc:
            error = str(exc)
            if self._series_seen:
                reading = PrometheusReading(None, LinkState.DOWN, "series gone")
                error = f"{exc}: it was published, so the link is gone"
        except MetricError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"timeout after {self._timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = _http_error_text(exc)
        lag = reading.lag_seconds
        return ReplicationSample(
            spec=self.spec,
            at=self._clock.monotonic(),
            wall=self._clock.utcnow(),
            link=reading.link,
            lag_seconds=lag,
            lag_basis=LagBasis.METRIC if lag is not None else LagBasis.NONE,
            error=error or reading.down_because,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self) -> bytes:
        if self._client is None:
            # Loading the CA bundle takes 30-120 ms: keep it off the event loop.
            self._client = await asyncio.to_thread(self._new_client)
        async with self._client.stream(
            "GET", self.spec.url, headers={"Accept": _ACCEPT[self.spec.kind]}
        ) as response:
            if response.status_code != 200:
                raise MetricError(f"HTTP {response.status_code}")
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > self._body_limit:
                    raise MetricError(f"body over {self._body_limit // 1024} KiB")
            return bytes(received)

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=self._verify_tls,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            headers={"User-Agent": "noc-replication"},
        )

    def _read(self, body: bytes) -> PrometheusReading:
        if self._selector is not None:
            text = body.decode("utf-8", errors="replace")
            return prometheus_reading(text, self._selector, self._link_selector)
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise MetricError("body is not JSON") from None
        return PrometheusReading(json_seconds(document, self._path), LinkState.UNKNOWN)


def _http_error_text(exc: httpx.HTTPError | httpx.InvalidURL) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return _tidy(str(exc) or type(exc).__name__)


def _tidy(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_LIMIT else line[: _DETAIL_LIMIT - 1] + "…"
