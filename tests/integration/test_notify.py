"""Notifications against local stand-ins of Slack, Telegram, PagerDuty and a webhook.

The APIs are real HTTP servers on loopback (tests/fake_apis.py) that answer as the real
ones do, 429 and 5xx included. Time is a FakeClock stepped with `send_due()`, so retry
and repeat timing is tested without sleeping; two tests use the real clock to check
that `run()` itself keeps time.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_apis import Answer, FakeApis

from noc.clock import Clock, FakeClock, SystemClock
from noc.config import NotifyConfig
from noc.model import Ack, Alert, AlertNotice, AlertState, Severity
from noc.notify import ChannelStatus, Notifier, Outbox, OutboxLocked, dedup_key

ALERT_ID = "replication_lag:suppression:ro>bg"
SUMMARY = "replication lag suppression ro→bg 95 s (> 60 s for 60 s)"
ESTATE = "mail-prod"
START = FakeClock().utcnow()

MakeNotifier = Callable[..., Awaitable[tuple[Notifier, Outbox]]]


@pytest.fixture
async def apis() -> AsyncIterator[FakeApis]:
    server = FakeApis()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def env(apis: FakeApis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOC_T_SLACK", apis.slack_url)
    monkeypatch.setenv("NOC_T_TELEGRAM", apis.telegram_token)
    monkeypatch.setenv("NOC_T_PD", apis.routing_key)
    monkeypatch.setenv("NOC_T_HOOK", apis.webhook_url)


@pytest.fixture
async def make(tmp_path: Path, clock: FakeClock, env: None) -> AsyncIterator[MakeNotifier]:
    """Opens the outbox at one path and builds a Notifier over it; everything built is
    closed at the end. `close(notifier, outbox)` first, to simulate a restart."""
    built: list[tuple[Notifier, Outbox]] = []

    async def build(
        channels: list[NotifyConfig], *, with_clock: Clock | None = None, **kwargs: Any
    ) -> tuple[Notifier, Outbox]:
        used = with_clock or clock
        outbox_kwargs = {k: kwargs.pop(k) for k in ("compact_bytes",) if k in kwargs}
        outbox = Outbox.open(tmp_path / "outbox.jsonl", used, **outbox_kwargs)
        try:
            notifier = Notifier(channels, outbox, used, estate=ESTATE, **kwargs)
        except BaseException:
            outbox.close()
            raise
        built.append((notifier, outbox))
        return notifier, outbox

    try:
        yield build
    finally:
        for notifier, outbox in built:
            await notifier.aclose()
            outbox.close()


def slack(**kwargs: Any) -> NotifyConfig:
    return NotifyConfig(kind="slack", secret_env="NOC_T_SLACK", **kwargs)


def telegram(apis: FakeApis, **kwargs: Any) -> NotifyConfig:
    fields = {"chat_id": apis.chat_id, "api_url": apis.telegram_api, **kwargs}
    return NotifyConfig(kind="telegram", secret_env="NOC_T_TELEGRAM", **fields)


def pagerduty(apis: FakeApis, **kwargs: Any) -> NotifyConfig:
    return NotifyConfig(
        kind="pagerduty", secret_env="NOC_T_PD", api_url=apis.pagerduty_url, **kwargs
    )


def webhook(**kwargs: Any) -> NotifyConfig:
    return NotifyConfig(kind="webhook", secret_env="NOC_T_HOOK", **kwargs)


def alert(clock: Clock, **kwargs: Any) -> Alert:
    """A firing alert that started firing when the FakeClock starts, as the engine keeps
    it tick after tick (its `since` does not move)."""
    fields: dict[str, Any] = {
        "id": ALERT_ID,
        "rule": "replication_lag",
        "severity": Severity.CRITICAL,
        "state": AlertState.FIRING,
        "region": "ro",
        "summary": SUMMARY,
        "since": START,
        "started_at": START - timedelta(seconds=60),
        "value": 95.0,
        **kwargs,
    }
    return Alert(**fields)


def firing(clock: Clock, **kwargs: Any) -> AlertNotice:
    return AlertNotice(alert(clock, **kwargs), "firing", clock.utcnow())


def resolved(clock: Clock, **kwargs: Any) -> AlertNotice:
    kwargs = {"state": AlertState.RESOLVED, "since": clock.utcnow(), **kwargs}
    return AlertNotice(alert(clock, **kwargs), "resolved", clock.utcnow())


def by_name(notifier: Notifier) -> dict[str, ChannelStatus]:
    return {s.name: s for s in notifier.status()}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# --- what is sent ------------------------------------------------------------------


async def test_firing_sends_one_request_per_channel_as_each_api_expects(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([slack(), telegram(apis), pagerduty(apis), webhook()])
    await notifier.notify(firing(clock))
    assert await notifier.send_due() == 4

    assert [r.status for r in apis.requests] == [200, 200, 202, 204]
    line = f"[FIRING] critical: {SUMMARY} — {ESTATE}, region ro, since 2026-11-23T03:00:00Z"
    step = (
        "Next step: a failover now loses the writes not yet replicated; "
        "`noc switchover` waits for the lag to drain"
    )
    text = f"{line}\n{step}"  # the headline, then what to do (noc.next_steps)
    for request in apis.requests:
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "noc-notify"
    (slack_request,) = apis.of("slack")
    # Slack reads < > & as markup: escaped, so a summary can never mention @channel.
    assert slack_request.body == {"text": text.replace(">", "&gt;")}
    (telegram_request,) = apis.of("telegram")
    assert telegram_request.body == {
        "chat_id": apis.chat_id,
        "text": text,
        "disable_web_page_preview": True,
    }
    (pd_request,) = apis.of("pagerduty")
    assert pd_request.body["event_action"] == "trigger"
    assert pd_request.body["dedup_key"] == f"noc-{ESTATE}-{ALERT_ID}"
    payload = pd_request.body["payload"]
    assert payload["summary"] == line.removeprefix("[FIRING] ")
    assert (payload["source"], payload["severity"]) == ("noc", "critical")
    assert (payload["component"], payload["group"]) == ("ro", "replication_lag")
    assert payload["custom_details"]["value"] == 95.0
    (hook_request,) = apis.of("webhook")
    assert hook_request.body["event"] == "firing"
    assert hook_request.body["at"] == "2026-11-23T03:00:00Z"
    assert hook_request.body["alert"]["id"] == ALERT_ID
    assert hook_request.body["alert"]["state"] == "firing"
    assert hook_request.body["delivery_id"]

    assert not outbox.pending
    for status in notifier.status():
        assert (status.pending, status.failing, status.last_error) == (0, False, None)
        assert status.last_success == clock.utcnow()


async def test_resolve_closes_the_pagerduty_incident_with_the_same_dedup_key(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([pagerduty(apis), slack()])
    await notifier.notify(firing(clock))
    await notifier.send_due()
    clock.advance(120)
    await notifier.notify(resolved(clock))
    await notifier.send_due()

    trigger, resolve = (r.body for r in apis.of("pagerduty"))
    assert resolve == {
        "routing_key": apis.routing_key,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert apis.incidents == {trigger["dedup_key"]: "resolved"}
    assert apis.of("slack")[-1].body["text"].startswith("[RESOLVED] critical:")


async def test_a_resolve_never_overtakes_its_trigger(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([pagerduty(apis)])
    apis.script("pagerduty", Answer(503))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    await notifier.notify(resolved(clock))
    assert await notifier.send_due() == 0  # the resolve waits behind the trigger's retry
    clock.advance(7)
    assert await notifier.send_due() == 2
    actions = [r.body["event_action"] for r in apis.of("pagerduty")]
    assert actions == ["trigger", "trigger", "resolve"]
    assert set(apis.incidents.values()) == {"resolved"}


# --- retries -----------------------------------------------------------------------


async def test_slack_429_waits_for_retry_after(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([slack()])
    apis.script("slack", Answer(429, retry_after=7))
    await notifier.notify(firing(clock))
    assert await notifier.send_due() == 1
    status = by_name(notifier)["slack"]
    assert (status.last_status, status.last_error) == (429, "HTTP 429: rate_limited")
    assert status.pending == 1
    assert status.retry_in_seconds == 7

    clock.advance(6.5)  # binary-exact steps: the due time is compared exactly
    assert await notifier.send_due() == 0
    clock.advance(0.5)
    assert await notifier.send_due() == 1
    assert [r.status for r in apis.of("slack")] == [429, 200]
    assert by_name(notifier)["slack"].failing is False


async def test_telegram_429_waits_for_retry_after_in_the_body(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([telegram(apis)])
    apis.script("telegram", Answer(429, retry_after=12))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    assert by_name(notifier)["telegram"].last_error == (
        "HTTP 429: Too Many Requests: retry after 12"
    )
    clock.advance(11.5)
    assert await notifier.send_due() == 0
    clock.advance(0.5)
    assert await notifier.send_due() == 1
    assert [r.status for r in apis.of("telegram")] == [429, 200]


async def test_pagerduty_429_without_retry_after_backs_off_for_long(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([pagerduty(apis)])
    apis.script("pagerduty", Answer(429))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    clock.advance(29.5)
    assert await notifier.send_due() == 0
    clock.advance(0.5)
    assert await notifier.send_due() == 1
    assert [r.status for r in apis.of("pagerduty")] == [429, 202]


async def test_5xx_is_retried_with_growing_backoff_then_delivered(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([pagerduty(apis)])
    apis.script("pagerduty", Answer(503), Answer(500))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    first = by_name(notifier)["pagerduty"]
    assert first.last_error == "HTTP 503: Service Unavailable"
    assert first.retry_in_seconds is not None and 4 <= first.retry_in_seconds <= 6

    clock.advance(3.9)
    assert await notifier.send_due() == 0
    clock.advance(2.2)
    assert await notifier.send_due() == 1
    second = by_name(notifier)["pagerduty"]
    assert (second.consecutive_failures, second.last_status) == (2, 500)
    assert second.retry_in_seconds is not None and 8 <= second.retry_in_seconds <= 12

    clock.advance(12.1)
    assert await notifier.send_due() == 1
    done = by_name(notifier)["pagerduty"]
    assert (done.pending, done.consecutive_failures) == (0, 0)
    assert done.last_error == "HTTP 500: Internal Server Error"  # the history stays
    attempts = [r["attempts"] for r in records(outbox.path) if r["op"] == "attempt"]
    assert attempts == [1, 2]


async def test_connection_refused_and_timeouts_are_retried(
    apis: FakeApis,
    clock: FakeClock,
    make: MakeNotifier,
    refusing_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOC_T_DEAD", f"http://127.0.0.1:{refusing_port}/hook")
    dead = NotifyConfig(kind="webhook", name="dead", secret_env="NOC_T_DEAD")
    notifier, _ = await make([dead, webhook(timeout_seconds=0.2)])
    apis.script("webhook", Answer(204, delay=5))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    status = by_name(notifier)
    assert status["dead"].last_error == "connection refused"
    assert status["webhook"].last_error == "no answer within 0.2 s"
    assert (status["dead"].pending, status["webhook"].pending) == (1, 1)


async def test_a_rejected_message_is_dropped_and_shown(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([webhook()])
    apis.script("webhook", Answer(400))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    status = by_name(notifier)["webhook"]
    assert status.dropped == 1 and status.failing and status.pending == 0
    assert status.last_error == f"dropped firing of {ALERT_ID}: HTTP 400: Error"
    clock.advance(3600)
    assert await notifier.send_due() == 0
    (dropped,) = [r for r in records(outbox.path) if r["op"] == "dropped"]
    assert dropped["reason"] == "HTTP 400: Error"


async def test_a_refused_channel_keeps_its_messages(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    # A wrong chat id fails every message alike: drop them and an incident's pages are
    # gone in seconds; keep them and fixing the config delivers them.
    notifier, outbox = await make([telegram(apis, chat_id="-100999"), slack()])
    apis.script("slack", Answer(404))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    status = by_name(notifier)
    assert status["telegram"].last_error == (
        "HTTP 400: Bad Request: chat not found (messages kept: check NOC_T_TELEGRAM and chat_id)"
    )
    assert status["slack"].last_error == "HTTP 404: no_service (messages kept: check NOC_T_SLACK)"
    assert (status["telegram"].dropped, status["slack"].dropped) == (0, 0)
    assert len(outbox.pending) == 2
    clock.advance(10)
    await notifier.send_due()
    assert [r.status for r in apis.of("slack")] == [404, 200]


async def test_a_failing_channel_is_probed_one_message_at_a_time(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([webhook()], max_in_flight=4)
    apis.script("webhook", *[Answer(503)] * 3)
    for n in range(3):
        await notifier.notify(firing(clock, id=f"a{n}"))
    await notifier.send_due()
    assert len(apis.of("webhook")) == 3  # the first burst, before anything failed
    clock.advance(7)
    await notifier.send_due()
    # One probe succeeded, then the channel was healthy again and the rest went out.
    assert [r.status for r in apis.of("webhook")] == [503, 503, 503, 204, 204, 204]


async def test_in_flight_requests_per_channel_are_bounded(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([webhook()], max_in_flight=2)
    apis.script("webhook", *[Answer(204, delay=0.05)] * 5)
    for n in range(5):
        await notifier.notify(firing(clock, id=f"a{n}"))
    assert await notifier.send_due() == 5
    assert apis.max_in_flight == 2


# --- the outbox --------------------------------------------------------------------


async def test_the_outbox_survives_a_restart(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([slack(repeat_seconds=600)])
    await notifier.notify(firing(clock))
    await notifier.aclose()
    outbox.close()  # as if the process stopped before sending

    notifier, _ = await make([slack(repeat_seconds=600)])
    assert await notifier.send_due() == 1
    assert apis.of("slack")[0].body["text"].startswith("[FIRING]")
    # What the channel was told survives too: no second announcement, and the repeat
    # comes on time.
    clock.advance(300)
    await notifier.firing_now([alert(clock)])
    assert await notifier.send_due() == 0
    clock.advance(300)
    await notifier.firing_now([alert(clock)])
    assert await notifier.send_due() == 1
    assert apis.of("slack")[1].body["text"].startswith("[STILL FIRING]")


async def test_a_retry_schedule_survives_a_restart(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([slack()])
    apis.script("slack", Answer(429, retry_after=60))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    await notifier.aclose()
    outbox.close()

    clock.advance(30)
    notifier, _ = await make([slack()])
    assert await notifier.send_due() == 0
    clock.advance(30)
    assert await notifier.send_due() == 1


CHILD = """
import asyncio, sys
from pathlib import Path
from noc.clock import SystemClock
from noc.config import NotifyConfig
from noc.model import Alert, AlertNotice, AlertState, Severity
from noc.notify import Notifier, Outbox

async def main():
    clock = SystemClock()
    outbox = Outbox.open(Path(sys.argv[1]), clock)
    notifier = Notifier([NotifyConfig(kind="webhook", secret_env="NOC_T_HOOK")], outbox, clock)
    now = clock.utcnow()
    alert = Alert("region_down:ro", "region_down", Severity.CRITICAL, AlertState.FIRING,
                  "ro", "region ro is down", now)
    await notifier.notify(AlertNotice(alert, "firing", now))
    print("notified", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_nothing_is_lost_when_killed_right_after_notify(
    apis: FakeApis, tmp_path: Path, make: MakeNotifier
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp_path / "outbox.jsonl"), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"notified\n"
    finally:
        child.kill()  # SIGKILL: no cleanup of any kind
        await child.wait()

    notifier, _ = await make([webhook()])
    assert await notifier.send_due() == 1
    (request,) = apis.of("webhook")
    assert request.body["alert"]["id"] == "region_down:ro"


async def test_a_torn_last_line_is_skipped_and_reported(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([webhook()])
    await notifier.notify(firing(clock))
    await notifier.aclose()
    outbox.close()
    with outbox.path.open("ab") as handle:
        handle.write(b'{"op":"enqueue","id":"torn","chan')  # a crash mid-write

    notifier, outbox = await make([webhook()])
    assert outbox.damaged_lines == (3,)  # after the enqueue and its "open"
    assert len(outbox.pending) == 1
    await notifier.notify(firing(clock, id="second"))
    await notifier.aclose()
    outbox.close()

    # The rewrite on open removed the torn line, so the next append is whole.
    notifier, outbox = await make([webhook()])
    assert outbox.damaged_lines == ()
    assert await notifier.send_due() == 2


async def test_the_outbox_is_compacted_and_stays_bounded(
    apis: FakeApis,
    clock: FakeClock,
    make: MakeNotifier,
    refusing_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOC_T_DEAD", f"http://127.0.0.1:{refusing_port}/hook")
    dead = NotifyConfig(
        kind="webhook", name="dead", secret_env="NOC_T_DEAD", min_severity="critical"
    )
    channels = [webhook(), dead]
    notifier, outbox = await make(channels, compact_bytes=4096)
    await notifier.notify(firing(clock, id="stuck"))  # pending for "dead" throughout
    await notifier.send_due()
    sizes, written = [], 0
    for n in range(40):
        before = outbox.path.stat().st_size
        await notifier.notify(firing(clock, id=f"a{n}", severity=Severity.WARNING))
        await notifier.notify(resolved(clock, id=f"a{n}", severity=Severity.WARNING))
        await notifier.send_due()
        sizes.append(outbox.path.stat().st_size)
        written += max(0, sizes[-1] - before)
    assert written > 3 * 4096  # without compaction the file would be this big
    assert max(sizes) <= 2 * 4096
    await notifier.aclose()
    outbox.close()

    notifier, outbox = await make(channels)
    (stuck,) = outbox.pending.values()
    assert (stuck.channel, stuck.notice.alert_id, stuck.attempts) == ("dead", "stuck", 1)
    assert stuck.last_error == "connection refused"
    assert sorted(outbox.announced) == [("dead", "stuck"), ("webhook", "stuck")]


async def test_a_failed_write_is_shown_the_message_kept_and_the_file_healed(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier, outbox = await make([webhook()])

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        await notifier.notify(firing(clock))
    assert outbox.write_error == f"outbox {outbox.path} not writable: No space left on device"
    assert await notifier.send_due() == 1  # kept in memory, so delivered all the same
    assert outbox.write_error is None
    await notifier.aclose()
    outbox.close()

    # The write after the failure rewrote the file whole: nothing torn, nothing pending.
    _, outbox = await make([webhook()])
    assert (outbox.damaged_lines, dict(outbox.pending)) == ((), {})
    assert list(outbox.announced) == [("webhook", ALERT_ID)]


async def test_a_second_process_cannot_open_the_same_outbox(
    clock: FakeClock, make: MakeNotifier, tmp_path: Path
) -> None:
    await make([webhook()])
    with pytest.raises(OutboxLocked, match="in use by another noc process"):
        Outbox.open(tmp_path / "outbox.jsonl", clock)


async def test_messages_for_a_removed_channel_are_dropped_with_a_record(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([slack(), webhook()])
    await notifier.notify(firing(clock))
    await notifier.aclose()
    outbox.close()

    notifier, outbox = await make([webhook()])
    assert await notifier.send_due() == 1
    assert apis.of("slack") == []
    assert not outbox.pending and list(outbox.announced) == [("webhook", ALERT_ID)]
    (dropped,) = [r for r in records(outbox.path) if r["op"] == "dropped"]
    assert dropped["reason"] == "channel 'slack' is no longer configured"


# --- who is told what --------------------------------------------------------------


async def test_min_severity_and_send_resolved_filter(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make(
        [slack(min_severity="critical", send_resolved=False), webhook(min_severity="info")]
    )
    await notifier.notify(firing(clock, id="w", severity=Severity.WARNING))
    await notifier.notify(firing(clock, id="i", severity=Severity.INFO))
    await notifier.notify(firing(clock, id="c"))
    await notifier.send_due()
    assert [r.body["text"][:18] for r in apis.of("slack")] == ["[FIRING] critical:"]
    assert sorted(r.body["alert"]["id"] for r in apis.of("webhook")) == ["c", "i", "w"]

    await notifier.notify(resolved(clock, id="c"))
    await notifier.send_due()
    assert len(apis.of("slack")) == 1
    assert apis.of("webhook")[-1].body["event"] == "resolved"


async def test_muted_alerts_are_never_sent_but_a_resolve_follows_its_firing(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, _ = await make([slack()])
    await notifier.notify(firing(clock, silenced_by="s1"))
    await notifier.notify(firing(clock, id="inhibited", inhibited_by="region_down:ro"))
    await notifier.firing_now([alert(clock, silenced_by="s1")])
    await notifier.send_due()
    assert apis.of("slack") == []

    # The silence ends while the alert still fires: now the channel hears of it.
    await notifier.firing_now([alert(clock)])
    await notifier.send_due()
    # Silenced again, then resolved: the resolve still goes where the firing went.
    await notifier.notify(resolved(clock, silenced_by="s2"))
    await notifier.send_due()
    texts = [r.body["text"][:10] for r in apis.of("slack")]
    assert texts == ["[FIRING] c", "[RESOLVED]"]


async def test_a_leftover_announcement_does_not_swallow_a_new_episode(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    # The first episode's resolve never reached the notifier (a crash between the
    # engine's journal and notify()); the alert id is stable, so it fires again later.
    notifier, _ = await make([pagerduty(apis), slack()])
    await notifier.notify(firing(clock))
    await notifier.send_due()
    clock.advance(3600)
    later = clock.utcnow()
    await notifier.notify(firing(clock, since=later, started_at=later))
    await notifier.send_due()
    assert [r.body["event_action"] for r in apis.of("pagerduty")] == ["trigger", "trigger"]
    assert [r.body["text"][:8] for r in apis.of("slack")] == ["[FIRING]", "[FIRING]"]
    # ... and an episode the channel never heard of (muted throughout) gets no resolve.
    clock.advance(3600)
    muted_start = clock.utcnow()
    clock.advance(60)
    await notifier.notify(resolved(clock, started_at=muted_start))
    await notifier.send_due()
    assert len(apis.requests) == 4


async def test_repeats_come_every_repeat_seconds_except_where_pointless(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    channels = [
        slack(repeat_seconds=600),
        pagerduty(apis, repeat_seconds=600),
        webhook(repeat_seconds=0),
    ]
    notifier, _ = await make(channels)
    await notifier.notify(firing(clock))
    await notifier.send_due()
    assert len(apis.requests) == 3

    clock.advance(599)
    await notifier.firing_now([alert(clock)])
    assert await notifier.send_due() == 0
    clock.advance(1)
    await notifier.firing_now([alert(clock), alert(clock, id="pending", state=AlertState.PENDING)])
    assert await notifier.send_due() == 1
    (repeat,) = apis.requests[3:]
    assert repeat.api == "slack" and repeat.body["text"].startswith("[STILL FIRING] critical:")

    # Acknowledged: someone is on it, so no more reminders.
    clock.advance(600)
    acked = alert(clock, ack=Ack(by="ana", note="on it", at=clock.utcnow()))
    await notifier.firing_now([acked])
    assert await notifier.send_due() == 0


async def test_repeats_do_not_pile_up_while_a_channel_is_down(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier
) -> None:
    notifier, outbox = await make([slack(repeat_seconds=60)])
    await notifier.notify(firing(clock))
    apis.script("slack", *[Answer(503)] * 50)
    for _ in range(10):
        clock.advance(60)
        await notifier.firing_now([alert(clock)])
        await notifier.send_due()
    assert outbox.queued("slack", ALERT_ID) == 1


# --- secrets -----------------------------------------------------------------------


async def test_secrets_never_reach_the_outbox_logs_or_status(
    apis: FakeApis,
    clock: FakeClock,
    make: MakeNotifier,
    refusing_port: int,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level("DEBUG")
    dead_secret = "dead-hook-s3cr3t-path"
    monkeypatch.setenv(
        "NOC_T_DEAD", f"http://user:pw-s3cr3t@127.0.0.1:{refusing_port}/{dead_secret}"
    )
    dead = NotifyConfig(kind="webhook", name="dead", secret_env="NOC_T_DEAD")
    notifier, outbox = await make([slack(), telegram(apis), pagerduty(apis), webhook(), dead])
    apis.script("slack", Answer(500), Answer(403))
    apis.script("telegram", Answer(429, retry_after=5))
    apis.script("pagerduty", Answer(400))
    apis.script("webhook", Answer(503))
    await notifier.notify(firing(clock))
    await notifier.send_due()
    clock.advance(10)
    await notifier.send_due()

    assert "HTTP Request: POST" in caplog.text  # httpx's request log, masked
    shown = "\n".join([outbox.path.read_text(), caplog.text, repr(notifier.status())])
    for secret in (*apis.secrets, dead_secret, "pw-s3cr3t"):
        assert secret not in shown
    assert "****" in caplog.text


async def test_a_missing_secret_is_shown_and_the_message_kept(
    apis: FakeApis, clock: FakeClock, make: MakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOC_T_SLACK")
    monkeypatch.setenv("NOC_T_HOOK", "hooks.example.com/no-scheme")
    notifier, outbox = await make([slack(), webhook()])
    await notifier.notify(firing(clock))
    assert await notifier.send_due() == 0
    status = by_name(notifier)
    assert status["slack"].last_error == "secret env NOC_T_SLACK is not set"
    assert status["webhook"].last_error == "secret env NOC_T_HOOK does not hold an http(s) URL"
    assert all(s.failing and s.pending == 1 and s.retry_in_seconds is None for s in status.values())

    monkeypatch.setenv("NOC_T_SLACK", apis.slack_url)
    assert await notifier.send_due() == 1
    assert by_name(notifier)["slack"].failing is False
    assert len(outbox.pending) == 1  # the webhook's, still waiting for its secret


# --- wiring ------------------------------------------------------------------------


async def test_channel_names_must_be_distinct(clock: FakeClock, make: MakeNotifier) -> None:
    with pytest.raises(ValueError, match="distinct names"):
        await make([slack(), slack(min_severity="critical")])


async def test_notify_takes_only_transitions(clock: FakeClock, make: MakeNotifier) -> None:
    notifier, _ = await make([slack()])
    with pytest.raises(ValueError, match="not 'repeat'"):
        await notifier.notify(replace(firing(clock), event="repeat"))


def test_dedup_keys_fit_pagerduty() -> None:
    assert dedup_key("", "region_down:ro") == "noc-region_down:ro"
    assert len(dedup_key("e" * 300, "x")) <= 255


async def test_run_delivers_and_honours_retry_after_in_real_time(
    apis: FakeApis, make: MakeNotifier
) -> None:
    clock = SystemClock()
    notifier, _ = await make([telegram(apis), webhook()], with_clock=clock)
    apis.script("telegram", Answer(429, retry_after=1))
    sender = asyncio.create_task(notifier.run())
    try:
        await notifier.notify(firing(clock))
        deadline = time.monotonic() + 10
        while len(apis.of("telegram")) < 2 or not apis.of("webhook"):
            assert time.monotonic() < deadline, apis.requests
            await asyncio.sleep(0.02)
    finally:
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
    rate_limited, delivered = apis.of("telegram")
    assert (rate_limited.status, delivered.status) == (429, 200)
    assert delivered.at - rate_limited.at >= 1.0
    assert apis.of("webhook")[0].at < delivered.at  # the webhook did not wait for Telegram
