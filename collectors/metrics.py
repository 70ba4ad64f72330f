"""Replication lag that another system already measures: Prometheus text or JSON over HTTP.

- prometheus: the exposition text is parsed with prometheus_client's parser and one
  series is selected by `name{label="value",...}`. Labels not named in the selector
  may take any value, but exactly one series must match: two matches mean the
  selector is ambiguous, which is reported, never resolved by picking one.
- json: a dotted path (`a.b.0.c`, digits index into arrays) to a number of seconds.

The value must be a finite, non-negative number of seconds. Every failure (refused,
timeout, HTTP status, a body over the limit, garbage text, a missing series) is the
sample's error; `poll()` never raises. These sources say nothing about the link
itself, so the sample's link state is always unknown.
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
    "json_seconds",
    "parse_selector",
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


class MetricError(ValueError):
    """Why a body yields no lag: its text is the sample's error."""


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


def prometheus_seconds(text: str, selector: MetricSelector) -> float:
    """The value of the one series matching `selector`; MetricError says why there is none."""
    matches: list[float] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == selector.name and all(
                    sample.labels.get(k) == v for k, v in selector.labels.items()
                ):
                    matches.append(sample.value)
    except Exception as exc:  # untrusted text: fuzzing the parser raised IndexError too
        raise MetricError(_tidy(f"not Prometheus text: {exc or type(exc).__name__}")) from None
    if not matches:
        raise MetricError(_tidy(f"no series {selector}"))
    if len(matches) > 1:
        raise MetricError(_tidy(f"{len(matches)} series match {selector}: name more labels"))
    return _seconds(matches[0], str(selector))


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
        lag, error = None, None
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._fetch()
                # Parsing a few MiB takes a while: off the event loop the UI shares.
                lag = await asyncio.to_thread(self._read, body)
        except MetricError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"timeout after {self._timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = _http_error_text(exc)
        return ReplicationSample(
            spec=self.spec,
            at=self._clock.monotonic(),
            wall=self._clock.utcnow(),
            link=LinkState.UNKNOWN,
            lag_seconds=lag,
            lag_basis=LagBasis.METRIC if lag is not None else LagBasis.NONE,
            error=error,
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

    def _read(self, body: bytes) -> float:
        if self._selector is not None:
            return prometheus_seconds(body.decode("utf-8", errors="replace"), self._selector)
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise MetricError("body is not JSON") from None
        return json_seconds(document, self._path)


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
