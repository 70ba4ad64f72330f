"""A region's mail queues and rejections, from its MTA exporter's Prometheus text.

postfix_exporter (kumina, Debian's prometheus-postfix-exporter) publishes, by default:
- the queues as histograms over showq: `postfix_showq_message_size_bytes_count
  {queue="active"|"deferred"|"hold"|...}` is the number of messages in each;
- message ages as a histogram, `postfix_showq_message_age_seconds{queue=...}` with
  buckets at 10, 100, ... 1e8 s: the oldest message's age is not on the page, only
  that it lies in the highest bucket that holds a message. Its floor is the larger of
  that bucket's lower bound and the mean (`_sum / _count`, exact for one message);
- rejections parsed from the mail log as counters by reply code,
  `postfix_smtpd_messages_rejected_total{code="554"}`.

The rejection rate is the counters' increase between two reads over the time between
them, by code class. A counter lower than last time was reset (the exporter restarted):
its increase since is its value. A code seen for the first time started at zero.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from noc.clock import Clock, SystemClock
from noc.model import MtaSample
from noc_collectors.metrics import (
    PROMETHEUS_BODY_LIMIT,
    MetricError,
    MetricSelector,
    parse_selector,
)

__all__ = ["MtaCollector", "MtaMetrics", "MtaReading", "RejectionRate", "read_mta"]

_DETAIL_LIMIT = 120


@dataclass(frozen=True, slots=True)
class MtaMetrics:
    """Which series hold what (postfix_exporter's by default; see MtaConfig)."""

    queue_active: str = 'postfix_showq_message_size_bytes_count{queue="active"}'
    queue_deferred: str = 'postfix_showq_message_size_bytes_count{queue="deferred"}'
    queue_hold: str = 'postfix_showq_message_size_bytes_count{queue="hold"}'
    oldest_histogram: str = 'postfix_showq_message_age_seconds{queue="deferred"}'
    oldest_gauge: str = ""
    rejections: str = "postfix_smtpd_messages_rejected_total"
    code_label: str = "code"


@dataclass(frozen=True, slots=True)
class MtaReading:
    """What one page says, before rates: the counters by reply code are raw totals."""

    queue_active: int | None
    queue_deferred: int | None
    queue_hold: int | None
    oldest_deferred_seconds: float | None
    oldest_is_lower_bound: bool
    rejected_totals: Mapping[str, float]
    missing: tuple[str, ...]  # series the page lacks, named for the error


def _matches(name: str, labels: Mapping[str, str], selector: MetricSelector) -> bool:
    return name == selector.name and all(labels.get(k) == v for k, v in selector.labels.items())


def read_mta(text: str, metrics: MtaMetrics) -> MtaReading:
    """Queue depths, the oldest deferred age and the rejection counters on one page.

    MetricError when the text is not Prometheus exposition text at all."""
    queues = {
        "active": parse_selector(metrics.queue_active),
        "deferred": parse_selector(metrics.queue_deferred),
        "hold": parse_selector(metrics.queue_hold),
    }
    histogram = parse_selector(metrics.oldest_histogram) if metrics.oldest_histogram else None
    gauge = parse_selector(metrics.oldest_gauge) if metrics.oldest_gauge else None
    rejections = parse_selector(metrics.rejections)
    depth: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    age_sum = age_count = None
    gauge_value: float | None = None
    totals: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                for queue, selector in queues.items():
                    if _matches(name, labels, selector):
                        depth[queue] = value
                if _matches(name, labels, rejections):
                    code = labels.get(metrics.code_label, "")
                    totals[code] = totals.get(code, 0.0) + value
                if gauge is not None and _matches(name, labels, gauge):
                    gauge_value = value
                if histogram is None or gauge is not None:
                    continue
                base = MetricSelector(name.removesuffix("_bucket"), labels)
                if name.endswith("_bucket") and _matches(base.name, labels, histogram):
                    buckets.append((float(labels.get("le", "inf")), value))
                elif _matches(
                    name, labels, MetricSelector(histogram.name + "_sum", histogram.labels)
                ):
                    age_sum = value
                elif _matches(
                    name, labels, MetricSelector(histogram.name + "_count", histogram.labels)
                ):
                    age_count = value
    except Exception as exc:  # untrusted text: the parser raises ValueError, IndexError
        raise MetricError(_tidy(f"not Prometheus text: {exc or type(exc).__name__}")) from None
    missing = [str(queues[q]) for q in queues if q not in depth]
    oldest, floor = None, False
    if gauge is not None:
        oldest = gauge_value if gauge_value is not None and gauge_value >= 0 else None
        if gauge_value is None:
            missing.append(str(gauge))
    elif histogram is not None:
        if age_count is None:
            missing.append(f"{histogram} histogram")
        else:
            oldest, floor = _oldest_floor(sorted(buckets), age_sum, age_count)
    return MtaReading(
        queue_active=_count(depth.get("active")),
        queue_deferred=_count(depth.get("deferred")),
        queue_hold=_count(depth.get("hold")),
        oldest_deferred_seconds=oldest,
        oldest_is_lower_bound=floor,
        rejected_totals=totals,
        missing=tuple(missing),
    )


def _count(value: float | None) -> int | None:
    return None if value is None or not math.isfinite(value) or value < 0 else int(value)


def _oldest_floor(
    buckets: list[tuple[float, float]], age_sum: float | None, count: float
) -> tuple[float | None, bool]:
    """The oldest message's age, at least: from the highest bucket holding one, and the
    mean (the oldest is never younger than the average). Exact for a single message."""
    if count <= 0:
        return 0.0, False  # an empty queue: nothing is waiting at all
    mean = age_sum / count if age_sum is not None and math.isfinite(age_sum) else 0.0
    if count == 1:
        return max(0.0, mean), False
    lower = 0.0
    previous_bound, previous_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative > previous_count:
            lower = previous_bound  # a message lies in (previous_bound, bound]
        previous_bound, previous_count = bound, cumulative
    return max(lower, mean, 0.0), True


class RejectionRate:
    """Rejections per minute by code class, from counter totals across reads."""

    def __init__(self) -> None:
        self._previous: dict[str, float] | None = None
        self._previous_at = 0.0

    def update(self, totals: Mapping[str, float], at: float) -> dict[str, float] | None:
        previous, since = self._previous, self._previous_at
        self._previous, self._previous_at = dict(totals), at
        if previous is None or at <= since:
            return None
        increase: dict[str, float] = {"4xx": 0.0, "5xx": 0.0}
        for code, total in totals.items():
            before = previous.get(code, 0.0)
            # Lower than before: the counter was reset, and counts from zero since.
            grown = total - before if total >= before else total
            if code[:1] in ("4", "5"):  # rejections are 4xx or 5xx replies; skip noise
                increase[f"{code[:1]}xx"] += grown
        minutes = (at - since) / 60.0
        return {cls: round(count / minutes, 3) for cls, count in increase.items()}


class MtaCollector:
    """Reads one region's MTA exporter; `poll()` never raises."""

    def __init__(
        self,
        region: str,
        url: str,
        metrics: MtaMetrics | None = None,
        *,
        timeout_seconds: float = 2.0,
        clock: Clock | None = None,
        body_limit: int = PROMETHEUS_BODY_LIMIT,
    ) -> None:
        self.region = region
        self.url = url
        self.metrics = metrics or MtaMetrics()
        self._timeout = timeout_seconds
        self._clock = clock or SystemClock()
        self._body_limit = body_limit
        self._rate = RejectionRate()
        self._client: httpx.AsyncClient | None = None

    async def poll(self) -> MtaSample:
        at, wall = self._clock.monotonic(), self._clock.utcnow()
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._fetch()
                # A busy exporter's page is large: parse it off the loop the UI shares.
                reading = await asyncio.to_thread(
                    read_mta, body.decode("utf-8", errors="replace"), self.metrics
                )
        except MetricError as exc:
            return MtaSample(self.region, at, wall, error=str(exc))
        except TimeoutError:
            return MtaSample(self.region, at, wall, error=f"timeout after {self._timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return MtaSample(self.region, at, wall, error=_tidy(str(exc) or type(exc).__name__))
        rate = self._rate.update(reading.rejected_totals, at)
        return MtaSample(
            self.region,
            at,
            wall,
            queue_active=reading.queue_active,
            queue_deferred=reading.queue_deferred,
            queue_hold=reading.queue_hold,
            oldest_deferred_seconds=reading.oldest_deferred_seconds,
            oldest_is_lower_bound=reading.oldest_is_lower_bound,
            rejections_per_minute=rate,
            error=_tidy("no series " + ", ".join(reading.missing)) if reading.missing else None,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self) -> bytes:
        if self._client is None:
            self._client = await asyncio.to_thread(
                httpx.AsyncClient,
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                headers={"User-Agent": "noc-mta"},
            )
        async with self._client.stream(
            "GET", self.url, headers={"Accept": "text/plain;version=0.0.4"}
        ) as response:
            if response.status_code != 200:
                raise MetricError(f"HTTP {response.status_code}")
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > self._body_limit:
                    raise MetricError(f"body over {self._body_limit // 1024} KiB")
            return bytes(received)


def _tidy(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _DETAIL_LIMIT else line[: _DETAIL_LIMIT - 1] + "…"
